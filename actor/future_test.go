package actor_test

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actor"
)

// mallocs returns how many heap allocations fn made (all goroutines).
func mallocs(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}

// TestWaitAnyLeavesNoCallbacks: a WaitAny that ends on its ctx must take
// back what it registered on the pending futures. The old one left one
// closure on each of them per call: 200 calls over 4000 futures made 800 k
// allocations and kept them alive until the futures completed.
func TestWaitAnyLeavesNoCallbacks(t *testing.T) {
	const n, calls = 4000, 200
	fs := make([]*actor.Future[int], n)
	completes := make([]func(int, error) bool, n)
	for i := range fs {
		fs[i], completes[i] = actor.NewFuture[int]()
	}
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	got := mallocs(func() {
		for range calls {
			if i, err := actor.WaitAny(cctx, fs...); i != -1 || err == nil {
				t.Fatalf("WaitAny on a cancelled ctx = %d, %v", i, err)
			}
		}
	})
	t.Logf("%d WaitAny calls over %d pending futures: %d allocations", calls, n, got)
	// The first call gives each future a watch slot, which later calls
	// reuse; the rest is the waiter itself.
	if got > n+10*calls {
		t.Errorf("%d allocations for %d calls: more than a slot per future and 10 per call (a callback per pending future per call?)", got, calls)
	}
	// The futures still work: the next WaitAny sees a completion.
	completes[n/2](7, nil)
	ctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if i, err := actor.WaitAny(ctx, fs...); i != n/2 || err != nil {
		t.Fatalf("WaitAny after a completion = %d, %v; want %d", i, err, n/2)
	}
	if v, err := fs[n/2].Await(ctx); v != 7 || err != nil {
		t.Fatalf("Await = %d, %v", v, err)
	}
}

// TestWaitAnyLoopAllocatesLinearly runs the ray.wait idiom over 4000
// futures: each round a goroutine completes one future while WaitAny waits
// on the rest, and the caller drops the completed one.
func TestWaitAnyLoopAllocatesLinearly(t *testing.T) {
	const n = 4000
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fs := make([]*actor.Future[int], n)
	completes := make([]func(int, error) bool, n)
	for i := range fs {
		fs[i], completes[i] = actor.NewFuture[int]()
	}
	next := make(chan func(int, error) bool)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for c := range next {
			c(1, nil)
		}
	}()
	defer func() { close(next); <-stopped }()
	got := mallocs(func() {
		for round := 0; len(fs) > 0; round++ {
			target := len(fs) / 2
			want := fs[target]
			next <- completes[target]
			i, err := actor.WaitAny(ctx, fs...)
			if err != nil || fs[i] != want {
				t.Fatalf("round %d: WaitAny = %d, %v; want %d", round, i, err, target)
			}
			fs = slices.Delete(fs, i, i+1)
			completes = slices.Delete(completes, i, i+1)
		}
	})
	t.Logf("%d rounds: %d allocations", n, got)
	if got > 10*n {
		t.Errorf("%d allocations for %d rounds: more than 10 per round, not linear", got, n)
	}
}
