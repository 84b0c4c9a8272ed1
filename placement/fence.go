package placement

// Fenced moves. Raft commits a move of an actor from node A to node B once
// a quorum has the entry, but A and B apply it at different times: B may
// apply it while A, its replica behind (slow, or cut off with a lease still
// running), serves the old epoch. A loses its lease at most LeaseTimeout
// after the leader applied the move (no lease granted after that lets a
// replica without the move serve: see handlePing), so B does not serve an
// actor moved from a live node until grace (LeaseTimeout plus a quarter of
// the slack to FailTimeout, for clock drift and the leader's apply lag)
// after B applied the move. Moves off a failed node need no fence: the
// leader marked it failed after FailTimeout of silence, past any lease it
// held. The argument is in docs/placement.md.

import "time"

// fence is one actor's fence: it may not be served at epoch (any epoch if
// zero: a stop, after which a re-spawn here must also wait) before until.
type fence struct {
	epoch uint64
	until int64 // ns since base
}

// fence runs on the FSM goroutine (machine.moving) for each actor event,
// before the entry it describes is visible to Owns. A move here, or a stop
// (a re-spawn here may follow), off a live host is fenced for grace. Off a
// failed host no fence is needed (see above); nor off a left one: Leave
// stops serving every actor (Owns: ErrNotOwner) before it proposes the
// leave.
func (r *Registry) fence(e *Event, prevDown bool) {
	if prevDown || e.Prev.Node == "" || e.Prev.Node == r.id {
		return
	}
	f := &fence{until: int64(time.Since(r.base)) + int64(r.grace)}
	switch {
	case e.Kind == ActorReplaced && e.Actor.Node == r.id:
		f.epoch = e.Actor.Epoch
	case e.Kind == ActorStopped:
	default:
		return
	}
	if _, loaded := r.fences.Swap(e.Actor.ID, f); !loaded {
		r.nfences.Add(1)
	}
}

// fenceAll runs before a snapshot replaces the replica, which then jumps
// over entries it never applied, moves among them: every actor is fenced
// for grace.
func (r *Registry) fenceAll() {
	r.restoredAt.Store(int64(time.Since(r.base)) + 1)
}

// fenced reports whether actor id at epoch is fenced at now. It allocates
// nothing, and costs two atomic loads while no fence is set.
func (r *Registry) fenced(id string, epoch uint64, now int64) bool {
	if at := r.restoredAt.Load(); at != 0 && now < at-1+int64(r.grace) {
		return true
	}
	if r.nfences.Load() == 0 {
		return false
	}
	v, ok := r.fences.Load(id)
	if !ok {
		return false
	}
	f := v.(*fence)
	return now < f.until && (f.epoch == 0 || f.epoch == epoch)
}

// fenceEnd returns when the fences on actor id at epoch end (ns since
// base): the later of a snapshot restore's and the actor's own, or 0 if
// neither was set. WaitOwns sleeps until then.
func (r *Registry) fenceEnd(id string, epoch uint64) int64 {
	var end int64
	if at := r.restoredAt.Load(); at != 0 {
		end = at - 1 + int64(r.grace)
	}
	if r.nfences.Load() == 0 {
		return end
	}
	if v, ok := r.fences.Load(id); ok {
		if f := v.(*fence); f.epoch == 0 || f.epoch == epoch {
			end = max(end, f.until)
		}
	}
	return end
}

// sweepFences forgets fences that have ended; the lease loop calls it.
func (r *Registry) sweepFences() {
	if r.nfences.Load() == 0 {
		return
	}
	now := int64(time.Since(r.base))
	r.fences.Range(func(k, v any) bool {
		if v.(*fence).until <= now && r.fences.CompareAndDelete(k, v) {
			r.nfences.Add(-1)
		}
		return true
	})
}
