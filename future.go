package troupe

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/troupe-dev/troupe/placement"

	"github.com/troupe-dev/troupe/remote"
)

// Future is the pending result of a Call. It completes once; Await may be
// called any number of times, from any goroutine.
type Future[R any] struct {
	call *remote.Call // nil when the call failed before it was sent
	err  error        // the early failure
	val  R
	derr error
	ws   []watch // WaitAny calls waiting on f; each removes its own on return; under wmu

	once   sync.Once
	wmu    sync.Mutex
	hooked bool // fire is registered on call
	fired  bool // call completed and ws was handed out
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
	if err == nil && isVirtual(r) {
		r, err = n.ensureVirtual(ctx, r)
	}
	var p placement.Placement
	var found bool
	if err == nil {
		// One read of the replica: whether the actor stopped, and where
		// the call goes.
		if p, found = n.dir.Lookup(r.ID); found && p.State == placement.Stopped {
			err = stoppedError(n, r, method, p)
		}
	}
	if err != nil {
		return &Future[R]{err: err}
	}
	fc := new(futureCall[R])
	fc.f.call = &fc.c
	if found {
		n.ep.StartCallAt(&fc.c, ctx, r.Ref, (*resolver)(n).location(p), method, r.opts, args...)
	} else {
		n.ep.StartCall(&fc.c, ctx, r.Ref, method, r.opts, args...)
	}
	return &fc.f
}

// futureCall is a Future and its remote.Call in one allocation.
type futureCall[R any] struct {
	f Future[R]
	c remote.Call
}

// Tell sends a one-way call of method on the actor r names: no reply, no
// sender. It returns once the request is queued for the host (or handed to
// the local actor); the method's failure is only logged on the host.
func Tell(ctx context.Context, r Ref, method string, args ...any) error {
	n, err := nodeFor(ctx, r, method)
	if err == nil && isVirtual(r) {
		r, err = n.ensureVirtual(ctx, r)
	}
	if err != nil {
		return err
	}
	// One read of the replica, as in Call: whether the actor stopped, and
	// where the message goes.
	p, found := n.dir.Lookup(r.ID)
	if !found {
		return n.ep.Tell(ctx, r.Ref, method, args...)
	}
	if p.State == placement.Stopped {
		return stoppedError(n, r, method, p)
	}
	return n.ep.TellAt(ctx, r.Ref, (*resolver)(n).location(p), method, args...)
}

// stoppedError fails a call at once when the local replica says the actor
// stopped, rather than sending it to a host that may not know yet.
func stoppedError(n *Node, r Ref, method string, p placement.Placement) error {
	return &Error{Code: remote.CodeNotFound, Message: "actor stopped: " + p.Reason, Node: n.id, Actor: r.ID, Method: method}
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

// Await waits for the result or for ctx. A ctx done first returns a
// *Error matching ErrDeadline and context.DeadlineExceeded (or ErrCanceled
// and context.Canceled) and leaves the call running (cancel the ctx given to
// Call to cancel the call itself). A call already complete returns its
// result even if ctx is done.
func (f *Future[R]) Await(ctx context.Context) (R, error) {
	select {
	case <-f.Done():
	default:
		if ctx.Done() == nil { // a ctx that never ends: a plain receive
			<-f.Done()
			break
		}
		select {
		case <-f.Done():
		case <-ctx.Done():
			var zero R
			return zero, ctxError(ctx, f.call.Target(), f.call.Method())
		}
	}
	f.once.Do(f.decode)
	return f.val, f.derr
}

// ctxError is the call error of a done ctx: it matches both the context
// error and ErrDeadline or ErrCanceled.
func ctxError(ctx context.Context, actor, method string) error {
	err := ctx.Err()
	code := remote.CodeCanceled
	if errors.Is(err, context.DeadlineExceeded) {
		code = remote.CodeDeadline
	}
	return &Error{Code: code, Message: "caller's " + err.Error(), Actor: actor, Method: method}
}

// watch registers w on f as its i-th argument and reports true, or reports
// false if f already completed. The first watch hooks f to its call (one
// callback for f's lifetime); later ones reuse the slots that returned
// WaitAny calls freed, so a ray.wait loop allocates no callback per
// pending future per call.
func (f *Future[R]) watch(w *anyWaiter, i int) bool {
	if f.call == nil {
		return false
	}
	select {
	case <-f.call.Done():
		return false
	default:
	}
	f.wmu.Lock()
	if f.fired {
		f.wmu.Unlock()
		return false
	}
	f.ws = append(f.ws, watch{w, i})
	hook := !f.hooked
	f.hooked = true
	f.wmu.Unlock()
	if hook {
		f.call.OnDone(f.fire)
	}
	return true
}

// unwatch removes w from f (a no-op once f fired).
func (f *Future[R]) unwatch(w *anyWaiter) {
	if f.call == nil {
		return
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	for j := range f.ws {
		if f.ws[j].w == w {
			last := len(f.ws) - 1
			f.ws[j] = f.ws[last]
			f.ws[last] = watch{}
			f.ws = f.ws[:last]
			return
		}
	}
}

// fire runs once, when the call completes, and notifies the waiting calls.
func (f *Future[R]) fire() {
	f.wmu.Lock()
	f.fired = true
	ws := f.ws
	f.ws = nil
	f.wmu.Unlock()
	for _, w := range ws {
		w.w.notify(w.i)
	}
}

// watch is one WaitAny call waiting on a future, its i-th argument.
type watch struct {
	w *anyWaiter
	i int
}

// anyWaiter is the state of one WaitAny call: the indices completed since
// it registered, in completion order.
type anyWaiter struct {
	mu    sync.Mutex
	got   []int
	ready chan struct{} // capacity 1: got grew
}

func (w *anyWaiter) notify(i int) {
	w.mu.Lock()
	w.got = append(w.got, i)
	w.mu.Unlock()
	select {
	case w.ready <- struct{}{}:
	default:
	}
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
	if v, ok := remote.DecodeFast[R](raw); ok {
		f.val = v
		return
	}
	f.derr = f.call.Decode(context.Background(), &f.val)
}

// Awaitable is a completable result: *Future[R] for any R.
type Awaitable interface {
	Done() <-chan struct{}
	OnDone(func())
	Err() error
	watch(w *anyWaiter, i int) bool
	unwatch(w *anyWaiter)
}

// WaitAll waits until every future completed or ctx is done, and returns
// ctx's error (as Await does) or else the first error among futs (in
// argument order). It registers nothing on the futures.
func WaitAll[F Awaitable](ctx context.Context, futs ...F) error {
	for _, f := range futs {
		select {
		case <-f.Done():
		default:
			select {
			case <-f.Done():
			case <-ctx.Done():
				return ctxError(ctx, "", "")
			}
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
// starts no goroutine and leaves nothing on the futures when it returns, so
// a loop that passes notReady back in allocates per call the two result
// slices and a constant, not a callback per pending future.
func WaitAny[F Awaitable](ctx context.Context, k int, futs ...F) (ready, notReady []F) {
	k = max(min(k, len(futs)), 0)
	var idx []int // indices of ready, in order
	w := &anyWaiter{ready: make(chan struct{}, 1)}
	n := 0 // futs[:n] may hold a watch of w
	for i, f := range futs {
		if len(idx) >= k {
			break
		}
		n = i + 1
		if !f.watch(w, i) {
			idx = append(idx, i)
		}
	}
	taken := 0 // of w.got
	for len(idx) < k {
		w.mu.Lock()
		for ; taken < len(w.got) && len(idx) < k; taken++ {
			idx = append(idx, w.got[taken])
		}
		w.mu.Unlock()
		if len(idx) >= k {
			break
		}
		select {
		case <-w.ready:
		case <-ctx.Done():
			k = len(idx)
		}
	}
	for _, f := range futs[:n] {
		f.unwatch(w)
	}
	ready = make([]F, len(idx))
	for j, i := range idx {
		ready[j] = futs[i]
	}
	slices.Sort(idx)
	notReady = make([]F, 0, len(futs)-len(idx))
	for i, f := range futs {
		if len(idx) > 0 && idx[0] == i {
			idx = idx[1:]
			continue
		}
		notReady = append(notReady, f)
	}
	return ready, notReady
}
