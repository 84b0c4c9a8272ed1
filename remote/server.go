package remote

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/troupe-dev/troupe/actor"
)

// activation is one actor hosted on this node: an actor of the local engine
// (its mailbox, its turn-based execution, its supervision) running an
// instance of a registered type.
type activation struct {
	ref     Ref // ID, Type, Node (self) and Epoch of this activation
	typ     *Type
	pid     actor.PID
	retired atomic.Bool // deactivated or replaced: queued calls get ErrNotOwner
	stopped atomic.Pointer[error]
}

// hosted is the actor.Actor of an activation: one instance of the type.
type hosted struct {
	e   *Endpoint
	obj *Object
}

// Receive runs one call (lifecycle messages are ignored).
func (h *hosted) Receive(c *actor.Context, msg any) {
	if j, ok := msg.(*job); ok {
		h.e.run(c, h.obj, j)
	}
}

// job is one request on its way through an actor's mailbox.
type job struct {
	act      *activation
	from     string
	req      Request
	ctx      context.Context
	cancel   context.CancelFunc // nil when no cancel frame can come
	finished atomic.Bool
}

// serve handles a request frame: ownership, activation, mailbox. It runs on
// the transport's reader goroutine (or the local caller's) and never waits.
func (e *Endpoint) serve(from string, q *Request) {
	if e.cfg.Owner == nil {
		e.fail(from, q, &Error{Code: CodeNotFound, Message: "this node hosts no actors"})
		return
	}
	typeName, err := e.cfg.Owner.Owns(q.Target, q.Epoch)
	if err != nil {
		code := CodeUnavailable
		switch {
		case errors.Is(err, ErrNotOwner):
			code = CodeNotOwner
		case errors.Is(err, ErrNotFound):
			code = CodeNotFound
		}
		e.fail(from, q, &Error{Code: code, Message: err.Error()})
		return
	}
	act, rerr := e.activation(q.Target, typeName, q.Epoch)
	if rerr != nil {
		e.fail(from, q, rerr)
		return
	}
	if reason := act.stopped.Load(); reason != nil {
		e.fail(from, q, &Error{Code: CodeUnavailable, Message: "actor stopped: " + (*reason).Error()})
		return
	}
	j := &job{act: act, from: from, req: *q, ctx: e.ctx}
	dl, hasDeadline := q.DeadlineTime()
	cancellable := q.Flags&(FlagOneWay|FlagNoCancel) == 0 // a cancel frame may follow
	switch {
	case hasDeadline:
		j.ctx, j.cancel = context.WithDeadline(e.ctx, dl)
	case cancellable:
		j.ctx, j.cancel = context.WithCancel(e.ctx)
	}
	if cancellable {
		cancel := j.cancel
		if hasDeadline {
			// A cancel frame sent because the caller's deadline passed
			// must not beat the callee's own deadline to it: the method
			// sees context.DeadlineExceeded, as the caller does.
			cancel = func() {
				if time.Now().Before(dl) {
					j.cancel()
				}
			}
		}
		e.mu.Lock()
		e.inflight[inflightKey{from, q.ID}] = cancel
		e.mu.Unlock()
	}
	switch err := e.sys.Tell(act.pid, j); {
	case err == nil:
	case errors.Is(err, actor.ErrDeadLetter):
		// The engine already handed j to onDeadLetter.
	default:
		e.finish(j, nil, err)
	}
}

// run executes one call on the actor's goroutine and replies. A panic is
// answered with ErrPanicked and then handed to the engine with c.Fail, so
// the actor's supervisor restarts it by its policy as for any failure.
func (e *Endpoint) run(c *actor.Context, obj *Object, j *job) {
	q := &j.req
	if err := j.ctx.Err(); err != nil {
		e.finish(j, nil, err)
		return
	}
	oneWay := q.Flags&FlagOneWay != 0
	var buf *[]byte
	var dst []byte
	switch {
	case oneWay: // no reply: the result is not even encoded
	case j.from == e.self:
		dst = make([]byte, 0, 64) // the local caller keeps the frame
	default:
		buf = getBuf() // the transport copies the frame
		dst = (*buf)[:0]
	}
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		pe := &PanicError{Value: p, Stack: debug.Stack()}
		e.finish(j, nil, &Error{Code: CodePanicked,
			Message: fmt.Sprintf("%s.%s: %v", obj.typ.name, q.Method, p), cause: pe})
		if hook := e.cfg.OnPanic; hook != nil {
			hook(j.act.ref, q.Method, pe)
		}
		c.Fail(pe)
	}()
	if !oneWay {
		dst = AppendReplyHeader(dst, q.ID)
	}
	frame, err := obj.invoke(j.ctx, dst, q.Method, q.Args, false, !oneWay)
	e.finish(j, frame, err)
	if buf != nil {
		*buf = frame
		putBuf(buf)
	}
}

// onDeadLetter answers calls the engine could not deliver (their actor
// stopped, or is stopping).
func (e *Endpoint) onDeadLetter(d actor.DeadLetter) {
	if j, ok := d.Message.(*job); ok {
		e.finish(j, nil, actor.ErrDeadLetter)
	}
}

// fail answers q with rerr, or logs it for a one-way request.
func (e *Endpoint) fail(from string, q *Request, rerr *Error) {
	rerr.Node, rerr.Actor, rerr.Method = e.self, q.Target, q.Method
	if q.Flags&FlagOneWay != 0 {
		e.log("one-way call failed", "actor", q.Target, "method", q.Method, "err", rerr)
		return
	}
	e.reply(from, AppendErrorReply(nil, q.ID, rerr))
}

// finish completes j once: it replies with frame, or with err mapped to a
// wire error (the method's own *Error, a ctx error, or the engine's).
func (e *Endpoint) finish(j *job, frame []byte, err error) {
	if !j.finished.CompareAndSwap(false, true) {
		return
	}
	q := &j.req
	callerGone := false
	if j.cancel != nil {
		if q.Flags&(FlagOneWay|FlagNoCancel) == 0 {
			e.mu.Lock()
			delete(e.inflight, inflightKey{j.from, q.ID})
			e.mu.Unlock()
		}
		callerGone = errors.Is(j.ctx.Err(), context.Canceled)
		j.cancel()
	}
	if e.ctx.Err() != nil {
		return // closing: the caller's endpoint or ctx fails the call
	}
	if err == nil {
		if q.Flags&FlagOneWay == 0 {
			e.reply(j.from, frame)
		}
		return
	}
	var re *Error
	switch {
	case errors.As(err, &re): // the method failed, or panicked
		if re.Code == CodeApplication && j.ctx.Err() != nil && errors.Is(re.cause, j.ctx.Err()) {
			re.Code = CodeDeadline
			if callerGone {
				re.Code = CodeCanceled
			}
		}
	case callerGone && errors.Is(err, context.Canceled):
		return // the caller cancelled and has already completed
	default:
		re = e.engineError(j.act, err)
	}
	e.fail(j.from, q, re)
}

// engineError maps an error of the actor engine to a wire error.
func (e *Endpoint) engineError(act *activation, err error) *Error {
	var pe *actor.PanicError
	switch {
	case errors.As(err, &pe):
		return &Error{Code: CodePanicked, Message: act.typ.name + ": " + errString(pe.Value)}
	case errors.Is(err, actor.ErrMailboxFull):
		return &Error{Code: CodeBackpressure, Message: "mailbox full"}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeDeadline, Message: "deadline passed before the call ran"}
	case errors.Is(err, context.Canceled):
		return &Error{Code: CodeCanceled, Message: "call canceled before it ran"}
	case act.retired.Load():
		return &Error{Code: CodeNotOwner, Message: "activation retired"}
	case errors.Is(err, actor.ErrDeadLetter), errors.Is(err, actor.ErrClosed):
		return &Error{Code: CodeUnavailable, Message: "actor stopped"}
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}

func errString(v any) string {
	if err, ok := v.(error); ok {
		return err.Error()
	}
	if s, ok := v.(string); ok {
		return s
	}
	return "panic"
}

// activation returns the live activation of id, creating it when there is
// none or when the request's epoch is newer than the live one's.
func (e *Endpoint) activation(id, typeName string, epoch uint64) (*activation, *Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	act := e.actors[id]
	if act != nil && (epoch <= act.ref.Epoch || epoch == 0) && act.typ.name == typeName {
		return act, nil
	}
	typ, ok := e.cfg.Types.Lookup(typeName)
	if !ok {
		return nil, &Error{Code: CodeNotFound, Message: "type " + typeName + " is not registered on this node"}
	}
	next := &activation{ref: Ref{ID: id, Type: typeName, Node: e.self, Epoch: epoch}, typ: typ}
	pid, err := e.sys.Spawn(func() actor.Actor {
		obj, err := typ.New()
		if err != nil {
			return nil // the engine fails the actor with ErrNilActor
		}
		return &hosted{e: e, obj: obj}
	}, actor.Options{})
	if err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: err.Error()}
	}
	next.pid = pid
	if _, err := e.sys.Watch(pid, func(t actor.Terminated) { e.terminated(next, t) }); err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: err.Error()}
	}
	if act != nil {
		e.retire(act)
	}
	e.actors[id] = next
	return next, nil
}

// terminated runs when an activation's actor stopped.
func (e *Endpoint) terminated(act *activation, t actor.Terminated) {
	if act.retired.Load() || t.Reason == nil {
		return
	}
	reason := t.Reason
	act.stopped.Store(&reason)
	e.log("actor stopped by supervision", "actor", act.ref.ID, "err", reason)
	if e.cfg.OnStop != nil {
		e.cfg.OnStop(act.ref, reason)
	}
}

// Deactivate stops the local instance of actor id (it stopped or moved
// away). Calls queued on it fail with ErrNotOwner, so their callers refresh
// and retry.
func (e *Endpoint) Deactivate(id string) {
	e.mu.Lock()
	act := e.actors[id]
	delete(e.actors, id)
	e.mu.Unlock()
	if act != nil {
		e.retire(act)
	}
}

func (e *Endpoint) retire(act *activation) {
	act.retired.Store(true)
	_ = e.sys.Stop(act.pid)
}

// onCancel cancels the ctx of the request (from, id), queued or running.
func (e *Endpoint) onCancel(from string, id uint64) {
	e.mu.Lock()
	cancel := e.inflight[inflightKey{from, id}]
	e.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// reply sends a reply frame to the caller's node. It waits only for room in
// the transport's queue, until Close.
func (e *Endpoint) reply(to string, frame []byte) {
	if err := e.send(e.ctx, Location{Node: to}, frame); err != nil {
		e.log("reply not sent", "peer", to, "err", err)
	}
}
