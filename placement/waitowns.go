package placement

// WaitOwns: Owns for callers that may block. The conditions Owns refuses
// with fall in two kinds: "not here" (the replica, at least as new as the
// caller, places the actor elsewhere or stopped it; the node is leaving)
// and "not yet" (no lease while a leader is elected or a starved process
// renews it; the replica is behind the epoch the caller resolved; a fence
// or a snapshot restore has not ended). WaitOwns answers the first at once
// and waits out the second. The argument is in docs/guarantees.md.

import (
	"context"
	"fmt"
	"time"
)

// WaitOwns is Owns for a caller that may wait, off the transport's reader
// goroutine: while the refusal means "not yet, but may become servable
// here" it waits, waking on lease grants, applies, restores and the end of
// a fence (no polling), until Owns admits the call or the refusal is final
// or ctx is done. The conditions waited for:
//
//   - no lease (ErrNoLease): the leader died and an election is running,
//     the process was starved past its lease, or the node has just started;
//   - the replica is behind the caller: it does not know id, or places it at
//     an epoch below epoch (epoch > 0);
//   - a fence (ErrFenced): the actor moved here from a live node, or the
//     replica was just restored from a snapshot.
//
// Final refusals return at once: ErrNotOwner when the replica, at epoch or
// later, places the actor elsewhere, or the node is leaving; ErrNotOwner
// and ErrNotFound together when it stopped the actor; ErrClosed. When ctx
// ends first the error wraps the condition still unmet (ErrNoLease,
// ErrFenced or ErrNotOwner) and ctx's error. Whatever the error, the call
// has not been admitted, so it has not run here.
func (r *Registry) WaitOwns(ctx context.Context, id string, epoch uint64) (Placement, error) {
	p, err := r.Owns(id, epoch)
	if err == nil || !r.mayBecomeOwner(p, epoch, err) {
		return p, r.finalOwnsErr(p, err)
	}
	r.fsm.waiters.Add(1)
	defer r.fsm.waiters.Add(-1)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		// Take the channel before testing: a wake between the test and
		// the select then closes the channel already held.
		ch := r.fsm.changes()
		if epoch/maxBatch > r.fsm.m.applied.Load() {
			// The entry that placed the actor at epoch is not applied
			// yet (epochs are log-ordered), so Owns cannot admit: wait
			// for more applies without the lookup. Hundreds of calls
			// parked on a replica that replays its log after a restart
			// would each look up their actor after every entry.
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return p, fmt.Errorf("%w (waited: %w)", err, ctx.Err())
			case <-r.done:
				return p, ErrClosed
			}
		}
		p, err = r.Owns(id, epoch)
		if err == nil || !r.mayBecomeOwner(p, epoch, err) {
			return p, r.finalOwnsErr(p, err)
		}
		// A fence ends at a known time, not on an event: wait for it.
		var fenceEnd <-chan time.Time
		if err == ErrFenced {
			d := time.Duration(r.fenceEnd(p.ID, p.Epoch) - int64(time.Since(r.base)))
			if timer == nil {
				timer = time.NewTimer(max(d, 0))
			} else {
				timer.Reset(max(d, 0))
			}
			fenceEnd = timer.C
		}
		select {
		case <-ch:
		case <-fenceEnd:
		case <-ctx.Done():
			return p, fmt.Errorf("%w (waited: %w)", err, ctx.Err())
		case <-r.done:
			return p, ErrClosed
		}
	}
}

// mayBecomeOwner reports whether Owns' refusal err of p (for a caller at
// epoch) may turn into an admission without a new placement decision.
func (r *Registry) mayBecomeOwner(p Placement, epoch uint64, err error) bool {
	switch err {
	case ErrNoLease, ErrFenced:
		return true
	case ErrNotOwner:
		if r.leaving.Load() || r.closed.Load() {
			return false
		}
		// The caller resolved a newer entry than this replica has applied.
		return epoch > 0 && (p.ID == "" || p.Epoch < epoch)
	}
	return false
}

// finalOwnsErr is the error WaitOwns returns for a refusal it does not wait
// on.
func (r *Registry) finalOwnsErr(p Placement, err error) error {
	switch {
	case err == nil:
		return nil
	case r.closed.Load():
		return ErrClosed
	case err == ErrNotOwner && p.ID != "" && p.State == Stopped && !r.leaving.Load():
		return fmt.Errorf("%w: %w: stopped: %s", ErrNotOwner, ErrNotFound, p.Reason)
	}
	return err
}
