package placement_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/placement/placementtest"
)

func restartAll(t *testing.T, c *placementtest.Cluster) []error {
	t.Helper()
	errs := make([]error, c.Len())
	var wg sync.WaitGroup
	for i := range c.Len() {
		wg.Go(func() { errs[i] = c.Restart(i) })
	}
	wg.Wait()
	return errs
}

func TestRestartFromDataDir(t *testing.T) {
	c := placementtest.New(t, placementtest.Config{Nodes: 3, Durable: true})
	ctx := ctxT(t, 30*time.Second)
	want := map[string]placement.Placement{}
	for i := range 20 {
		p, err := c.Reg(i%3).Spawn(ctx, placement.SpawnRequest{ID: fmt.Sprint("d", i), Type: "T", Policy: placement.RestartPolicy{MaxRestarts: 3}})
		if err != nil {
			t.Fatal(err)
		}
		want[p.ID] = p
	}
	// Half the entries go into a snapshot, the rest stay in the log.
	if err := c.Reg(1).Snapshot(ctx); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if err := c.Reg(0).Stop(ctx, "d3", "test"); err != nil {
		t.Fatal(err)
	}
	st := want["d3"]
	st.State, st.Reason = placement.Stopped, "test"
	want["d3"] = st
	c.Eventually(10*time.Second, "all replicas to apply the stop", func() bool {
		for i := range 3 {
			if p, _ := c.Reg(i).Lookup("d3"); p.State != placement.Stopped {
				return false
			}
		}
		return true
	})

	t.Run("one node", func(t *testing.T) {
		c.Kill(1)
		if err := c.Restart(1); err != nil {
			t.Fatalf("restart: %v", err)
		}
		for id, p := range want {
			if got, _ := c.Reg(1).Lookup(id); got != p {
				t.Fatalf("%s after restart = %+v, want %+v", id, got, p)
			}
		}
	})
	t.Run("whole cluster", func(t *testing.T) {
		c.Close()
		for i, err := range restartAll(t, c) {
			if err != nil {
				t.Fatalf("restart %d: %v", i, err)
			}
		}
		c.WaitLeader()
		for i := range 3 {
			for id, p := range want {
				if got, _ := c.Reg(i).Lookup(id); got.ID != p.ID || got.State != p.State || got.Type != p.Type {
					t.Fatalf("node %d: %s after restart = %+v, want %+v", i, id, got, p)
				}
			}
		}
		if _, err := c.Reg(2).Spawn(ctx, placement.SpawnRequest{ID: "after", Type: "T"}); err != nil {
			t.Fatalf("spawn after restart: %v", err)
		}
	})
}

func TestCorruptedSnapshotOnDiskRefused(t *testing.T) {
	c := placementtest.New(t, placementtest.Config{Nodes: 1, Durable: true})
	ctx := ctxT(t, 20*time.Second)
	for i := range 5 {
		if _, err := c.Reg(0).Spawn(ctx, placement.SpawnRequest{ID: fmt.Sprint("s", i), Type: "T"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Reg(0).Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	c.Kill(0)
	states, _ := filepath.Glob(filepath.Join(c.Node(0).DataDir, "snapshots", "*", "state.bin"))
	if len(states) == 0 {
		t.Fatal("no snapshot on disk")
	}
	tests := []struct {
		name    string
		corrupt func(b []byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"flipped byte", func(b []byte) []byte { b[len(b)-3] ^= 0xff; return b }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, s := range states {
				b, err := os.ReadFile(s)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.WriteFile(s, b, 0o600) })
				if err := os.WriteFile(s, tt.corrupt(append([]byte(nil), b...)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := c.Restart(0)
			if err == nil {
				c.Kill(0)
				t.Fatal("a node restarted from a corrupted snapshot")
			}
			t.Logf("refused: %v", err)
		})
	}
	// With the files restored, the node starts again with its state.
	if err := c.Restart(0); err != nil {
		t.Fatalf("restart with the intact snapshot: %v", err)
	}
	for i := range 5 {
		if p, ok := c.Reg(0).Lookup(fmt.Sprint("s", i)); !ok || p.State != placement.Active {
			t.Fatalf("s%d after restart = %+v, %v", i, p, ok)
		}
	}
}

// TestColdStartOneAtATime: every node of a durable cluster is down; they
// start again one at a time, each New returning before a quorum is back
// (a start script waits for each to run before the next), and the cluster
// gets going once two of three run.
func TestColdStartOneAtATime(t *testing.T) {
	c := placementtest.New(t, placementtest.Config{Nodes: 3, Durable: true})
	ctx := ctxT(t, 30*time.Second)
	for i := range 6 {
		if _, err := c.Reg(i%3).Spawn(ctx, placement.SpawnRequest{ID: fmt.Sprint("c", i), Type: "T"}); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	if err := c.Launch(0); err != nil {
		t.Fatalf("first node of a cold start: %v", err)
	}
	if !c.Reg(0).Restarted() {
		t.Fatal("Restarted() = false for a node started from its DataDir")
	}
	if done, err := c.Reg(0).Joined(); done {
		t.Fatalf("alone, node 0 rejoined (err %v) without a quorum", err)
	}
	if c.Reg(0).HasLease() {
		t.Fatal("alone, node 0 holds a lease")
	}
	if err := c.Launch(1); err != nil {
		t.Fatalf("second node of a cold start: %v", err)
	}
	for i := range 2 {
		if err := c.Reg(i).WaitJoined(ctx); err != nil {
			t.Fatalf("node %d rejoin with a quorum back: %v", i, err)
		}
		if err := c.Reg(i).WaitLease(ctx); err != nil {
			t.Fatalf("node %d lease: %v", i, err)
		}
	}
	if err := c.Launch(2); err != nil {
		t.Fatal(err)
	}
	if err := c.Reg(2).WaitJoined(ctx); err != nil {
		t.Fatalf("node 2 rejoin: %v", err)
	}
	for i := range 6 {
		if p, ok := c.Reg(2).Lookup(fmt.Sprint("c", i)); !ok || p.Type != "T" {
			t.Fatalf("c%d after the cold start = %+v, %v", i, p, ok)
		}
	}
	if _, err := c.Reg(2).Spawn(ctx, placement.SpawnRequest{ID: "after", Type: "T"}); err != nil {
		t.Fatalf("spawn after the cold start: %v", err)
	}
}

// TestClosedBeforeRejoin: a node restarted alone and closed before its
// peers return reports ErrClosed from WaitJoined, and leaks nothing.
func TestClosedBeforeRejoin(t *testing.T) {
	c := placementtest.New(t, placementtest.Config{Nodes: 3, Durable: true})
	c.Close()
	if err := c.Launch(0); err != nil {
		t.Fatal(err)
	}
	reg := c.Reg(0)
	c.Kill(0)
	if err := reg.WaitJoined(ctxT(t, 10*time.Second)); !errors.Is(err, placement.ErrClosed) {
		t.Fatalf("WaitJoined after Close = %v, want ErrClosed", err)
	}
}
