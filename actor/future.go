package actor

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// core is the untyped state of a Future: one small struct, no goroutine and
// no timer. The done channel is only made when someone waits on a future
// that is still pending.
type core struct {
	state atomic.Uint32 // pending, completing, done
	mu    sync.Mutex    // guards ch, cbs and ws
	ch    chan struct{}
	cbs   []func()
	ws    []watch // WaitAny calls waiting on this future; removed when they return
	val   any
	err   error
	ctx   context.Context // the requester's context (Ask); nil otherwise
}

const (
	pending uint32 = iota
	completing
	done
)

var closedCh = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// complete sets the result once; later calls return false.
func (c *core) complete(v any, err error) bool {
	if !c.state.CompareAndSwap(pending, completing) {
		return false
	}
	c.val, c.err = v, err
	c.mu.Lock()
	c.state.Store(done)
	ch, cbs, ws := c.ch, c.cbs, c.ws
	c.cbs, c.ws = nil, nil
	c.mu.Unlock()
	if ch != nil {
		close(ch)
	}
	for _, f := range cbs {
		f()
	}
	for _, w := range ws {
		w.w.notify(w.i)
	}
	return true
}

// watch is one WaitAny call waiting on a future, which is its i-th argument.
type watch struct {
	w *anyWaiter
	i int
}

// anyWaiter is the state of one WaitAny call: the first index completed.
type anyWaiter struct {
	ready chan int // capacity 1
}

func (w *anyWaiter) notify(i int) {
	select {
	case w.ready <- i:
	default:
	}
}

// addWatch registers w on c and reports true, or reports false if c is
// already complete. It allocates nothing once c's list has room: a removed
// watch leaves its slot to the next one.
func (c *core) addWatch(w *anyWaiter, i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isDone() {
		return false
	}
	c.ws = append(c.ws, watch{w, i})
	return true
}

// removeWatch drops w from c's list (a no-op once c completed).
func (c *core) removeWatch(w *anyWaiter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for j := range c.ws {
		if c.ws[j].w == w {
			last := len(c.ws) - 1
			c.ws[j] = c.ws[last]
			c.ws[last] = watch{}
			c.ws = c.ws[:last]
			return
		}
	}
}

func (c *core) isDone() bool { return c.state.Load() == done }

func (c *core) done() <-chan struct{} {
	if c.isDone() {
		return closedCh
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isDone() {
		return closedCh
	}
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

// onDone runs f once the future is complete: at once if it already is,
// otherwise on the goroutine that completes it.
func (c *core) onDone(f func()) {
	c.mu.Lock()
	if !c.isDone() {
		c.cbs = append(c.cbs, f)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	f()
}

// Future is the pending result of an Ask (or of NewFuture). It costs one
// small allocation: no goroutine, no timer; a channel is made only if
// someone waits on it before it completes. A Future completes exactly once.
type Future[T any] struct {
	c core
}

// NewFuture returns a pending future and the function that completes it.
// The function returns false if the future was already complete. Layers
// above the engine use it to complete futures from elsewhere (a reply that
// arrives over the network).
func NewFuture[T any]() (*Future[T], func(T, error) bool) {
	f := &Future[T]{}
	return f, func(v T, err error) bool { return f.c.complete(v, err) }
}

func failedFuture[T any](err error) *Future[T] {
	f := &Future[T]{}
	f.c.complete(nil, err)
	return f
}

// Done returns a channel that is closed when the future completes.
func (f *Future[T]) Done() <-chan struct{} { return f.c.done() }

// Await waits until the future completes or ctx is done, and returns the
// reply. A reply that is an error (c.Respond(err)) is returned as the error
// unless T is the error type itself; a nil reply gives T's zero value; a
// reply of any other type yields ErrReplyType.
func (f *Future[T]) Await(ctx context.Context) (T, error) {
	var zero T
	if ctx == nil {
		return zero, ErrNilContext
	}
	if !f.c.isDone() {
		select {
		case <-f.c.done():
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
	return f.result()
}

// Then arranges for fn to be called with the result once the future
// completes: at once on the calling goroutine if it already has, otherwise
// on the goroutine that completes it (often an actor's). fn must not block.
// This lets a server reply to a caller without a goroutine per request.
func (f *Future[T]) Then(fn func(T, error)) {
	f.c.onDone(func() { fn(f.result()) })
}

// result converts the completed value; callers ensure f is done.
func (f *Future[T]) result() (T, error) {
	var zero T
	if f.c.err != nil {
		return zero, f.c.err
	}
	if err, ok := f.c.val.(error); ok {
		if _, wantErr := any((*T)(nil)).(*error); !wantErr {
			return zero, err
		}
	}
	if v, ok := f.c.val.(T); ok {
		return v, nil
	}
	if f.c.val == nil {
		return zero, nil
	}
	return zero, fmt.Errorf("%w: got %T, want %T", ErrReplyType, f.c.val, zero)
}

func (f *Future[T]) future() *core { return &f.c }

func (f *Future[T]) failure() error {
	_, err := f.result()
	return err
}

// Awaitable is implemented by every *Future[T]; WaitAll and WaitAny accept
// futures of any reply type through it.
type Awaitable interface {
	Done() <-chan struct{}
	future() *core
	failure() error
}

// WaitAll waits until every future has completed or ctx is done. It returns
// ctx's error in the latter case, otherwise the first error (in argument
// order) that Await would return for one of the futures, or nil.
func WaitAll[F Awaitable](ctx context.Context, fs ...F) error {
	if ctx == nil {
		return ErrNilContext
	}
	for _, f := range fs {
		if f.future().isDone() {
			continue
		}
		select {
		case <-f.future().done():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, f := range fs {
		if err := f.failure(); err != nil {
			return err
		}
	}
	return nil
}

// WaitAny waits until one of the futures has completed and returns its
// index (the lowest one if several already have), or -1 and ctx's error if
// ctx is done first. It leaves nothing behind on the futures still pending:
// called in a loop over the futures left (as with ray.wait), it allocates a
// constant amount per call, not one callback per pending future.
func WaitAny[F Awaitable](ctx context.Context, fs ...F) (int, error) {
	if ctx == nil {
		return -1, ErrNilContext
	}
	if len(fs) == 0 {
		return -1, ErrNoFutures
	}
	for i, f := range fs {
		if f.future().isDone() {
			return i, nil
		}
	}
	w := &anyWaiter{ready: make(chan int, 1)}
	n := 0 // fs[:n] hold a watch of w
	defer func() {
		for _, f := range fs[:n] {
			f.future().removeWatch(w)
		}
	}()
	for i, f := range fs {
		if !f.future().addWatch(w, i) {
			return i, nil
		}
		n = i + 1
	}
	select {
	case i := <-w.ready:
		return i, nil
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}
