package troupe

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/remote"
	"github.com/troupe-dev/troupe/transport"
)

// A caller that stops reading its replies (a stalled process) hurts only
// itself: over real QUIC, its replies pile up, are dropped when its queue is
// full, and the actor it called keeps answering everybody else.
func TestStalledCallerHurtsOnlyItself(t *testing.T) {
	c := newTestCluster(t, true, 2, nil)
	ctx := ctxT(t)
	n1, n2 := c.nodes[0], c.nodes[1]
	r := must[Ref](t)(n1.Spawn(ctx, "Counter", WithName("shared"), OnNode("n2")))
	ca, err := devCA()
	if err != nil {
		t.Fatal(err)
	}
	ident, err := ca.Issue("stalled", 0)
	if err != nil {
		t.Fatal(err)
	}
	stalled, err := transport.NewQUIC(transport.Config{Identity: ident})
	if err != nil {
		t.Fatal(err)
	}
	unblock := make(chan struct{})
	defer stalled.Close()
	defer close(unblock)
	// The stalled process never returns from its reader: it reads nothing.
	stalled.Handle(transport.KindCalls, transport.HandlerFunc(func(string, []byte) { <-unblock }))
	args, err := remote.AppendArgs(nil, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	sendCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for i := range 400 { // 100 MiB of replies asked for
		q := remote.Request{ID: uint64(i + 1), Target: r.ID, Epoch: r.Epoch, Method: "Pad",
			Flags: remote.FlagNoCancel, Sender: "stalled", Args: args}
		if err := stalled.Send(sendCtx, transport.Peer{ID: "n2", Addr: n2.Addr()}, transport.KindCalls, remote.AppendRequest(nil, &q)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	// Calls of a healthy caller keep being answered, before and after the
	// actor has served every Pad of the stalled one (its last reply dropped).
	stalledOn := func() bool { // replies to it dropped, or megabytes of them queued
		if n2.ep.RepliesDropped() > 0 {
			return true
		}
		for _, s := range n2.tr.Stats() {
			if s.Peer == "stalled" && s.QueuedBytes >= 4<<20 {
				return true
			}
		}
		return false
	}
	for i := 0; i < 50 || (!stalledOn() && i < 5000); i++ {
		if v, err := Call[int](ctx, r, "Add", 1).Await(ctx); err != nil || v != i+1 {
			t.Fatalf("call %d of a healthy caller beside a stalled one = %d, %v", i, v, err)
		}
	}
	if !stalledOn() {
		t.Fatalf("no reply to the stalled caller was dropped or queued (stats %+v): the test did not stall it", n2.tr.Stats())
	}
}

// A caller node that shuts down with calls queued on a shared actor frees it
// at once: over real QUIC, its queued calls never run.
func TestDepartedCallerOverQUIC(t *testing.T) {
	c := newTestCluster(t, true, 3, nil)
	ctx := ctxT(t)
	n1, n3 := c.nodes[0], c.nodes[2]
	r := must[Ref](t)(n1.Spawn(ctx, "Counter", WithName("shared"), OnNode("n2")))
	if _, err := Call[int](ctx, r, "Get").Await(ctx); err != nil {
		t.Fatal(err)
	}
	// n3 has reached n2 once (it knows the placement and n2's address),
	// so the naps are sent at once, in order: a first attempt that fails
	// before it leaves is retried later and may overtake the others.
	if _, err := Call[int](ctx, n3.Ref(r), "Get").Await(ctx); err != nil {
		t.Fatal(err)
	}
	before := napsDone.Load()
	var futs []*Future[struct{}]
	for range 30 {
		futs = append(futs, Call[struct{}](ctx, n3.Ref(r), "Nap", 100*time.Millisecond))
	}
	// The calls are on n2 once the first has run.
	if _, err := futs[0].Await(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n3.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Call[struct{}](ctx, r, "Nap", time.Millisecond).Await(ctx); err != nil {
		t.Fatal(err)
	}
	// The first nap, at most one running when n3 went, and n1's.
	if ran := napsDone.Load() - before; ran > 5 {
		t.Fatalf("%d naps ran: the departed caller's queued calls were not dropped", ran)
	}
}

// One-way sends with the default mailbox lose nothing, over real QUIC: the
// host pushes back on a fast sender instead of dropping.
func TestTellLosesNothingOverQUIC(t *testing.T) {
	c := newTestCluster(t, true, 2, nil)
	ctx := ctxT(t)
	n1 := c.nodes[0]
	r := must[Ref](t)(n1.Spawn(ctx, "Counter", OnNode("n2")))
	const n = 20000
	for i := range n {
		if err := Tell(ctx, r, "Add", 1); err != nil {
			t.Fatalf("Tell %d: %v", i, err)
		}
	}
	got, err := Call[int](ctx, r, "Get").Await(ctx)
	if err != nil || got != n {
		t.Fatalf("the actor got %d of %d one-way sends (%v)", got, n, err)
	}
}

// Arguments and results over the frame limit fail with ErrTooLarge, the
// same for a local actor as for a remote one.
func TestTooLarge(t *testing.T) {
	c := newTestCluster(t, true, 2, func(cfg *Config) { cfg.MaxFrameSize = 1 << 20 })
	ctx := ctxT(t)
	n1 := c.nodes[0]
	for _, host := range []string{"n1", "n2"} {
		r := must[Ref](t)(n1.Spawn(ctx, "Counter", OnNode(host)))
		if _, err := Call[[]byte](ctx, r, "Pad", 2<<20).Await(ctx); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("result over the limit on %s: %v", host, err)
		}
		if _, err := Call[Ref](ctx, r, "Echo", make([]byte, 2<<20)).Await(ctx); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("argument over the limit on %s: %v", host, err)
		}
	}
}
