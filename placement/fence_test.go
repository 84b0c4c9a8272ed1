package placement_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/placement/placementtest"
)

// A planned move off a live node whose replica is held back (cut off from
// the others, its lease still running) must not let the old and the new
// host serve at once: a monitor samples Owns on every node throughout.
// Without the fence the new host served as soon as it applied the move,
// while the old one still held its lease for up to LeaseTimeout.
func TestMoveIsFenced(t *testing.T) {
	for _, how := range []string{"restart", "stop-respawn"} {
		t.Run(how, func(t *testing.T) {
			c := placementtest.NewCluster(t, 3)
			ctx := ctxT(t, 20*time.Second)
			l := c.WaitLeader()
			old, nw := (l+1)%3, (l+2)%3
			oldID, newID := c.Node(old).ID, c.Node(nw).ID
			for k := range 3 {
				if _, err := c.Reg(l).Spawn(ctx, placement.SpawnRequest{ID: fmt.Sprintf("f%d", k), Type: "T", Strategy: placement.OnNode, Node: c.Node(l).ID}); err != nil {
					t.Fatal(err)
				}
			}
			// x lands on old: the leader has 3 actors, nw 1 (g), old none.
			// Once g stops, a restart (least loaded) moves x to nw.
			if _, err := c.Reg(l).Spawn(ctx, placement.SpawnRequest{ID: "g", Type: "T", Strategy: placement.OnNode, Node: newID}); err != nil {
				t.Fatal(err)
			}
			p, err := c.Reg(l).Spawn(ctx, placement.SpawnRequest{ID: "x", Type: "T", Policy: placement.RestartPolicy{MaxRestarts: -1}})
			if err != nil {
				t.Fatal(err)
			}
			if p.Node != oldID {
				t.Fatalf("x placed on %s, want %s", p.Node, oldID)
			}
			if err := c.Reg(l).Stop(ctx, "g", "make room"); err != nil {
				t.Fatal(err)
			}
			waitLookup(t, c, old, "x", func(q placement.Placement) bool { return q.Epoch == p.Epoch })
			c.Eventually(5*time.Second, oldID+" serving x", func() bool {
				_, err := c.Reg(old).Owns("x", 0)
				return err == nil
			})
			m := startMonitor(t, c, []string{"x"})
			c.Isolate(old) // its replica misses the move; its lease runs on
			switch how {
			case "restart":
				q, err := c.Reg(l).ReportFailure(ctx, "x", p.Epoch, "moved")
				if err != nil {
					t.Fatal(err)
				}
				if q.Node != newID {
					t.Fatalf("restart placed x on %s, want %s", q.Node, newID)
				}
			case "stop-respawn":
				if err := c.Reg(l).Stop(ctx, "x", "moving"); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Reg(l).Spawn(ctx, placement.SpawnRequest{ID: "x", Type: "T", Strategy: placement.OnNode, Node: newID}); err != nil {
					t.Fatal(err)
				}
			}
			// The new host is fenced at first, then serves.
			moved := waitLookup(t, c, nw, "x", func(q placement.Placement) bool { return q.Node == newID && q.State == placement.Active })
			if err := c.Reg(nw).WaitLease(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Reg(nw).Owns("x", 0); !errors.Is(err, placement.ErrFenced) {
				t.Errorf("new host right after the move: %v, want ErrFenced", err)
			}
			// AllocsPerRun counts the whole process's allocations, the
			// cluster's own goroutines too: take the least of a few runs
			// (an Owns that allocated would show in every one).
			a := math.Inf(1)
			for range 5 {
				a = min(a, testing.AllocsPerRun(100, func() { _, _ = c.Reg(nw).Owns("x", 0) }))
			}
			if a != 0 {
				t.Errorf("Owns on a fenced actor: %v allocations", a)
			}
			// A call during the fence waits it out (WaitOwns) instead of
			// failing: admitted at the fence's end, within the call's ctx.
			short, cancel := context.WithTimeout(ctx, 2*time.Second)
			start := time.Now()
			q, err := c.Reg(nw).WaitOwns(short, "x", moved.Epoch)
			cancel()
			if err != nil || q.Epoch != moved.Epoch {
				t.Fatalf("WaitOwns during the fence: %+v, %v", q, err)
			}
			t.Logf("a call during the fence waited %v", time.Since(start))
			m.finish(t)
			c.HealAll()
		})
	}
}

// Leave stops serving first: from the call on, Owns refuses the node's
// actors (even before the leave commits, here never, the node being cut
// off), so the new hosts serve them unfenced as soon as they apply it.
func TestLeaveStopsServingFirst(t *testing.T) {
	c := placementtest.NewCluster(t, 3)
	ctx := ctxT(t, 20*time.Second)
	l := c.WaitLeader()
	old, nw := (l+1)%3, (l+2)%3
	oldID := c.Node(old).ID
	p, err := c.Reg(l).Spawn(ctx, placement.SpawnRequest{ID: "x", Type: "T", Strategy: placement.OnNode, Node: oldID, Policy: placement.RestartPolicy{MaxRestarts: -1}})
	if err != nil {
		t.Fatal(err)
	}
	waitLookup(t, c, old, "x", func(q placement.Placement) bool { return q.Epoch == p.Epoch })
	if err := c.Reg(old).WaitLease(ctx); err != nil {
		t.Fatal(err)
	}
	m := startMonitor(t, c, []string{"x"})

	// Cut off, the leave cannot commit; the node stops serving anyway.
	c.Isolate(old)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err = c.Reg(old).Leave(short)
	cancel()
	if err == nil {
		t.Fatal("leave committed from an isolated node")
	}
	if _, err := c.Reg(old).Owns("x", 0); !errors.Is(err, placement.ErrNotOwner) {
		t.Fatalf("Owns on a leaving node = %v, want ErrNotOwner", err)
	}
	c.HealAll()
	if err := c.Reg(old).Leave(ctx); err != nil {
		t.Fatal(err)
	}
	// The move off a left node is not fenced.
	q := waitLookup(t, c, nw, "x", func(q placement.Placement) bool { return q.Node != oldID && q.Epoch > p.Epoch })
	host := c.Reg(c.Index(q.Node))
	if err := host.WaitLease(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Owns("x", 0); err != nil {
		t.Fatalf("new host %s after a leave: %v, want to serve at once", q.Node, err)
	}
	m.finish(t)
}
