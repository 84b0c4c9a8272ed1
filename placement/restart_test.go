package placement

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/troupe-dev/troupe/transport"
)

// slowOpen is a snapshot store whose Open (the restore inside
// raft.NewRaft) waits until release is closed, as a large snapshot does.
type slowOpen struct {
	raft.SnapshotStore
	opening chan struct{} // closed when Open begins
	release chan struct{}
}

func (s *slowOpen) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	close(s.opening)
	<-s.release
	return s.SnapshotStore.Open(id)
}

// TestRestartGrace: a node restarted from its DataDir at its address,
// whose snapshot takes longer than FailTimeout to load, tells the leader it
// is back before it loads; the leader waits RestartGrace more before it
// fails the node, so its actors stay placed on it (same epoch) and it
// serves them once loaded. Without the grace it is failed while it loads
// and its actor is re-placed elsewhere.
func TestRestartGrace(t *testing.T) {
	tests := []struct {
		name  string
		grace time.Duration
		stays bool
	}{
		{"default grace", 0, true},
		{"no grace", -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			net := transport.NewMemNetwork()
			dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
			start := func(i int, wrap func(raft.SnapshotStore) raft.SnapshotStore) (*Registry, *transport.Mem, error) {
				tr, err := net.Join(fmt.Sprintf("n%d", i+1))
				if err != nil {
					return nil, nil, err
				}
				cfg := Config{Transport: tr, Types: []string{"T"}, DataDir: dirs[i], RestartGrace: tt.grace, wrapSnapshots: wrap}
				if i > 0 {
					cfg.Join = []string{transport.MemAddrPrefix + "n1"}
				}
				r, err := New(ctx, cfg)
				if err != nil {
					tr.Close()
					return nil, nil, err
				}
				return r, tr, nil
			}
			var regs []*Registry
			var trs []*transport.Mem
			t.Cleanup(func() {
				for i := range regs {
					if regs[i] != nil {
						regs[i].Close()
						trs[i].Close()
					}
				}
			})
			for i := range 3 {
				r, tr, err := start(i, nil)
				if err != nil {
					t.Fatal(err)
				}
				regs, trs = append(regs, r), append(trs, tr)
			}
			leader := regs[0]
			if !leader.IsLeader() {
				t.Skip("n1 does not lead") // it bootstrapped the cluster
			}
			p, err := leader.Spawn(ctx, SpawnRequest{ID: "a", Type: "T", Strategy: OnNode, Node: "n3", Policy: RestartPolicy{MaxRestarts: 3}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := regs[2].WaitOwns(ctx, "a", p.Epoch); err != nil {
				t.Fatal(err)
			}
			if err := regs[2].raft.Snapshot().Error(); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			regs[2].Close()
			trs[2].Close()
			regs[2] = nil

			slow := &slowOpen{opening: make(chan struct{}), release: make(chan struct{})}
			type started struct {
				r   *Registry
				tr  *transport.Mem
				err error
			}
			done := make(chan started, 1)
			go func() {
				r, tr, err := start(2, func(s raft.SnapshotStore) raft.SnapshotStore { slow.SnapshotStore = s; return slow })
				done <- started{r, tr, err}
			}()
			<-slow.opening
			// The load outlasts FailTimeout three times over.
			<-time.After(3 * leader.cfg.FailTimeout)
			mb, _ := leader.fsm.m.member("n3")
			close(slow.release)
			st := <-done
			if st.err != nil {
				t.Fatalf("restart: %v", st.err)
			}
			regs[2], trs[2] = st.r, st.tr
			if !tt.stays {
				if mb.Status != Failed {
					t.Fatalf("without a grace, n3 loading past FailTimeout is %v", mb.Status)
				}
				if q, err := leader.WaitNewer(ctx, "a", p.Epoch); err != nil || q.Node == "n3" {
					t.Fatalf("without a grace, a = %+v, %v; want re-placed off n3", q, err)
				}
				return
			}
			if mb.Status != Alive {
				t.Fatalf("n3 loading within its grace is %v (leader changes seen by n1: %d, graces %d)",
					mb.Status, leader.Counters().LeaderChanges, leader.Counters().RestartGraces)
			}
			if g := leader.Counters().RestartGraces; g != 1 {
				t.Fatalf("RestartGraces = %d, want 1", g)
			}
			if err := regs[2].WaitJoined(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := regs[2].WaitOwns(ctx, "a", p.Epoch); err != nil {
				t.Fatalf("n3 serving a at its epoch after the restart: %v", err)
			}
			if q, _ := leader.Lookup("a"); q.Node != "n3" || q.Epoch != p.Epoch {
				t.Fatalf("a = %+v, want still n3 at epoch %d", q, p.Epoch)
			}
		})
	}
}

// TestBackFromStrangers: a restart announcement is taken only from a
// member at its recorded address, and a member repeating it is given one
// grace, counted and logged once, however often it asks.
func TestBackFromStrangers(t *testing.T) {
	regs := startMem(t, 2, nil)
	l := regs[0]
	if !l.IsLeader() {
		t.Skip("n1 does not lead")
	}
	tests := []struct {
		name, from, addr string
		ok               bool
	}{
		{"member at its address", "n2", transport.MemAddrPrefix + "n2", true},
		{"member elsewhere", "n2", transport.MemAddrPrefix + "n9", false},
		{"not a member", "n9", transport.MemAddrPrefix + "n9", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := l.allowFrame(tt.from, &ctrl{Type: msgBack, Addr: tt.addr})
			if (err == nil) != tt.ok {
				t.Fatalf("allowFrame = %v, want allowed %v", err, tt.ok)
			}
		})
	}
	for range 5 {
		l.handleBack("n2")
	}
	if g := l.Counters().RestartGraces; g != 1 {
		t.Fatalf("RestartGraces = %d after 5 announcements in one grace, want 1", g)
	}
}

// TestRestartGraceSurvivesLeaderChange: every server takes a restart
// announcement, so a leader elected while the member loads keeps its
// grace instead of failing it grace after its own election.
func TestRestartGraceSurvivesLeaderChange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	net := transport.NewMemNetwork()
	regs := startMemOn(t, net, 3, nil)
	l := regs[0]
	if !l.IsLeader() {
		t.Skip("n1 does not lead")
	}
	b, err := encodeCtrl(&ctrl{Type: msgBack, Addr: regs[2].addr})
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range regs[:2] {
		for { // its replica must know n3 at its address to take the announcement
			if mb, ok := to.fsm.m.member("n3"); ok && mb.Addr == regs[2].addr {
				break
			}
			if err := to.pause(ctx, to.cfg.HeartbeatTimeout/10); err != nil {
				t.Fatal(err)
			}
		}
		to.handleFrame("n3", b) // as if n3 restarted and announced itself
	}
	net.Isolate("n3") // loading: silent
	if err := l.raft.LeadershipTransferToServer("n2", raft.ServerAddress(regs[1].addr)).Error(); err != nil {
		t.Fatalf("leadership transfer: %v", err)
	}
	for !regs[1].IsLeader() || regs[1].lw.term.Load() != regs[1].raft.CurrentTerm() {
		if err := regs[1].pause(ctx, regs[1].cfg.HeartbeatTimeout/10); err != nil {
			t.Fatalf("waiting for n2 to lead: %v", err)
		}
	}
	// Three FailTimeouts of silence, under the new leader.
	if err := regs[1].pause(ctx, 3*regs[1].cfg.FailTimeout); err != nil {
		t.Fatal(err)
	}
	if mb, _ := regs[1].fsm.m.member("n3"); mb.Status != Alive {
		t.Fatalf("n3, loading within its grace, is %v under the new leader", mb.Status)
	}
}
