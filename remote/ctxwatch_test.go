package remote

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
)

type watchKey struct{}

// watchCounts returns how many ctxs e watches and how many of them are idle.
func watchCounts(e *Endpoint) (watched, idle int) {
	e.watches.mu.Lock()
	defer e.watches.mu.Unlock()
	return len(e.watches.by), len(e.watches.idle)
}

// Calls sharing one ctx share one watch, and cancelling that ctx ends every
// one of them, running or queued, on the caller and on the callee.
func TestSharedCtxCancelsEveryCall(t *testing.T) {
	for _, caller := range []int{0, 1} { // remote and same-node
		t.Run([]string{"remote", "local"}[caller], func(t *testing.T) {
			c, probes := newWorkerCluster(t, 2, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var calls []*Call
			for i := range 4 {
				ref := c.reg.place(fmt.Sprintf("w%d", i), "Worker", "n2", 1)
				calls = append(calls, c.nodes[caller].Call(ctx, ref, "Block", CallOptions{}))
				// Queued behind the running Block on the same actor.
				calls = append(calls, c.nodes[caller].Call(context.WithValue(ctx, watchKey{}, i), ref, "Get", CallOptions{}))
			}
			for range 4 {
				<-probes[1].started
			}
			if n, idle := watchCounts(c.nodes[caller]); n != 1 || idle != 0 {
				t.Fatalf("8 calls on one ctx: %d watches (%d idle), want 1 (0)", n, idle)
			}
			cancel()
			for i, call := range calls {
				if _, err := call.Wait(context.Background()); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCanceled) {
					t.Fatalf("call %d: err = %v", i, err)
				}
			}
			for range 4 {
				if err := <-probes[1].ended; !errors.Is(err, context.Canceled) {
					t.Fatalf("callee saw %v", err)
				}
			}
			if n, _ := watchCounts(c.nodes[caller]); n != 0 {
				t.Fatalf("%d watches left after their ctx ended", n)
			}
		})
	}
}

// A ctx used for call after call keeps one watch, the watches of ctxs no
// call uses any more are bounded, whether or not those ctxs ever end, and
// an idle watch goes once its ctx ends.
func TestCtxWatchesBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := newWorkerCluster(t, 2, nil)
		defer c.close()
		ref := c.reg.place("w1", "Worker", "n2", 1)
		e := c.nodes[0]
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for i := range 5 {
			if got, err := callInt(t, ctx, e, ref, "Add", 1); err != nil || got != i+1 {
				t.Fatalf("Add #%d = %d, %v", i, got, err)
			}
			if n, idle := watchCounts(e); n != 1 || idle != 1 {
				t.Fatalf("after call %d on one ctx: %d watches (%d idle), want 1 (1)", i, n, idle)
			}
		}
		var cancels []context.CancelFunc
		for i := range 3 * maxIdleWatches {
			ctx, cancel := context.WithCancel(context.Background()) // not ended yet
			cancels = append(cancels, cancel)
			if _, err := callInt(t, ctx, e, ref, "Get"); err != nil {
				t.Fatalf("Get #%d: %v", i, err)
			}
			if n, idle := watchCounts(e); n > maxIdleWatches || idle > maxIdleWatches {
				t.Fatalf("after %d ctxs: %d watches (%d idle), want at most %d", i+1, n, idle, maxIdleWatches)
			}
		}
		if n, idle := watchCounts(e); n != maxIdleWatches || idle != maxIdleWatches {
			t.Fatalf("%d watches (%d idle), want the %d most recent", n, idle, maxIdleWatches)
		}
		for _, cancel := range cancels {
			cancel()
		}
		synctest.Wait() // the AfterFuncs of the idle watches ran
		if n, idle := watchCounts(e); n != 0 || idle != 0 {
			t.Fatalf("after their ctxs ended: %d watches (%d idle), want 0", n, idle)
		}
	})
}
