package remote

import (
	"context"
	"fmt"
	"time"

	"github.com/troupe-dev/troupe/actor"
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
		for _, a := range idle {
			a.asked.Store(true)
			if err := e.sys.Tell(a.pid, passivate{a}); err != nil {
				a.asked.Store(false) // full or stopping: look again next tick
			}
		}
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
