package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/troupe-dev/troupe/actor"
	"github.com/troupe-dev/troupe/transport"
)

// Location is where the registry says an actor lives.
type Location struct {
	Node  string // node id
	Addr  string // node address ("" when the transport already knows the node)
	Epoch uint64 // placement epoch; bumps each time the actor is (re)placed
}

// Resolver is the caller's view of the placement registry. The root wires it
// to the local Raft replica.
type Resolver interface {
	// Lookup returns where actor id lives, from local state (no network).
	Lookup(id string) (Location, bool)
	// Refresh waits until the local state knows a location of id other than
	// stale (a higher epoch), or ctx is done. It returns an error wrapping
	// ErrNotFound when id no longer exists.
	Refresh(ctx context.Context, id string, stale Location) (Location, error)
}

// HostWatcher is a Resolver that knows which hosts are down. A location
// on a host the registry marked failed, left or expelled is not sent to
// (a process killed without a word keeps its connections open until they
// time out, seconds later): the call first waits in Refresh for the actor
// to be placed elsewhere, as after ErrNotOwner.
type HostWatcher interface {
	Resolver
	// HostDown reports whether node is known to be down. It must not block.
	HostDown(node string) bool
}

// Recreator is a Resolver that can place again an actor whose registry
// entry was dropped after its host passivated it (a virtual actor), or
// that was stopped and may be placed anew. A call its host answered
// ErrNotFound (so it did not run) is sent again where Recreate placed the
// actor, within the call's retry bounds; a one-way request that reaches a
// host after such a drop is forwarded there by the host. ok is false for
// an actor that cannot be placed again (its Ref names no such type).
type Recreator interface {
	Resolver
	// Recreatable reports, without blocking, whether Recreate may place
	// ref again.
	Recreatable(ref Ref) bool
	Recreate(ctx context.Context, ref Ref) (loc Location, ok bool, err error)
}

// ErrForgotten is returned (wrapped, beside ErrNotFound) by an Owner for
// an actor whose registry entry was dropped after its passivation.
var ErrForgotten = errors.New("remote: actor passivated and forgotten by the registry")

// Owner is the callee's view of the placement registry.
type Owner interface {
	// Owns reports whether this node hosts actor id at epoch (0: at its
	// current epoch) and, if so, the actor's registered type name. It returns
	// an error wrapping ErrNotOwner or ErrNotFound otherwise.
	Owns(id string, epoch uint64) (typeName string, err error)
}

// OwnerWaiter is an Owner that can wait for ownership. Owns must never
// block (it runs on the transport's reader goroutine); when it returns an
// error matching ErrNotReady — this node may serve the actor once its
// replica catches up, its lease is renewed or a move's fence ends — the
// Endpoint parks the request on a goroutine of its own and calls WaitOwns,
// bounded by the request's deadline, instead of failing it.
type OwnerWaiter interface {
	Owner
	// WaitOwns waits until Owns would succeed, or fails as Owns does once
	// the outcome is certain or ctx is done.
	WaitOwns(ctx context.Context, id string, epoch uint64) (typeName string, err error)
}

// ErrNotReady is returned (wrapped) by an Owner for an actor this node may
// serve soon but not yet; see OwnerWaiter.
var ErrNotReady = errors.New("remote: host not ready for this actor yet")

// OwnerFunc adapts a function to Owner.
type OwnerFunc func(id string, epoch uint64) (string, error)

// Owns calls f(id, epoch).
func (f OwnerFunc) Owns(id string, epoch uint64) (string, error) { return f(id, epoch) }

// Config configures an Endpoint. Transport and Types are required; every
// other zero field means its default.
type Config struct {
	// Transport carries KindCalls frames. Required. The Endpoint installs
	// its handler for KindCalls; it does not close the transport.
	Transport transport.Transport
	// Types is the node's type registry. Required.
	Types *Types
	// Resolver locates actors for calls. Nil means calls go to the node
	// named by the Ref's hint and are never retried.
	Resolver Resolver
	// Owner checks ownership of incoming calls. Nil means this node serves
	// no actor: every request gets ErrNotFound.
	Owner Owner
	// MailboxSize bounds the calls queued per actor; a call beyond it fails
	// with ErrBackpressure (a one-way send waits for room instead). Zero
	// means 1024.
	MailboxSize int
	// MailboxBytes bounds the argument bytes of the calls queued per actor,
	// and of the requests parked while the node waits to be able to serve
	// them; a call beyond it fails with ErrBackpressure (a one-way send
	// waits). A lone call always fits. Zero means 64 MiB.
	MailboxBytes int
	// MaxFrameSize is the largest request or reply frame; an argument list
	// or a result over it fails with ErrTooLarge, locally as remotely. It
	// must not exceed the transport's own limit. Zero means
	// transport.DefaultMaxFrameSize.
	MaxFrameSize int
	// Restart is the local supervision of hosted actors by the actor
	// engine: a method that panics fails its call with ErrPanicked and the
	// actor is restarted with a fresh instance from its producer, within
	// MaxRestarts per Window and with Backoff; past that the actor stops.
	// Its Strategy is ignored (always OneForOne). The zero value is the
	// engine's default: restart always, at most 3 restarts in 5s, no backoff.
	Restart actor.Supervisor
	// OnPanic is called after a method panicked, before its caller gets
	// ErrPanicked (so what the hook logs is there when the caller looks),
	// on the engine's goroutine; it must not block. Nil means no hook.
	OnPanic func(ref Ref, method string, p *PanicError)
	// OnStop is called when the engine stopped a hosted actor because it
	// failed past its restart intensity (the cluster supervisor may then
	// re-place it); calls to it fail with ErrUnavailable until it is
	// re-placed or deactivated. It runs on the engine's goroutine and must
	// not block. Nil means no hook.
	OnStop func(ref Ref, reason error)
	// Logger receives call failures. Nil means silent.
	Logger *slog.Logger
	// IdleTimeout passivates an activation that has had no call for this
	// long (a Type's SetIdleTimeout overrides it): its OnDeactivate hook
	// runs and it is stopped on this node; its next call activates it
	// again (OnActivate). Zero or negative means never.
	IdleTimeout time.Duration
	// Forgets, if set, tells whether a passivated actor's registry entry
	// should be dropped (a virtual actor); Forget then drops it, once
	// the activation has deactivated, and returns nil once it is dropped
	// or certainly kept (the actor moved, restarted or stopped meanwhile)
	// — the Endpoint calls it again after any other error. Until Forget
	// has returned, calls to the actor on this node are answered
	// ErrUnavailable (they did not run; their callers retry) and one-way
	// requests wait. Forgets runs on the actor's goroutine and must not
	// block.
	Forgets func(ref Ref) bool
	Forget  func(ctx context.Context, ref Ref) error
	// BaseContext returns the parent of the ctx of every method the Endpoint
	// runs, so that methods see its values (the root package puts the
	// hosting node there). New calls it once. The Endpoint cancels method
	// ctxs itself (caller's deadline, cancel frames, Close); cancelling the
	// returned ctx cancels them all too, so give it no deadline. Nil means
	// context.Background().
	BaseContext func() context.Context
	// TracerProvider, when set, records a span per call and one-way send on
	// the caller's side and one on the host's, linked through the trace
	// context the request carries (see tracing.go). Nil means no spans, no
	// trace context on the wire, and nothing done for them on the path of a
	// call.
	TracerProvider trace.TracerProvider
}

// CallOptions qualify one call.
type CallOptions struct {
	// Idempotent allows one retry even after the request may have been
	// delivered (the host failed after the send). Without it a call is
	// retried only when it certainly was not delivered.
	Idempotent bool
}

// Endpoint is one node's remote-object engine: the client that sends calls
// and matches replies, and the server that checks ownership, activates
// instances, runs one call at a time per actor and replies.
type Endpoint struct {
	cfg        Config
	self       string
	tr         transport.Transport
	sys        *actor.System
	ctx        context.Context // cancelled by Close
	cancel     context.CancelFunc
	nextID     atomic.Uint64
	lifeMu     sync.Mutex  // guards wg.Add and the setting of closed
	closed     atomic.Bool // set under lifeMu; isClosed reads it lock-free on the call path
	draining   atomic.Bool // Drain began: new requests get ErrNotOwner
	wg         sync.WaitGroup
	mu         sync.Mutex                  // guards actors, inflight
	pending    [pendingShards]pendingShard // the calls awaiting a reply, by id
	actors     map[string]*activation
	leaving    map[string]*leaving     // passivated activations still deactivating, or being forgotten
	forgetQ    []*activation           // passivated, deactivated, entry to drop (passivate.go)
	forgetN    int                     // goroutines draining forgetQ
	actorsPeak int                     // the most entries actors held since it was last rebuilt
	inflight   map[inflightKey]*jobCtx // cancellable hosted calls, for cancel frames
	peers      sync.Map                // node -> *peerState: callers with calls on this node
	parkQs     map[parkKey]*parkQueue  // requests waiting for ownership, per caller and actor

	sentOneWay     sync.Map     // node -> *atomic.Uint64: one-way requests queued to it
	parked         atomic.Int64 // requests waiting for ownership
	parkedBytes    atomic.Int64
	repliesDropped atomic.Uint64
	passivations   atomic.Uint64

	tracer      trace.Tracer // from Config.TracerProvider; nil: no spans
	clientLat   sync.Map     // clientKey -> *clientHists: latency of the calls made
	clientCache clientCache
	oneWays     oneWayCounters
	watches     ctxWatches // the ctxs of pending calls (ctxwatch.go)
}

type inflightKey struct {
	from string
	id   uint64
}

// New starts an Endpoint and installs its KindCalls handler on the transport.
func New(cfg Config) (*Endpoint, error) {
	if cfg.Transport == nil {
		return nil, errors.New("remote: Config.Transport is required")
	}
	if cfg.Types == nil {
		return nil, errors.New("remote: Config.Types is required")
	}
	if cfg.MailboxSize <= 0 {
		cfg.MailboxSize = 1024
	}
	if cfg.MailboxBytes <= 0 {
		cfg.MailboxBytes = 64 << 20
	}
	if cfg.MaxFrameSize <= 0 {
		cfg.MaxFrameSize = transport.DefaultMaxFrameSize
	}
	base := context.Background()
	if cfg.BaseContext != nil {
		if base = cfg.BaseContext(); base == nil {
			return nil, errors.New("remote: Config.BaseContext returned nil")
		}
	}
	e := &Endpoint{}
	sup := cfg.Restart
	sup.Strategy = actor.OneForOne
	// The engine gets no Logger: it knows its actors by engine pid only.
	// Their failures reach OnPanic and OnStop, whose owner logs them with
	// the actor's id, type and method.
	sys, err := actor.New(actor.Config{Name: cfg.Transport.ID(), MailboxSize: cfg.MailboxSize,
		Supervisor: sup, OnDeadLetter: e.onDeadLetter})
	if err != nil {
		return nil, fmt.Errorf("remote: %w", err)
	}
	ctx, cancel := context.WithCancel(base)
	*e = Endpoint{
		cfg:      cfg,
		self:     cfg.Transport.ID(),
		tr:       cfg.Transport,
		sys:      sys,
		ctx:      ctx,
		cancel:   cancel,
		actors:   make(map[string]*activation),
		leaving:  make(map[string]*leaving),
		inflight: make(map[inflightKey]*jobCtx),
		parkQs:   make(map[parkKey]*parkQueue),
	}
	if tp := cfg.TracerProvider; tp != nil {
		e.tracer = tp.Tracer(instrumentation)
	}
	if owner := cfg.Owner; owner != nil {
		e.cfg.Owner = &drainingOwner{e: e, owner: owner}
	}
	cfg.Transport.Handle(transport.KindCalls, transport.HandlerFunc(e.handleFrame))
	cfg.Transport.Handle(transport.KindOneWay, oneWayHandler{e})
	cfg.Transport.OnDisconnect(e.onDisconnect)
	e.goTracked(e.sweep)
	return e, nil
}

// Passivations counts the activations passivated for idleness.
func (e *Endpoint) Passivations() uint64 { return e.passivations.Load() }

// drainingOwner refuses every actor once the Endpoint drains.
type drainingOwner struct {
	e     *Endpoint
	owner Owner
}

func (d *drainingOwner) Owns(id string, epoch uint64) (string, error) {
	if d.e.draining.Load() {
		return "", fmt.Errorf("remote: node %s is draining: %w", d.e.self, ErrNotOwner)
	}
	return d.owner.Owns(id, epoch)
}

func (d *drainingOwner) WaitOwns(ctx context.Context, id string, epoch uint64) (string, error) {
	w, ok := d.owner.(OwnerWaiter)
	if !ok || d.e.draining.Load() {
		return d.Owns(id, epoch)
	}
	typeName, err := w.WaitOwns(ctx, id, epoch)
	if err == nil && d.e.draining.Load() {
		return d.Owns(id, epoch)
	}
	return typeName, err
}

// onDisconnect runs when the transport lost its last connection to node:
// the calls this node sent there will get no reply, and the calls node sent
// here can no longer be answered.
func (e *Endpoint) onDisconnect(node string) {
	e.sentOneWay.Delete(node) // a new connection starts a new count
	e.peerGone(node)
	e.NodeFailed(node)
}

// ActivationStats counts the actors of one type active on this node.
type ActivationStats struct {
	Type        string
	Activations int
	Queued      int // calls in their mailboxes (queued, or in the batch being run)
}

// Activations returns, per type, the actors active on this node and the
// calls in their mailboxes, sorted by type. It walks every activation.
func (e *Endpoint) Activations() []ActivationStats {
	e.mu.Lock()
	acts := make([]*activation, 0, len(e.actors))
	for _, a := range e.actors {
		acts = append(acts, a)
	}
	e.mu.Unlock()
	by := map[string]*ActivationStats{}
	for _, a := range acts {
		st := by[a.ref.Type]
		if st == nil {
			st = &ActivationStats{Type: a.ref.Type}
			by[a.ref.Type] = st
		}
		st.Activations++
		st.Queued += e.sys.Queued(a.pid)
	}
	out := make([]ActivationStats, 0, len(by))
	for _, st := range by {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b ActivationStats) int { return strings.Compare(a.Type, b.Type) })
	return out
}

// Node returns this endpoint's node id.
func (e *Endpoint) Node() string { return e.self }

// Close fails every pending call with ErrClosed (and sends its host a
// cancel, so the call is dropped there at once), cancels the ctx of every
// running method, stops every hosted actor (queued calls are dropped) and
// waits for every goroutine the Endpoint and its engine started (methods
// must honour ctx for Close to return promptly). Later calls fail
// with ErrClosed and incoming frames are dropped.
func (e *Endpoint) Close() error {
	e.lifeMu.Lock()
	if e.closed.Load() {
		e.lifeMu.Unlock()
		return nil
	}
	e.closed.Store(true)
	e.lifeMu.Unlock()
	e.tr.OnDisconnect(nil)
	e.cancel()
	calls := e.takePending(func(*Call) bool { return true })
	for _, c := range calls {
		// Tell the host at once, best effort: its queued calls from this
		// node are dropped now, not when the connection ends, which may
		// be seconds later (the registry closes first).
		if c.loc.Node != e.self && c.flags&FlagNoCancel == 0 {
			_ = e.tr.TrySend(transport.Peer{ID: c.loc.Node}, transport.KindCalls, AppendCancel(nil, c.id.Load()))
		}
		c.finish(nil, &Error{Code: CodeUnavailable, Message: "endpoint closed", cause: ErrClosed})
	}
	e.watches.close()
	e.sys.Close()
	e.wg.Wait()
	return nil
}

// Drain stops this node serving calls while letting the calls it holds
// finish: from now on requests are answered ErrNotOwner (their callers
// refresh and retry wherever the registry places the actor next), calls
// already queued on a hosted actor and the running ones complete and are
// answered, then every hosted actor stops. Outgoing calls keep working.
// Drain returns nil once no call is left; if ctx is done first it cancels
// the ctx of the running methods, drops the queued calls (neither are
// answered: their callers' ctx or NodeFailed ends them) and returns ctx's
// error. Either way only Close is left to do; until then requests keep
// being refused. Shutdown does both.
func (e *Endpoint) Drain(ctx context.Context) error {
	if ctx == nil {
		return errors.New("remote: Drain with a nil context")
	}
	if e.isClosed() {
		return ErrClosed
	}
	e.draining.Store(true)
	e.mu.Lock()
	for _, act := range e.actors {
		act.retired.Store(true) // a call refused from now on is answered ErrNotOwner
	}
	e.mu.Unlock()
	e.log("draining")
	// The engine falls back to an abrupt close when ctx ends, which waits
	// for the running methods: cancel their ctx so that they return.
	stop := context.AfterFunc(ctx, e.cancel)
	err := e.sys.Shutdown(ctx)
	if !stop() && err == nil {
		err = ctx.Err() // methods were cancelled, though the engine drained
	}
	return err
}

// Activate starts the instance of the actor ref names (ID, Type, Epoch) on
// this node now rather than at its first call, e.g. when the registry has
// just re-placed it here. It does not check ownership: the caller knows the
// actor is placed here at ref.Epoch. An activation at ref.Epoch or later is
// kept as is. It fails with ErrClosed once the endpoint drains or closes,
// and with ErrNotFound when the type is not registered.
func (e *Endpoint) Activate(ref Ref) error {
	if e.isClosed() || e.draining.Load() {
		return ErrClosed
	}
	act, rerr := e.activation(ref.ID, ref.Type, ref.Epoch)
	if rerr != nil {
		rerr.Node, rerr.Actor = e.self, ref.ID
		return rerr
	}
	act.done()
	return nil
}

// Shutdown is a graceful Close: Drain bounded by ctx, then Close. It
// returns ctx's error when the drain was cut short.
func (e *Endpoint) Shutdown(ctx context.Context) error {
	err := e.Drain(ctx)
	if errors.Is(err, ErrClosed) {
		err = nil
	}
	return errors.Join(err, e.Close())
}

// goTracked runs f on a goroutine that Close waits for; false when closed.
func (e *Endpoint) goTracked(f func()) bool {
	e.lifeMu.Lock()
	if e.closed.Load() {
		e.lifeMu.Unlock()
		return false
	}
	e.wg.Add(1)
	e.lifeMu.Unlock()
	go func() {
		defer e.wg.Done()
		f()
	}()
	return true
}

func (e *Endpoint) isClosed() bool {
	return e.closed.Load()
}

// handleFrame is the transport's KindCalls handler. It never blocks for
// long: requests are queued on the actor, replies complete calls.
func (e *Endpoint) handleFrame(from string, frame []byte) {
	var env Envelope
	var names *interner
	var p *peerState // nil for this node
	if from != e.self {
		p = e.peer(from)
		names = &p.names
	}
	if err := decodeEnvelope(frame, &env, names); err != nil {
		e.log("dropped malformed frame", "peer", from, "err", err)
		return
	}
	if e.isClosed() {
		e.refuseClosed(from, &env)
		return
	}
	switch env.Type {
	case FrameRequest:
		e.serve(from, p, &env.Request, 0)
	case FrameReply:
		e.onReply(from, &env.Reply)
	case FrameCancel:
		e.onCancel(from, env.CancelID)
	}
}

// oneWayHandler is the transport's KindOneWay handler: one-way requests
// only, served in order, waiting for room (see serveOneWay).
type oneWayHandler struct{ e *Endpoint }

func (h oneWayHandler) HandleFrame(from string, frame []byte) {
	h.HandleFrames(from, [][]byte{frame})
}

// HandleFrames serves a burst of one-way requests of one peer in order. A
// run of requests to the same actor at the same epoch shares one ownership
// check and one activation lookup; each still takes its own mailbox slot.
func (h oneWayHandler) HandleFrames(from string, frames [][]byte) {
	e := h.e
	if e.isClosed() {
		return
	}
	p := e.peer(from)
	var run []*job
	// One clock reading and one allocation for the burst's jobs: a slab
	// stays reachable until its last job is done, at most MaxBatch jobs.
	at := monoNow()
	slab := make([]job, len(frames))
	flush := func() {
		if len(run) > 0 {
			e.serveOneWays(from, run)
			p.oneWaysDone(len(run))
			clear(run)
			run = run[:0]
		}
	}
	for _, frame := range frames {
		var env Envelope
		if err := decodeEnvelope(frame, &env, &p.names); err != nil || env.Type != FrameRequest || env.Request.Flags&FlagOneWay == 0 {
			e.log("dropped malformed one-way frame", "peer", from, "err", err)
			continue
		}
		q := &env.Request
		if len(run) > 0 && (run[0].req.Target != q.Target || run[0].req.Epoch != q.Epoch) {
			flush()
		}
		j := &slab[0]
		slab = slab[1:]
		e.initJob(j, from, p, q, at)
		j.block = true
		run = append(run, j)
	}
	flush()
}

// refuseClosed answers a request that reached a closed endpoint with
// ErrNotOwner while the transport still carries it, so its caller retries
// wherever the actor is placed next instead of waiting for a reply that
// will never come.
func (e *Endpoint) refuseClosed(from string, env *Envelope) {
	if env.Type != FrameRequest || env.Request.Flags&FlagOneWay != 0 || from == e.self {
		return
	}
	rerr := &Error{Code: CodeNotOwner, Node: e.self, Actor: env.Request.Target, Method: env.Request.Method,
		Message: "node " + e.self + " is closing"}
	_ = e.tr.TrySend(transport.Peer{ID: from}, transport.KindCalls, AppendErrorReply(nil, env.Request.ID, rerr))
}

func (e *Endpoint) log(msg string, args ...any) {
	if l := e.cfg.Logger; l != nil {
		l.Debug("remote: "+msg, append([]any{"node", e.self}, args...)...)
	}
}

// send delivers frame to node, or straight to this endpoint when node is self.
// The local path decodes the frame like a remote one, so arguments and
// results pass through the codec either way.
func (e *Endpoint) send(ctx context.Context, to Location, frame []byte) error {
	return e.sendKind(ctx, to, transport.KindCalls, frame)
}

func (e *Endpoint) sendKind(ctx context.Context, to Location, k transport.Kind, frame []byte) error {
	if to.Node == e.self {
		if e.isClosed() {
			return ErrClosed
		}
		e.handleFrame(e.self, frame)
		return nil
	}
	return e.tr.Send(ctx, transport.Peer{ID: to.Node, Addr: to.Addr}, k, frame)
}

// serveLocal hands a request from this node to its own server side.
func (e *Endpoint) serveLocal(q *Request, at int64) error {
	if e.isClosed() {
		return ErrClosed
	}
	e.serve(e.self, nil, q, at)
	return nil
}

// ctxError converts a done ctx into a call error that matches both the
// context error and the remote sentinel.
func ctxError(ctx context.Context) *Error {
	err := ctx.Err()
	code := CodeCanceled
	if errors.Is(err, context.DeadlineExceeded) {
		code = CodeDeadline
	}
	return &Error{Code: code, Message: err.Error(), cause: err}
}

func unavailable(node string, cause error) *Error {
	return &Error{Code: CodeUnavailable, Node: node, Message: fmt.Sprint(cause), cause: cause}
}
