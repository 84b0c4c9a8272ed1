package placement

// Membership: joining, leaving, the leader's failure detector and the
// voter set.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/troupe-dev/troupe/transport"
)

// Leave leaves the cluster gracefully: the node's actors are re-placed and
// it is marked left, leadership moves away if it leads, and it is removed
// from the Raft configuration. Call Close afterwards.
//
// A voter that is down (failed, or silent for LeaseTimeout) and not yet
// replaced by a spare non-voter is demoted first when removing this node
// would otherwise leave a voter set whose quorum needs it: with 3 voters,
// one failed, the leave of a second leaves the third as the only voter,
// which keeps the cluster writable (it is promoted back once it returns).
//
// From the call on, Owns refuses every actor with ErrNotOwner (callers
// refresh and follow the re-placement), so the new hosts can serve them as
// soon as they apply the leave, with no fence. This holds even if Leave
// fails: the node is about to go; Close it.
func (r *Registry) Leave(ctx context.Context) error {
	r.leaving.Store(true)
	r.quiet.Store(true) // what Raft says while its cluster shrinks is expected

	// When every other member has left already (the whole cluster is
	// stopping), nobody takes over this node's actors and its leave may
	// find no quorum: it is tried, bounded, and its failure is no error.
	pctx := ctx
	if r.othersGone() {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, 4*r.cfg.HeartbeatTimeout)
		defer cancel()
	}
	if _, err := r.propose(pctx, command{Type: cmdLeave, Node: r.id}, true); err != nil {
		if ctx.Err() == nil && r.othersGone() {
			return nil
		}
		return err
	}
	for {
		if r.othersGone() {
			// The others are leaving too: no Raft configuration to keep
			// writable, and keeping it whole lets the cluster restart
			// from its DataDirs.
			return nil
		}
		if r.IsLeader() {
			if len(r.Voters()) <= 1 {
				return nil // the last voter: nobody to hand over to
			}
			if err := r.wait(ctx, r.raft.LeadershipTransfer()); err != nil {
				r.log.Warn("leadership transfer", "err", err)
			}
		}
		addr, lid := r.raft.LeaderWithID()
		if lid != "" && string(lid) != r.id {
			rep, err := r.call(ctx, transport.Peer{ID: string(lid), Addr: string(addr)}, &ctrl{Type: msgRemove})
			if err == nil && rep.Res != nil && rep.Res.Err == nil {
				return nil
			}
			// Not the leader any more, or leadership lost while removing:
			// a removal is idempotent, so ask whoever leads next.
			if err == nil && rep.Res != nil && !errors.Is(rep.Res.Err, ErrNotLeader) &&
				!errors.Is(rep.Res.Err, ErrUnknownOutcome) && !errors.Is(rep.Res.Err, ErrNoLeader) {
				return rep.Res.Err
			}
		}
		if err := r.pause(ctx, r.cfg.HeartbeatTimeout/4); err != nil {
			return err
		}
	}
}

// othersGone reports whether every member but this node is recorded as
// not alive (left, failed or expelled) in this replica.
func (r *Registry) othersGone() bool {
	for _, m := range r.fsm.m.memberList() {
		if m.ID != r.id && m.Status == Alive {
			return false
		}
	}
	return true
}

// register makes this node a recorded member (joining Raft if needed) and
// waits until its own replica has applied that. A follower asked to admit
// it answers with the leader's id and address, and the join is sent there
// next (followers do not forward joins: see authz.go). A join refused with
// ErrExpelled or ErrUnauthorized is returned at once, not retried. One
// refused with ErrIDInUse (the id is alive at another address) is retried
// for a while: the leader admits a process restarted at a new address once
// its predecessor has been silent for longer than any lease it held (see
// handleJoin), or once it marks it failed.
func (r *Registry) register(ctx context.Context) error {
	defer r.endJoin()
	msg := &ctrl{Type: msgJoin, Node: r.id, Addr: r.addr, Voter: uint8(r.cfg.Voter)}
	next := 0
	var hint transport.Peer // leader named by a follower's redirect
	// A process restarted at a new address may find its old self still
	// recorded alive: the leader admits it once the old one is silent
	// past its lease, and marks it failed within FailTimeout of its last
	// ping, or of its own election when the old process led (an
	// election takes a few HeartbeatTimeouts; ten is the slack of a
	// loaded host). A peer's transport also refuses the id from a new
	// address while it holds a connection to the old process, which after
	// a kill -9 lasts until the connection's idle timeout (5 s by
	// default), at the same time. Until the later of the two ErrIDInUse
	// is retried; past that window the id is in use by another live
	// process, and that is the answer.
	inUseUntil := time.Now().Add(max(2*r.cfg.FailTimeout+r.cfg.LeaseTimeout+10*r.cfg.HeartbeatTimeout, transportIdleSlack))
	for {
		var res *result
		var err error
		msg.Types = r.typesToJoin()
		addr, lid := r.raft.LeaderWithID()
		switch {
		case r.IsLeader():
			res, err = r.handleJoin(ctx, r.id, msg)
		case lid != "" && string(lid) != r.id:
			r.addJoinPeer(string(lid))
			res, err = r.callResult(ctx, transport.Peer{ID: string(lid), Addr: string(addr)}, msg)
		case hint.ID != "":
			res, err = r.callResult(ctx, hint, msg)
			hint = transport.Peer{}
		default:
			targets := r.joinTargets()
			if len(targets) == 0 {
				err = ErrNoLeader
				break
			}
			res, err = r.callResult(ctx, targets[next%len(targets)], msg)
			next++
		}
		if err == nil && res.Err == nil {
			r.sentTypes = len(msg.Types)
			r.inc.Store(res.Index)
			return r.WaitApplied(ctx, res.Index)
		}
		if err == nil {
			if res.Leader != "" && res.Leader != r.id {
				hint = transport.Peer{ID: res.Leader, Addr: res.LeaderAddr}
				r.addJoinPeer(res.Leader)
			}
			err = res.Err
		}
		switch {
		case (errors.Is(err, ErrIDInUse) || errors.Is(err, transport.ErrRefused)) && time.Now().Before(inUseUntil):
		case errors.Is(err, transport.ErrIDInUse):
			return fmt.Errorf("placement: join as %s: %w: %w", r.id, ErrIDInUse, err)
		case errors.Is(err, transport.ErrRefused):
			// The members refuse this node's connections (expelled, or its
			// id connected from elsewhere): retrying will not change it.
			return fmt.Errorf("placement: join as %s: %w", r.id, err)
		case errors.Is(err, ErrIdentityMismatch), errors.Is(err, ErrClosed), errors.Is(err, ErrIDInUse),
			errors.Is(err, ErrExpelled), errors.Is(err, ErrUnauthorized):
			return fmt.Errorf("placement: join as %s: %w", r.id, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("placement: join: %w (last error: %v)", ctx.Err(), err)
		}
		r.log.Debug("join retry", "err", err)
		if hint.ID != "" {
			continue // redirected: ask the leader at once
		}
		if perr := r.pause(ctx, r.cfg.HeartbeatTimeout/4); perr != nil {
			return fmt.Errorf("placement: join: %w (last error: %v)", perr, err)
		}
	}
}

// transportIdleSlack is the least time a join retries a peer's refusal
// of this id: the transport's default idle timeout
// (transport.Config.MaxIdleTimeout, 5 s), after which a peer forgets a
// killed process's connection, with margin.
const transportIdleSlack = 7 * time.Second

// joinTargets lists whom a join asks when no leader is known: the Join
// addresses, then the other servers of this replica's own Raft
// configuration, by id and address. A node restarted from its DataDir
// finds its peers there whatever its own new address, Join or not.
func (r *Registry) joinTargets() []transport.Peer {
	targets := make([]transport.Peer, 0, len(r.cfg.Join)+4)
	for _, j := range r.cfg.Join {
		targets = append(targets, transport.Peer{Addr: j})
	}
	if p := r.az.peers.Load(); p != nil {
		ids := make([]string, 0, len(p.byID))
		for id := range p.byID {
			if id != r.id {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		for _, id := range ids {
			targets = append(targets, transport.Peer{ID: id, Addr: p.byID[id]})
		}
	}
	return targets
}

// joinFrom handles a join received from peer `from` (allowFrame checked
// that it names from and that from is not expelled): the leader admits it;
// a follower redirects it to the leader, whom the joiner must ask itself.
func (r *Registry) joinFrom(ctx context.Context, from string, c *ctrl) (*result, error) {
	if c.Node != from {
		return nil, &SpawnError{Node: c.Node, Err: ErrIdentityMismatch}
	}
	if r.IsLeader() {
		return r.handleJoin(ctx, from, c)
	}
	addr, lid := r.raft.LeaderWithID()
	if lid == "" || string(lid) == r.id {
		return nil, ErrNoLeader
	}
	return &result{Err: ErrNotLeader, Leader: string(lid), LeaderAddr: string(addr)}, nil
}

// handleJoin runs on the leader: add the node to the Raft configuration
// (voter while there are fewer than Voters, else non-voter; an address
// change updates it) and record it as an alive member.
func (r *Registry) handleJoin(ctx context.Context, origin string, c *ctrl) (*result, error) {
	if c.Node != origin {
		return nil, &SpawnError{Node: c.Node, Err: ErrIdentityMismatch}
	}
	// One join decision at a time: the check below and the Raft change
	// that follows it must not interleave with another join of that id.
	r.joinMu.Lock()
	defer r.joinMu.Unlock()
	if err := ctx.Err(); err != nil {
		// The joiner gave up on this attempt while it queued behind
		// others (and has asked again): applying it anyway would only
		// pile entries up behind a slow one.
		return nil, err
	}
	takeover := origin == r.id // the Raft server of that id, restarted: its old process is gone
	if mb, ok := r.fsm.m.member(origin); ok {
		switch {
		case mb.Status == Expelled:
			return nil, r.refuse(origin, "join", RefusalExpelled, &SpawnError{Node: origin, Err: ErrExpelled})
		case mb.Status == Alive && mb.Addr != c.Addr && !takeover:
			// Two live processes must not share an id. One silent for
			// longer than any lease it held can last is gone (a restart
			// on a new port before FailTimeout ran out): the holder of
			// the id's certificate takes its place, actors and all, and
			// a ping from the old address is ignored from then on.
			if !r.silentPastLease(origin) {
				return nil, r.refuse(origin, "join", RefusalIDInUse,
					fmt.Errorf("%w: %s is alive at %s (join from %s refused until it fails, leaves or is silent past its lease)", ErrIDInUse, origin, mb.Addr, c.Addr))
			}
			takeover = true
			r.log.Info("member restarted at a new address", "peer", origin, "old", mb.Addr, "addr", c.Addr)
		}
	}
	cf := r.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	voters := 0
	var have *raft.Server
	for i, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
		if string(s.ID) == origin {
			have = &cf.Configuration().Servers[i]
		}
	}
	id, addr := raft.ServerID(origin), raft.ServerAddress(c.Addr)
	if (have == nil || have.Address != addr) && origin != r.id && !r.toldJoiner(origin) {
		// The joiner accepts Raft streams only from servers it knows
		// (AllowRaft), and it may have reached this leader by address
		// alone: name the leader first, so that it lets the replication
		// that AddVoter/AddNonvoter starts in. It asks again at once.
		return &result{Err: ErrNotLeader, Leader: r.id, LeaderAddr: r.addr}, nil
	}
	var f raft.IndexFuture
	never := VoterPolicy(c.Voter) == VoterNever
	switch {
	case have == nil && voters < r.cfg.Voters && !never, have != nil && have.Suffrage == raft.Voter && have.Address != addr:
		f = r.raft.AddVoter(id, addr, 0, r.attemptTimeout())
	case have == nil, have.Address != addr:
		f = r.raft.AddNonvoter(id, addr, 0, r.attemptTimeout())
	}
	if f != nil {
		if err := r.wait(ctx, f); err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
				return nil, ErrNotLeader
			}
			return nil, err
		}
		r.pushCommit(f.Index())
		r.refreshRaftPeers()
	}
	if have != nil && have.Address != addr {
		// Raft's heartbeat to the old address may be stuck in a dial for
		// up to raftRPCTimeout before it tries the new one; until then
		// the member cannot learn who leads, so it cannot ping. It is
		// not marked failed for that.
		r.heardUntil(origin, time.Now().Add(raftRPCTimeout+r.cfg.HeartbeatTimeout))
	} else {
		r.heard(origin)
	}
	data, err := encodeCommand(command{Type: cmdJoin, Node: origin, Addr: c.Addr, Types: c.Types, Voter: c.Voter, Takeover: takeover})
	if err != nil {
		return nil, err
	}
	return r.applyLocal(data)
}

func (r *Registry) heard(id string) { r.heardUntil(id, time.Now()) }

// silentPastLease reports whether this leader may let another process of
// member id take its place: every lease the member may hold has ended. A
// lease starts when its ping is sent, so before the leader heard it, and
// lasts LeaseTimeout at most; a quarter more is the slack for scheduling.
// Leases from older leaders end within LeaseTimeout of this leader's
// election (see Registry.grace), so a member not heard in this leadership
// is past its lease that long after this leader's barrier.
func (r *Registry) silentPastLease(id string) bool {
	if r.lw.term.Load() != r.raft.CurrentTerm() {
		return false
	}
	past := r.cfg.LeaseTimeout + r.cfg.LeaseTimeout/4
	since := r.base.Add(time.Duration(r.lw.since.Load()))
	now := time.Now()
	r.hbMu.Lock()
	last, ok := r.lastHeard[id]
	r.hbMu.Unlock()
	if !ok || last.Before(since) {
		last = since
	}
	return now.Sub(last) > past
}

// heardUntil records id as heard at t, unless it was heard later (t may
// be ahead of now: a grace before the failure detector counts silence).
func (r *Registry) heardUntil(id string, t time.Time) {
	r.hbMu.Lock()
	if t.After(r.lastHeard[id]) {
		r.lastHeard[id] = t
	}
	r.hbMu.Unlock()
}

// monitorLoop is the leader's failure detector: a member not heard for
// FailTimeout is marked failed (its actors re-placed in the same entry), a
// failed member heard again is marked alive, and voters are kept at Voters
// by promoting alive non-voters and demoting failed voters.
func (r *Registry) monitorLoop() {
	t := time.NewTicker(r.cfg.FailTimeout / 16)
	defer t.Stop()
	var term uint64
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		if !r.IsLeader() {
			term = 0
			continue
		}
		now := time.Now()
		members := r.fsm.m.memberList()
		newTerm := r.raft.CurrentTerm() != term
		if cur := r.raft.CurrentTerm(); cur != term {
			// New leadership: every lease from an older leader ends within
			// LeaseTimeout of now, so waiting grace is safe for all.
			term = cur
			r.hbMu.Lock()
			// A restart grace heard as a follower (handleBack) still holds.
			for _, mb := range members {
				if t := now.Add(r.grace - r.cfg.FailTimeout); t.After(r.lastHeard[mb.ID]) {
					r.lastHeard[mb.ID] = t
				}
			}
			r.hbMu.Unlock()
		}
		for _, mb := range members {
			if mb.ID == r.id {
				continue
			}
			r.hbMu.Lock()
			last, ok := r.lastHeard[mb.ID]
			if !ok {
				last = now
				r.lastHeard[mb.ID] = now
			}
			r.hbMu.Unlock()
			silent := now.Sub(last)
			var c command
			switch {
			case mb.Status == Alive && silent > r.cfg.FailTimeout:
				c = command{Type: cmdFailed, Node: mb.ID}
				r.log.Warn("member failed", "peer", mb.ID, "silent", silent)
			case mb.Status == Failed && silent < r.cfg.LeaseTimeout:
				c = command{Type: cmdAlive, Node: mb.ID}
			default:
				continue
			}
			data, _ := encodeCommand(c)
			if _, err := r.applyLocal(data); err != nil {
				r.log.Warn("mark member", "peer", mb.ID, "err", err)
			}
		}
		r.checkOwners(now, newTerm)
		r.removeExpelled()
		r.reconcileVoters()
		select {
		case r.rehomeKick <- struct{}{}:
		default:
		}
	}
}

// rehomeLoop runs on every node and works while it leads: it moves the
// actors still on failed and left members off them, one chunk entry
// (cmdRehome) after another, each waited for, so other writes interleave
// and no entry holds the state machine long. The monitor's tick wakes it;
// a new leader finds the work left in its replica (nextRehome).
func (r *Registry) rehomeLoop() {
	for {
		select {
		case <-r.done:
			return
		case <-r.rehomeKick:
		}
		for r.IsLeader() {
			node, ready := r.fsm.m.nextRehome()
			if node == "" {
				break
			}
			if ready != nil { // propose once this replica's queue is built
				select {
				case <-ready:
				case <-r.done:
					return
				}
			}
			data, err := encodeCommand(command{Type: cmdRehome, Node: node, Epoch: rehomeChunk})
			if err != nil {
				break
			}
			res, err := r.applyLocal(data)
			if err == nil {
				err = res.Err
			}
			if err != nil {
				r.log.Warn("re-place actors of a down member", "peer", node, "err", err)
				break // the next tick tries again
			}
		}
	}
}

// removeServer runs on the leader: remove id from the Raft configuration.
// Removing a voter while another voter is down would leave a configuration
// whose quorum needs the down voter (3 voters, one failed, one leaving: 2
// left, one down), so Raft could not commit the change and the leader would
// step down and the cluster stall. Down voters are therefore demoted first,
// while the old configuration still has its quorum (this leader and the
// leaver among them); reconcileVoters promotes them again once they are
// back.
func (r *Registry) removeServer(id string) error {
	r.cfgMu.Lock()
	defer r.cfgMu.Unlock()
	timeout := r.attemptTimeout()
	cf := r.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	leaving := false
	var up, down []raft.Server
	for _, s := range cf.Configuration().Servers {
		switch {
		case s.Suffrage != raft.Voter:
		case string(s.ID) == id:
			leaving = true
		case r.voterUp(string(s.ID)):
			up = append(up, s)
		default:
			down = append(down, s)
		}
	}
	if leaving && len(down) > 0 && len(up) < (len(up)+len(down))/2+1 {
		for _, s := range down {
			r.log.Warn("demoting a down voter before a leave", "peer", string(s.ID), "leaving", id)
			if err := r.configured(r.raft.DemoteVoter(s.ID, 0, timeout)); err != nil {
				return fmt.Errorf("%w: demote %s: %v", ErrUnknownOutcome, s.ID, err)
			}
		}
	}
	if err := r.configured(r.raft.RemoveServer(raft.ServerID(id), 0, timeout)); err != nil {
		return fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
	}
	return nil
}

// voterUp reports, on the leader, whether member id can vote now: this
// node, or an alive member heard within LeaseTimeout.
func (r *Registry) voterUp(id string) bool {
	if id == r.id {
		return true
	}
	if mb, ok := r.fsm.m.member(id); ok && mb.Status != Alive {
		return false
	}
	r.hbMu.Lock()
	last, ok := r.lastHeard[id]
	r.hbMu.Unlock()
	return ok && time.Since(last) < r.cfg.LeaseTimeout
}

func (r *Registry) reconcileVoters() {
	r.cfgMu.Lock()
	defer r.cfgMu.Unlock()
	cf := r.raft.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	var alive, failed, spare []raft.Server
	policy := func(s raft.Server) VoterPolicy {
		if mb, ok := r.fsm.m.member(string(s.ID)); ok {
			return mb.Voter
		}
		return VoterAuto
	}
	for _, s := range cf.Configuration().Servers {
		mb, ok := r.fsm.m.member(string(s.ID))
		up := !ok || mb.Status == Alive
		switch {
		case s.Suffrage == raft.Voter && up:
			alive = append(alive, s)
		case s.Suffrage == raft.Voter:
			failed = append(failed, s)
		case s.Suffrage == raft.Nonvoter && ok && mb.Status == Alive && mb.Voter != VoterNever && r.voterUp(string(s.ID)):
			spare = append(spare, s)
		}
	}
	// Prefer members are promoted first.
	slices.SortStableFunc(spare, func(a, b raft.Server) int {
		pa, pb := policy(a) == VoterPrefer, policy(b) == VoterPrefer
		switch {
		case pa && !pb:
			return -1
		case pb && !pa:
			return 1
		}
		return 0
	})
	timeout := r.attemptTimeout()
	// A voter that should not be one (VoterNever, or VoterAuto while a
	// VoterPrefer member waits) gives way to a spare, one change a round:
	// the spare is promoted first, then the other demoted.
	unwanted := -1
	for i, s := range alive {
		if p := policy(s); s.ID != raft.ServerID(r.id) && len(spare) > 0 &&
			(p == VoterNever || (p == VoterAuto && policy(spare[0]) == VoterPrefer)) {
			unwanted = i
			break
		}
	}
	if (len(alive) < r.cfg.Voters || unwanted >= 0) && len(spare) > 0 {
		s := spare[0]
		if err := r.configured(r.raft.AddVoter(s.ID, s.Address, 0, timeout)); err != nil {
			r.log.Warn("promote", "peer", string(s.ID), "err", err)
			return
		}
		r.log.Info("promoted non-voter", "peer", string(s.ID), "policy", policy(s).String())
		if unwanted >= 0 {
			u := alive[unwanted]
			if err := r.configured(r.raft.DemoteVoter(u.ID, 0, timeout)); err != nil {
				r.log.Warn("demote", "peer", string(u.ID), "err", err)
				return
			}
			r.log.Info("demoted voter", "peer", string(u.ID), "policy", policy(u).String(), "for", string(s.ID))
			return
		}
		alive = append(alive, s)
	}
	if len(failed) > 0 && len(alive) >= r.cfg.Voters {
		s := failed[0]
		if err := r.configured(r.raft.DemoteVoter(s.ID, 0, timeout)); err != nil {
			r.log.Warn("demote", "peer", string(s.ID), "err", err)
		}
	}
}

// Voters returns the ids of the Raft voters in this replica's latest
// configuration, sorted.
func (r *Registry) Voters() []string {
	cf := r.raft.GetConfiguration()
	if cf.Error() != nil {
		return nil
	}
	var out []string
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out = append(out, string(s.ID))
		}
	}
	slices.Sort(out)
	return out
}

// configured waits for a Raft configuration change and, once the leader
// committed it, pushes the commit to the followers (pushCommit): they
// store a configuration only once it commits, and their Raft gate
// (AllowRaft) follows the stored one.
func (r *Registry) configured(f raft.IndexFuture) error {
	err := f.Error()
	if err == nil {
		r.pushCommit(f.Index())
	}
	return err
}
