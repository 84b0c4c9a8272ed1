package troupe

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Session is a virtual actor that saves its state on deactivation and
// loads it on activation, in a store shared by the test's nodes.
type Session struct {
	key   string
	n     int
	store *sessionStore
}

type sessionStore struct {
	saved         chan map[string]int // one token: the map
	activations   chan string
	deactivations chan string
}

func (s *Session) OnActivate(ctx context.Context) error {
	self, ok := Self(ctx)
	if !ok {
		return errors.New("no actor in the hook's ctx")
	}
	s.key, _ = Key(self)
	m := <-s.store.saved
	s.n = m[s.key]
	s.store.saved <- m
	s.store.activations <- s.key
	return nil
}

func (s *Session) OnDeactivate(context.Context) error {
	m := <-s.store.saved
	m[s.key] = s.n
	s.store.saved <- m
	s.store.deactivations <- s.key
	return nil
}

func (s *Session) Add(d int) int { s.n += d; return s.n }

// TestVirtualPassivation: a virtual actor idle for its type's
// PassivateAfter is passivated, saving its state in OnDeactivate; the
// next call reactivates it, and OnActivate loads the state back.
func TestVirtualPassivation(t *testing.T) {
	store := &sessionStore{saved: make(chan map[string]int, 1), activations: make(chan string, 16), deactivations: make(chan string, 16)}
	store.saved <- map[string]int{}
	c := newTestCluster(t, false, 2, nil)
	for _, n := range c.nodes {
		if err := Register(n, "Session", func() *Session { return &Session{store: store} }, PassivateAfter(50*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := ctxT(t)
	s := c.nodes[0].Virtual("Session", "alice")
	if n := must[int](t)(Call[int](ctx, s, "Add", 2).Await(ctx)); n != 2 {
		t.Fatalf("Add = %d", n)
	}
	if k := <-store.activations; k != "alice" {
		t.Fatalf("OnActivate saw key %q", k)
	}
	select {
	case k := <-store.deactivations:
		if k != "alice" {
			t.Fatalf("OnDeactivate saw key %q", k)
		}
	case <-ctx.Done():
		t.Fatal("not passivated with a 50 ms idle timeout")
	}
	if n := must[int](t)(Call[int](ctx, s, "Add", 1).Await(ctx)); n != 3 {
		t.Fatalf("Add after passivation = %d, want 3 (state saved and loaded by the hooks)", n)
	}
}
