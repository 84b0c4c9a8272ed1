package remote

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Sess is a passivation probe: it counts its lifecycle hooks and calls.
type Sess struct {
	n     int
	hooks *sessHooks
}

type sessHooks struct {
	activated, deactivated, told atomic.Int64
	failActivate                 atomic.Int64 // fail this many more OnActivate calls
}

func (s *Sess) OnActivate(context.Context) error {
	s.hooks.activated.Add(1)
	if s.hooks.failActivate.Add(-1) >= 0 {
		return errors.New("cannot load")
	}
	return nil
}

func (s *Sess) OnDeactivate(context.Context) error { s.hooks.deactivated.Add(1); return nil }

func (s *Sess) Add(d int) int { s.n += d; return s.n }

func (s *Sess) Note() { s.hooks.told.Add(1) }

func (s *Sess) Hold(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newSessCluster(t *testing.T, idle time.Duration) (*cluster, *sessHooks) {
	t.Helper()
	h := &sessHooks{}
	c := newClusterOn(t, false, 2, func(ts *Types, _ int) {
		if _, err := Register(ts, "Sess", func() *Sess { return &Sess{hooks: h} }); err != nil {
			t.Fatal(err)
		}
	}, func(cfg *Config) { cfg.IdleTimeout = idle })
	return c, h
}

func add(t *testing.T, e *Endpoint, ref Ref, d int) int {
	t.Helper()
	var n int
	if err := e.Call(context.Background(), ref, "Add", CallOptions{}, d).Decode(context.Background(), &n); err != nil {
		t.Fatalf("Add: %v", err)
	}
	return n
}

// TestPassivation: an actor idle for IdleTimeout is passivated on its
// host (OnDeactivate runs, the activation is gone); its next call
// activates it again (OnActivate, fresh state). A call running longer
// than the timeout is not cut: idleness counts from a call's end.
func TestPassivation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, h := newSessCluster(t, time.Minute)
		ref := c.reg.place("s1", "Sess", "n2", 1)
		host := c.nodes[1]
		if n := add(t, c.nodes[0], ref, 5); n != 5 {
			t.Fatalf("Add = %d", n)
		}
		if h.activated.Load() != 1 {
			t.Fatalf("OnActivate ran %d times, want 1 before the first call", h.activated.Load())
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if got := host.Activations(); len(got) != 1 || h.deactivated.Load() != 0 {
			t.Fatalf("after 30 s of a 1 min idle timeout: activations %v, OnDeactivate %d", got, h.deactivated.Load())
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := host.Activations(); len(got) != 0 || h.deactivated.Load() != 1 || host.Passivations() != 1 {
			t.Fatalf("after 90 s idle: activations %v, OnDeactivate %d, passivations %d", got, h.deactivated.Load(), host.Passivations())
		}
		if n := add(t, c.nodes[0], ref, 1); n != 1 {
			t.Fatalf("Add after passivation = %d, want 1 from a fresh instance", n)
		}
		if h.activated.Load() != 2 {
			t.Fatalf("OnActivate ran %d times, want 2", h.activated.Load())
		}
		// A 3-minute call: still active when it ends, idle from then.
		if _, err := c.nodes[0].Call(context.Background(), ref, "Hold", CallOptions{}, 3*time.Minute).Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if host.Passivations() != 1 {
			t.Fatalf("passivated during a long call: %d", host.Passivations())
		}
		if n := add(t, c.nodes[0], ref, 1); n != 2 {
			t.Fatalf("Add after the long call = %d, want 2 (same instance)", n)
		}
		c.close()
		synctest.Wait()
	})
}

// TestPassivationLosesNothing: calls and one-way sends keep arriving at
// intervals around the idle timeout; some land as the actor passivates.
// Every call is answered, every one-way send runs.
func TestPassivationLosesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, h := newSessCluster(t, 40*time.Millisecond)
		ref := c.reg.place("s1", "Sess", "n2", 1)
		ctx := context.Background()
		const rounds = 300
		for i := range rounds {
			if err := c.nodes[0].Tell(ctx, ref, "Note"); err != nil {
				t.Fatalf("round %d: Tell: %v", i, err)
			}
			var n int
			if err := c.nodes[0].Call(ctx, ref, "Add", CallOptions{}, 1).Decode(ctx, &n); err != nil {
				t.Fatalf("round %d: Add: %v", i, err)
			}
			// 35–49 ms: sometimes within the timeout, sometimes past it
			// and racing the sweeper's tick.
			time.Sleep(time.Duration(35+(i*7)%15) * time.Millisecond)
		}
		var n int
		if err := c.nodes[0].Call(ctx, ref, "Add", CallOptions{}, 0).Decode(ctx, &n); err != nil {
			t.Fatal(err)
		}
		if got := h.told.Load(); got != rounds {
			t.Fatalf("%d of %d one-way sends ran", got, rounds)
		}
		if c.nodes[1].Passivations() == 0 {
			t.Fatal("no passivation happened: the test did not exercise it")
		}
		if a, d := h.activated.Load(), h.deactivated.Load(); a != d+1 {
			t.Fatalf("OnActivate %d, OnDeactivate %d: want one more activation than deactivations", a, d)
		}
		c.close()
		synctest.Wait()
	})
}

// TestOnActivateFailure: an OnActivate error fails the activation; the
// supervisor restarts it (OnActivate again), and the call queued behind
// it runs on the instance whose OnActivate succeeded.
func TestOnActivateFailure(t *testing.T) {
	c, h := newSessCluster(t, 0)
	ref := c.reg.place("s1", "Sess", "n2", 1)
	h.failActivate.Store(1)
	if n := add(t, c.nodes[0], ref, 1); n != 1 {
		t.Fatalf("Add = %d", n)
	}
	if got := h.activated.Load(); got != 2 {
		t.Fatalf("OnActivate ran %d times, want 2 (a failure, then the restart)", got)
	}
}

// TestLifecycleHooksNotCallable: OnActivate and OnDeactivate are hooks,
// not methods; a hook of the wrong shape is refused at registration.
func TestLifecycleHooksNotCallable(t *testing.T) {
	ty, err := NewType("Sess", func() *Sess { return &Sess{} })
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ty.Methods() {
		if lifecycleHook(m) {
			t.Fatalf("hook %s is callable", m)
		}
	}
	bt, err := NewType("Bad", func() *badHook { return &badHook{} })
	if err != nil {
		t.Fatal(err)
	}
	if why := bt.Skipped()["OnActivate"]; why == "" {
		t.Fatalf("OnActivate() of the wrong shape not refused: %v", bt.Skipped())
	}
}

type badHook struct{}

func (*badHook) OnActivate() {}

// Lingerer is an actor whose OnDeactivate waits for the test: it records
// whether two of its activations were ever live together.
type Lingerer struct{ h *lingerHooks }

type lingerHooks struct {
	live, overlaps, activated atomic.Int64
	deactivating              chan struct{} // told of the first OnDeactivate
	release                   chan struct{} // closed to let OnDeactivate return
}

func (l *Lingerer) OnActivate(context.Context) error {
	l.h.activated.Add(1)
	if l.h.live.Add(1) > 1 {
		l.h.overlaps.Add(1)
	}
	return nil
}

func (l *Lingerer) OnDeactivate(context.Context) error {
	select {
	case l.h.deactivating <- struct{}{}:
	default: // the test waits for the first only
	}
	<-l.h.release
	l.h.live.Add(-1)
	return nil
}

func (l *Lingerer) Ping() int { return 1 }

// TestDeactivatedThenPlacedAgainWaits: an activation stopped because its
// entry went (Deactivate: the registry forgot it, or moved it away) is
// still running its OnDeactivate when the actor is placed on the same node
// again at a newer epoch; the new activation's OnActivate waits for it, so
// two activations of one actor are never live together — the call to the
// new one is served once the old one is gone.
func TestDeactivatedThenPlacedAgainWaits(t *testing.T) {
	for _, epochOnly := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			h := &lingerHooks{deactivating: make(chan struct{}, 1), release: make(chan struct{})}
			var once sync.Once
			release := func() { once.Do(func() { close(h.release) }) }
			c := newClusterOn(t, false, 2, func(ts *Types, _ int) {
				if _, err := Register(ts, "Lingerer", func() *Lingerer { return &Lingerer{h: h} }); err != nil {
					t.Fatal(err)
				}
			}, nil)
			t.Cleanup(release) // before the cluster's Close: a failed check must not leave it waiting on the hook
			ctx := context.Background()
			ref := c.reg.place("l1", "Lingerer", "n2", 1)
			if _, err := c.nodes[0].Call(ctx, ref, "Ping", CallOptions{}).Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if epochOnly {
				c.nodes[1].DeactivateEpoch("l1", 1)
			} else {
				c.nodes[1].Deactivate("l1")
			}
			<-h.deactivating // the old activation is in its OnDeactivate
			ref = c.reg.place("l1", "Lingerer", "n2", 2)
			call := c.nodes[0].Call(ctx, ref, "Ping", CallOptions{})
			synctest.Wait()
			if n := h.activated.Load(); n != 1 {
				t.Fatalf("OnActivate ran %d times while the old activation was deactivating, want 1", n)
			}
			select {
			case <-call.Done():
				t.Fatal("the new activation served a call before the old one was gone")
			default:
			}
			release()
			if _, err := call.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if h.activated.Load() != 2 || h.overlaps.Load() != 0 {
				t.Fatalf("activated %d, overlaps %d; want 2 and 0", h.activated.Load(), h.overlaps.Load())
			}
		})
	}
}
