package remote

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// jobCtx is the ctx of one hosted call: its caller's deadline, its
// cancellation by a cancel frame, and its peer's ctx (cancelled when the
// caller's connection ends), without a timer or a registration with the
// peer's ctx per request. Err compares the clock with the deadline and asks
// the peer's ctx, which is all the runtime itself needs (when the job
// starts, and when a method checks ctx.Err()). Only Done — a method that
// selects on its ctx, or derives one from it — arms what it takes to close
// a channel: a timer for the deadline and a callback on the peer's ctx.
// Most methods never call Done, so most calls pay for neither.
type jobCtx struct {
	parent   context.Context // the peer's ctx
	deadline time.Time       // zero: none

	errp atomic.Pointer[error] // set once: Canceled or DeadlineExceeded
	// armed is set, under mu, by the first Done (AfterFunc calls it):
	// until then ending c only sets errp, with no lock (see end).
	armed      atomic.Bool
	doneClosed bool // under mu

	mu    sync.Mutex
	done  chan struct{} // made by the first Done
	timer *time.Timer   // armed by Done when there is a deadline
	stop  func() bool   // stops the callback on parent, armed by Done

	afters map[*after]struct{} // AfterFunc callbacks still to run
}

func newJobCtx(parent context.Context, deadline time.Time) *jobCtx {
	c := &jobCtx{}
	c.init(parent, deadline)
	return c
}

// init readies a zero jobCtx (one embedded in a job).
func (c *jobCtx) init(parent context.Context, deadline time.Time) {
	c.parent, c.deadline = parent, deadline
}

var (
	errCanceled = context.Canceled
	errDeadline = context.DeadlineExceeded
)

// cancelByCaller ends c for a cancel frame. A cancel frame sent because
// the caller's deadline passed must not beat the callee's own deadline to
// it: the method sees context.DeadlineExceeded, as the caller does.
func (c *jobCtx) cancelByCaller() {
	if !c.deadline.IsZero() && !time.Now().Before(c.deadline) {
		c.end(errDeadline)
		return
	}
	c.cancel()
}

// Deadline returns the caller's deadline.
func (c *jobCtx) Deadline() (time.Time, bool) { return c.deadline, !c.deadline.IsZero() }

// Value returns the peer ctx's value for key.
func (c *jobCtx) Value(key any) any { return c.parent.Value(key) }

// Err returns context.Canceled once the call was cancelled or its caller is
// gone, context.DeadlineExceeded once its deadline passed, nil before.
func (c *jobCtx) Err() error {
	if p := c.errp.Load(); p != nil {
		return *p
	}
	switch {
	case c.parent.Err() != nil:
		c.end(errCanceled)
	case !c.deadline.IsZero() && !time.Now().Before(c.deadline):
		c.end(errDeadline)
	default:
		return nil
	}
	return *c.errp.Load()
}

// Done returns a channel closed when Err becomes non-nil; the first call
// arms the deadline's timer and the watch of the peer's ctx.
func (c *jobCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	c.armed.Store(true) // before errp is read: see end
	if c.errp.Load() != nil {
		close(c.done)
		c.doneClosed = true
		return c.done
	}
	if !c.deadline.IsZero() {
		d := time.Until(c.deadline)
		if d <= 0 {
			c.endLocked(errDeadline)
			return c.done
		}
		c.timer = time.AfterFunc(d, func() { c.end(context.DeadlineExceeded) })
	}
	c.stop = context.AfterFunc(c.parent, func() { c.end(context.Canceled) })
	return c.done
}

// AfterFunc arranges for f to run in a goroutine of its own once c ends,
// as context.AfterFunc does; the context package uses it, rather than a
// goroutine per derived ctx, when a method derives a ctx from c. stop
// reports whether it kept f from running.
func (c *jobCtx) AfterFunc(f func()) (stop func() bool) {
	c.Done() // arm the timer and the watch of the peer's ctx
	a := &after{f: f}
	c.mu.Lock()
	if c.errp.Load() != nil {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	if c.afters == nil {
		c.afters = make(map[*after]struct{})
	}
	c.afters[a] = struct{}{}
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.afters[a]; !ok {
			return false
		}
		delete(c.afters, a)
		return true
	}
}

type after struct{ f func() }

// cancel ends c with context.Canceled (a cancel frame, or the job
// finished) unless it has ended already.
func (c *jobCtx) cancel() { c.end(errCanceled) }

// end ends c with err, once. A ctx nobody asked Done of — most jobs, which
// end when their call does — only records err: no lock. Done sets armed
// before it reads errp and end reads armed after it set errp, so either
// Done sees the error and closes its channel itself, or end sees armed and
// releases what Done armed.
func (c *jobCtx) end(err error) {
	if c.errp.Load() != nil {
		return
	}
	if !c.armed.Load() {
		if !c.errp.CompareAndSwap(nil, errPtr(err)) || !c.armed.Load() {
			return
		}
		c.mu.Lock()
		c.releaseLocked()
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	c.endLocked(err)
	c.mu.Unlock()
}

// errPtr points to the package variable of err: ending a ctx allocates
// nothing.
func errPtr(err error) *error {
	if err == errCanceled {
		return &errCanceled
	}
	return &errDeadline
}

func (c *jobCtx) endLocked(err error) {
	if !c.errp.CompareAndSwap(nil, errPtr(err)) {
		return
	}
	c.releaseLocked()
}

// releaseLocked closes Done's channel and stops what Done and AfterFunc
// armed, once errp is set; it may run more than once.
func (c *jobCtx) releaseLocked() {
	if c.done != nil && !c.doneClosed {
		close(c.done)
		c.doneClosed = true
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.stop != nil {
		c.stop()
	}
	for a := range c.afters {
		go a.f()
	}
	c.afters = nil
}

func (c *jobCtx) String() string { return "remote.jobCtx" }
