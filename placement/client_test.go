package placement

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/transport"
)

// TestClient: a process with a client transport reads and writes the
// registry through the members without being one: it spawns (unnamed
// spawns get a name, so a retry cannot place twice), finds placements,
// wakes when one moves, and is refused what only members may do.
func TestClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	net := transport.NewMemNetwork()
	regs := startMemOn(t, net, 3, nil)
	tr, err := net.JoinConfig("c1", transport.MemConfig{Client: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	cl, err := NewClient(ctx, ClientConfig{Transport: tr, Join: []string{transport.MemAddrPrefix + "n2", transport.MemAddrPrefix + "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if ms := cl.KnownMembers(); len(ms) != 3 || cl.Addr("n1") != transport.MemAddrPrefix+"n1" {
		t.Fatalf("members known to the client: %+v", ms)
	}

	p, err := cl.Spawn(ctx, SpawnRequest{Type: "T", Strategy: OnNode, Node: "n3", Policy: RestartPolicy{MaxRestarts: -1}})
	if err != nil || p.Node != "n3" || p.ID == "" {
		t.Fatalf("client spawn = %+v, %v", p, err)
	}
	if q, ok := cl.Lookup(p.ID); !ok || q != p {
		t.Fatalf("cached %+v, %v; want %+v", q, ok, p)
	}
	if q, err := cl.Resolve(ctx, p.ID); err != nil || q != p || cl.Addr("n3") != transport.MemAddrPrefix+"n3" {
		t.Fatalf("resolve = %+v, %v, addr %q", q, err, cl.Addr("n3"))
	}
	if _, err := cl.Resolve(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("resolve of an unknown id: %v", err)
	}
	if q, err := cl.Spawn(ctx, SpawnRequest{ID: p.ID, Type: "T"}); err != nil || q.Epoch != p.Epoch {
		t.Fatalf("named spawn of an active id = %+v, %v; want the same actor", q, err)
	}
	if _, err := regs[0].Owns(p.ID, p.Epoch); err == nil {
		t.Fatal("n1 owns an actor placed on n3")
	}
	if _, err := cl.Spawn(ctx, SpawnRequest{Type: "T", Strategy: Local}); err == nil {
		t.Fatal("a client placed an actor on itself")
	}
	for _, c := range []command{
		{Type: cmdTypes, Node: "c1", Types: []string{"T"}},
		{Type: cmdExpel, Node: "n2"},
		{Type: cmdLeave, Node: "c1"},
		{Type: cmdSpawn, Node: "n2", Spawn: SpawnRequest{Type: "T"}},
		{Type: cmdRelease, Node: "c2"},                          // another client's actors
		{Type: cmdForget, Node: "n3", ID: p.ID, Epoch: p.Epoch}, // a host's own write
	} {
		if _, err := cl.propose(ctx, c); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("client command %v: %v, want ErrUnauthorized", c.Type, err)
		}
	}
	if _, err := cl.Spawn(ctx, SpawnRequest{Type: "T", Owner: "c2"}); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("a spawn owned by another client: %v, want ErrInvalidRequest", err)
	}
	if _, err := regs[1].Spawn(ctx, SpawnRequest{Type: "T", Owner: "n2"}); !errors.Is(err, ErrUnauthorized) && !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("a member's owned spawn: %v, want a refusal", err)
	}
	owned, err := cl.Spawn(ctx, SpawnRequest{ID: "owned", Type: "T", Owner: "c1"})
	if err != nil || owned.Owner != "c1" {
		t.Fatalf("owned spawn = %+v, %v", owned, err)
	}
	if err := cl.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if q, err := cl.Resolve(ctx, "owned"); !errors.Is(err, ErrNotFound) || q.State != Stopped {
		t.Fatalf("owned actor after Release = %+v, %v; want stopped", q, err)
	}

	// The host fails: a client waiting for a newer placement wakes with it.
	moved := make(chan Placement, 1)
	go func() {
		q, err := cl.WaitNewer(ctx, p.ID, p.Epoch)
		if err != nil {
			t.Error(err)
		}
		moved <- q
	}()
	net.Isolate("n3")
	q := <-moved
	if q.Node == "n3" || q.Epoch <= p.Epoch {
		t.Fatalf("after the failover = %+v", q)
	}

	if err := cl.Stop(ctx, p.ID, "done"); err != nil {
		t.Fatal(err)
	}
	if s, ok := cl.Lookup(p.ID); !ok || s.State != Stopped {
		t.Fatalf("cached after the stop: %+v, %v; want stopped", s, ok)
	}
	if _, err := cl.WaitNewer(ctx, p.ID, q.Epoch); !errors.Is(err, ErrNotFound) {
		t.Fatalf("wait on a stopped actor: %v", err)
	}
	for _, r := range regs[:2] {
		if _, ok := r.Member("c1"); ok {
			t.Fatal("the client is a member")
		}
	}
}

// TestClientCannotJoin: a registry started on a client transport is
// refused at its join.
func TestClientCannotJoin(t *testing.T) {
	net := transport.NewMemNetwork()
	startMemOn(t, net, 1, nil)
	tr, err := net.JoinConfig("c1", transport.MemConfig{Client: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := New(ctx, Config{Transport: tr, Join: []string{transport.MemAddrPrefix + "n1"}})
	if err == nil {
		r.Close()
		t.Fatal("a client joined the registry")
	}
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("join with a client transport: %v, want ErrUnauthorized", err)
	}
}

// TestClientLookupFlood: a peer's waiting lookups are bounded on a member;
// past the bound they are answered at once, and nothing is left waiting
// once the waits end.
func TestClientLookupFlood(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	net := transport.NewMemNetwork()
	regs := startMemOn(t, net, 1, nil)
	tr, err := net.JoinConfig("c1", transport.MemConfig{Client: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	cl, err := NewClient(ctx, ClientConfig{Transport: tr, Join: []string{transport.MemAddrPrefix + "n1"}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p, err := cl.Spawn(ctx, SpawnRequest{Type: "T"})
	if err != nil {
		t.Fatal(err)
	}
	const extra = 44
	done := make(chan struct{}, maxLookupWaits+extra)
	for range maxLookupWaits + extra {
		go func() {
			_, _ = cl.lookup(ctx, &ctrl{Type: msgLookup, ID: p.ID, After: p.Epoch, Wait: true})
			done <- struct{}{}
		}()
	}
	for range extra { // the ones past the bound, answered at once
		<-done
	}
	regs[0].lookups.mu.Lock()
	waiting := regs[0].lookups.n["c1"]
	regs[0].lookups.mu.Unlock()
	if waiting != maxLookupWaits {
		t.Fatalf("%d lookups of one peer waiting on the member, want the bound %d", waiting, maxLookupWaits)
	}
	for range maxLookupWaits { // the waits end after lookupWait
		<-done
	}
	regs[0].lookups.mu.Lock()
	left := len(regs[0].lookups.n)
	regs[0].lookups.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d peers still counted waiting", left)
	}
}

// TestClientOutlivesItsJoinNode: a client whose only Join node is cut off
// goes on through the other members it learned at start.
func TestClientOutlivesItsJoinNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	net := transport.NewMemNetwork()
	startMemOn(t, net, 3, nil)
	tr, err := net.JoinConfig("c1", transport.MemConfig{Client: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	cl, err := NewClient(ctx, ClientConfig{Transport: tr, Join: []string{transport.MemAddrPrefix + "n1"}, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	net.Isolate("n1")
	p, err := cl.Spawn(ctx, SpawnRequest{Type: "T", Policy: RestartPolicy{MaxRestarts: -1}})
	if err != nil {
		t.Fatalf("spawn with the Join node cut off: %v", err)
	}
	// (It may be placed on n1, not failed yet: the registry's choice.)
	if q, err := cl.Resolve(ctx, p.ID); err != nil || q.ID != p.ID {
		t.Fatalf("resolve = %+v, %v", q, err)
	}
	if l := cl.Leader(); l == "n1" || l == "" {
		t.Fatalf("client's leader = %q, want a new one", l)
	}
}

// TestClientWatchMembers: a member watch returns at once when the members
// changed after the client's revision, else waits (bounded) for a change:
// a member's failure wakes it, with the member failed and HostDown true.
func TestClientWatchMembers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	net := transport.NewMemNetwork()
	regs := startMemOn(t, net, 3, nil)
	tr, err := net.JoinConfig("c1", transport.MemConfig{Client: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	cl, err := NewClient(ctx, ClientConfig{Transport: tr, Join: []string{transport.MemAddrPrefix + "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ms, rev, err := cl.WatchMembers(ctx, 0)
	if err != nil || len(ms) != 3 || rev == 0 {
		t.Fatalf("first watch = %d members, revision %d, %v", len(ms), rev, err)
	}
	if cl.HostDown("n3") {
		t.Fatal("n3 down before it failed")
	}
	net.Isolate("n3")
	for {
		ms, next, err := cl.WatchMembers(ctx, rev)
		if err != nil {
			t.Fatal(err)
		}
		if next == rev {
			continue // the member's wait ended with no change
		}
		if next < rev {
			t.Fatalf("revision went back from %d to %d", rev, next)
		}
		rev = next
		i := slices.IndexFunc(ms, func(m Member) bool { return m.ID == "n3" })
		if i >= 0 && ms[i].Status == Failed {
			break
		}
	}
	if !cl.HostDown("n3") || cl.HostDown("n1") {
		t.Fatalf("HostDown n3 %v, n1 %v; want true, false", cl.HostDown("n3"), cl.HostDown("n1"))
	}
	if got := regs[0].fsm.m.memberRev.Load(); got < rev {
		t.Fatalf("n1's member revision %d is behind the client's %d", got, rev)
	}
}
