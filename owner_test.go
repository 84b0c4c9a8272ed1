package troupe

import (
	"context"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/transport"
)

// waitState waits, on n's replica, until actor id is in state st.
func waitState(t *testing.T, ctx context.Context, n *Node, id string, st placement.ActorState) {
	t.Helper()
	sub := n.reg.Subscribe()
	defer sub.Close()
	for {
		if p, ok := n.reg.Lookup(id); ok && p.State == st {
			return
		}
		if _, err := sub.Next(ctx); err != nil {
			p, _ := n.reg.Lookup(id)
			t.Fatalf("%s on %s: %+v, never %v: %v", id, n.ID(), p, st, err)
		}
	}
}

// TestClientOwnsWhatItSpawns: a client owns the actors it spawns (Ray's
// non-detached actors) unless it spawns them Detached. They stop when it
// closes, and when it goes silent past ClientTimeout (a client killed
// without a word); a live client keeps them, and detached ones outlive
// it. (A new leader's grace for owners: placement's TestSilentOwners.)
func TestClientOwnsWhatItSpawns(t *testing.T) {
	c := newTestCluster(t, false, 3, func(cfg *Config) { cfg.ClientTimeout = 5 * time.Second })
	ctx := ctxT(t)
	client := func(name string) *Node {
		tr, err := c.net.JoinConfig(name, transport.MemConfig{Client: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		cl, err := Start(ctx, Config{Name: name, Client: true, Transport: tr, Join: []string{c.nodes[0].Addr()}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	member := c.nodes[0]

	// Closed: its own actors stop, detached ones stay.
	cl := client("cl1")
	owned := must[Ref](t)(cl.Spawn(ctx, "Counter"))
	detached := must[Ref](t)(cl.Spawn(ctx, "Counter", Detached()))
	if p, _ := member.reg.Lookup(owned.ID); p.Owner != "cl1" {
		t.Fatalf("owned placement %+v", p)
	}
	if p, _ := member.reg.Lookup(detached.ID); p.Owner != "" {
		t.Fatalf("detached placement %+v", p)
	}
	cl.Close()
	waitState(t, ctx, member, owned.ID, placement.Stopped)
	if p, _ := member.reg.Lookup(detached.ID); p.State != placement.Active {
		t.Fatalf("a detached actor stopped with its client: %+v", p)
	}
	if _, err := Call[int](ctx, must[Ref](t)(member.Lookup(ctx, detached.ID)), "Add", 1).Await(ctx); err != nil {
		t.Fatalf("call to the detached actor: %v", err)
	}

	// Silent (killed without a word): its actors stop once the leader has
	// not heard from it for ClientTimeout. A live client's, spawned
	// earlier, stay: it is heard through its member watch.
	live := client("cl3")
	kept := must[Ref](t)(live.Spawn(ctx, "Counter"))
	cl2 := client("cl2")
	lost := must[Ref](t)(cl2.Spawn(ctx, "Counter"))
	for _, n := range c.nodes {
		c.net.Drop("cl2", n.ID(), 1)
	}
	waitState(t, ctx, member, lost.ID, placement.Stopped)
	if p, _ := member.reg.Lookup(kept.ID); p.State != placement.Active {
		t.Fatalf("a live client's actor was stopped: %+v", p)
	}
	if _, err := Call[int](ctx, kept, "Add", 1).Await(ctx); err != nil {
		t.Fatalf("a live client's actor: %v", err)
	}
}
