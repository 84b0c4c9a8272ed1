package actor

import (
	"context"
	"fmt"
)

// Context is what an actor sees of the engine while it handles a message.
// It is valid only during the Receive call it is passed to; do not keep it.
type Context struct {
	p       *process
	env     *envelope
	failure error // set by Fail while the current message is handled
}

// Self returns the actor's own PID.
func (c *Context) Self() PID { return PID{c.p} }

// Parent returns the PID of the actor's supervisor; zero for a top-level
// actor (supervised by the system's root).
func (c *Context) Parent() PID {
	if c.p.parent.isRoot() {
		return PID{}
	}
	return PID{c.p.parent}
}

// System returns the System hosting the actor.
func (c *Context) System() *System { return c.p.sys }

// Sender returns the PID of the actor that sent the current message with
// Context.Tell, or the zero PID (sent from outside an actor, or by Ask).
func (c *Context) Sender() PID {
	if c.env == nil {
		return PID{}
	}
	return PID{c.env.sender}
}

// RequestContext returns the context of the Ask being handled, so work done
// for a caller stops when the caller gives up; context.Background()
// otherwise.
func (c *Context) RequestContext() context.Context {
	if c.env == nil || c.env.reply == nil {
		return context.Background()
	}
	return c.env.reply.ctx
}

// Fail marks the message in hand as failed with reason: once Receive
// returns, the engine handles it exactly like a panic in Receive (an Ask's
// future fails with reason, and the supervisor decides). It is for layers
// that recover a panic themselves to answer someone before the actor is
// supervised; reason should then be the *PanicError. A nil reason, or a call
// outside Receive, does nothing.
func (c *Context) Fail(reason error) {
	if c.env != nil && reason != nil {
		c.failure = reason
	}
}

// Respond replies to the current message: it completes the Ask's future,
// or else tells the sending actor msg (with this actor as sender). Only the
// first Respond to an Ask counts. With no one to reply to, msg becomes a
// dead letter and Respond returns ErrDeadLetter.
func (c *Context) Respond(msg any) error {
	if c.env == nil {
		return ErrDeadLetter
	}
	if c.env.reply != nil {
		c.env.reply.complete(msg, nil)
		return nil
	}
	if c.env.sender != nil {
		return c.env.sender.enqueue(envelope{msg: msg, sender: c.p}, false)
	}
	c.p.sys.deadLetter(c.p, &envelope{msg: msg, sender: c.p})
	return ErrDeadLetter
}

// Tell sends msg to pid with this actor as its sender. Like System.Tell it
// never blocks: ErrMailboxFull or ErrDeadLetter come back at once. Unlike
// System.Tell it still works during a graceful Shutdown, so actors can
// finish their conversations while they drain.
func (c *Context) Tell(pid PID, msg any) error {
	if err := c.p.sys.check(pid); err != nil {
		return err
	}
	return pid.p.enqueue(envelope{msg: msg, sender: c.p}, false)
}

// Spawn starts a child of this actor, supervised by this actor's
// Supervisor, and returns its PID.
func (c *Context) Spawn(p Producer, o Options) (PID, error) {
	return c.p.sys.spawn(c.p, p, o)
}

// Children returns the PIDs of the actor's live children in spawn order.
func (c *Context) Children() []PID {
	cs := c.p.children()
	pids := make([]PID, len(cs))
	for i, ch := range cs {
		pids[i] = PID{ch}
	}
	return pids
}

// Watch arranges for this actor to receive Terminated exactly once when
// the actor at pid stops, also if it already has. Watching twice is the
// same as once.
func (c *Context) Watch(pid PID) error {
	if err := c.p.sys.check(pid); err != nil {
		return err
	}
	if pid.p == c.p {
		return fmt.Errorf("actor: an actor cannot watch itself")
	}
	x := c.p.x()
	if x.watching == nil {
		x.watching = make(map[*process]struct{})
	}
	if _, ok := x.watching[pid.p]; ok {
		return nil
	}
	x.watching[pid.p] = struct{}{}
	pid.p.sendSys(sysMsg{kind: sysWatch, w: &watcher{proc: c.p}})
	return nil
}

// Unwatch withdraws a Watch; no Terminated for pid is delivered after it,
// even one already queued.
func (c *Context) Unwatch(pid PID) error {
	if err := c.p.sys.check(pid); err != nil {
		return err
	}
	if c.p.ext == nil || c.p.ext.watching == nil {
		return nil
	}
	if _, ok := c.p.ext.watching[pid.p]; !ok {
		return nil
	}
	delete(c.p.ext.watching, pid.p)
	pid.p.sendSys(sysMsg{kind: sysUnwatch, w: &watcher{proc: c.p}})
	return nil
}

// Stop asks the actor at pid (often Self or a child) to stop, as
// System.Stop does. Stopping Self takes effect after the current message.
func (c *Context) Stop(pid PID) error {
	if err := c.p.sys.check(pid); err != nil {
		return err
	}
	pid.p.sendSys(sysMsg{kind: sysStop})
	return nil
}
