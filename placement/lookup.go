package placement

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/troupe-dev/troupe/transport"
)

// Lookups for processes without a replica (clients, see Client). Any
// member answers msgLookup from its own replica: the actor's entry and
// its host's address, and the leader it knows. With Wait, a member whose
// replica has the actor at no epoch above After waits for a newer one,
// bounded by lookupWait, so a client refreshing a stale location wakes
// when the move is applied instead of polling. Waits are bounded per peer
// (maxLookupWaits): past that a lookup is answered at once, so a peer
// cannot pin goroutines on the members; answers never wait for the
// network (TrySend): a peer that does not read them loses them.

// lookupWait bounds how long a member holds a waiting lookup.
const lookupWait = 2 * time.Second

// maxLookupWaits bounds the waiting lookups of one peer on one member.
const maxLookupWaits = 256

type lookupWaits struct {
	mu sync.Mutex
	n  map[string]int
}

func (w *lookupWaits) take(peer string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == nil {
		w.n = make(map[string]int)
	}
	if w.n[peer] >= maxLookupWaits {
		return false
	}
	w.n[peer]++
	return true
}

func (w *lookupWaits) done(peer string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n[peer]--; w.n[peer] <= 0 {
		delete(w.n, peer)
	}
}

// handleLookup answers a lookup (allowFrame checked the sender). A lookup
// of no id asks for the members; with Wait, once a member changed after
// revision After (a client's member watch).
func (r *Registry) handleLookup(from string, c *ctrl) {
	if c.ID == "" {
		if c.Wait && r.fsm.m.memberRev.Load() <= c.After && r.lookups.take(from) {
			if !r.goFunc(func() {
				ctx, cancel := context.WithTimeout(r.ctx, lookupWait)
				_ = r.waitFor(ctx, func() bool { return r.fsm.m.memberRev.Load() > c.After })
				cancel()
				// The slot is free before the peer has the answer: it
				// may ask again the moment it does.
				r.lookups.done(from)
				r.replyMembers(from, c.Req)
			}) {
				r.lookups.done(from)
			}
			return
		}
		r.replyMembers(from, c.Req)
		return
	}
	p, ok := r.fsm.m.lookup(c.ID)
	if c.Wait && (!ok || (p.State == Active && p.Epoch <= c.After)) && r.lookups.take(from) {
		if !r.goFunc(func() {
			ctx, cancel := context.WithTimeout(r.ctx, lookupWait)
			p, err := r.WaitNewer(ctx, c.ID, c.After)
			cancel()
			r.lookups.done(from) // before the answer, as above
			r.replyLookup(from, c.Req, c.ID, p, err)
		}) {
			r.lookups.done(from)
		}
		return
	}
	var err error
	switch {
	case !ok:
		err = &SpawnError{ID: c.ID, Err: ErrNotFound}
	case p.State == Stopped:
		err = &SpawnError{ID: c.ID, Type: p.Type, Err: ErrNotFound}
	}
	r.replyLookup(from, c.Req, c.ID, p, err)
}

// replyMembers sends the members and their revision.
func (r *Registry) replyMembers(to string, req uint64) {
	rev := r.fsm.m.memberRev.Load() // before the list: the list is at least this new
	res := &result{Members: r.fsm.m.memberList(), MemberRev: rev}
	if len(res.Members) > maxItems {
		res.Members = res.Members[:maxItems]
	}
	if addr, id := r.raft.LeaderWithID(); id != "" {
		res.Leader, res.LeaderAddr = string(id), string(addr)
	}
	r.tryReply(to, req, res)
}

// replyLookup sends the entry p with its host's address and the leader
// this member knows. A wait that timed out answers the entry as it is.
func (r *Registry) replyLookup(to string, req uint64, id string, p Placement, err error) {
	res := &result{Placement: p}
	switch {
	case err == nil:
	case p.ID != "" && p.State == Active: // the wait ended: the current entry
	case errors.Is(err, ErrForgotten): // dropped after its passivation
		res.Err = &SpawnError{ID: id, Err: errForgottenNotFound}
	default: // stopped, or unknown to this replica
		res.Err = &SpawnError{ID: id, Type: p.Type, Err: ErrNotFound}
	}
	if mb, ok := r.fsm.m.member(p.Node); ok {
		res.HostAddr = mb.Addr
	}
	if addr, id := r.raft.LeaderWithID(); id != "" {
		res.Leader, res.LeaderAddr = string(id), string(addr)
	}
	r.tryReply(to, req, res)
}

// tryReply sends a lookup's answer without waiting (it runs on the
// transport's reader, or on a wait's goroutine): to a peer that does not
// read its replies, they are dropped, and it asks again.
func (r *Registry) tryReply(to string, req uint64, res *result) {
	b, err := encodeCtrl(&ctrl{Type: msgResult, Req: req, Res: res})
	if err != nil {
		r.log.Warn("encode reply", "err", err)
		return
	}
	if err := r.tr.TrySend(transport.Peer{ID: to}, transport.KindControl, b); err != nil {
		r.log.Debug("lookup reply dropped", "peer", to, "err", err)
	}
}
