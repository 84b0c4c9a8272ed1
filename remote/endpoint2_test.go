package remote

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

type baseKey struct{}

// ctxReader reports a value of its method ctx.
type ctxReader struct{}

func (ctxReader) Value(ctx context.Context) string {
	s, _ := ctx.Value(baseKey{}).(string)
	return s
}

func TestBaseContext(t *testing.T) {
	c := newClusterOn(t, false, 2, func(ts *Types, _ int) {
		if _, err := Register(ts, "Reader", func() *ctxReader { return &ctxReader{} }); err != nil {
			t.Fatal(err)
		}
	}, func(cfg *Config) {
		node := cfg.Transport.ID()
		cfg.BaseContext = func() context.Context { return context.WithValue(context.Background(), baseKey{}, "base of "+node) }
	})
	ref := c.reg.place("r1", "Reader", "n2", 1)
	ctx := context.Background()
	for i, e := range c.nodes {
		var got string
		if err := e.Call(ctx, ref, "Value", CallOptions{}).Decode(ctx, &got); err != nil || got != "base of n2" {
			t.Fatalf("call from n%d: Value = %q, %v; want the hosting node's base ctx", i+1, got, err)
		}
	}
}

func TestBaseContextNil(t *testing.T) {
	c := newClusterOn(t, false, 1, func(*Types, int) {}, nil)
	_, err := New(Config{Transport: c.trs[0], Types: NewTypes(), BaseContext: func() context.Context { return nil }})
	if err == nil {
		t.Fatal("New accepted a BaseContext returning nil")
	}
}

// TestDrain: a draining node finishes the running call and the one queued
// behind it, and answers new requests ErrNotOwner.
func TestDrain(t *testing.T) {
	c, probes := newWorkerCluster(t, 2, nil)
	ref := c.reg.place("w1", "Worker", "n2", 1)
	ctx := context.Background()
	if got, err := callInt(t, ctx, c.nodes[0], ref, "Add", 10); err != nil || got != 10 {
		t.Fatalf("Add = %d, %v", got, err)
	}
	running := c.nodes[0].Call(ctx, ref, "Wait", CallOptions{})
	<-probes[1].started
	// A local call is queued on the actor before Call returns.
	queued := c.nodes[1].Call(ctx, ref, "Add", CallOptions{}, 1)
	drained := make(chan error, 1)
	go func() { drained <- c.nodes[1].Drain(ctx) }()
	close(probes[1].release)
	if _, err := running.Wait(ctx); err != nil {
		t.Fatalf("running call: %v", err)
	}
	var n int
	if err := queued.Decode(ctx, &n); err != nil || n != 11 {
		t.Fatalf("queued call = %d, %v; want 11 from the draining instance", n, err)
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain = %v", err)
	}
	// The registry still places w1 on n2 (at epoch 2, so n1's stale epoch 1
	// is refused and retried once): the drained n2 refuses both tries.
	c.reg.place("w1", "Worker", "n2", 2)
	c.reg.setStale("n1", "w1", Location{Node: "n2", Epoch: 1})
	if _, err := c.nodes[0].Call(ctx, ref, "Get", CallOptions{}).Wait(ctx); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("call to a drained node = %v, want ErrNotOwner", err)
	}
	// Outgoing calls still work until Close.
	c.reg.place("w2", "Worker", "n1", 1)
	if got, err := callInt(t, ctx, c.nodes[1], Ref{ID: "w2", Type: "Worker"}, "Add", 3); err != nil || got != 3 {
		t.Fatalf("call from a drained node = %d, %v", got, err)
	}
	if err := c.nodes[1].Drain(ctx); err != nil {
		t.Fatalf("second Drain = %v", err)
	}
}

// TestShutdownCutShort: when ctx ends first, running methods are cancelled
// and Shutdown reports ctx's error; the endpoint is closed.
func TestShutdownCutShort(t *testing.T) {
	c, probes := newWorkerCluster(t, 2, nil)
	ref := c.reg.place("w1", "Worker", "n2", 1)
	callCtx, stopCall := context.WithCancel(context.Background())
	defer stopCall()
	call := c.nodes[0].Call(callCtx, ref, "Block", CallOptions{})
	<-probes[1].started
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.nodes[1].Shutdown(ctx) }()
	cancel()
	if err := <-probes[1].ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("method ctx ended with %v", err)
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	if _, err := c.nodes[1].Call(context.Background(), ref, "Get", CallOptions{}).Wait(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Shutdown = %v, want ErrClosed", err)
	}
	if err := c.nodes[1].Drain(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Drain after Shutdown = %v, want ErrClosed", err)
	}
	stopCall()
	if _, err := call.Wait(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned call = %v", err)
	}
}

// TestShutdownIdle: with nothing in flight Shutdown just closes.
func TestShutdownIdle(t *testing.T) {
	c, _ := newWorkerCluster(t, 1, nil)
	ref := c.reg.place("w1", "Worker", "n1", 1)
	ctx := context.Background()
	if _, err := callInt(t, ctx, c.nodes[0], ref, "Add", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[0].Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if err := c.nodes[0].Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown = %v", err)
	}
}

// made counts the instances its producer made.
type made struct{ n int64 }

func (m *made) Made() int64 { return m.n }

func TestActivate(t *testing.T) {
	var count atomic.Int64
	created := make(chan struct{}, 4)
	c := newClusterOn(t, false, 1, func(ts *Types, _ int) {
		if _, err := Register(ts, "Made", func() *made {
			created <- struct{}{}
			return &made{n: count.Add(1)}
		}); err != nil {
			t.Fatal(err)
		}
	}, nil)
	e := c.nodes[0]
	ref := c.reg.place("m1", "Made", "n1", 1)
	if err := e.Activate(ref); err != nil {
		t.Fatalf("Activate = %v", err)
	}
	<-created // the producer ran without any call
	if err := e.Activate(ref); err != nil {
		t.Fatalf("second Activate = %v", err)
	}
	var n int64
	if err := e.Call(context.Background(), ref, "Made", CallOptions{}).Decode(context.Background(), &n); err != nil || n != 1 {
		t.Fatalf("Made = %d, %v; want the one eager instance", n, err)
	}
	if got := count.Load(); got != 1 {
		t.Fatalf("%d instances made, want 1", got)
	}
	if err := e.Activate(Ref{ID: "x", Type: "Unknown", Epoch: 1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Activate of an unregistered type = %v, want ErrNotFound", err)
	}
	if err := e.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Activate(Ref{ID: "m2", Type: "Made", Epoch: 1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Activate while drained = %v, want ErrClosed", err)
	}
}
