package placement

// The leader's own lease: a verify round to the voters.
//
// hashicorp/raft's VerifyLeader is not enough for a lease. Its round counts
// an acknowledged heartbeat from every follower, non-voters included
// (v1.7.3, verifyFuture.vote), against a quorum of voters: a leader cut off
// from the other voters but not from two non-voters still "verifies" until
// Raft's own leader lease steps it down, up to 2 × LeaderLeaseTimeout
// later, while the voters elect a new leader and fail the old one. It also
// heartbeats every follower at once, so at 100 nodes four rounds per
// LeaseTimeout were most of an idle cluster's traffic.
//
// So the leader asks only the voters of its latest configuration
// (msgVerify, carrying its term) and each voter still in that term answers
// (msgVouch). When a quorum of voters, the leader included, has vouched,
// the leader holds a lease from the round's start: a later leader needs a
// vote from one of them, cast after it vouched, so it is elected after the
// round started (the argument of docs/placement.md, now with voters only).
// Frames go out with TrySend: a slow voter never holds the lease loop.

import (
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/troupe-dev/troupe/transport"
)

// verifyRounds are the leader's outstanding rounds: a ring, as a round
// older than LeaseTimeout can grant nothing.
type verifyRounds struct {
	mu     sync.Mutex
	next   uint64
	rounds [4]verifyRound
}

type verifyRound struct {
	id      uint64
	term    uint64
	start   time.Duration // since Registry.base
	voters  []string      // the other voters asked
	vouched []bool
	need    int // vouches still needed; <= 0 once granted
}

// startVerify starts a round of term at now. With no other voter needed
// (a single voter) it grants at once.
func (r *Registry) startVerify(now time.Duration, term uint64) {
	cf := r.raft.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	self := 0
	var others []raft.Server
	for _, s := range cf.Configuration().Servers {
		switch {
		case s.Suffrage != raft.Voter:
		case string(s.ID) == r.id:
			self = 1
		default:
			others = append(others, s)
		}
	}
	need := (len(others)+self)/2 + 1 - self
	if need <= 0 {
		r.grantLease(now+r.cfg.LeaseTimeout, 0)
		return
	}
	v := &r.vf
	v.mu.Lock()
	v.next++
	id := v.next
	rd := &v.rounds[id%uint64(len(v.rounds))]
	*rd = verifyRound{id: id, term: term, start: now, need: need,
		voters: rd.voters[:0], vouched: rd.vouched[:0]}
	for _, s := range others {
		rd.voters = append(rd.voters, string(s.ID))
		rd.vouched = append(rd.vouched, false)
	}
	v.mu.Unlock()
	b, err := encodeCtrl(&ctrl{Type: msgVerify, Req: id, Term: term})
	if err != nil {
		return
	}
	for _, s := range others {
		_ = r.tr.TrySend(transport.Peer{ID: string(s.ID), Addr: string(s.Address)}, transport.KindControl, b)
	}
}

// handleVerify runs on a voter: it vouches for the leader it follows while
// it is still in the leader's term. Another sender, or another term, gets
// nothing.
func (r *Registry) handleVerify(from string, c *ctrl) {
	if _, lid := r.raft.LeaderWithID(); string(lid) != from || r.raft.CurrentTerm() != c.Term {
		return
	}
	b, err := encodeCtrl(&ctrl{Type: msgVouch, Req: c.Req, Term: c.Term})
	if err != nil {
		return
	}
	_ = r.tr.TrySend(transport.Peer{ID: from}, transport.KindControl, b)
}

// handleVouch runs on the leader: a vouch counts once per voter asked in
// its round, in the round's term, while this node leads that term and has
// passed its barrier in it.
func (r *Registry) handleVouch(from string, c *ctrl) {
	if !r.IsLeader() || r.lw.term.Load() != c.Term || r.raft.CurrentTerm() != c.Term {
		return
	}
	v := &r.vf
	v.mu.Lock()
	rd := &v.rounds[c.Req%uint64(len(v.rounds))]
	i := -1
	if rd.id == c.Req && rd.term == c.Term && rd.need > 0 {
		i = slices.Index(rd.voters, from)
	}
	if i < 0 || rd.vouched[i] {
		v.mu.Unlock()
		return
	}
	rd.vouched[i] = true
	rd.need--
	granted, start := rd.need == 0, rd.start
	v.mu.Unlock()
	if granted {
		r.grantLease(start+r.cfg.LeaseTimeout, 0)
		r.answerWaiting()
	}
}
