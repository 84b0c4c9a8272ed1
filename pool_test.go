package troupe

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// Calc is a pool worker: pure methods, and a hook that sees every call.
type Calc struct {
	node string
	seen chan<- string // each call's node, if set
	hold <-chan struct{}
}

func (c *Calc) Double(x int) (int, error) {
	if c.seen != nil {
		c.seen <- c.node
	}
	if x%7 == 3 {
		return 0, fmt.Errorf("unlucky %d", x)
	}
	return 2 * x, nil
}

func (c *Calc) Where() string { return c.node }

// Hold blocks until the test releases it.
func (c *Calc) Hold(ctx context.Context) error {
	select {
	case <-c.hold:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func registerCalc(t *testing.T, c *testCluster, seen chan string, hold chan struct{}) {
	t.Helper()
	for _, n := range c.nodes {
		id := n.ID()
		if err := Register(n, "Calc", func() *Calc { return &Calc{node: id, seen: seen, hold: hold} }); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPoolMap: one worker per hosting node by default; Map returns the
// results in input order and every failure, not only the first.
func TestPoolMap(t *testing.T) {
	c := newTestCluster(t, false, 3, nil)
	registerCalc(t, c, nil, nil)
	ctx := ctxT(t)
	p := must[*Pool](t)(c.nodes[0].NewPool(ctx, "Calc"))
	where := map[string]bool{}
	for _, w := range p.Workers() {
		where[must[string](t)(Call[string](ctx, w, "Where").Await(ctx))] = true
	}
	if len(where) != 3 {
		t.Fatalf("workers on %v, want one on each of 3 nodes", where)
	}
	in := make([]int, 1000)
	for i := range in {
		in[i] = i
	}
	out, err := Map[int](ctx, p, "Double", in)
	var me *MapError
	if !errors.As(err, &me) || me.Total != 1000 || !errors.Is(err, ErrApplication) {
		t.Fatalf("Map error = %v", err)
	}
	var want []int
	for i := range in {
		if i%7 == 3 {
			want = append(want, i)
		} else if out[i] != 2*i {
			t.Fatalf("out[%d] = %d", i, out[i])
		}
	}
	if len(me.Items) != len(want) {
		t.Fatalf("%d failures reported, want %d", len(me.Items), len(want))
	}
	for k, it := range me.Items {
		if it.Index != want[k] || it.Attempts != 1 {
			t.Fatalf("failure %d = %+v, want index %d after 1 attempt (application errors are not retried)", k, it, want[k])
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := PoolCall[int](ctx, p, "Double", 1).Await(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("call through a closed pool = %v", err)
	}
}

// TestPoolCallLeastBusy: a call goes to the worker with the fewest calls
// in flight from the pool.
func TestPoolCallLeastBusy(t *testing.T) {
	c := newTestCluster(t, false, 2, nil)
	hold := make(chan struct{})
	registerCalc(t, c, nil, hold)
	ctx := ctxT(t)
	p := must[*Pool](t)(c.nodes[0].NewPool(ctx, "Calc"))
	held := PoolCall[struct{}](ctx, p, "Hold")
	busy := -1
	for i := range p.inflight {
		if p.inflight[i].Load() == 1 {
			busy = i
		}
	}
	other := must[string](t)(Call[string](ctx, p.Workers()[1-busy], "Where").Await(ctx))
	for range 10 {
		f := PoolCall[string](ctx, p, "Where")
		// OnDone hooks run in order: once ours ran, the pool's count of
		// the call is back down, and the next pick sees 0 against 1.
		counted := make(chan struct{})
		f.OnDone(func() { close(counted) })
		if got := must[string](t)(f.Await(ctx)); got != other {
			t.Fatalf("a call went to %s, the busy worker's node; want %s", got, other)
		}
		<-counted
	}
	close(hold)
	if _, err := held.Await(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMapSurvivesAWorkerKill: a node dies in the middle of a Map; its
// items are retried elsewhere (MapIdempotent covers those that may have
// run) and every input completes.
func TestMapSurvivesAWorkerKill(t *testing.T) {
	transports(t, func(t *testing.T, quic bool) {
		c := newTestCluster(t, quic, 3, nil)
		seen := make(chan string, 1<<16)
		registerCalc(t, c, seen, nil)
		ctx := ctxT(t)
		p := must[*Pool](t)(c.nodes[0].NewPool(ctx, "Calc", PoolPerNode(2)))
		in := make([]int, 6000)
		for i := range in {
			in[i] = 7*i + 1 // never unlucky
		}
		type res struct {
			out []int
			err error
		}
		done := make(chan res, 1)
		go func() {
			out, err := Map[int](ctx, p, "Double", in, MapIdempotent(), MaxInFlight(24))
			done <- res{out, err}
		}()
		for n3 := 0; n3 < 100; {
			select {
			case node := <-seen:
				if node == "n3" {
					n3++
				}
			case r := <-done:
				t.Fatalf("Map ended before n3 served 100 calls: %v", r.err)
			}
		}
		c.nodes[2].Close()
		r := <-done
		if r.err != nil {
			t.Fatalf("Map with a worker's node killed: %v", r.err)
		}
		for i, v := range r.out {
			if v != 2*in[i] {
				t.Fatalf("out[%d] = %d, want %d", i, v, 2*in[i])
			}
		}
	})
}

// TestMapRetriesFullMailboxes: more calls in flight than a worker's
// mailbox holds: the refusals are retried after a backoff, and every
// input completes.
func TestMapRetriesFullMailboxes(t *testing.T) {
	c := newTestCluster(t, false, 1, func(cfg *Config) { cfg.MailboxSize = 2 })
	registerCalc(t, c, nil, nil)
	ctx := ctxT(t)
	p := must[*Pool](t)(c.nodes[0].NewPool(ctx, "Calc"))
	in := make([]int, 2000)
	for i := range in {
		in[i] = 7*i + 1
	}
	out, err := Map[int](ctx, p, "Double", in, MaxInFlight(64))
	if err != nil {
		t.Fatalf("Map over a 2-call mailbox with 64 in flight: %v", err)
	}
	for i, v := range out {
		if v != 2*in[i] {
			t.Fatalf("out[%d] = %d", i, v)
		}
	}
}

// TestMapUsesEveryWorker: one item at a time, every worker is as idle as
// the others at each pick, so the picks rotate over all of them (a first
// attempt once avoided worker 0, as if it were a retry).
func TestMapUsesEveryWorker(t *testing.T) {
	c := newTestCluster(t, false, 3, nil)
	ctx := ctxT(t)
	p := must[*Pool](t)(c.nodes[0].NewPool(ctx, "Counter"))
	in := make([]int, 30)
	for i := range in {
		in[i] = 1
	}
	if _, err := Map[int](ctx, p, "Add", in, MaxInFlight(1)); err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, w := range p.Workers() {
		got, err := Call[int](ctx, w, "Get").Await(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got == 0 {
			t.Errorf("worker %d (%s) ran no item", i, w.Node)
		}
		total += got
	}
	if total != len(in) {
		t.Fatalf("workers ran %d items, want %d", total, len(in))
	}
}
