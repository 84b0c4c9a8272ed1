package remote

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/troupe-dev/troupe/transport"
)

// Call is one call in flight: it completes exactly once, with the raw
// msgpack result or an error. The root wraps it in a typed future.
type Call struct {
	e        *Endpoint
	ctx      context.Context
	ref      Ref
	method   string
	args     []byte // encoded argument array, kept for a retry
	deadline int64
	argsBuf  [40]byte // holds args when they are small (a 32-byte []byte fits): one allocation less
	t0       int64    // monoNow when Call began, for the latency histogram

	// Set by start; loc is guarded by the pending shard of id while the
	// call is pending.
	id    atomic.Uint64
	loc   Location
	begin int64 // first send (unix nanoseconds), for the retry budget

	// The small fields together, so that a Call and its Future fit a 448-byte
	// size class.
	flags    Flags
	state    atomic.Bool // completed
	watched  bool        // its ctx is watched (ctxwatch.go); under mu
	attempts int32       // retries so far
	busy     int32       // retries after ErrBackpressure so far
	// sending is 1 while the request is being written to the transport,
	// and 2 once NodeFailed came for its host meanwhile: whether the
	// request left is known only when the send returns.
	sending atomic.Int32
	widx    int32 // c's index in watch.calls

	done   chan struct{}
	result []byte
	err    error
	mu     sync.Mutex
	cbs    []func()

	watch *ctxWatch // under Endpoint.watches.mu; nil once it fired
}

// Target returns the id of the actor called.
func (c *Call) Target() string { return c.ref.ID }

// Method returns the method called.
func (c *Call) Method() string { return c.method }

// Done is closed when the call completes.
func (c *Call) Done() <-chan struct{} { return c.done }

// Result returns the raw msgpack result and the error; both are final only
// once Done is closed.
func (c *Call) Result() ([]byte, error) {
	select {
	case <-c.done:
		return c.result, c.err
	default:
		return nil, errors.New("remote: call still pending")
	}
}

// Wait waits for the call or for ctx, and returns the raw result.
func (c *Call) Wait(ctx context.Context) ([]byte, error) {
	select {
	case <-c.done:
		return c.result, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Decode waits for the call and decodes its result into v (a pointer).
func (c *Call) Decode(ctx context.Context, v any) error {
	raw, err := c.Wait(ctx)
	if err != nil {
		return err
	}
	if err := Unmarshal(raw, v); err != nil {
		return &Error{Code: CodeBadArgs, Actor: c.ref.ID, Method: c.method,
			Message: fmt.Sprintf("result did not decode into %T: %v", v, err), cause: err}
	}
	return nil
}

// OnDone runs f once the call completes: at once if it has, otherwise on the
// goroutine that completes it. f must not block.
func (c *Call) OnDone(f func()) {
	c.mu.Lock()
	if !c.state.Load() {
		c.cbs = append(c.cbs, f)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	f()
}

// finish completes the call once; later calls are ignored.
func (c *Call) finish(result []byte, err error) { c.finishAt(result, err, 0) }

// finishAt is finish; at, when not 0, is a monoNow reading of now (the
// host's, for a local call), which saves reading the clock again.
func (c *Call) finishAt(result []byte, err error, at int64) {
	c.mu.Lock()
	if c.state.Load() {
		c.mu.Unlock()
		return
	}
	if c.watched {
		c.e.watches.remove(c)
	}
	if err != nil {
		c.fillError(err)
	}
	c.result, c.err = result, err
	c.state.Store(true)
	cbs := c.cbs
	c.cbs = nil
	c.mu.Unlock()
	if at == 0 {
		at = monoNow()
	}
	c.e.observeCall(c.ref.Type, c.method, codeOf(err), time.Duration(at-c.t0))
	if c.e.tracer != nil {
		endSpan(trace.SpanFromContext(c.ctx), "", c.method, err) // a no-op span if none was started
	}
	close(c.done)
	for _, f := range cbs {
		f()
	}
}

// fillError names the call's actor and method in err when it has none.
func (c *Call) fillError(err error) {
	var re *Error
	if errors.As(err, &re) {
		if re.Actor == "" {
			re.Actor = c.ref.ID
		}
		if re.Method == "" {
			re.Method = c.method
		}
	}
}

// Call calls method on the actor ref names, with args encoded as msgpack,
// and returns at once with the pending Call (sending may wait for room in the
// transport's queue). ctx's deadline travels with the request; when ctx is
// done first the callee's ctx is cancelled and the Call completes with an
// error matching ctx.Err() and ErrDeadline or ErrCanceled. On ErrNotOwner,
// or when the host is unreachable at send time, the call is retried once
// after the Resolver refreshes the location; see CallOptions for retries
// after delivery.
func (e *Endpoint) Call(ctx context.Context, ref Ref, method string, opts CallOptions, args ...any) *Call {
	c := new(Call)
	e.StartCall(c, ctx, ref, method, opts, args...)
	return c
}

// StartCall is Call into c, a zero Call the caller allocated (embedded in
// a value of its own, say, to spend one allocation per call instead of
// two). c must not be copied afterwards.
func (e *Endpoint) StartCall(c *Call, ctx context.Context, ref Ref, method string, opts CallOptions, args ...any) {
	e.startCall(c, ctx, ref, nil, method, opts, args)
}

// StartCallAt is StartCall for a caller that has just read the actor's
// location from the same Resolver: loc is used instead of a second lookup
// (retries still ask the Resolver).
func (e *Endpoint) StartCallAt(c *Call, ctx context.Context, ref Ref, loc Location, method string, opts CallOptions, args ...any) {
	e.startCall(c, ctx, ref, &loc, method, opts, args)
}

func (e *Endpoint) startCall(c *Call, ctx context.Context, ref Ref, at *Location, method string, opts CallOptions, args []any) {
	c.e, c.ctx, c.ref, c.method, c.done, c.t0 = e, ctx, ref, method, make(chan struct{}), monoNow()
	if opts.Idempotent {
		c.flags |= FlagIdempotent
	}
	if ctx == nil {
		c.finish(nil, &Error{Code: CodeInternal, Message: "nil context"})
		return
	}
	traced := e.tracer != nil
	if traced {
		c.ctx = e.startClientSpan(ctx, ref, method, false)
	}
	var err error
	if c.args, err = AppendArgs(c.argsBuf[:0], args...); err != nil {
		c.finish(nil, err)
		return
	}
	if err := e.checkSize(&Request{Target: ref.ID, Method: method, Sender: e.self}, traced, len(c.args)); err != nil {
		c.finish(nil, err)
		return
	}
	if dl, ok := ctx.Deadline(); ok {
		c.deadline = dl.UnixNano()
	}
	if ctx.Done() == nil {
		c.flags |= FlagNoCancel
	}
	if ctx.Err() != nil {
		c.finish(nil, ctxError(ctx))
		return
	}
	loc, ok := e.locate(ref, at)
	if !ok {
		c.finish(nil, &Error{Code: CodeNotFound, Message: "no location for actor"})
		return
	}
	if e.hostDown(loc.Node) {
		// Not sent: wait for the actor's new place (the request never
		// left, so even a non-idempotent call may go there).
		c.loc = loc
		e.retry(c, unavailable(loc.Node, errHostDown), retryRefresh)
		return
	}
	e.start(c, loc)
}

// errHostDown is the cause of a call not sent to a host known to be down
// whose actor was not placed elsewhere within the call's budget.
var errHostDown = errors.New("remote: the host is down and the actor was not placed elsewhere in time")

// hostDown reports whether the Resolver knows node to be down (see
// HostWatcher). This node is never down to itself.
func (e *Endpoint) hostDown(node string) bool {
	w, ok := e.cfg.Resolver.(HostWatcher)
	return ok && node != e.self && w.HostDown(node)
}

// Tell sends a one-way call: no reply, no sender. It returns once the frame
// is queued to the host (or handed to the local actor's mailbox). One-way
// sends travel on a stream of their own, which the host stops reading while
// the target's mailbox is full, so a fast sender is slowed down rather than
// its messages dropped: a Tell that returned nil is delivered unless the
// host fails, the actor stops or moves before it runs, or ctx's deadline
// passes first. A send that certainly did not leave (host unreachable) is
// retried after a refresh, within ctx.
func (e *Endpoint) Tell(ctx context.Context, ref Ref, method string, args ...any) error {
	return e.tellAt(ctx, ref, nil, method, args)
}

// TellAt is Tell for a caller that has just read the actor's location
// from the same Resolver: loc is used instead of a second lookup (a retry
// still asks the Resolver).
func (e *Endpoint) TellAt(ctx context.Context, ref Ref, loc Location, method string, args ...any) error {
	return e.tellAt(ctx, ref, &loc, method, args)
}

func (e *Endpoint) tellAt(ctx context.Context, ref Ref, at *Location, method string, args []any) error {
	if ctx == nil {
		return &Error{Code: CodeInternal, Actor: ref.ID, Method: method, Message: "nil context"}
	}
	var tc *TraceContext
	var span trace.Span
	if e.tracer != nil {
		ctx = e.startClientSpan(ctx, ref, method, true)
		span = trace.SpanFromContext(ctx)
		tc = traceContextOf(span.SpanContext())
	}
	err := e.tell(ctx, ref, at, method, tc, args)
	if span != nil {
		endSpan(span, "", method, err)
	}
	countCode(&e.oneWays.sent, codeOf(err))
	return err
}

// tell is Tell once the span is started (no defers around it: Tell is on
// the one-way hot path, where open-coded defers pay).
func (e *Endpoint) tell(ctx context.Context, ref Ref, at *Location, method string, tc *TraceContext, args []any) (err error) {
	if e.isClosed() {
		return ErrClosed
	}
	encBuf := getBuf() // the arguments, kept for a retry
	defer putBuf(encBuf)
	enc, err := AppendArgs((*encBuf)[:0], args...)
	*encBuf = enc
	if err != nil {
		return err
	}
	loc, ok := e.locate(ref, at)
	if !ok {
		return &Error{Code: CodeNotFound, Actor: ref.ID, Method: method, Message: "no location for actor"}
	}
	if e.hostDown(loc.Node) {
		down := loc.Node
		if loc, err = e.cfg.Resolver.Refresh(ctx, ref.ID, loc); err != nil {
			re := unavailable(down, err)
			if errors.Is(err, ErrNotFound) {
				re = &Error{Code: CodeNotFound, Message: err.Error(), cause: err}
			} else if ctx.Err() != nil {
				re = ctxError(ctx)
			}
			re.Actor, re.Method = ref.ID, method
			return re
		}
	}
	q := Request{Target: ref.ID, Method: method, Flags: FlagOneWay, Trace: tc}
	if dl, ok := ctx.Deadline(); ok {
		q.Deadline = dl.UnixNano()
	}
	if err := e.checkSize(&q, tc != nil, len(enc)); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		q.ID = e.nextID.Add(1)
		q.Epoch = loc.Epoch
		if loc.Node == e.self {
			// The job keeps the arguments until the actor runs it: they
			// must not come from the pool.
			q.Args = slices.Clone(enc)
			if e.isClosed() {
				err = ErrClosed
			} else {
				err = e.serveOneWay(e.self, &q, ctx)
			}
		} else {
			// The frame goes in the buffer's room after the arguments (or
			// a new one if there is none): the transport copies it.
			frame := append(AppendRequestHeader(enc[len(enc):], &q), enc...)
			err = e.sendKind(ctx, loc, transport.KindOneWay, frame)
			if err == nil {
				e.oneWaySent(loc.Node).Add(1)
			}
		}
		if err == nil || attempt >= maxRetries || !errors.Is(err, transport.ErrUnreachable) || e.cfg.Resolver == nil {
			break
		}
		if loc, err = e.cfg.Resolver.Refresh(ctx, ref.ID, loc); err != nil {
			break
		}
	}
	if err != nil {
		var re *Error
		if !errors.As(err, &re) {
			if ctx.Err() != nil {
				re = ctxError(ctx)
			} else {
				re = unavailable(loc.Node, err)
			}
		}
		re.Actor, re.Method = ref.ID, method
		return re
	}
	return nil
}

// oneWaySent counts the one-way requests queued to node (see
// Request.After).
func (e *Endpoint) oneWaySent(node string) *atomic.Uint64 {
	if v, ok := e.sentOneWay.Load(node); ok {
		return v.(*atomic.Uint64)
	}
	v, _ := e.sentOneWay.LoadOrStore(node, new(atomic.Uint64))
	return v.(*atomic.Uint64)
}

// checkSize refuses a request whose frame would exceed the frame limit,
// the same way for a local actor as for a remote one.
func (e *Endpoint) checkSize(q *Request, traced bool, args int) error {
	// The header holds the ids, names and a few integers, and the trace
	// context when traced.
	size := args + 48 + len(q.Target) + len(q.Method) + len(q.Sender)
	if traced {
		size += 2 + traceLen
	}
	if size <= e.cfg.MaxFrameSize {
		return nil
	}
	return &Error{Code: CodeTooLarge, Actor: q.Target, Method: q.Method,
		Message: fmt.Sprintf("request of %d bytes exceeds the frame limit of %d bytes", size, e.cfg.MaxFrameSize)}
}

// locate is at, when the caller has just read the location (StartCallAt,
// TellAt), else resolve's answer.
func (e *Endpoint) locate(ref Ref, at *Location) (Location, bool) {
	if at != nil {
		return *at, true
	}
	return e.resolve(ref)
}

// resolve finds where ref lives: the Resolver first, the ref's hint second.
func (e *Endpoint) resolve(ref Ref) (Location, bool) {
	if r := e.cfg.Resolver; r != nil {
		if loc, ok := r.Lookup(ref.ID); ok {
			return loc, true
		}
	}
	if ref.Node != "" {
		return Location{Node: ref.Node, Epoch: ref.Epoch}, true
	}
	return Location{}, false
}

// start registers c as pending under a fresh id and sends its request to loc.
func (e *Endpoint) start(c *Call, loc Location) {
	id := e.nextID.Add(1)
	sh := e.shard(id)
	sh.mu.Lock()
	if e.isClosed() { // under the shard's lock: Close takes what is in it after closing
		sh.mu.Unlock()
		c.finish(nil, unavailable(loc.Node, ErrClosed))
		return
	}
	c.id.Store(id)
	c.loc = loc
	if sh.m == nil {
		sh.m = make(map[uint64]*Call)
	}
	sh.m[id] = c
	if loc.Node != e.self {
		c.sending.Store(1)
	}
	sh.mu.Unlock()
	if c.flags&FlagNoCancel == 0 {
		c.mu.Lock()
		if !c.watched && !c.state.Load() {
			c.watched = true
			e.watches.add(e, c)
		}
		c.mu.Unlock()
	}

	q := Request{ID: id, Target: c.ref.ID, Epoch: loc.Epoch, Method: c.method,
		Flags: c.flags, Deadline: c.deadline, Sender: e.self}
	if e.tracer != nil {
		span := trace.SpanFromContext(c.ctx)
		if span.IsRecording() {
			span.SetAttributes(AttrPeerNode.String(loc.Node)) // the host of the latest attempt
		}
		q.Trace = traceContextOf(span.SpanContext())
	}
	var err error
	if loc.Node == e.self {
		// Same node: no frame, but the arguments are the encoded copy, and
		// the reply comes back as a frame, so values never alias.
		q.Args = c.args
		var at int64
		if c.attempts == 0 {
			at = c.t0 // the host's arrival, as good as its own reading
		}
		err = e.serveLocal(&q, at)
	} else {
		q.After = e.oneWaySent(loc.Node).Load()
		// The transport copies the frame: reuse a pooled buffer.
		buf := getBuf()
		*buf = append(AppendRequestHeader((*buf)[:0], &q), c.args...)
		err = e.send(c.ctx, loc, *buf)
		putBuf(buf)
		if err == nil {
			if !c.sending.CompareAndSwap(1, 0) {
				// The host was reported gone while the request was being
				// sent, and it left: it may have run.
				c.sending.Store(0)
				if e.take(c, id) {
					e.lost(c, loc.Node)
				}
			}
			return
		}
	}
	if err == nil {
		return
	}
	// Taken before sending is cleared: a NodeFailed meanwhile must not
	// count as lost a request that never left.
	taken := e.take(c, id)
	c.sending.Store(0)
	if !taken {
		return // completed meanwhile (ctx, Close)
	}
	if c.ctx.Err() != nil {
		c.finish(nil, ctxError(c.ctx))
		return
	}
	var cause *Error
	switch {
	case errors.Is(err, transport.ErrFrameTooLarge):
		cause = &Error{Code: CodeTooLarge, Node: loc.Node, Message: err.Error(), cause: err}
	case errors.As(err, &cause): // refused by the local server side
	default:
		cause = unavailable(loc.Node, err)
	}
	if errors.Is(err, transport.ErrUnreachable) { // not delivered: safe to retry
		e.retry(c, cause, retryRefresh)
		return
	}
	c.finish(nil, cause)
}

// take removes c from the pending map if it is still pending under id.
func (e *Endpoint) take(c *Call, id uint64) bool {
	sh := e.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m[id] != c {
		return false
	}
	delete(sh.m, id)
	return true
}

// pendingShards splits the pending calls, so that concurrent callers and
// the reply reader rarely wait for each other's map update.
const pendingShards = 16

// pendingShard holds the pending calls whose id falls in it; its mutex also
// guards their id and loc while they are pending.
type pendingShard struct {
	mu sync.Mutex
	m  map[uint64]*Call
	_  [48]byte // one cache line each
}

func (e *Endpoint) shard(id uint64) *pendingShard { return &e.pending[id%pendingShards] }

// takePending removes and returns the pending calls take says to, asked
// under their shard's lock.
func (e *Endpoint) takePending(take func(*Call) bool) []*Call {
	var calls []*Call
	for i := range e.pending {
		sh := &e.pending[i]
		sh.mu.Lock()
		for id, c := range sh.m {
			if take(c) {
				delete(sh.m, id)
				calls = append(calls, c)
			}
		}
		sh.mu.Unlock()
	}
	return calls
}

// Bounds of the retries of calls that certainly did not run.
const (
	maxRetries = 32               // retries of one call
	maxBusy    = 3                // of them, after ErrBackpressure
	retryBase  = time.Millisecond // first backoff, doubled each time
	retryCap   = 100 * time.Millisecond
	// retryBudget bounds the retrying of a call whose ctx has no deadline.
	retryBudget = 10 * time.Second
)

type retryHow int

const (
	retryRefresh retryHow = iota // wait for a newer placement, then resend
	retryBackoff                 // wait a backoff, then resend where the actor is
)

// retry sends c again, for a failure that certainly did not run it (cause):
// after the Resolver has a newer placement (how retryRefresh) or after a
// backoff (retryBackoff), within c's ctx and the retry bounds; past them c
// completes with cause.
func (e *Endpoint) retry(c *Call, cause *Error, how retryHow) {
	r := e.cfg.Resolver
	if c.begin == 0 {
		c.begin = time.Now().UnixNano()
	}
	if r == nil || c.attempts >= maxRetries || (cause.Code == CodeBackpressure && c.busy >= maxBusy) {
		c.finish(nil, cause)
		return
	}
	c.attempts++
	if cause.Code == CodeBackpressure {
		c.busy++
	}
	stale := c.loc
	ok := e.goTracked(func() {
		ctx, cancel := context.WithCancel(c.ctx)
		if _, ok := c.ctx.Deadline(); !ok {
			ctx, cancel = context.WithDeadline(c.ctx, time.Unix(0, c.begin).Add(retryBudget))
		}
		defer cancel()
		stop := context.AfterFunc(e.ctx, cancel)
		defer stop()
		loc, err := stale, error(nil)
		if how == retryBackoff {
			t := time.NewTimer(min(retryBase<<(c.attempts-1), retryCap))
			select {
			case <-t.C:
				if l, ok := e.resolve(c.ref); ok {
					loc = l
				}
			case <-ctx.Done():
				err = ctx.Err()
			}
			t.Stop()
		} else {
			loc, err = r.Refresh(ctx, c.ref.ID, stale)
		}
		if rc, ok := r.(Recreator); ok && errors.Is(err, ErrNotFound) && rc.Recreatable(c.ref) && c.ctx.Err() == nil {
			// Forgotten after a passivation, or stopped: place it again.
			var again bool
			if l, ok, rerr := rc.Recreate(ctx, c.ref); ok {
				loc, err, again = l, rerr, true
			}
			if !again {
				err = fmt.Errorf("%w: %s cannot be placed again", err, c.ref.ID)
			}
		}
		switch {
		case c.ctx.Err() != nil:
			c.finish(nil, ctxError(c.ctx))
		case errors.Is(err, ErrNotFound):
			// Stopped meanwhile, or never there: the call did not run.
			c.finish(nil, &Error{Code: CodeNotFound, Actor: c.ref.ID, Method: c.method, Message: err.Error(), cause: err})
		case err != nil:
			e.log("retry abandoned", "actor", c.ref.ID, "method", c.method, "err", err)
			c.finish(nil, cause)
		default:
			e.start(c, loc)
		}
	})
	if !ok {
		c.finish(nil, unavailable(c.loc.Node, ErrClosed))
	}
}

// onCallCtxDone runs when a pending call's ctx is done: it completes the
// call and returns the cancel its callee is to be sent (sendCancels), or
// ok false if the call was no longer pending.
func (e *Endpoint) onCallCtxDone(c *Call) (cancel callCancel, ok bool) {
	id := c.id.Load() // the latest attempt's: the shard's entry tells whether it is pending
	sh := e.shard(id)
	sh.mu.Lock()
	if sh.m[id] != c {
		sh.mu.Unlock()
		return callCancel{}, false
	}
	loc := c.loc
	delete(sh.m, id)
	sh.mu.Unlock()
	cerr := ctxError(c.ctx)
	cerr.sent = true // the request left: the method may have started
	c.finish(nil, cerr)
	return callCancel{c: c, loc: loc, id: id}, true
}

// callCancel is the cancel frame owed to the host of a call that ended
// with its ctx.
type callCancel struct {
	c   *Call
	loc Location
	id  uint64
}

// sendCancels tells the hosts, each from a goroutine of its own (a slow
// peer holds no other's cancel).
func (e *Endpoint) sendCancels(cs []callCancel) {
	for _, cc := range cs {
		e.goTracked(func() {
			if err := e.send(e.ctx, cc.loc, AppendCancel(nil, cc.id)); err != nil {
				e.log("cancel not sent", "actor", cc.c.ref.ID, "method", cc.c.method, "err", err)
			}
		})
	}
}

// onReply completes the pending call the reply answers. Replies from a node
// other than the one the request went to are ignored.
func (e *Endpoint) onReply(from string, p *Reply) {
	sh := e.shard(p.ID)
	sh.mu.Lock()
	c := sh.m[p.ID]
	if c == nil || c.loc.Node != from {
		sh.mu.Unlock()
		return
	}
	delete(sh.m, p.ID)
	sh.mu.Unlock()
	if p.Err != nil {
		switch p.Err.Code {
		case CodeNotOwner: // did not run: the actor is elsewhere now
			e.retry(c, p.Err, retryRefresh)
		case CodeNotFound: // did not run: placed again if it may be
			if rc, ok := e.cfg.Resolver.(Recreator); ok && rc.Recreatable(c.ref) {
				e.retry(c, p.Err, retryRefresh)
			} else {
				c.finish(nil, p.Err)
			}
		case CodeUnavailable, CodeBackpressure: // did not run: not now
			e.retry(c, p.Err, retryBackoff)
		default:
			c.finish(nil, p.Err)
		}
		return
	}
	c.finishAt(p.Result, nil, p.at)
}

// NodeFailed tells the endpoint that node is gone (the registry marked it
// failed or left, or the connection to it ended). Calls pending on it that
// are idempotent are retried after a refresh; the others complete with
// ErrUnknownOutcome, since they may have run (at-most-once). Calls node
// sent to this one are cancelled: nobody will read their replies.
func (e *Endpoint) NodeFailed(node string) {
	e.peerGone(node)
	calls := e.takePending(func(c *Call) bool {
		if c.loc.Node != node {
			return false
		}
		// One being sent is left to its send: not sent is retried, sent
		// is lost.
		return !c.sending.CompareAndSwap(1, 2)
	})
	for _, c := range calls {
		e.lost(c, node)
	}
}

// lost completes c, whose request reached node before node failed or
// disconnected: it may have run. An idempotent call is retried after a
// refresh; the others end with ErrUnknownOutcome (at-most-once).
func (e *Endpoint) lost(c *Call, node string) {
	cause := &Error{Code: CodeUnknownOutcome, Node: node, Message: "the host failed or disconnected after the request was sent"}
	if c.flags&FlagIdempotent != 0 {
		e.retry(c, cause, retryRefresh)
	} else {
		c.finish(nil, cause)
	}
}
