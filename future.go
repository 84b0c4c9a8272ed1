package troupe

import (
	"context"
	"sync"

	"github.com/troupe-dev/troupe/placement"

	"github.com/troupe-dev/troupe/remote"
)

// Future is the pending result of a Call. It completes once; Await may be
// called any number of times, from any goroutine.
type Future[R any] struct {
	call *remote.Call // nil when the call failed before it was sent
	err  error        // the early failure
	once sync.Once
	val  R
	derr error
}

// closedCh is the Done channel of futures that failed before sending.
var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Call calls method on the actor r names with args (each msgpack-encoded)
// and returns at once with a Future of its result. ctx's deadline travels
// to the callee, and cancelling ctx cancels the callee's ctx. A call is
// at-most-once: it is retried once at a refreshed location only when it
// certainly did not run, unless r carries Idempotent (see Ref.With).
func Call[R any](ctx context.Context, r Ref, method string, args ...any) *Future[R] {
	n, err := nodeFor(ctx, r, method)
	if err == nil {
		err = n.stopped(r, method)
	}
	if err != nil {
		return &Future[R]{err: err}
	}
	return &Future[R]{call: n.ep.Call(ctx, r.Ref, method, r.opts, args...)}
}

// Tell sends a one-way call of method on the actor r names: no reply, no
// sender. It returns once the request is queued for the host (or handed to
// the local actor); the method's failure is only logged on the host.
func Tell(ctx context.Context, r Ref, method string, args ...any) error {
	n, err := nodeFor(ctx, r, method)
	if err == nil {
		err = n.stopped(r, method)
	}
	if err != nil {
		return err
	}
	return n.ep.Tell(ctx, r.Ref, method, args...)
}

// stopped fails a call at once when the local replica says the actor
// stopped (a map read), rather than sending it to a host that may not know
// yet.
func (n *Node) stopped(r Ref, method string) error {
	if p, ok := n.reg.Lookup(r.ID); ok && p.State == placement.Stopped {
		return &Error{Code: remote.CodeNotFound, Message: "actor stopped: " + p.Reason, Node: n.id, Actor: r.ID, Method: method}
	}
	return nil
}

// Done is closed when the call completed.
func (f *Future[R]) Done() <-chan struct{} {
	if f.call == nil {
		return closedCh
	}
	return f.call.Done()
}

// OnDone runs fn once the call completed: at once if it has, otherwise on
// the goroutine that completes it. fn must not block.
func (f *Future[R]) OnDone(fn func()) {
	if f.call == nil {
		fn()
		return
	}
	f.call.OnDone(fn)
}

// Await waits for the result or for ctx. A ctx done first returns ctx's
// error and leaves the call running (cancel the ctx given to Call to cancel
// the call itself).
func (f *Future[R]) Await(ctx context.Context) (R, error) {
	select {
	case <-f.Done():
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
	f.once.Do(f.decode)
	return f.val, f.derr
}

// Err returns the call's error once it completed (nil on success, or while
// pending). It decodes the result, so a result of the wrong type is an
// error here too.
func (f *Future[R]) Err() error {
	select {
	case <-f.Done():
		f.once.Do(f.decode)
		return f.derr
	default:
		return nil
	}
}

func (f *Future[R]) decode() {
	if f.call == nil {
		f.derr = f.err
		return
	}
	raw, err := f.call.Result()
	if err != nil {
		f.derr = err
		return
	}
	if len(raw) == 0 {
		return
	}
	f.derr = f.call.Decode(context.Background(), &f.val)
}

// Awaitable is a completable result: *Future[R] for any R.
type Awaitable interface {
	Done() <-chan struct{}
	OnDone(func())
	Err() error
}

// WaitAll waits until every future completed or ctx is done, and returns
// ctx's error or else the first error among futs (in argument order).
func WaitAll[F Awaitable](ctx context.Context, futs ...F) error {
	for _, f := range futs {
		select {
		case <-f.Done():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, f := range futs {
		if err := f.Err(); err != nil {
			return err
		}
	}
	return nil
}

// WaitAny waits until k of futs completed (all of them when k exceeds
// len(futs)) or ctx is done, like ray.wait: ready holds k completed futures
// (fewer if ctx ended first) in completion order, those already complete
// first in argument order; notReady holds the rest in argument order. It
// starts no goroutine.
func WaitAny[F Awaitable](ctx context.Context, k int, futs ...F) (ready, notReady []F) {
	k = min(k, len(futs))
	done := make(chan int, len(futs))
	for i, f := range futs {
		f.OnDone(func() { done <- i })
	}
	seen := make([]bool, len(futs))
	take := func(i int) {
		if !seen[i] {
			seen[i] = true
			ready = append(ready, futs[i])
		}
	}
	for len(ready) < k {
		select {
		case i := <-done:
			take(i)
		case <-ctx.Done():
			k = 0
		}
	}
	for i, f := range futs {
		if !seen[i] {
			notReady = append(notReady, f)
		}
	}
	return ready, notReady
}
