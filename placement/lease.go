package placement

// Leases and single activation: Owns, and the ping/pong that renews a
// node's lease with the leader. The timing argument is in docs/placement.md.

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/troupe-dev/troupe/transport"
)

// Owns reports whether this node may serve actor id for a caller that
// resolved it at epoch: the replica must place it here, active, at epoch or
// later, and the node must not be leaving (ErrNotOwner otherwise); the node
// must hold a lease from the leader (ErrNoLease); and the actor must not
// have just moved here from a live node (ErrFenced, see fence.go). It
// allocates nothing.
func (r *Registry) Owns(id string, epoch uint64) (Placement, error) {
	// Read the applied index before the entry: the entry then reflects at
	// least that index, and the lease is judged at that index. Judging it
	// after would let an entry read just before an apply pass with a lease
	// that only that apply satisfied.
	applied := r.fsm.m.applied.Load()
	p, ok := r.fsm.m.lookup(id)
	if !ok && forgottenAt(epoch, applied) {
		return p, errForgotten(id)
	}
	if !ok || p.State != Active || p.Node != r.id || p.Epoch < epoch || r.leaving.Load() {
		return p, ErrNotOwner
	}
	now := int64(time.Since(r.base))
	if now >= r.leaseUntil(applied) {
		return p, ErrNoLease
	}
	if r.fenced(id, p.Epoch, now) {
		return p, ErrFenced
	}
	return p, nil
}

// forgottenAt reports whether an entry absent from a replica at applied
// that a caller knew at epoch was dropped (Forget) rather than not applied
// yet: epochs are log-ordered (index × maxBatch + position), so a replica
// past the epoch's index has applied the placement, and it is gone (the
// forget is a later entry). Strictly past: a caller may ask with one less
// than an epoch it knows (Refresh of a hint), which can fall in the entry
// before.
func forgottenAt(epoch, applied uint64) bool {
	return epoch > 0 && epoch/maxBatch < applied
}

func errForgotten(id string) error {
	return &SpawnError{ID: id, Err: errForgottenNotFound}
}

// HasLease reports whether this node heard the leader (or, as leader, a
// quorum) within LeaseTimeout and has applied what the leader had committed
// then.
func (r *Registry) HasLease() bool {
	return int64(time.Since(r.base)) < r.leaseUntil(r.fsm.m.applied.Load())
}

// leaseUntil is the latest end of a lease grant satisfied by a replica at
// applied (ns since base), or 0.
func (r *Registry) leaseUntil(applied uint64) int64 {
	var until int64
	for g := r.lease.Load(); g != nil; g = g.prev {
		if applied >= g.index {
			until = max(until, g.until)
		}
	}
	return until
}

func (r *Registry) grantLease(until time.Duration, index uint64) {
	r.stats.renewals.Add(1)
	for {
		cur := r.lease.Load()
		now := int64(time.Since(r.base))
		applied := r.fsm.m.applied.Load()
		all := []grant{{until: int64(until), index: index}}
		for g := cur; g != nil; g = g.prev {
			all = append(all, grant{until: g.until, index: g.index})
		}
		// Keep the grants still able to give a lease: not expired, not
		// dominated by one that lasts as long and needs no more applied.
		// Of the satisfied ones only the longest matters.
		var keep []grant
		var best grant
		for i, g := range all {
			if g.until <= now {
				continue
			}
			if g.index <= applied {
				best.until = max(best.until, g.until)
				continue
			}
			dominated := false
			for j, o := range all {
				if j != i && o.until >= g.until && o.index <= g.index && (o.until != g.until || o.index != g.index || j < i) {
					dominated = true
					break
				}
			}
			if !dominated {
				keep = append(keep, g)
			}
		}
		slices.SortFunc(keep, func(a, b grant) int { return cmp.Compare(b.until, a.until) })
		keep = keep[:min(len(keep), 3)]
		if best.until > 0 {
			keep = append(keep, best)
		}
		var head *grant
		for i := len(keep) - 1; i >= 0; i-- {
			head = &grant{until: keep[i].until, index: keep[i].index, prev: head}
		}
		if r.lease.CompareAndSwap(cur, head) {
			r.fsm.wake() // WaitLease
			return
		}
	}
}

// leaseWork holds the pings a leader received before it had a lease of
// its own (just elected: its barrier has not committed yet). It answers
// them as soon as it has one, instead of leaving the pinging nodes without
// a lease until their next ping.
type leaseWork struct {
	// term is the Raft term in which this node, as leader, passed its
	// barrier: it grants leases only in that term. (Before, a new leader
	// still holding a follower's lease from the old leader answered pings
	// with what was left of it, safe but often a few milliseconds, so
	// followers lost their lease again until their next ping.)
	term    atomic.Uint64
	since   atomic.Int64 // when term's barrier passed, in ns since Registry.base
	mu      sync.Mutex
	waiting map[string]uint64 // member id -> request id of its latest ping
}

// handlePing runs on the leader: record liveness, and grant a lease no
// longer than the leader's own. A leader without a lease yet keeps the
// ping of a member to answer it once it has one (answerWaiting).
func (r *Registry) handlePing(from string, c *ctrl) {
	if !r.IsLeader() {
		return
	}
	if m, ok := r.fsm.m.member(from); ok && c.Addr != "" && c.Addr != m.Addr {
		// Another process of this id, at another address than the one
		// recorded (restarted on a new port, not yet rejoined): it is not
		// the member, so it proves the member neither alive nor entitled
		// to a lease. The member is marked failed once it is not heard
		// for FailTimeout, and then the new process's join is admitted.
		return
	}
	r.heard(from)
	if r.pong(from, c.Req) {
		return
	}
	if _, ok := r.fsm.m.member(from); !ok {
		return // bounded: one waiting ping per member
	}
	r.lw.mu.Lock()
	if r.lw.waiting == nil {
		r.lw.waiting = make(map[string]uint64)
	}
	r.lw.waiting[from] = c.Req
	r.lw.mu.Unlock()
	if r.canGrant() { // granted meanwhile: the loop may have flushed already
		r.answerWaiting()
	}
}

// canGrant reports whether this leader may answer pings now: it passed its
// barrier in the current term and holds a lease.
func (r *Registry) canGrant() bool {
	return r.lw.term.Load() == r.raft.CurrentTerm() && r.HasLease()
}

// answerWaiting answers the pings kept while this leader had no lease.
func (r *Registry) answerWaiting() {
	r.lw.mu.Lock()
	w := r.lw.waiting
	r.lw.waiting = nil
	r.lw.mu.Unlock()
	for from, req := range w {
		r.pong(from, req)
	}
}

// pong answers ping req of member from with a lease no longer than the
// leader's own, and reports false if the leader has none to give.
func (r *Registry) pong(from string, req uint64) bool {
	if r.lw.term.Load() != r.raft.CurrentTerm() {
		return false // no barrier in this term yet: no lease of its own
	}
	left := r.leaseUntil(r.fsm.m.applied.Load()) - int64(time.Since(r.base))
	if left <= 0 {
		return false
	}
	// The index the member's replica must have applied to use this lease:
	// the last entry that took something away from it (an actor moved,
	// restarted or stopped, or its own failure), as of the leader's
	// applied index. With its lease the leader has applied every entry of
	// earlier terms (barrier), so this covers every such entry committed
	// before this pong; entries about other members do not count, so a
	// replica that lags on them (a snapshot, a GC pause, a burst of
	// writes elsewhere) keeps serving what is still its own.
	b, err := encodeCtrl(&ctrl{Type: msgPong, Req: req, Lease: left, Index: r.fsm.m.revokedAt(from)})
	if err != nil {
		return true
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.LeaseTimeout/4)
	defer cancel()
	_ = r.tr.Send(ctx, transport.Peer{ID: from}, transport.KindControl, b)
	return true
}

// handlePong extends this node's lease: it starts when the ping was sent
// and lasts no longer than LeaseTimeout nor the leader's own lease.
func (r *Registry) handlePong(c *ctrl) {
	r.pendMu.Lock()
	sent, ok := r.pingSent[c.Req]
	delete(r.pingSent, c.Req)
	r.pendMu.Unlock()
	if !ok {
		return
	}
	left := min(time.Duration(c.Lease), r.cfg.LeaseTimeout)
	r.grantLease(sent+left, c.Index)
}

// leaseLoop renews the lease four times per LeaseTimeout, and at once when
// Raft reports a new leader: the leader by confirming it still leads a
// quorum, the others by pinging the leader. So after an election the new
// leader's lease and its grants to the others follow its first committed
// entry by one round trip, not by up to a renewal period.
func (r *Registry) leaseLoop() {
	every := r.cfg.LeaseTimeout / 4
	t := time.NewTicker(every)
	defer t.Stop()
	obs := make(chan raft.Observation, 4)
	o := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.raft.RegisterObserver(o)
	defer r.raft.DeregisterObserver(o)
	var leader raft.ServerID
	held := false
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		case ob := <-obs:
			if lo, ok := ob.Data.(raft.LeaderObservation); ok && lo.LeaderID != "" && lo.LeaderID != leader {
				leader = lo.LeaderID
				r.stats.leaderChanges.Add(1)
				r.log.Info("placement: leader elected", "leader", string(lo.LeaderID), "term", r.raft.CurrentTerm())
			}
		}
		r.sweepFences()
		r.renewLease()
		if has := r.HasLease(); has != held {
			held = has
			if !has && !r.closed.Load() && !r.leaving.Load() {
				r.stats.lapses.Add(1)
				r.log.Warn("placement: lease lapsed: this node serves no actor until a leader renews it", "leader", string(leader))
			}
		}
	}
}

func (r *Registry) renewLease() {
	now := time.Since(r.base)
	if r.IsLeader() {
		// A new leader's replica may still be applying entries of earlier
		// terms: no lease (for itself or others) until a barrier shows it
		// has applied every entry before its term. The barrier's entry
		// committed, so a quorum acknowledged this leader after now: that
		// grants the lease as a verify round would, one round earlier.
		if term := r.raft.CurrentTerm(); term != r.lw.term.Load() {
			if r.raft.Barrier(r.cfg.LeaseTimeout).Error() != nil {
				return
			}
			r.lw.since.Store(int64(time.Since(r.base)))
			r.lw.term.Store(term)
			r.grantLease(now+r.cfg.LeaseTimeout, 0)
		} else {
			// A round to the voters (verify.go); its vouches grant. When
			// two rounds in a row found no quorum (voters slow, or of a
			// version without vouches), a barrier renews instead: its entry
			// committed, so a quorum of voters followed this leader after
			// now.
			r.startVerify(now, term)
			if r.leaseUntil(r.fsm.m.applied.Load())-int64(now) < int64(r.cfg.LeaseTimeout/2) &&
				r.raft.Barrier(r.cfg.LeaseTimeout).Error() == nil {
				r.grantLease(now+r.cfg.LeaseTimeout, 0)
			}
		}
		r.answerWaiting()
		return
	}
	addr, lid := r.raft.LeaderWithID()
	if lid == "" {
		return
	}
	id := r.reqID.Add(1)
	r.pendMu.Lock()
	for k, s := range r.pingSent {
		if now-s > r.cfg.LeaseTimeout {
			delete(r.pingSent, k)
		}
	}
	r.pingSent[id] = now
	r.pendMu.Unlock()
	b, err := encodeCtrl(&ctrl{Type: msgPing, Req: id, Addr: r.addr})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.LeaseTimeout/4)
	_ = r.tr.Send(ctx, transport.Peer{ID: string(lid), Addr: string(addr)}, transport.KindControl, b)
	cancel()
}
