package actor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Actor is implemented by every actor: Receive handles one message at a
// time; the engine never calls it concurrently for one actor. Besides user
// messages it receives the lifecycle messages Started, Stopping, Stopped and
// Restarting, and Terminated for actors it watches.
type Actor interface {
	Receive(c *Context, msg any)
}

// ReceiveFunc adapts a function to Actor.
type ReceiveFunc func(c *Context, msg any)

// Receive calls f(c, msg).
func (f ReceiveFunc) Receive(c *Context, msg any) { f(c, msg) }

// Producer makes a fresh actor instance: at spawn and at every restart.
type Producer func() Actor

// Lifecycle messages, delivered to Receive.
type (
	// Started is the first message of every instance (after spawn and after
	// each restart).
	Started struct{}
	// Stopping is delivered when the actor begins to stop, before its
	// children are stopped.
	Stopping struct{}
	// Stopped is the last message: the children have stopped and the
	// mailbox is about to be discarded.
	Stopped struct{}
	// Restarting is delivered to the failed instance before it is replaced.
	// The PID and the queued messages carry over to the new instance.
	Restarting struct{}
)

// Terminated tells a watcher that an actor has stopped. Reason is nil for a
// requested stop or a graceful shutdown, and the failure for an actor that
// was stopped by supervision (including a failure that escalated past the
// root).
type Terminated struct {
	PID    PID
	Reason error
}

// DeadLetter describes a message that could not be delivered because its
// target had stopped, or that was still queued when its target stopped.
type DeadLetter struct {
	To      PID
	Sender  PID // zero when sent from outside an actor
	Message any
}

// Config configures a System. The zero value is valid.
type Config struct {
	// Name identifies the system in PIDs and logs. Empty means a random
	// 16-hex-digit id.
	Name string
	// MailboxSize bounds each actor's user messages not yet handled: those
	// queued plus the rest of the batch the actor's worker has taken, and
	// fewer than 160 handled ones of that batch (given back every 128).
	// Zero means 1024.
	MailboxSize int
	// Supervisor supervises top-level actors, and is the default for actors
	// spawned without Options.Supervisor. The zero value is OneForOne,
	// restart on every failure, at most 3 restarts in 5s, no backoff.
	Supervisor Supervisor
	// Logger receives failures and escalations. Nil means silent.
	Logger *slog.Logger
	// OnDeadLetter is called for every dead letter, on the goroutine that
	// found it; it must not block. Nil means dead letters are only counted.
	OnDeadLetter func(DeadLetter)
}

// System hosts a tree of actors. Methods are safe for concurrent use. An
// idle actor holds no goroutine: a worker runs an actor only while it has
// messages, and an idle System keeps at most a few parked workers (see
// startWorker), however many actors it hosts. Shutdown or Close stops
// every actor and waits for the engine's goroutines.
type System struct {
	name     string
	mailbox  int
	sup      Supervisor
	log      *slog.Logger
	onDead   func(DeadLetter)
	root     *process
	ids      atomic.Uint64
	closing  atomic.Bool // no new spawns or outside sends
	abrupt   atomic.Bool // Close: queued messages are dropped
	dead     atomic.Uint64
	dropped  atomic.Uint64
	workers  sync.WaitGroup // worker goroutines, running or parked
	idle     chan *process  // parked workers receive the next actor to run here
	parked   atomic.Int32   // workers parked on idle
	maxIdle  int32
	stopIdle chan struct{} // closed by Close: parked workers exit
	done     chan struct{} // closed when the root has no children left after Shutdown/Close began
	doneOnce sync.Once

	mu        sync.Mutex
	names     map[string]*process
	timers    map[*time.Timer]struct{}
	closeOnce sync.Once
}

// New returns a System configured by cfg. It starts no goroutines.
func New(cfg Config) (*System, error) {
	s := &System{
		name:     cfg.Name,
		mailbox:  cfg.MailboxSize,
		sup:      cfg.Supervisor,
		log:      cfg.Logger,
		onDead:   cfg.OnDeadLetter,
		done:     make(chan struct{}),
		idle:     make(chan *process),
		stopIdle: make(chan struct{}),
		maxIdle:  int32(max(8, 4*runtime.GOMAXPROCS(0))),
		names:    make(map[string]*process),
		timers:   make(map[*time.Timer]struct{}),
	}
	if s.name == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		s.name = hex.EncodeToString(b[:])
	}
	if s.mailbox <= 0 {
		s.mailbox = 1024
	}
	if s.mailbox > maxMailbox {
		return nil, fmt.Errorf("actor: mailbox size %d exceeds %d", cfg.MailboxSize, maxMailbox)
	}
	s.root = &process{sys: s, sup: &s.sup}
	return s, nil
}

const maxMailbox = 1 << 30

// Name returns the system's name, as it appears in its PIDs.
func (s *System) Name() string { return s.name }

// Options configures one Spawn. The zero value is valid.
type Options struct {
	// Name registers the actor under a name unique in the System (see
	// Lookup). Empty means unnamed.
	Name string
	// MailboxSize bounds the actor's user messages not yet handled. Zero
	// means Config.MailboxSize.
	MailboxSize int
	// Supervisor is how this actor supervises its own children. Nil means
	// Config.Supervisor.
	Supervisor *Supervisor
	// Policy, when set, is used instead of the parent's Supervisor when
	// this actor fails (decider, intensity, backoff and strategy), so a
	// layer that hosts many top-level actors can give each its own restart
	// policy. Nil means the parent's Supervisor.
	Policy *Supervisor
}

// Spawn starts a top-level actor (a child of the system's root) and returns
// its PID at once; the actor receives Started before any other message.
func (s *System) Spawn(p Producer, o Options) (PID, error) {
	if s.closing.Load() {
		return PID{}, ErrClosed
	}
	return s.spawn(s.root, p, o)
}

func (s *System) spawn(parent *process, prod Producer, o Options) (PID, error) {
	if prod == nil {
		return PID{}, ErrNilProducer
	}
	size := o.MailboxSize
	if size <= 0 {
		size = s.mailbox
	}
	if size > maxMailbox {
		return PID{}, fmt.Errorf("actor: mailbox size %d exceeds %d", size, maxMailbox)
	}
	p := &process{
		sys:      s,
		parent:   parent,
		producer: prod,
		id:       s.ids.Add(1),
		name:     o.Name,
		limit:    int32(size),
		sup:      o.Supervisor,
		policy:   o.Policy,
		// The first worker is started below, once p is linked; until
		// then nobody else may start one.
		needStart: true,
		scheduled: true,
	}
	p.ctx.p = p
	if p.sup == nil {
		p.sup = &s.sup
	}
	if p.name != "" {
		s.mu.Lock()
		if _, taken := s.names[p.name]; taken {
			s.mu.Unlock()
			return PID{}, fmt.Errorf("%w: %q", ErrDuplicateName, p.name)
		}
		s.names[p.name] = p
		s.mu.Unlock()
	}
	if err := parent.link(p); err != nil {
		p.mu.Lock()
		p.dead = true // anything sent meanwhile (via Lookup) is a dead letter
		p.mu.Unlock()
		if p.name != "" {
			s.unregister(p)
		}
		return PID{}, err
	}
	s.startWorker(p)
	return PID{p}, nil
}

func (s *System) unregister(p *process) {
	s.mu.Lock()
	if s.names[p.name] == p {
		delete(s.names, p.name)
	}
	s.mu.Unlock()
}

// Lookup returns the PID of the live actor registered under name.
func (s *System) Lookup(name string) (PID, bool) {
	s.mu.Lock()
	p, ok := s.names[name]
	s.mu.Unlock()
	if !ok {
		return PID{}, false
	}
	return PID{p}, true
}

// check validates a PID given to this system.
func (s *System) check(pid PID) error {
	if pid.p == nil {
		return ErrNilPID
	}
	if pid.p.sys != s {
		return fmt.Errorf("%w: %v", ErrForeignPID, pid)
	}
	return nil
}

// Tell enqueues msg for pid and returns at once. It never blocks: a full
// mailbox gives ErrMailboxFull, a stopped actor ErrDeadLetter (the message
// is counted as a dead letter). Use Send to wait for room.
func (s *System) Tell(pid PID, msg any) error {
	if err := s.check(pid); err != nil {
		return err
	}
	if s.closing.Load() {
		return ErrClosed
	}
	return pid.p.enqueue(envelope{msg: msg}, false)
}

// Send enqueues msg for pid, waiting while the mailbox is full until there
// is room or ctx is done (then it returns ctx's error).
func (s *System) Send(ctx context.Context, pid PID, msg any) error {
	if ctx == nil {
		return ErrNilContext
	}
	if err := s.check(pid); err != nil {
		return err
	}
	if s.closing.Load() {
		return ErrClosed
	}
	return pid.p.send(ctx, envelope{msg: msg})
}

// Ask sends msg to pid and returns a Future for the reply the actor gives
// with Context.Respond. It never blocks: a full mailbox, a stopped actor or
// bad input complete the future at once with ErrMailboxFull, ErrDeadLetter
// or the input error. ctx is the request's context: the actor sees it in
// Context.RequestContext, and if it is done before the message is
// processed, the message is skipped and the future fails with ctx's error.
// If the actor panics on the message, the future fails with the
// *PanicError. An actor that never responds leaves the future pending, so
// Await with a deadline.
func Ask[R any](ctx context.Context, pid PID, msg any) *Future[R] {
	if ctx == nil {
		return failedFuture[R](ErrNilContext)
	}
	if pid.p == nil {
		return failedFuture[R](ErrNilPID)
	}
	if pid.p.sys.closing.Load() {
		return failedFuture[R](ErrClosed)
	}
	f := &Future[R]{}
	f.c.ctx = ctx
	if err := pid.p.enqueue(envelope{msg: msg, reply: &f.c}, false); err != nil {
		f.c.complete(nil, err)
	}
	return f
}

// Stop asks the actor to stop: it finishes its current message, receives
// Stopping, stops its children, receives Stopped; its queued messages become
// dead letters. Stop returns at once; Watch to learn when it is done.
// Stopping a stopped actor is not an error.
func (s *System) Stop(pid PID) error {
	if err := s.check(pid); err != nil {
		return err
	}
	pid.p.sendSys(sysMsg{kind: sysStop})
	return nil
}

// Watch calls fn exactly once with Terminated when the actor stops, also
// when it has already stopped (then before Watch returns). fn runs on the
// engine's goroutine and must not block. The returned cancel function
// withdraws the watch if the actor has not stopped yet.
func (s *System) Watch(pid PID, fn func(Terminated)) (cancel func(), err error) {
	if err := s.check(pid); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, fmt.Errorf("actor: nil watch function")
	}
	w := &watcher{fn: fn}
	pid.p.sendSys(sysMsg{kind: sysWatch, w: w})
	return func() { pid.p.sendSys(sysMsg{kind: sysUnwatch, w: w}) }, nil
}

// Queued returns how many user messages pid's mailbox holds: queued, or
// in the batch its worker is handling. It is 0 for the zero PID.
func (s *System) Queued(pid PID) int {
	if pid.p == nil {
		return 0
	}
	pid.p.mu.Lock()
	defer pid.p.mu.Unlock()
	return int(pid.p.queued)
}

// DeadLetters returns the number of dead letters so far.
func (s *System) DeadLetters() uint64 { return s.dead.Load() }

func (s *System) deadLetter(to *process, env *envelope) {
	s.dead.Add(1)
	if env.reply != nil {
		env.reply.complete(nil, ErrDeadLetter)
	}
	if s.onDead != nil {
		s.onDead(DeadLetter{To: PID{to}, Sender: PID{env.sender}, Message: env.msg})
	}
}

// Shutdown stops the system gracefully: from now on Spawn, Tell, Send and
// Ask from outside fail with ErrClosed (actors may still message each
// other); every actor drains its mailbox, then stops once its children have
// stopped (children first). It waits for all of that and for the engine's
// goroutines. If ctx is done first, Shutdown falls back to Close and
// returns ctx's error.
func (s *System) Shutdown(ctx context.Context) error {
	if ctx == nil {
		return ErrNilContext
	}
	s.closing.Store(true)
	s.root.sendSys(sysMsg{kind: sysDrain})
	select {
	case <-s.done:
		s.Close()
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close stops the system abruptly: every queued user message is dropped
// (counted as a dead letter; pending Asks fail with ErrDeadLetter), every
// actor stops children first after its current message, receiving Stopping
// and Stopped, pending restart timers are cancelled. Close waits for the
// engine's goroutines (so an actor blocked in Receive blocks Close) and
// returns the number of messages it dropped. Later calls return 0.
func (s *System) Close() (dropped int) {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.abrupt.Store(true)
		s.root.sendSys(sysMsg{kind: sysStop})
		<-s.done
		s.mu.Lock()
		for t := range s.timers {
			t.Stop()
		}
		clear(s.timers)
		s.mu.Unlock()
		s.root.mu.Lock()
		s.root.dead = true
		s.root.mu.Unlock()
		close(s.stopIdle)
		s.workers.Wait()
		dropped = int(s.dropped.Load())
	})
	return dropped
}

// startWorker runs p's worker loop (process.run) on a parked worker
// goroutine if one waits, else on a new one. A worker that has run an actor
// dry parks for the next one instead of exiting, up to maxIdle of them: the
// stack it grew running methods is reused rather than grown again from the
// minimum by a fresh goroutine (copying it cost ~4 µs per remote call, a
// sixth of the host's CPU for a lone caller), and the hand-off to a parked
// goroutine costs what starting one did.
func (s *System) startWorker(p *process) {
	select {
	case s.idle <- p:
		return
	default:
	}
	s.workers.Add(1)
	go s.worker(p)
}

// worker runs p, then parks for the next actor to run, until Close, or
// exits when enough workers are parked already.
func (s *System) worker(p *process) {
	defer s.workers.Done()
	for {
		p.run()
		p = nil // not kept alive while parked
		if s.parked.Add(1) > s.maxIdle {
			s.parked.Add(-1)
			return
		}
		select {
		case p = <-s.idle:
			s.parked.Add(-1)
		case <-s.stopIdle:
			s.parked.Add(-1)
			return
		}
	}
}

func (s *System) finished() { s.doneOnce.Do(func() { close(s.done) }) }

// after runs f after d on a timer the System owns; Close cancels it.
func (s *System) after(d time.Duration, f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.abrupt.Load() {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		_, live := s.timers[t]
		delete(s.timers, t)
		s.mu.Unlock()
		if live {
			f()
		}
	})
	s.timers[t] = struct{}{}
}

func (s *System) logFailure(p *process, msg string, err error) {
	if s.log == nil {
		return
	}
	attrs := []any{"node", s.name, "actor", PID{p}.String(), "err", err}
	if pe, ok := err.(*PanicError); ok {
		attrs = append(attrs, "stack", string(pe.Stack))
	}
	s.log.Error(msg, attrs...)
}
