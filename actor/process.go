package actor

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// envelope is one queued user message.
type envelope struct {
	msg    any
	sender *process // nil from outside an actor
	reply  *core    // non-nil for Ask
}

type sysKind uint8

const (
	sysStop            sysKind = iota + 1 // stop (err: reason)
	sysRestart                            // restart by the supervisor
	sysResume                             // resume after a failure
	sysFailure                            // to the parent: proc failed with err
	sysChildTerminated                    // to the parent: proc has stopped
	sysWatch                              // w starts watching
	sysUnwatch                            // w stops watching
	sysDrain                              // graceful shutdown
)

// sysMsg is one system message; these overtake user messages.
type sysMsg struct {
	kind sysKind
	proc *process
	err  error
	w    *watcher
}

// watcher is an actor (proc) or a function (fn) watching an actor.
type watcher struct {
	proc *process
	fn   func(Terminated)
}

func (w *watcher) notify(t Terminated) {
	if w.fn != nil {
		w.fn(t)
		return
	}
	_ = w.proc.enqueue(envelope{msg: t}, true)
}

// process is one actor: its mailbox, its place in the tree and its state.
// It is deliberately small; rarely used state lives in ext.
//
// Concurrency: fields marked "mu" are guarded by mu. The worker's fields
// are touched only by the goroutine currently running the actor; the
// scheduled flag (set and cleared under mu) orders successive workers. The
// three groups sit on separate cache lines as far as the size allows, so
// senders and the worker do not write to each other's lines per message.
type process struct {
	// Set at spawn, read-only after.
	sys      *System
	parent   *process // nil for the root
	producer Producer
	sup      *Supervisor // how this actor supervises its children
	policy   *Supervisor // overrides parent.sup for this actor's failures
	name     string
	id       uint64

	// Touched by senders, under mu.
	mu          sync.Mutex
	limit       int32         // the mailbox bound
	queued      int32         // mu: user messages queued or in the current batch
	head, tail  *segment      // mu: queued user messages
	sysq        []sysMsg      // mu: queued system messages
	space       chan struct{} // mu: closed when room frees up (Send waiters)
	first, last *process      // mu: children in spawn order
	prev, next  *process      // parent.mu: siblings
	reason      error         // mu: why it stopped (set before dead)
	scheduled   bool          // mu: a worker goroutine owns the actor
	dead        bool          // mu: terminated; no more messages
	stopping    bool          // mu: stop begun; no more children
	needStart   bool          // mu: the first instance is yet to be made (before any sysq)
	spinMiss    uint8         // mu: idles since a spin round last found a message (see spinGiveUp)

	// Touched by the worker, per message: kept off the senders' cache lines.
	ctx        Context     // handed to Receive
	actor      Actor       // the current instance
	cur        *segment    // the batch taken from head; cur.envs[pos:cur.n] are pending
	pos        int32       // next message in cur
	consumed   int32       // processed since queued was last lowered
	sysPending atomic.Bool // a system message is queued: stop the batch (set by senders, rarely)
	suspended  bool        // failed, awaiting the supervisor
	restarting bool        // restart waits for children to stop
	draining   bool        // graceful shutdown
	finished   bool        // finish has run
	ext        *ext        // allocated on first use
}

func (p *process) isRoot() bool { return p.parent == nil }

// segment is a fixed block of queued messages. A mailbox is a chain of
// segments taken from a shared pool, so an idle actor holds none, a burst
// never copies, and the worker takes the whole chain in one step.
type segment struct {
	envs [segSize]envelope
	n    int
	next *segment
}

const segSize = 32

var segPool = sync.Pool{New: func() any { return new(segment) }}

func putSegment(s *segment) {
	clear(s.envs[:s.n])
	s.n, s.next = 0, nil
	segPool.Put(s)
}

// push appends env to the queue; mu held.
func (p *process) push(env *envelope) {
	t := p.tail
	if t == nil || t.n == segSize {
		s := segPool.Get().(*segment)
		if t == nil {
			p.head = s
		} else {
			t.next = s
		}
		p.tail, t = s, s
	}
	t.envs[t.n] = *env
	t.n++
	p.queued++
}

// ext holds state that most actors never need.
type ext struct {
	watchers []*watcher
	restarts map[*process][]time.Time // recent restarts of each child
	watching map[*process]struct{}    // actors this one watches
}

func (p *process) x() *ext {
	if p.ext == nil {
		p.ext = &ext{}
	}
	return p.ext
}

// link adds child to p's children, unless p is stopping or the system is
// closing (spawns are refused from then on).
func (p *process) link(child *process) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead || p.stopping || p.sys.closing.Load() {
		return ErrClosed
	}
	child.prev = p.last
	if p.last != nil {
		p.last.next = child
	} else {
		p.first = child
	}
	p.last = child
	return nil
}

func (p *process) unlink(child *process) (empty bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if child.prev != nil {
		child.prev.next = child.next
	} else if p.first == child {
		p.first = child.next
	}
	if child.next != nil {
		child.next.prev = child.prev
	} else if p.last == child {
		p.last = child.prev
	}
	child.prev, child.next = nil, nil
	return p.first == nil
}

func (p *process) children() []*process {
	p.mu.Lock()
	defer p.mu.Unlock()
	var cs []*process
	for c := p.first; c != nil; c = c.next {
		cs = append(cs, c)
	}
	return cs
}

// enqueue appends a user message. force ignores the bound (Terminated
// notices). A stopped target turns the message into a dead letter.
func (p *process) enqueue(env envelope, force bool) error {
	p.mu.Lock()
	if p.dead {
		p.mu.Unlock()
		if !force { // a dead watcher needs no notice: not a dead letter
			p.sys.deadLetter(p, &env)
		}
		return ErrDeadLetter
	}
	if !force && p.queued >= p.limit {
		p.mu.Unlock()
		return ErrMailboxFull
	}
	p.push(&env)
	if p.scheduled {
		p.mu.Unlock()
		return nil
	}
	p.scheduled = true
	p.mu.Unlock()
	p.sys.startWorker(p)
	return nil
}

// send is enqueue that waits for room until ctx is done.
func (p *process) send(ctx context.Context, env envelope) error {
	for {
		p.mu.Lock()
		if p.dead || p.queued < p.limit {
			p.mu.Unlock()
			err := p.enqueue(env, false)
			if err != ErrMailboxFull {
				return err
			}
			continue
		}
		if p.space == nil {
			p.space = make(chan struct{})
		}
		space := p.space
		p.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// freeSpace wakes Send waiters; called with mu held when room frees up.
func (p *process) freeSpace() {
	if p.space != nil {
		close(p.space)
		p.space = nil
	}
}

// sendSys queues a system message. To a stopped actor, a watch is answered
// at once and anything else is moot.
func (p *process) sendSys(m sysMsg) {
	p.mu.Lock()
	if p.dead {
		reason := p.reason
		p.mu.Unlock()
		if m.kind == sysWatch {
			m.w.notify(Terminated{PID: PID{p}, Reason: reason})
		}
		return
	}
	p.sysq = append(p.sysq, m)
	p.sysPending.Store(true)
	if p.scheduled {
		p.mu.Unlock()
		return
	}
	p.scheduled = true
	p.mu.Unlock()
	p.sys.startWorker(p)
}

// idleSpins is how many times a worker that has just processed user
// messages yields, looking for more, before it gives up its goroutine. A
// producer or caller on another core usually refills the mailbox within a
// yield or two, which saves a goroutine start per message; an idle actor
// still holds no goroutine. A worker that only ran system messages (a
// spawn's Started) exits at once.
const idleSpins = 2

// Spinning is adaptive, per actor: after spinGiveUp spin rounds in a row
// found nothing (an actor whose messages come from the network, tens of
// microseconds apart, not from a caller ping-ponging with it), the worker
// parks at once, spinning again once in spinProbe idles to notice when
// its senders change; a round that finds a message resets the count. The
// yields of a fruitless round cost what the next message's path needs on
// a busy machine (RemoteCall/inflight=1 at GOMAXPROCS=1: 1.5 µs a round
// trip), while they are what keeps a local caller and its actor off the
// park/wake path (LocalCall).
const (
	spinGiveUp = 4
	spinProbe  = 16
)

// spinHook, when set (by tests, before any actor runs), is called by a
// worker before each of its idle yields.
var spinHook func(*process)

// run is the worker: it owns the actor while it has messages, handles
// system messages first, takes the whole queued chain of user messages in
// one locked step, delivers it without the lock, and exits when there is
// nothing left to do.
func (p *process) run() {
	c := &p.ctx
	spins := idleSpins // no spinning until user messages were processed
	spun := false      // yielded since the last batch
	for {
		p.mu.Lock()
		if p.needStart {
			p.needStart = false
			p.mu.Unlock()
			if !p.isStopping() {
				p.start(c)
			}
			continue
		}
		if len(p.sysq) > 0 {
			batch := p.sysq
			p.sysq = nil
			p.sysPending.Store(false)
			p.mu.Unlock()
			for i := range batch {
				p.handleSys(c, &batch[i])
			}
			continue
		}
		if p.dead {
			p.scheduled = false
			p.mu.Unlock()
			return
		}
		if p.isRoot() {
			p.scheduled = false
			p.mu.Unlock()
			return
		}
		if p.consumed > 0 {
			p.queued -= p.consumed
			p.consumed = 0
			p.freeSpace()
		}
		if !p.suspended && !p.restarting && !p.stopping && !p.sys.abrupt.Load() {
			if p.cur == nil && p.head != nil {
				p.cur, p.pos = p.head, 0
				p.head, p.tail = nil, nil
			}
			if p.cur != nil {
				if spun { // the round paid: keep spinning
					p.spinMiss, spun = 0, false
				}
				p.mu.Unlock()
				p.processBatch(c)
				spins = 0
				continue
			}
		}
		if p.draining && !p.stopping && p.first == nil && (p.suspended || p.queued == 0) {
			p.mu.Unlock()
			p.beginStop(c, nil)
			continue
		}
		if spins < idleSpins && !p.suspended && !p.stopping &&
			(spun || p.spinMiss < spinGiveUp || p.spinMiss%spinProbe == 0) {
			spins++
			spun = true
			p.mu.Unlock()
			if spinHook != nil {
				spinHook(p)
			}
			runtime.Gosched()
			continue
		}
		if spins < idleSpins || spun { // user messages ran; no spin found more
			p.spinMiss++ // wraps: a few rounds of probing every 256 idles
		}
		p.scheduled = false
		p.mu.Unlock()
		return
	}
}

// processBatch delivers the taken chain until it is used up, the actor
// fails, or a system message waits.
func (p *process) processBatch(c *Context) {
	for p.cur != nil {
		seg := p.cur
		for int(p.pos) < seg.n {
			env := &seg.envs[p.pos]
			p.pos++
			p.consumed++
			p.deliver(c, env)
			*env = envelope{}
			if p.suspended || p.sysPending.Load() || p.sys.abrupt.Load() {
				if int(p.pos) == seg.n {
					p.cur, p.pos = seg.next, 0
					putSegment(seg)
				}
				return
			}
		}
		p.cur, p.pos = seg.next, 0
		putSegment(seg)
		if p.cur != nil && p.consumed >= releaseEvery {
			p.release()
		}
	}
}

// releaseEvery is how many handled messages of a long batch the worker
// lets count against the mailbox bound before it gives their slots back
// (it also does at the end of every batch): a sender that got the reply to
// its last message finds all but fewer than releaseEvery+segSize of the
// earlier ones released. Once per four segments keeps the lock off the
// worker's path (one TryLock per 128 messages).
const releaseEvery = 4 * segSize

// release gives the slots of the messages handled so far back to the
// mailbox bound, and wakes Send waiters. It never waits for the lock: when
// a sender holds it, the slots are given back after a later segment or when
// the batch ends (waiting there would queue a busy actor's worker behind
// its own producers).
func (p *process) release() {
	if !p.mu.TryLock() {
		return
	}
	p.queued -= p.consumed
	p.consumed = 0
	p.freeSpace()
	p.mu.Unlock()
}

// deliver hands one user message to the actor.
func (p *process) deliver(c *Context, env *envelope) {
	if p.ext != nil && p.ext.watching != nil {
		if t, ok := env.msg.(Terminated); ok {
			if _, ok := p.ext.watching[t.PID.p]; !ok {
				return // unwatched, or already told
			}
			delete(p.ext.watching, t.PID.p)
		}
	}
	if env.reply != nil {
		if err := env.reply.ctx.Err(); err != nil {
			env.reply.complete(nil, err) // the caller has gone: skip the work
			return
		}
	}
	if err := p.invoke(c, env); err != nil {
		if env.reply != nil {
			env.reply.complete(nil, err)
		}
		p.fail(err)
	}
}

// invoke is the one place the engine calls actor code (the Producer and
// Receive), and so the one place a panic is recovered: it comes back as a
// *PanicError for the caller to turn into a supervision event.
func (p *process) invoke(c *Context, env *envelope) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	if p.actor == nil {
		if _, ok := env.msg.(Started); !ok {
			return nil // no instance (its producer failed): nothing to tell
		}
		if p.actor = p.producer(); p.actor == nil {
			return ErrNilActor
		}
	}
	c.env, c.failure = env, nil
	p.actor.Receive(c, env.msg)
	err, c.env, c.failure = c.failure, nil, nil
	return err
}

// lifecycle delivers Stopping, Stopped or Restarting; a panic there is
// logged, as the actor is going away anyway.
func (p *process) lifecycle(c *Context, msg any) {
	if p.actor == nil {
		return
	}
	if err := p.invoke(c, &envelope{msg: msg}); err != nil {
		p.sys.logFailure(p, "actor: panic in lifecycle message", err)
	}
}

// fail suspends the actor and reports the failure to its parent.
func (p *process) fail(err error) {
	p.suspended = true
	p.sys.logFailure(p, "actor failed", err)
	p.parent.sendSys(sysMsg{kind: sysFailure, proc: p, err: err})
}

// start makes a fresh instance and delivers Started.
func (p *process) start(c *Context) {
	p.actor = nil
	p.suspended = false
	if err := p.invoke(c, &envelope{msg: Started{}}); err != nil {
		p.fail(err)
	}
}

func (p *process) handleSys(c *Context, m *sysMsg) {
	if p.finished {
		if m.kind == sysWatch {
			m.w.notify(Terminated{PID: PID{p}, Reason: p.reason})
		}
		return
	}
	switch m.kind {
	case sysStop:
		p.beginStop(c, m.err)
	case sysRestart:
		p.restart(c)
	case sysResume:
		if p.suspended && !p.restarting && !p.isStopping() {
			p.suspended = false
			for _, ch := range p.children() {
				ch.sendSys(sysMsg{kind: sysResume})
			}
		}
	case sysFailure:
		p.supervise(c, m.proc, m.err)
	case sysChildTerminated:
		p.childTerminated(c, m.proc)
	case sysWatch:
		x := p.x()
		for _, w := range x.watchers {
			if w == m.w || (w.proc != nil && w.proc == m.w.proc) {
				return
			}
		}
		x.watchers = append(x.watchers, m.w)
	case sysUnwatch:
		if p.ext == nil {
			return
		}
		ws := p.ext.watchers
		for i, w := range ws {
			if w == m.w || (w.proc != nil && w.proc == m.w.proc) {
				p.ext.watchers = append(ws[:i], ws[i+1:]...)
				return
			}
		}
	case sysDrain:
		if p.draining {
			return
		}
		p.draining = true
		cs := p.children()
		for _, ch := range cs {
			ch.sendSys(sysMsg{kind: sysDrain})
		}
		if p.isRoot() && len(cs) == 0 {
			p.sys.finished()
		}
	}
}

func (p *process) isStopping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopping
}

// restart replaces the instance (after stopping its children); the PID and
// the queued messages carry over.
func (p *process) restart(c *Context) {
	if p.restarting || p.isStopping() {
		return
	}
	p.lifecycle(c, Restarting{})
	p.suspended = true
	cs := p.children()
	if len(cs) == 0 {
		p.start(c)
		return
	}
	p.restarting = true
	for _, ch := range cs {
		ch.sendSys(sysMsg{kind: sysStop})
	}
}

// beginStop delivers Stopping, stops the children and, once they have all
// stopped, finishes the actor.
func (p *process) beginStop(c *Context, reason error) {
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		return
	}
	p.stopping = true
	p.reason = reason
	p.mu.Unlock()
	if !p.isRoot() {
		p.lifecycle(c, Stopping{})
	}
	cs := p.children()
	for _, ch := range cs {
		ch.sendSys(sysMsg{kind: sysStop})
	}
	if len(cs) == 0 {
		p.finish(c)
	}
}

func (p *process) childTerminated(c *Context, child *process) {
	if child.parent != p {
		return
	}
	if p.ext != nil && p.ext.restarts != nil {
		delete(p.ext.restarts, child)
	}
	if !p.unlink(child) {
		return
	}
	switch {
	case p.isRoot():
		if p.draining || p.isStopping() {
			p.sys.finished()
		}
	case p.isStopping():
		p.finish(c)
	case p.restarting:
		p.restarting = false
		p.start(c)
	}
}

// finish terminates the actor: Stopped, dead letters for what is still
// queued, then Terminated to the watchers and the parent.
func (p *process) finish(c *Context) {
	if p.isRoot() {
		p.sys.finished()
		return
	}
	p.lifecycle(c, Stopped{})
	p.actor = nil
	p.finished = true
	p.mu.Lock()
	p.dead = true
	var left []envelope
	for _, chain := range []*segment{p.cur, p.head} {
		for seg := chain; seg != nil; {
			left = append(left, seg.envs[p.pos:seg.n]...)
			p.pos = 0
			next := seg.next
			putSegment(seg)
			seg = next
		}
	}
	sys := p.sysq
	p.cur, p.head, p.tail, p.sysq, p.pos, p.queued = nil, nil, nil, nil, 0, 0
	p.freeSpace()
	reason := p.reason
	p.mu.Unlock()

	s := p.sys
	if len(left) > 0 && s.abrupt.Load() {
		s.dropped.Add(uint64(len(left)))
	}
	for i := range left {
		s.deadLetter(p, &left[i])
	}
	if p.name != "" {
		s.unregister(p)
	}
	t := Terminated{PID: PID{p}, Reason: reason}
	for i := range sys {
		if sys[i].kind == sysWatch {
			sys[i].w.notify(t)
		}
	}
	if p.ext != nil {
		for _, w := range p.ext.watchers {
			w.notify(t)
		}
		p.ext = nil
	}
	p.parent.sendSys(sysMsg{kind: sysChildTerminated, proc: p})
}
