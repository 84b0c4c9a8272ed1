package troupe

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// Turnstile is an actor whose Step returns only when the test lets one through.
type Turnstile struct{ gate chan struct{} }

func (g *Turnstile) Step(ctx context.Context) error {
	select {
	case <-g.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestWaitAnyLoopAllocatesLinearly runs the ray.wait idiom over 4000
// pending futures with k=1: each round lets exactly one call complete and
// passes notReady back in. The old WaitAny left a callback on every pending
// future per round (≈8 M closures, 640 MiB); it must now allocate a
// constant per round beside its two result slices, and leave no watch on
// the futures.
func TestWaitAnyLoopAllocatesLinearly(t *testing.T) {
	const n, actors = 4000, 8
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newTestCluster(t, false, 1, nil)
	nd := c.nodes[0]
	gate := make(chan struct{})
	if err := Register(nd, "Turnstile", func() *Turnstile { return &Turnstile{gate: gate} }); err != nil {
		t.Fatal(err)
	}
	var refs []Ref
	for range actors {
		refs = append(refs, must[Ref](t)(nd.Spawn(ctx, "Turnstile")))
	}
	// Let one Step per actor through first: every actor is active and
	// its first call answered before the measurement starts.
	var warm []*Future[struct{}]
	for _, r := range refs {
		warm = append(warm, Call[struct{}](ctx, r, "Step"))
	}
	for range warm {
		gate <- struct{}{}
	}
	if err := WaitAll(ctx, warm...); err != nil {
		t.Fatal(err)
	}

	pending := make([]*Future[struct{}], n)
	for i := range pending {
		pending[i] = Call[struct{}](ctx, refs[i%actors], "Step")
	}
	all := pending
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var resultBytes uint64 // what the result slices need, at the least
	for round := 0; len(pending) > 0; round++ {
		if round >= n {
			t.Fatalf("still %d pending after %d rounds", len(pending), round)
		}
		gate <- struct{}{}
		var ready []*Future[struct{}]
		ready, pending = WaitAny(ctx, 1, pending...)
		if len(ready) != 1 {
			t.Fatalf("round %d: %d ready, want 1 (ctx: %v)", round, len(ready), ctx.Err())
		}
		if err := ready[0].Err(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		resultBytes += 8 * uint64(len(pending)+1)
	}
	runtime.ReadMemStats(&after)
	mallocs := after.Mallocs - before.Mallocs
	bytes := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d rounds: %d allocations (%.1f per round), %.1f MiB (result slices %.1f MiB)",
		n, mallocs, float64(mallocs)/n, float64(bytes)/(1<<20), float64(resultBytes)/(1<<20))
	// The calls themselves (reply, mailbox, actor turn) cost a few dozen
	// allocations each; the quadratic version needs n²/2 = 8 M at least.
	if mallocs > 100*n {
		t.Errorf("%d allocations for %d rounds: more than 100 per round, not linear", mallocs, n)
	}
	if bytes > 2*resultBytes+n*(16<<10) {
		t.Errorf("%d bytes allocated: above twice the result slices (%d) plus 16 KiB per call", bytes, resultBytes)
	}
	for i, f := range all {
		f.wmu.Lock()
		left := len(f.ws)
		f.wmu.Unlock()
		if left != 0 {
			t.Fatalf("future %d still holds %d watches", i, left)
		}
	}
}

// TestWaitAnyReleasesOnCtx: a WaitAny that ends on its ctx leaves no watch
// behind on the futures still pending, and they still complete.
func TestWaitAnyReleasesOnCtx(t *testing.T) {
	ctx := ctxT(t)
	c := newTestCluster(t, false, 1, nil)
	nd := c.nodes[0]
	gate := make(chan struct{})
	if err := Register(nd, "Turnstile", func() *Turnstile { return &Turnstile{gate: gate} }); err != nil {
		t.Fatal(err)
	}
	ref := must[Ref](t)(nd.Spawn(ctx, "Turnstile"))
	futs := []*Future[struct{}]{Call[struct{}](ctx, ref, "Step"), Call[struct{}](ctx, ref, "Step")}
	for range 3 {
		wctx, wcancel := context.WithCancel(ctx)
		wcancel()
		ready, notReady := WaitAny(wctx, 1, futs...)
		if len(ready) != 0 || len(notReady) != 2 {
			t.Fatalf("WaitAny on a cancelled ctx: %d ready, %d not", len(ready), len(notReady))
		}
	}
	for i, f := range futs {
		f.wmu.Lock()
		left := len(f.ws)
		f.wmu.Unlock()
		if left != 0 {
			t.Fatalf("future %d holds %d watches after WaitAny returned", i, left)
		}
	}
	gate <- struct{}{}
	gate <- struct{}{}
	ready, notReady := WaitAny(ctx, 2, futs...)
	if len(ready) != 2 || len(notReady) != 0 {
		t.Fatalf("WaitAny(2): %d ready, %d not", len(ready), len(notReady))
	}
	if err := WaitAll(ctx, futs...); err != nil {
		t.Fatal(err)
	}
}

// TestAwaitCtxErrorIsTyped: Await on an expired ctx returns an error that
// matches ErrDeadline and context.DeadlineExceeded; on a cancelled one,
// ErrCanceled and context.Canceled; the call keeps running; a completed
// future answers even on a done ctx.
func TestAwaitCtxErrorIsTyped(t *testing.T) {
	ctx := ctxT(t)
	c := newTestCluster(t, false, 1, nil)
	nd := c.nodes[0]
	ref := must[Ref](t)(nd.Spawn(ctx, "Counter"))
	callCtx, callCancel := context.WithCancel(ctx)
	defer callCancel()
	f := Call[struct{}](callCtx, ref, "Block")

	expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	_, err := f.Await(expired)
	if !errors.Is(err, ErrDeadline) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Await on an expired ctx: %v; want ErrDeadline and context.DeadlineExceeded", err)
	}
	var te *Error
	if !errors.As(err, &te) || te.Actor != ref.ID || te.Method != "Block" {
		t.Fatalf("Await's error %#v does not name the actor and method", err)
	}
	if err := WaitAll(expired, f); !errors.Is(err, ErrDeadline) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitAll on an expired ctx: %v", err)
	}

	cancelled, cancel2 := context.WithCancel(ctx)
	cancel2()
	_, err = f.Await(cancelled)
	if !errors.Is(err, ErrCanceled) || !errors.Is(err, context.Canceled) || errors.Is(err, ErrDeadline) {
		t.Fatalf("Await on a cancelled ctx: %v; want ErrCanceled and context.Canceled", err)
	}
	select {
	case <-f.Done():
		t.Fatal("the call ended with the Await's ctx")
	default:
	}

	// Cancelling the call's own ctx ends it with the cancel error.
	callCancel()
	_, err = f.Await(ctx)
	if !errors.Is(err, ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("call cancelled: %v", err)
	}

	g := Call[int](ctx, ref, "Add", 2)
	if _, err := g.Await(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := g.Await(expired); err != nil || v != 2 {
		t.Fatalf("Await of a completed future on an expired ctx = %d, %v; want 2, nil", v, err)
	}
}
