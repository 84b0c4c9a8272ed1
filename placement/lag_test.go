package placement

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/transport"
)

// TestLaggingFollowerServes: a follower whose replica falls behind (its
// FSM stalled, as by a snapshot, a GC pause or a burst of writes) keeps
// its lease and serves its actors while the entries it has not applied
// concern other members; an entry that takes one of its actors away
// (here a stop) ends its lease until it has applied it.
func TestLaggingFollowerServes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var block atomic.Bool
	release := make(chan struct{})
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	regs := startMem(t, 3, func(i int, cfg *Config) {
		if i == 2 {
			cfg.applyGate = func() {
				if block.Load() {
					<-release
				}
			}
		}
	})
	f := regs[2]
	if f.IsLeader() {
		t.Skip("n3 leads")
	}
	a, err := regs[0].Spawn(ctx, SpawnRequest{ID: "a", Type: "T", Strategy: OnNode, Node: f.ID()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WaitOwns(ctx, "a", a.Epoch); err != nil {
		t.Fatal(err)
	}
	// waitRenewals waits for n renewals of f's lease (the pongs that
	// answer its pings), so that every grant made before is past.
	waitRenewals := func(n uint64) {
		t.Helper()
		want := f.Counters().LeaseRenewals + n
		for f.Counters().LeaseRenewals < want {
			if err := f.pause(ctx, f.cfg.LeaseTimeout/8); err != nil {
				t.Fatal(err)
			}
		}
	}
	block.Store(true)
	for i := range 20 {
		if _, err := regs[0].Spawn(ctx, SpawnRequest{ID: fmt.Sprint("b", i), Type: "T", Strategy: OnNode, Node: regs[1].ID()}); err != nil {
			t.Fatal(err)
		}
	}
	if la, fa := regs[0].AppliedIndex(), f.AppliedIndex(); fa >= la {
		t.Fatalf("the follower is not behind: applied %d, leader %d", fa, la)
	}
	waitRenewals(8) // two lease periods
	if !f.HasLease() {
		t.Fatalf("a follower behind on others' entries lost its lease (applied %d, leader %d)", f.AppliedIndex(), regs[0].AppliedIndex())
	}
	if _, err := f.Owns("a", a.Epoch); err != nil {
		t.Fatalf("a follower behind on others' entries refuses its own actor: %v", err)
	}
	// A stop of its own actor, which it has not applied: no lease (and so
	// no serving "a") until it has.
	if err := regs[0].Stop(ctx, "a", "test"); err != nil {
		t.Fatal(err)
	}
	waitRenewals(8)
	if f.HasLease() {
		t.Fatal("a follower that has not applied the stop of its actor still holds a lease")
	}
	if _, err := f.Owns("a", a.Epoch); err == nil {
		t.Fatal("a follower served an actor stopped in an entry it has not applied")
	}
	released = true
	close(release)
	if err := f.WaitLease(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Owns("a", a.Epoch); err == nil {
		t.Fatal("the stopped actor is served after the follower caught up")
	}
}

// TestLaggingFollowerTakesJoinersVotes: a follower that has the entry
// adding a joiner in its log, but has not applied it (its FSM stalled, or
// the leader died before it sent the commit), takes Raft streams from the
// joiner, as Raft itself counts the joiner from that entry on. Refusing
// them could leave two live voters of three without a leader: the joiner,
// whose log is the longer one, is then the only server that can win.
func TestLaggingFollowerTakesJoinersVotes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var block atomic.Bool
	release := make(chan struct{})
	defer close(release)
	net := transport.NewMemNetwork()
	regs := startMemOn(t, net, 2, func(i int, cfg *Config) {
		if i == 1 {
			cfg.applyGate = func() {
				if block.Load() {
					<-release
				}
			}
		}
	})
	lag := regs[1]
	block.Store(true)
	// An entry for the lagging follower's FSM to stall on.
	if _, err := regs[0].Spawn(ctx, SpawnRequest{ID: "a", Type: "T"}); err != nil {
		t.Fatal(err)
	}
	tr, err := net.Join("n3")
	if err != nil {
		t.Fatal(err)
	}
	joiner, err := New(ctx, Config{Transport: tr, Types: []string{"T"}, Join: []string{transport.MemAddrPrefix + "n1"}})
	if err != nil {
		tr.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { joiner.Close(); tr.Close() })
	// Raft on the follower has the entry (the change committed with
	// the joiner or the follower acknowledging it; wait for the latter).
	for !lag.inLatestRaftConfig("n3") {
		if err := lag.pause(ctx, lag.cfg.HeartbeatTimeout/10); err != nil {
			t.Fatal("the follower's Raft never had the joiner's entry")
		}
	}
	if lag.inRaftConfig("n3") {
		t.Fatal("the follower applied the joiner's entry: the test did not stall it")
	}
	if !lag.AllowRaft("n3") {
		t.Fatal("a follower with the joiner's entry in its log refuses the joiner's Raft streams")
	}
	if got := lag.RaftPeerID(tr.Addr()); got != "n3" {
		t.Fatalf("the follower maps the joiner's Raft address to %q, want n3", got)
	}
	if lag.AllowRaft("n9") {
		t.Fatal("a stranger may open Raft streams")
	}
}
