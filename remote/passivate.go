package remote

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/troupe-dev/troupe/actor"
	"github.com/troupe-dev/troupe/transport"
)

// Passivation: an activation that has had no call for its idle timeout
// (Config.IdleTimeout, or its Type's SetIdleTimeout) is stopped on its
// host — its OnDeactivate hook runs, its memory is released — and its next
// call activates it again. The sweeper only asks: it queues a passivate
// message on the actor, and the actor decides in its own turn, so it is
// never passivated with a call running, and a call queued behind the
// message (or racing it into the mailbox) is delivered to a fresh
// activation instead of failing. Nothing queued is lost.

// passivate is the sweeper's message to an activation it found idle.
type passivate struct{ act *activation }

// hookTimeout bounds a lifecycle hook.
const hookTimeout = 30 * time.Second

// idleTimeout returns act's idle timeout, 0 for never.
func (e *Endpoint) idleTimeout(t *Type) time.Duration {
	d := t.idle
	if d == 0 {
		d = e.cfg.IdleTimeout
	}
	return max(d, 0)
}

// sweep runs until Close, asking idle activations to passivate.
func (e *Endpoint) sweep() {
	for {
		added := e.cfg.Types.changes() // a new type may have a shorter timeout
		tick := time.Minute
		if d := e.cfg.IdleTimeout; d > 0 {
			tick = min(tick, d/4)
		}
		for _, t := range e.cfg.Types.all() {
			if d := t.idle; d > 0 {
				tick = min(tick, d/4)
			}
		}
		tm := time.NewTimer(max(tick, time.Millisecond))
		select {
		case <-e.ctx.Done():
			tm.Stop()
			return
		case <-added:
			tm.Stop()
			continue
		case <-tm.C:
		}
		now := monoNow()
		var idle []*activation
		e.mu.Lock()
		for _, a := range e.actors {
			if d := e.idleTimeout(a.typ); d > 0 && now-a.last.Load() >= int64(d) && !a.asked.Load() {
				idle = append(idle, a)
			}
		}
		e.mu.Unlock()
		e.shrinkMaps()
		for _, a := range idle {
			a.asked.Store(true)
			if err := e.sys.Tell(a.pid, passivate{a}); err != nil {
				a.asked.Store(false) // full or stopping: look again next tick
			}
		}
	}
}

// shrinkMaps rebuilds the activation maps once they hold far fewer
// entries than they grew to (Go maps keep their peak size): after a mass
// passivation the memory of the peak goes back.
func (e *Endpoint) shrinkMaps() {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := len(e.actors)
	e.actorsPeak = max(e.actorsPeak, n)
	if e.actorsPeak >= 4096 && n < e.actorsPeak/4 {
		m := make(map[string]*activation, n) // not maps.Clone: it keeps the old size
		for k, v := range e.actors {
			m[k] = v
		}
		e.actors = m
		e.actorsPeak = n
	}
	if len(e.leaving) == 0 {
		e.leaving = make(map[string]*leaving)
	}
}

// onPassivate runs in act's turn: it passivates act if it is still idle
// and nothing else is queued on it.
func (e *Endpoint) onPassivate(c *actor.Context, h *hosted, act *activation) {
	act.asked.Store(false)
	d := e.idleTimeout(act.typ)
	if d == 0 || monoNow()-act.last.Load() < int64(d) {
		return // a call came meanwhile
	}
	e.mu.Lock()
	// admitting before Queued: an admission queues its job before it
	// ends, so with no admission left every admitted job is counted.
	if e.actors[act.ref.ID] != act || act.admitting.Load() > 0 || e.sys.Queued(act.pid) > 1 {
		e.mu.Unlock()
		return // a call is on its way in, or waits behind this message
	}
	delete(e.actors, act.ref.ID)
	act.passivated.Store(true)
	act.retired.Store(true)
	lv := &leaving{done: make(chan struct{}), forget: e.cfg.Forgets != nil && e.cfg.Forget != nil && e.cfg.Forgets(act.ref)}
	act.leave = lv
	e.leaving[act.ref.ID] = lv
	e.mu.Unlock()
	e.passivations.Add(1)
	e.log("passivated", "actor", act.ref.ID, "type", act.typ.name, "idle", d)
	c.Stop(c.Self()) // OnDeactivate runs on Stopping
}

// redeliver hands a job that reached a passivated activation (it raced
// the passivation into the mailbox) to a fresh activation.
func (e *Endpoint) redeliver(j *job) {
	old := j.act
	act, rerr := e.activation(old.ref.ID, old.typ.name, old.ref.Epoch)
	if rerr != nil {
		if j.block && (errors.Is(rerr, errPassivating) || errors.Is(rerr, ErrForgotten)) {
			j.act = nil
			old.release(j)
			e.goTracked(func() { _ = e.afterForget(j) }) // this goroutine must not wait
			return
		}
		e.finish(j, nil, rerr)
		return
	}
	defer act.done()
	j.act = nil
	old.release(j)
	if err := e.deliver(j, act); err != nil {
		e.log("redeliver after passivation", "actor", old.ref.ID, "err", err)
	}
}

type selfKey struct{}

// SelfFromContext returns the actor whose lifecycle hook got ctx.
func SelfFromContext(ctx context.Context) (Ref, bool) {
	r, ok := ctx.Value(selfKey{}).(Ref)
	return r, ok
}

// lifecycle runs h's OnActivate or OnDeactivate hook for msg, if it has
// one. A failed OnActivate fails the activation (its supervisor restarts
// it, running OnActivate again); a failed OnDeactivate is logged.
func (e *Endpoint) lifecycle(c *actor.Context, h *hosted, msg any) {
	switch msg.(type) {
	case actor.Started:
		if h.after != nil {
			// The previous activation here is still deactivating.
			t := time.NewTimer(hookTimeout)
			select {
			case <-h.after:
			case <-t.C:
			case <-e.ctx.Done():
			}
			t.Stop()
			h.after = nil
		}
		a, ok := h.obj.ptr.(Activator)
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithValue(e.ctx, selfKey{}, h.ref), hookTimeout)
		defer cancel()
		if err := a.OnActivate(ctx); err != nil {
			c.Fail(fmt.Errorf("remote: %s.OnActivate: %w", h.obj.typ.name, err))
		}
	case actor.Stopping:
		d, ok := h.obj.ptr.(Deactivator)
		if !ok {
			return
		}
		// The node's ctx may be cancelled already (Close): the hook gets
		// its own bounded time to save state.
		ctx, cancel := context.WithTimeout(context.WithValue(context.WithoutCancel(e.ctx), selfKey{}, h.ref), hookTimeout)
		defer cancel()
		if err := d.OnDeactivate(ctx); err != nil {
			e.log("OnDeactivate failed", "type", h.obj.typ.name, "err", err)
		}
	}
}

// leaving is a passivated activation on its way out: until done closes,
// a new activation of the actor here waits before OnActivate (or, when
// forget is set, is not made at all: its registry entry is being dropped).
type leaving struct {
	done   chan struct{}
	forget bool
}

// errPassivating is the cause of the refusal of a call that reached an
// actor whose entry is being forgotten: it did not run, and its caller
// retries (and finds the entry gone, or kept).
var errPassivating = errors.New("remote: actor is being passivated")

// forgetRetry bounds the wait between attempts to drop an entry.
const forgetRetry = time.Second

// maxForgetters bounds the goroutines dropping entries of passivated
// actors: a mass passivation queues its forgets instead of starting a
// goroutine and a registry write each at once (the registry batches what
// these few propose together).
const maxForgetters = 32

// passivationDone runs once a passivated activation stopped (its
// OnDeactivate returned). It never waits: an entry to drop is queued for
// the forgetters; otherwise the actor may be activated here again at once.
func (e *Endpoint) passivationDone(act *activation, lv *leaving) {
	if !lv.forget {
		e.release(act, lv)
		return
	}
	e.mu.Lock()
	e.forgetQ = append(e.forgetQ, act)
	start := e.forgetN < maxForgetters
	if start {
		e.forgetN++
	}
	e.mu.Unlock()
	if start && !e.goTracked(e.forgetter) {
		e.mu.Lock()
		e.forgetN--
		e.mu.Unlock()
		e.release(act, lv) // closing
	}
}

// forgetter drops the entries queued in forgetQ until it is empty.
func (e *Endpoint) forgetter() {
	for {
		e.mu.Lock()
		if len(e.forgetQ) == 0 {
			e.forgetQ = nil // a mass passivation's backing array goes
			e.forgetN--
			e.mu.Unlock()
			return
		}
		act := e.forgetQ[0]
		e.forgetQ[0] = nil
		e.forgetQ = e.forgetQ[1:]
		e.mu.Unlock()
		e.afterPassivation(act, act.leave)
	}
}

// release lets the actor of act, passivated, be activated here again.
func (e *Endpoint) release(act *activation, lv *leaving) {
	e.mu.Lock()
	if e.leaving[act.ref.ID] == lv {
		delete(e.leaving, act.ref.ID)
	}
	e.mu.Unlock()
	close(lv.done)
}

// afterPassivation drops the registry entry of act, passivated, retrying
// until the registry's answer is certain, then lets the actor be
// activated here again.
func (e *Endpoint) afterPassivation(act *activation, lv *leaving) {
	if lv.forget {
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(e.ctx, hookTimeout)
			err := e.cfg.Forget(ctx, act.ref)
			cancel()
			if err == nil {
				break
			}
			e.log("forget after passivation", "actor", act.ref.ID, "attempt", attempt, "err", err)
			t := time.NewTimer(forgetRetry)
			select {
			case <-t.C:
			case <-e.ctx.Done():
				t.Stop()
			}
			if e.ctx.Err() != nil {
				break
			}
		}
	}
	e.release(act, lv)
}

// afterForget handles a one-way job that reached an actor whose entry is
// being forgotten: it waits (the one-way stream may) until that is
// settled, then admits it again — to a fresh activation if the entry was
// kept, or on to the actor's new place if it was dropped.
func (e *Endpoint) afterForget(j *job) error {
	e.mu.Lock()
	lv := e.leaving[j.req.Target]
	e.mu.Unlock()
	if lv != nil {
		select {
		case <-lv.done:
		case <-j.roomCtx().Done():
			return errOf(e.finish(j, nil, j.roomCtx().Err()))
		}
	}
	return e.readmit(j)
}

// readmit checks ownership of a one-way job again (waiting as serveOneWay
// does) and admits it.
func (e *Endpoint) readmit(j *job) error {
	typeName, err := e.cfg.Owner.Owns(j.req.Target, j.req.Epoch)
	if err != nil && errors.Is(err, ErrNotReady) {
		if w, ok := e.cfg.Owner.(OwnerWaiter); ok {
			typeName, err = w.WaitOwns(j.waitCtx(), j.req.Target, j.req.Epoch)
		}
	}
	return e.admit(j, typeName, err)
}

// maxForwards bounds the forwarding of one one-way request.
const maxForwards = 8

// recreatable reports whether the Resolver may place actor id again.
func (e *Endpoint) recreatable(id string) bool {
	rc, ok := e.cfg.Resolver.(Recreator)
	return ok && rc.Recreatable(Ref{ID: id})
}

// forward sends a one-way job whose actor's entry was forgotten, or which
// moved, to where the Resolver places the actor now (here, or another
// node), once: the sender's Tell returned when the request was queued, so
// dropping it here would lose it. Only for actors the Resolver may place
// again (virtual actors, which come and go with passivation), and at most
// maxForwards times (an actor passivated again before the request reached
// it is placed again).
func (e *Endpoint) forward(j *job) error {
	j.forwards++
	rc, ok := e.cfg.Resolver.(Recreator)
	if !ok {
		return e.admit(j, "", ErrNotFound)
	}
	ctx := j.roomCtx()
	loc, ok, err := rc.Recreate(ctx, Ref{ID: j.req.Target})
	switch {
	case err != nil:
		return errOf(e.finish(j, nil, unavailable(e.self, err)))
	case !ok:
		return e.admit(j, "", ErrNotFound)
	}
	j.req.Epoch = loc.Epoch
	if loc.Node == e.self {
		return e.readmit(j)
	}
	e.oneWaySent(loc.Node).Add(1)
	buf := getBuf()
	*buf = append(AppendRequestHeader((*buf)[:0], &j.req), j.req.Args...)
	err = e.sendKind(ctx, loc, transport.KindOneWay, *buf)
	putBuf(buf)
	if err != nil {
		err = unavailable(loc.Node, err)
	}
	return errOf(e.finish(j, nil, err))
}
