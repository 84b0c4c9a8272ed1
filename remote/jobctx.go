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
	deadline int64           // unix nanoseconds; 0: none

	errp atomic.Pointer[error] // set once: Canceled or DeadlineExceeded
	// arm is made, once, by the first Done (AfterFunc calls it): until then
	// ending c only sets errp, with no lock (see end). Kept out of the ctx
	// itself, which every job embeds, since most jobs never arm it.
	arm atomic.Pointer[jobArm]
}

// jobArm is what a jobCtx's Done arms; all of it under mu.
type jobArm struct {
	mu         sync.Mutex
	done       chan struct{} // made by the first Done
	doneClosed bool
	timer      *time.Timer // armed by Done when there is a deadline
	stop       func() bool // stops the callback on parent, armed by Done

	afters map[*after]struct{} // AfterFunc callbacks still to run
}

func newJobCtx(parent context.Context, deadline time.Time) *jobCtx {
	c := &jobCtx{}
	c.init(parent, deadline)
	return c
}

// init readies a zero jobCtx (one embedded in a job).
func (c *jobCtx) init(parent context.Context, deadline time.Time) {
	c.parent = parent
	if !deadline.IsZero() {
		c.deadline = deadline.UnixNano()
	}
}

// expired reports whether c's deadline has passed.
func (c *jobCtx) expired() bool {
	return c.deadline != 0 && time.Now().UnixNano() >= c.deadline
}

var (
	errCanceled = context.Canceled
	errDeadline = context.DeadlineExceeded
)

// cancelByCaller ends c for a cancel frame. A cancel frame sent because
// the caller's deadline passed must not beat the callee's own deadline to
// it: the method sees context.DeadlineExceeded, as the caller does.
func (c *jobCtx) cancelByCaller() {
	if c.expired() {
		c.end(errDeadline)
		return
	}
	c.cancel()
}

// Deadline returns the caller's deadline.
func (c *jobCtx) Deadline() (time.Time, bool) {
	if c.deadline == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, c.deadline), true
}

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
	case c.expired():
		c.end(errDeadline)
	default:
		return nil
	}
	return *c.errp.Load()
}

// Done returns a channel closed when Err becomes non-nil; the first call
// arms the deadline's timer and the watch of the peer's ctx.
func (c *jobCtx) Done() <-chan struct{} {
	a := c.arming()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done != nil {
		return a.done
	}
	a.done = make(chan struct{})
	if c.errp.Load() != nil { // after arm was stored: see end
		close(a.done)
		a.doneClosed = true
		return a.done
	}
	if c.deadline != 0 {
		d := time.Until(time.Unix(0, c.deadline))
		if d <= 0 {
			c.endLocked(a, errDeadline)
			return a.done
		}
		a.timer = time.AfterFunc(d, func() { c.end(context.DeadlineExceeded) })
	}
	a.stop = context.AfterFunc(c.parent, func() { c.end(context.Canceled) })
	return a.done
}

// arming returns c's arm, making it the first time.
func (c *jobCtx) arming() *jobArm {
	if a := c.arm.Load(); a != nil {
		return a
	}
	c.arm.CompareAndSwap(nil, new(jobArm))
	return c.arm.Load()
}

// AfterFunc arranges for f to run in a goroutine of its own once c ends,
// as context.AfterFunc does; the context package uses it, rather than a
// goroutine per derived ctx, when a method derives a ctx from c. stop
// reports whether it kept f from running.
func (c *jobCtx) AfterFunc(f func()) (stop func() bool) {
	c.Done() // arm the timer and the watch of the peer's ctx
	a, fn := c.arm.Load(), &after{f: f}
	a.mu.Lock()
	if c.errp.Load() != nil {
		a.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	if a.afters == nil {
		a.afters = make(map[*after]struct{})
	}
	a.afters[fn] = struct{}{}
	a.mu.Unlock()
	return func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		if _, ok := a.afters[fn]; !ok {
			return false
		}
		delete(a.afters, fn)
		return true
	}
}

type after struct{ f func() }

// cancel ends c with context.Canceled (a cancel frame, or the job
// finished) unless it has ended already.
func (c *jobCtx) cancel() { c.end(errCanceled) }

// end ends c with err, once. A ctx nobody asked Done of — most jobs, which
// end when their call does — only records err: no lock. Done stores arm
// before it reads errp and end reads arm after it set errp, so either Done
// sees the error and closes its channel itself, or end sees the arm and
// releases what Done armed.
func (c *jobCtx) end(err error) {
	if c.errp.Load() != nil {
		return
	}
	a := c.arm.Load()
	if a == nil {
		if !c.errp.CompareAndSwap(nil, errPtr(err)) {
			return
		}
		if a = c.arm.Load(); a == nil {
			return
		}
		a.mu.Lock()
		a.releaseLocked()
		a.mu.Unlock()
		return
	}
	a.mu.Lock()
	c.endLocked(a, err)
	a.mu.Unlock()
}

// errPtr points to the package variable of err: ending a ctx allocates
// nothing.
func errPtr(err error) *error {
	if err == errCanceled {
		return &errCanceled
	}
	return &errDeadline
}

// endLocked is end under a.mu, a being c's arm.
func (c *jobCtx) endLocked(a *jobArm, err error) {
	if !c.errp.CompareAndSwap(nil, errPtr(err)) {
		return
	}
	a.releaseLocked()
}

// releaseLocked closes Done's channel and stops what Done and AfterFunc
// armed, once its ctx's errp is set; it may run more than once.
func (a *jobArm) releaseLocked() {
	if a.done != nil && !a.doneClosed {
		close(a.done)
		a.doneClosed = true
	}
	if a.timer != nil {
		a.timer.Stop()
	}
	if a.stop != nil {
		a.stop()
	}
	for f := range a.afters {
		go f.f()
	}
	a.afters = nil
}

func (c *jobCtx) String() string { return "remote.jobCtx" }
