package troupe

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/transport"
)

// Tally is a virtual actor whose count survives passivation in a shared
// store, and which checks that no two activations of one key are ever
// live at once.
type Tally struct {
	key string
	n   int
	s   *tallyStore
}

type tallyStore struct {
	mu       sync.Mutex
	saved    map[string]int
	live     map[string]int
	overlaps atomic.Int64 // an activation started while another was live
	acts     atomic.Int64
	noted    chan int // Note's new counts, for the tests to wait on
}

func newTallyStore() *tallyStore {
	return &tallyStore{saved: map[string]int{}, live: map[string]int{}, noted: make(chan int, 1024)}
}

func (a *Tally) OnActivate(ctx context.Context) error {
	self, _ := Self(ctx)
	a.key, _ = Key(self)
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	if a.s.live[a.key]++; a.s.live[a.key] > 1 {
		a.s.overlaps.Add(1)
	}
	a.s.acts.Add(1)
	a.n = a.s.saved[a.key]
	return nil
}

func (a *Tally) OnDeactivate(context.Context) error {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	a.s.live[a.key]--
	a.s.saved[a.key] = a.n
	return nil
}

func (a *Tally) Add(d int) int { a.n += d; return a.n }

// Note is Add for one-way sends: it reports the new count.
func (a *Tally) Note(d int) { a.n += d; a.s.noted <- a.n }

// waitForgotten waits until every replica of c has applied the forgetting
// of id (subs were opened before it could happen).
func waitForgotten(t *testing.T, ctx context.Context, subs []*placement.Subscription, id string) {
	t.Helper()
	for i, s := range subs {
		for {
			ev, err := s.Next(ctx)
			if err != nil {
				t.Fatalf("replica %d: %s not forgotten: %v", i, id, err)
			}
			if ev.Kind == placement.ActorForgotten && ev.Prev.ID == id {
				break
			}
		}
	}
}

// TestVirtualForgottenAfterPassivation: a passivated virtual actor's
// registry entry is dropped on every replica, and the next call through a
// stale placement — a client's cache, which still names the old host —
// places it again and gets the state its OnDeactivate saved; so does a
// one-way send through that stale placement, which the old host forwards.
func TestVirtualForgottenAfterPassivation(t *testing.T) {
	for _, quic := range []bool{false, true} {
		t.Run(map[bool]string{false: "mem", true: "quic"}[quic], func(t *testing.T) { testVirtualForgotten(t, quic) })
	}
}

func testVirtualForgotten(t *testing.T, quic bool) {
	c := newTestCluster(t, quic, 3, debugLog)
	ctx := ctxT(t)
	store := newTallyStore()
	for _, n := range c.nodes {
		if err := Register(n, "Tally", func() *Tally { return &Tally{s: store} }, PassivateAfter(30*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	var cl *Node
	if quic {
		cl = startClient(t, c, "cl")
	} else {
		tr, err := c.net.JoinConfig("cl", transport.MemConfig{Client: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		ccfg := Config{Name: "cl", Client: true, Transport: tr, Join: []string{c.nodes[0].Addr()}}
		debugLog(&ccfg)
		if cl, err = Start(ctx, ccfg); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
	}
	subscribe := func() []*placement.Subscription {
		var subs []*placement.Subscription
		for _, n := range c.nodes {
			s := n.reg.Subscribe()
			t.Cleanup(s.Close)
			subs = append(subs, s)
		}
		return subs
	}
	const id = "Tally/bob"
	subs := subscribe()
	if n := must[int](t)(Call[int](ctx, cl.Virtual("Tally", "bob"), "Add", 2).Await(ctx)); n != 2 {
		t.Fatalf("first Add = %d", n)
	}
	waitForgotten(t, ctx, subs, id)
	for _, n := range c.nodes {
		if p, ok := n.reg.Lookup(id); ok {
			t.Fatalf("%s still has %+v", n.ID(), p)
		}
	}
	if _, ok := cl.cl.Lookup(id); !ok {
		t.Fatal("the client's cache lost the old placement: the stale path is not tested")
	}

	// From the client's stale cache: the old host answers not-found, the
	// call did not run, the client places the actor again.
	subs = subscribe()
	if n := must[int](t)(Call[int](ctx, cl.Virtual("Tally", "bob"), "Add", 1).Await(ctx)); n != 3 {
		t.Fatalf("Add through a stale placement = %d, want 3", n)
	}
	waitForgotten(t, ctx, subs, id)

	// A one-way send through the client's stale placement: the old host
	// places the actor again and forwards the request.
	stale, _ := cl.cl.Lookup(id)
	if err := Tell(ctx, cl.Virtual("Tally", "bob"), "Note", 10); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-store.noted:
		if n != 13 {
			t.Fatalf("Note after passivation counted %d, want 13", n)
		}
	case <-ctx.Done():
		t.Fatalf("a one-way send through a stale placement (%+v) was lost", stale)
	}
	if got := store.overlaps.Load(); got != 0 {
		t.Fatalf("%d activations overlapped another of the same key", got)
	}
	if got := store.acts.Load(); got != 3 {
		t.Fatalf("%d activations, want 3 (one per placement)", got)
	}
}

// TestPassivationRacesLoseNothing: calls and one-way sends from several
// nodes race the passivation (and forgetting) of a few virtual actors
// with a 2 ms idle timeout: every call succeeds, every send is counted, the
// state saved at each passivation carries over, and no two activations of
// one key are ever live together.
func TestPassivationRacesLoseNothing(t *testing.T) {
	c := newTestCluster(t, false, 3, debugLog)
	ctx := ctxT(t)
	store := newTallyStore()
	store.noted = make(chan int, 1<<16)
	for _, n := range c.nodes {
		if err := Register(n, "Tally", func() *Tally { return &Tally{s: store} }, PassivateAfter(2*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	const keys, perWorker = 3, 60
	var wg sync.WaitGroup
	var calls, tells atomic.Int64
	errs := make(chan error, 64)
	for w := range 6 {
		n := c.nodes[w%len(c.nodes)]
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range perWorker {
				ref := n.Virtual("Tally", fmt.Sprint("k", (w+i)%keys))
				if rng.IntN(3) == 0 {
					if err := Tell(ctx, ref, "Note", 1); err != nil {
						errs <- fmt.Errorf("worker %d tell %d: %w", w, i, err)
						return
					}
					tells.Add(1)
				} else {
					if _, err := Call[int](ctx, ref, "Add", 1).Await(ctx); err != nil {
						errs <- fmt.Errorf("worker %d call %d: %w", w, i, err)
						return
					}
					calls.Add(1)
				}
				// Pauses around the idle timeout, so calls race passivations.
				tm := time.NewTimer(time.Duration(rng.IntN(4000)) * time.Microsecond)
				select {
				case <-tm.C:
				case <-ctx.Done():
					tm.Stop()
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for range tells.Load() {
		select {
		case <-store.noted:
		case <-ctx.Done():
			t.Fatal("a one-way send was lost")
		}
	}
	total := 0
	for k := range keys {
		n, err := Call[int](ctx, c.nodes[0].Virtual("Tally", fmt.Sprint("k", k)), "Add", 0).Await(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if got := store.overlaps.Load(); got != 0 {
		t.Errorf("%d activations overlapped another of the same key", got)
	}
	if want := int(calls.Load() + tells.Load()); total != want {
		t.Fatalf("counted %d, want %d", total, want)
	}
	var passivations uint64
	for _, n := range c.nodes {
		passivations += n.ep.Passivations()
	}
	if passivations == 0 {
		t.Fatal("nothing was passivated: the race was not run")
	}
	t.Logf("%d calls, %d sends, %d passivations, %d activations", calls.Load(), tells.Load(), passivations, store.acts.Load())
}

var debugLog = func(c *Config) {
	if os.Getenv("TROUPE_DEBUG") != "" {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}
