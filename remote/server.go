package remote

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/troupe-dev/troupe/actor"
	"github.com/troupe-dev/troupe/transport"
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

	last       atomic.Int64  // monoNow of the latest call delivered (passivate.go)
	asked      atomic.Bool   // a passivate message is queued
	passivated atomic.Bool   // stopped for idleness: dead letters go to a fresh activation
	leave      *leaving      // set with passivated, or by a deactivation (see leaveLocked), under Endpoint.mu
	gone       chan struct{} // closed once stopped, if a replacement waits for it (bmu)
	stoppedAll bool          // its actor has stopped (bmu)
	// admitting counts the admissions that hold this activation and have
	// not queued their job yet: activation() adds one under Endpoint.mu,
	// the caller removes it once its jobs are queued (done). Passivation
	// decides under Endpoint.mu and only when it is zero, so no admitted
	// job can reach an activation after it decided to stop.
	admitting atomic.Int64

	bmu    sync.Mutex
	bytes  int64         // argument bytes of the calls queued on the actor
	bspace chan struct{} // closed when bytes drop; nil if nobody waits
}

// reserve accounts j's argument bytes against the mailbox byte budget max.
// A job that would exceed it is refused, unless the mailbox holds nothing
// (one call of any size below the frame limit always fits) or j may wait
// for room (one-way stream), in which case reserve waits.
func (a *activation) reserve(j *job, max int) bool {
	n := int64(len(j.req.Args))
	for {
		a.bmu.Lock()
		if a.bytes == 0 || a.bytes+n <= int64(max) {
			a.bytes += n
			j.held = n
			a.bmu.Unlock()
			return true
		}
		if !j.block {
			a.bmu.Unlock()
			return false
		}
		if a.bspace == nil {
			a.bspace = make(chan struct{})
		}
		space := a.bspace
		a.bmu.Unlock()
		select {
		case <-space:
		case <-j.roomCtx().Done():
			return false
		}
	}
}

// release returns the bytes reserve accounted for j.
func (a *activation) release(j *job) {
	if j.held == 0 {
		return
	}
	a.bmu.Lock()
	a.bytes -= j.held
	j.held = 0
	if a.bspace != nil {
		close(a.bspace)
		a.bspace = nil
	}
	a.bmu.Unlock()
}

// hosted is the actor.Actor of an activation: one instance of the type.
type hosted struct {
	e   *Endpoint
	obj *Object
	ref Ref // the activation's, for the lifecycle hooks' ctx
	// after, if not nil, is closed once the previous activation of the
	// actor on this node (passivated) has deactivated: OnActivate waits
	// for it, so state its OnDeactivate saves is there to load.
	after <-chan struct{}
}

// Receive runs one call (lifecycle messages are ignored).
func (h *hosted) Receive(c *actor.Context, msg any) {
	switch m := msg.(type) {
	case *job:
		h.e.run(c, h.obj, m)
	case passivate:
		h.e.onPassivate(c, h, m.act)
	case actor.Started, actor.Stopping:
		h.e.lifecycle(c, h, m)
	}
}

// job is one request on its way through an actor's mailbox.
type job struct {
	act      *activation // nil until admitted
	from     string
	req      Request
	ctx      context.Context
	jcv      jobCtx          // ctx, when hasJC (a deadline, or it may be cancelled); embedded: one allocation per job
	ow       *ownWait        // the ownership wait of waitCtx, once made
	block    bool            // one-way stream: wait for mailbox room
	hasJC    bool            // ctx is &jcv
	finished atomic.Bool     // beside block: no padding
	wait     context.Context // local one-way: the sender's ctx bounds the waits
	held     int64           // bytes reserved in act's mailbox budget
	forwards int             // one-way: times sent on after its actor was forgotten or moved
	start    int64           // monoNow at the request's arrival, for the latency histogram
}

// ownWait is the ctx of a job's wait for ownership when its caller gave no
// deadline (waitCtx): rare, so not in every job.
type ownWait struct {
	ctx  context.Context
	stop context.CancelFunc
}

// jc returns the job's own ctx, or nil if it has none.
func (j *job) jc() *jobCtx {
	if j.hasJC {
		return &j.jcv
	}
	return nil
}

// stopWait ends the ownership wait of waitCtx, if one was made.
func (j *job) stopWait() {
	if j.ow != nil {
		j.ow.stop()
	}
}

// serve handles a request frame: ownership, activation, mailbox. It runs on
// the transport's reader goroutine (or the local caller's) and never waits:
// a request the host may serve once its replica catches up (no lease yet,
// replica behind the caller's epoch, a move's fence) is parked on a
// goroutine of its own until then (see park), so no frame delays the next.
// at is the request's arrival (monoNow), 0 for now; p is from's state, nil
// when from is this node.
func (e *Endpoint) serve(from string, p *peerState, q *Request, at int64) {
	if e.cfg.Owner == nil {
		e.fail(from, q, &Error{Code: CodeNotFound, Message: "this node hosts no actors"})
		return
	}
	j := e.newJob(from, p, q, at)
	if e.parkedBehind(from, q.Target) && e.park(j) {
		return // the caller's earlier calls to this actor are parked: keep the order
	}
	if q.After > 0 && p != nil && !p.oneWayReached(q.After) && e.park(j) {
		return // the sender's earlier one-way requests go first
	}
	typeName, err := e.cfg.Owner.Owns(q.Target, q.Epoch)
	if _, ok := e.cfg.Owner.(OwnerWaiter); ok && err != nil && errors.Is(err, ErrNotReady) && e.park(j) {
		return
	}
	e.admit(j, typeName, err)
}

// serveOneWay handles a one-way request from the one-way stream of a peer.
// Unlike serve it may wait — for ownership and for room in the actor's
// mailbox — bounded by the request's deadline and the peer's connection:
// that stream carries nothing but one-way sends, so waiting here pushes
// back on the sender through QUIC flow control and loses nothing.
//
// The local Tell calls it on the sender's goroutine with the sender's ctx
// as wait (nil for a remote sender), and gets the refusal back.
func (e *Endpoint) serveOneWay(from string, q *Request, wait context.Context) error {
	if e.cfg.Owner == nil {
		return &Error{Code: CodeNotFound, Message: "this node hosts no actors"}
	}
	var p *peerState
	if from != e.self {
		p = e.peer(from)
	}
	j := e.newJob(from, p, q, 0)
	j.block = true
	j.wait = wait
	typeName, err := e.cfg.Owner.Owns(q.Target, q.Epoch)
	if err != nil && errors.Is(err, ErrNotReady) {
		if w, ok := e.cfg.Owner.(OwnerWaiter); ok {
			typeName, err = w.WaitOwns(j.waitCtx(), q.Target, q.Epoch)
		}
	}
	return e.admit(j, typeName, err)
}

// serveOneWays is serveOneWay for a run of one-way jobs of one remote
// peer to one actor at one epoch: one ownership check (and wait), one
// activation lookup, then each job in order.
func (e *Endpoint) serveOneWays(from string, run []*job) {
	head := &run[0].req
	if e.cfg.Owner == nil {
		for _, j := range run {
			e.finish(j, nil, &Error{Code: CodeNotFound, Message: "this node hosts no actors"})
		}
		return
	}
	typeName, err := e.cfg.Owner.Owns(head.Target, head.Epoch)
	if err != nil && errors.Is(err, ErrNotReady) {
		if w, ok := e.cfg.Owner.(OwnerWaiter); ok {
			typeName, err = w.WaitOwns(run[0].waitCtx(), head.Target, head.Epoch)
		}
	}
	run[0].stopWait()
	var act *activation
	var rerr *Error
	if err == nil {
		act, rerr = e.activation(head.Target, typeName, head.Epoch)
	}
	if act != nil {
		defer act.done()
	}
	for _, j := range run {
		switch {
		case err != nil:
			e.admit(j, typeName, err)
		case rerr != nil && (errors.Is(rerr, errPassivating) || errors.Is(rerr, ErrForgotten)):
			e.afterForget(j)
		case rerr != nil:
			e.finish(j, nil, rerr)
		default:
			e.deliver(j, act)
		}
	}
}

// newJob makes the job of request q from node from, with its ctx: the
// caller's deadline, cancellable by a cancel frame, and cancelled when the
// caller's connection ends. at is the monoNow reading of its arrival; 0
// means now. p is from's state (e.peer), nil when from is this node.
func (e *Endpoint) newJob(from string, p *peerState, q *Request, at int64) *job {
	j := new(job)
	e.initJob(j, from, p, q, at)
	return j
}

// initJob is newJob into j, a zero job.
func (e *Endpoint) initJob(j *job, from string, p *peerState, q *Request, at int64) {
	if at == 0 { // else a local caller's reading, or the burst's, as good as ours
		at = monoNow()
	}
	ctx := e.ctx
	if p != nil {
		ctx = p.ctx
	}
	j.from, j.req, j.ctx, j.start = from, *q, ctx, at
	e.jobCtx(j)
	if e.tracer != nil {
		e.startServerSpan(j)
	}
}

// jobCtx gives j the ctx its request asks for.
func (e *Endpoint) jobCtx(j *job) {
	q := &j.req
	dl, hasDeadline := q.DeadlineTime()
	cancellable := q.Flags&(FlagOneWay|FlagNoCancel) == 0 // a cancel frame may follow
	if !hasDeadline && !cancellable {
		return
	}
	// No timer and no registration per request: see jobCtx.
	jc := &j.jcv
	jc.init(j.ctx, dl)
	j.ctx, j.hasJC = jc, true
	if cancellable {
		e.mu.Lock()
		e.inflight[inflightKey{j.from, q.ID}] = jc
		e.mu.Unlock()
	}
}

// waitCtx bounds a wait for ownership: the job's ctx, and parkTimeout
// when the caller gave no deadline.
func (j *job) waitCtx() context.Context {
	switch {
	case j.wait != nil:
		return j.wait
	case j.ow != nil:
		return j.ow.ctx
	}
	if _, ok := j.ctx.Deadline(); ok {
		return j.ctx
	}
	ctx, stop := context.WithTimeout(j.ctx, parkTimeout)
	j.ow = &ownWait{ctx: ctx, stop: stop}
	return ctx
}

// roomCtx bounds a one-way request's wait for room in the mailbox: the
// local sender's ctx, or the request's own (its deadline, its connection).
// Without a deadline it waits as long as the connection lives: that is the
// flow control that slows the sender down.
func (j *job) roomCtx() context.Context {
	if j.wait != nil {
		return j.wait
	}
	return j.ctx
}

// parkTimeout bounds how long a request without a deadline waits for its
// host to be able to serve it; then it is answered ErrUnavailable (it did
// not run) and its caller retries.
const parkTimeout = 5 * time.Second

// maxParked bounds the requests waiting for ownership on one node.
const maxParked = 4096

// parkKey names the queue of parked requests of one caller to one actor.
type parkKey struct{ from, target string }

// parkQueue holds, in arrival order, the parked requests of one caller to
// one actor; one goroutine admits them in that order, so parking never
// reorders a caller's calls.
type parkQueue struct {
	jobs []*job
}

// park queues j behind the caller's other parked requests to the same actor
// and waits, off the reader goroutine, for the sender's earlier one-way
// requests (Request.After) and until the host can serve j or certainly
// cannot. It returns false, and does nothing, when too many requests are
// parked already.
func (e *Endpoint) park(j *job) bool {
	size := int64(len(j.req.Args))
	if n := e.parked.Add(1); n > maxParked || e.parkedBytes.Add(size) > int64(e.cfg.MailboxBytes) {
		e.parked.Add(-1)
		e.parkedBytes.Add(-size)
		return false
	}
	key := parkKey{j.from, j.req.Target}
	e.mu.Lock()
	if pq := e.parkQs[key]; pq != nil {
		pq.jobs = append(pq.jobs, j)
		e.mu.Unlock()
		return true
	}
	pq := &parkQueue{jobs: []*job{j}}
	e.parkQs[key] = pq
	e.mu.Unlock()
	started := e.goTracked(func() { e.drainParked(key, pq) })
	if !started {
		e.mu.Lock()
		delete(e.parkQs, key)
		e.mu.Unlock()
		e.parked.Add(-1)
		e.parkedBytes.Add(-size)
	}
	return started
}

// parkedBehind reports whether requests of from to target are parked, so
// that a new one must queue behind them to keep the caller's order.
func (e *Endpoint) parkedBehind(from, target string) bool {
	if e.parked.Load() == 0 {
		return false // parked counts a job before it is queued and after it was admitted
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.parkQs[parkKey{from, target}] != nil
}

// drainParked admits the jobs of pq in order, each once it may run.
func (e *Endpoint) drainParked(key parkKey, pq *parkQueue) {
	for {
		e.mu.Lock()
		if len(pq.jobs) == 0 {
			delete(e.parkQs, key)
			e.mu.Unlock()
			return
		}
		j := pq.jobs[0]
		e.mu.Unlock()
		if j.req.After > 0 && j.from != e.self {
			e.peer(j.from).waitOneWay(j.ctx, j.req.After)
		}
		typeName, err := e.cfg.Owner.Owns(j.req.Target, j.req.Epoch)
		if w, ok := e.cfg.Owner.(OwnerWaiter); ok && err != nil && errors.Is(err, ErrNotReady) {
			typeName, err = w.WaitOwns(j.waitCtx(), j.req.Target, j.req.Epoch)
		}
		e.admit(j, typeName, err)
		e.mu.Lock()
		pq.jobs[0] = nil
		pq.jobs = pq.jobs[1:]
		e.mu.Unlock()
		e.parked.Add(-1)
		e.parkedBytes.Add(-int64(len(j.req.Args)))
	}
}

// admit delivers j to its actor once ownership is settled (err nil), or
// answers it with the ownership error. It returns the error j was answered
// with, if any (the local Tell hands it to its caller).
func (e *Endpoint) admit(j *job, typeName string, err error) error {
	j.stopWait()
	q := &j.req
	if err != nil && j.block && j.forwards < maxForwards && (errors.Is(err, ErrForgotten) || errors.Is(err, ErrNotOwner)) && e.recreatable(q.Target) {
		return e.forward(j)
	}
	if err != nil {
		code := CodeUnavailable
		switch {
		case errors.Is(err, ErrNotOwner):
			code = CodeNotOwner
		case errors.Is(err, ErrNotFound):
			code = CodeNotFound
		case j.ctx.Err() != nil:
			return errOf(e.finish(j, nil, j.ctx.Err()))
		}
		return errOf(e.finish(j, nil, &Error{Code: code, Message: err.Error()}))
	}
	act, rerr := e.activation(q.Target, typeName, q.Epoch)
	if rerr != nil {
		if j.block && (errors.Is(rerr, errPassivating) || errors.Is(rerr, ErrForgotten)) {
			return e.afterForget(j)
		}
		return errOf(e.finish(j, nil, rerr))
	}
	defer act.done()
	return e.deliver(j, act)
}

// deliver queues an admitted job on its activation's mailbox, within the
// mailbox's byte budget.
func (e *Endpoint) deliver(j *job, act *activation) error {
	j.act = act
	// Its arrival (no clock reading here): enough for passivation, which
	// also counts the queued jobs before it stops an actor.
	act.last.Store(j.start)
	if reason := act.stopped.Load(); reason != nil {
		return errOf(e.finish(j, nil, &Error{Code: CodeUnavailable, Message: "actor stopped: " + (*reason).Error()}))
	}
	if !act.reserve(j, e.cfg.MailboxBytes) {
		if j.block {
			return errOf(e.finish(j, nil, j.roomCtx().Err()))
		}
		return errOf(e.finish(j, nil, &Error{Code: CodeBackpressure, Message: fmt.Sprintf("mailbox holds over %d bytes", e.cfg.MailboxBytes)}))
	}
	var terr error
	if j.block {
		terr = e.sys.Send(j.roomCtx(), act.pid, j)
	} else {
		terr = e.sys.Tell(act.pid, j)
	}
	switch {
	case terr == nil:
		return nil
	case errors.Is(terr, actor.ErrDeadLetter):
		// The engine already handed j to onDeadLetter, which redelivered
		// it to a fresh activation if act was passivated.
		if act.passivated.Load() && !e.isClosed() {
			return nil
		}
		return e.engineError(act, terr)
	default:
		return errOf(e.finish(j, nil, terr))
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
		obj.countPanic()
		pe := &PanicError{Value: p, Stack: debug.Stack()}
		if hook := e.cfg.OnPanic; hook != nil {
			hook(j.act.ref, q.Method, pe) // before the reply: a caller that saw ErrPanicked finds the crash logged
		}
		e.finish(j, nil, &Error{Code: CodePanicked,
			Message: fmt.Sprintf("%s.%s: %v", obj.typ.name, q.Method, p), cause: pe})
		obj.observeLast(j.start, monoNow())
		c.Fail(pe)
	}()
	if !oneWay {
		dst = AppendReplyHeader(dst, q.ID)
	}
	frame, err := obj.invoke(j.ctx, dst, q.Method, q.Args, false, !oneWay)
	obj.countLast(err)
	end := monoNow()      // one reading for the histogram and, for a local caller, its own
	j.act.last.Store(end) // idle from the end of its last call (passivate.go)
	obj.observeLast(j.start, end)
	e.finishAt(j, frame, err, end)
	if buf != nil {
		*buf = frame
		putBuf(buf)
	}
}

// onDeadLetter answers calls the engine could not deliver (their actor
// stopped, or is stopping).
func (e *Endpoint) onDeadLetter(d actor.DeadLetter) {
	if j, ok := d.Message.(*job); ok {
		if j.act != nil && j.act.passivated.Load() && !e.isClosed() {
			e.redeliver(j)
			return
		}
		if j.block && j.act != nil && j.act.retired.Load() && !e.isClosed() && e.recreatable(j.req.Target) {
			// A one-way request queued on a virtual actor replaced or moved
			// meanwhile: admitted again where it is now, not dropped.
			old := j.act
			j.act = nil
			old.release(j)
			e.goTracked(func() { _ = e.readmit(j) }) // this goroutine must not wait
			return
		}
		e.finish(j, nil, actor.ErrDeadLetter)
	}
}

// fail answers q with rerr, or logs it for a one-way request.
func (e *Endpoint) fail(from string, q *Request, rerr *Error) {
	rerr.Node, rerr.Actor, rerr.Method = e.self, q.Target, q.Method
	if q.Flags&FlagOneWay != 0 {
		if !reachedMethod(rerr.Code) {
			countCode(&e.oneWays.dropped, rerr.Code)
		}
		e.log("one-way call failed", "actor", q.Target, "method", q.Method, "err", rerr)
		return
	}
	e.reply(from, AppendErrorReply(nil, q.ID, rerr))
}

// finish completes j once: it replies with frame, or with err mapped to a
// wire error (the method's own *Error, a ctx error, or the engine's). A
// result over the frame limit is answered ErrTooLarge.
func (e *Endpoint) finish(j *job, frame []byte, err error) *Error {
	return e.finishAt(j, frame, err, 0)
}

// finishAt is finish; at, when not 0, is the monoNow reading of the end
// of the call, handed to a local caller with its reply.
func (e *Endpoint) finishAt(j *job, frame []byte, err error, at int64) *Error {
	if !j.finished.CompareAndSwap(false, true) {
		return nil
	}
	if j.act != nil {
		j.act.release(j)
	}
	q := &j.req
	if e.tracer != nil {
		typ := ""
		if j.act != nil {
			typ = j.act.ref.Type
		}
		endSpan(trace.SpanFromContext(j.ctx), typ, q.Method, err) // newJob started it
	}
	if err == nil && q.Flags&FlagOneWay != 0 {
		if jc := j.jc(); jc != nil {
			jc.cancel()
		}
		return nil // done: nobody waits for an answer
	}
	// The caller cancelled, or its connection ended: nobody waits for an
	// answer. Read before the ctx is ended below, and only for a failure
	// (a result is sent whatever it says; Err reads the clock).
	callerGone := err != nil && errors.Is(j.ctx.Err(), context.Canceled)
	if jc := j.jc(); jc != nil {
		if q.Flags&(FlagOneWay|FlagNoCancel) == 0 {
			e.mu.Lock()
			delete(e.inflight, inflightKey{j.from, q.ID})
			e.mu.Unlock()
		}
		jc.cancel()
	}
	if e.ctx.Err() != nil {
		return nil // closing: the caller's endpoint or ctx fails the call
	}
	if err == nil {
		if q.Flags&FlagOneWay != 0 {
			return nil
		}
		if len(frame) <= e.cfg.MaxFrameSize {
			if j.from == e.self {
				// A local caller: the result as is, no frame to decode.
				e.onReply(e.self, &Reply{ID: q.ID, Result: frame[replyHeaderLen(q.ID):], at: at})
				return nil
			}
			e.reply(j.from, frame)
			return nil
		}
		err = &Error{Code: CodeTooLarge, Message: fmt.Sprintf("result of %d bytes exceeds the frame limit of %d bytes", len(frame), e.cfg.MaxFrameSize)}
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
		return nil // the caller cancelled and has already completed
	default:
		re = e.engineError(j.act, err)
	}
	e.fail(j.from, q, re)
	return re
}

// errOf returns re as an error, nil when re is nil.
func errOf(re *Error) error {
	if re == nil {
		return nil
	}
	return re
}

// engineError maps an error of the actor engine to a wire error.
func (e *Endpoint) engineError(act *activation, err error) *Error {
	var pe *actor.PanicError
	switch {
	case errors.As(err, &pe):
		return &Error{Code: CodePanicked, Message: errString(pe.Value)}
	case errors.Is(err, actor.ErrMailboxFull):
		return &Error{Code: CodeBackpressure, Message: "mailbox full"}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeDeadline, Message: "deadline passed before the call ran"}
	case errors.Is(err, context.Canceled):
		return &Error{Code: CodeCanceled, Message: "call canceled before it ran"}
	case act != nil && act.retired.Load():
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
		act.admitting.Add(1)
		return act, nil
	}
	var after <-chan struct{}
	if lv := e.leaving[id]; lv != nil {
		if lv.forget {
			return nil, &Error{Code: CodeUnavailable, Message: "actor is being passivated", cause: errPassivating}
		}
		after = lv.done
	}
	if e.cfg.Owner != nil {
		// A request admitted before a passivation, whose actor was then
		// forgotten (the replica applied it before the passivation ended),
		// must not bring back an activation the registry no longer has.
		if _, err := e.cfg.Owner.Owns(id, epoch); err != nil && errors.Is(err, ErrForgotten) {
			return nil, &Error{Code: CodeNotFound, Message: "actor passivated and forgotten", cause: ErrForgotten}
		}
	}
	typ, ok := e.cfg.Types.Lookup(typeName)
	if !ok {
		return nil, &Error{Code: CodeNotFound, Message: "type " + typeName + " is not registered on this node"}
	}
	if act != nil && after == nil {
		// Replaced here at a newer epoch (restarted, or placed here again
		// after it was forgotten): the new one starts once the old one has
		// stopped, so their hooks never overlap.
		act.bmu.Lock()
		if !act.stoppedAll {
			if act.gone == nil {
				act.gone = make(chan struct{})
			}
			after = act.gone
		}
		act.bmu.Unlock()
	}
	next := &activation{ref: Ref{ID: id, Type: typeName, Node: e.self, Epoch: epoch}, typ: typ}
	next.last.Store(monoNow())
	pid, err := e.sys.Spawn(func() actor.Actor {
		obj, err := typ.New()
		if err != nil {
			return nil // the engine fails the actor with ErrNilActor
		}
		return &hosted{e: e, obj: obj, ref: next.ref, after: after}
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
	next.admitting.Add(1)
	e.actors[id] = next
	return next, nil
}

// done ends an admission of act (see activation.admitting).
func (a *activation) done() { a.admitting.Add(-1) }

// terminated runs when an activation's actor stopped.
func (e *Endpoint) terminated(act *activation, t actor.Terminated) {
	// Not Endpoint.mu: Watch may run this at once, under it.
	act.bmu.Lock()
	if act.gone != nil {
		close(act.gone)
	}
	act.stoppedAll = true // a replacement made from now on need not wait
	lv := act.leave       // after stoppedAll, under bmu: see leaveLocked
	act.bmu.Unlock()
	if lv != nil {
		e.passivationDone(act, lv) // must not block here
	}
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
	if act != nil {
		e.leaveLocked(act)
	}
	e.mu.Unlock()
	if act != nil {
		e.retire(act)
	}
}

// leaveLocked marks act, just taken out of e.actors to be stopped, as
// leaving (under e.mu): its actor stops in its own turn, after its
// OnDeactivate, and a new activation of the id made here meanwhile (the
// actor placed here again, at a newer epoch) must wait for that before its
// OnActivate, as after a passivation — two activations of one actor are
// never live together on a node. Nothing to wait for once it has stopped.
func (e *Endpoint) leaveLocked(act *activation) {
	act.bmu.Lock()
	defer act.bmu.Unlock()
	if act.stoppedAll || act.leave != nil {
		return
	}
	lv := &leaving{done: make(chan struct{})}
	act.leave = lv // terminated reads it after it set stoppedAll under bmu
	e.leaving[act.ref.ID] = lv
}

func (e *Endpoint) retire(act *activation) {
	act.retired.Store(true)
	_ = e.sys.Stop(act.pid)
}

// onCancel cancels the ctx of the request (from, id), queued or running.
func (e *Endpoint) onCancel(from string, id uint64) {
	e.mu.Lock()
	jc := e.inflight[inflightKey{from, id}]
	e.mu.Unlock()
	if jc != nil {
		jc.cancelByCaller()
	}
}

// reply sends a reply frame to the caller's node. It never waits and
// never dials: a reply goes on the caller's existing connection, or is
// dropped (and counted) when that connection is gone or so backed up that
// the caller is evidently not reading; that caller's call then ends by its
// own deadline or by the connection loss. So a slow or departed caller can
// only hurt itself, never the actor that served it.
func (e *Endpoint) reply(to string, frame []byte) {
	if to == e.self {
		e.handleFrame(e.self, frame)
		return
	}
	err := e.tr.TrySend(transport.Peer{ID: to}, transport.KindCalls, frame)
	if err != nil {
		e.repliesDropped.Add(1)
		e.log("reply dropped", "peer", to, "err", err)
	}
}

// RepliesDropped counts replies that could not be queued to their caller
// (its connection was gone or full).
func (e *Endpoint) RepliesDropped() uint64 { return e.repliesDropped.Load() }

// peer returns the state of calls from node from, making it if needed. Its
// ctx, the parent of every job from that node, is cancelled when that
// node's connection ends or the registry says it failed or left, so that
// its queued calls are dropped and its running ones see ctx done. It
// is on the path of every frame: a lock-free read once the peer is known.
func (e *Endpoint) peer(from string) *peerState {
	if v, ok := e.peers.Load(from); ok {
		return v.(*peerState)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	v, loaded := e.peers.LoadOrStore(from, &peerState{ctx: ctx, cancel: cancel})
	if loaded {
		cancel()
	}
	return v.(*peerState)
}

// peerGone cancels the calls node sent: it will never read their replies.
func (e *Endpoint) peerGone(node string) {
	if v, ok := e.peers.LoadAndDelete(node); ok {
		v.(*peerState).cancel()
	}
}

// peerState is what the server keeps of one calling node.
type peerState struct {
	ctx    context.Context // cancelled when the node is gone
	cancel context.CancelFunc

	names interner // strings of the node's recent requests

	mu      sync.Mutex
	oneWays uint64        // one-way requests of the node admitted so far
	advance chan struct{} // closed when oneWays grows; nil if nobody waits
}

// oneWayBarrier bounds how long a call waits for the one-way requests sent
// before it (Request.After) while none of them arrives: those are on
// another stream and may have been lost with a broken connection, and then
// the call goes ahead. While they keep arriving the call waits, bounded by
// its ctx.
const oneWayBarrier = 5 * time.Second

// oneWaysDone counts n more one-way requests of the node as admitted.
func (p *peerState) oneWaysDone(n int) {
	p.mu.Lock()
	p.oneWays += uint64(n)
	if p.advance != nil {
		close(p.advance)
		p.advance = nil
	}
	p.mu.Unlock()
}

func (p *peerState) oneWayReached(n uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.oneWays >= n
}

// waitOneWay waits until n one-way requests of the node were admitted, ctx
// is done or oneWayBarrier passed without progress.
func (p *peerState) waitOneWay(ctx context.Context, n uint64) {
	t := time.NewTimer(oneWayBarrier)
	defer t.Stop()
	var seen uint64
	for {
		p.mu.Lock()
		if p.oneWays >= n {
			p.mu.Unlock()
			return
		}
		if p.oneWays != seen {
			seen = p.oneWays
			t.Reset(oneWayBarrier)
		}
		if p.advance == nil {
			p.advance = make(chan struct{})
		}
		ch := p.advance
		p.mu.Unlock()
		select {
		case <-ch:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// DeactivateEpoch is Deactivate for the activation of id at epoch (or an
// older one) only: a newer activation of the id stays.
func (e *Endpoint) DeactivateEpoch(id string, epoch uint64) {
	e.mu.Lock()
	act := e.actors[id]
	if act == nil || act.ref.Epoch > epoch {
		e.mu.Unlock()
		return
	}
	delete(e.actors, id)
	e.leaveLocked(act)
	e.mu.Unlock()
	e.retire(act)
}
