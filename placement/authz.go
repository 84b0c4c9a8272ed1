package placement

// Authorization of registry traffic. The only thing a control frame's
// receiver may trust is `from`, the node id of the sender's verified
// certificate: every rule below is a rule about that id, never about what
// the frame body claims. The rules (docs/security.md, "Registry
// authorization"):
//
//   - Join (msgJoin) is open to any certificate holder whose id is not
//     expelled; it must name the sender (Node == from). A follower does not
//     forward joins: it answers ErrNotLeader with the leader's id and
//     address, and the joiner asks the leader itself. A join carrying an
//     Origin (the forwarding of older versions) is accepted only for the
//     forwarder's own id. The leader refuses a join for an id alive at
//     another address (ErrIDInUse) and for an expelled id (ErrExpelled).
//   - A reply (msgResult) is taken only from the peer the request was sent
//     to, when its id was known; request ids start at random, so a reply to
//     a request sent by address only (a first join) must guess one.
//   - Ping (msgPing) is open to any id that is not expelled (a joiner pings
//     before its join is applied). A ping from another address than the
//     one recorded for its id (a process restarted on a new port, not yet
//     rejoined) neither proves the member alive nor gets a lease. A pong
//     is accepted only from the leader this node knows, so nobody else can
//     grant it a lease.
//   - Back (msgBack: restarted from DataDir, loading) is for recorded,
//     not expelled members at their recorded address; the leader then
//     waits RestartGrace more before it fails the member. It earns no
//     lease and changes nothing in the registry.
//   - Propose (msgPropose) and remove (msgRemove) are for recorded members
//     only: alive or failed members may propose any client command; a left
//     member only its leave (a retry) and reads. Expelled and unknown ids
//     are refused.
//   - Each proposed command is checked before it enters a batch: join,
//     failed and alive are the leader's own and never come from the wire;
//     host types, leave and spawn must name the sender; expel may not name
//     the leader. The leader sets Origin to the sender and checks the
//     session incarnation against the sender's recorded one (Member.Inc),
//     so no node can open or poison another's exactly-once session.
//
// Every refusal is logged at Warn with the peer and the reason, and counted
// (Refused, Refusals).

import (
	"fmt"
	"io"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/troupe-dev/troupe/transport"
)

// Refusal reasons, as counted by Refusals and logged under "reason".
const (
	RefusalNotMember      = "not a member"
	RefusalExpelled       = "expelled"
	RefusalLeft           = "left member"
	RefusalWrongNode      = "command names another node"
	RefusalLeaderOnly     = "leader-only command"
	RefusalForwardedJoin  = "join forwarded for another node"
	RefusalIDInUse        = "id alive at another address"
	RefusalStaleSession   = "stale session incarnation"
	RefusalPongNotLeader  = "pong not from the leader"
	RefusalExpelLeader    = "expel of the leader"
	RefusalIdentityClaims = "join names another node"
	RefusalWrongReplier   = "reply from another peer"
	RefusalMalformed      = "malformed control frame"
	RefusalClient         = "client certificate"
)

// authz is the Registry's authorization state.
type authz struct {
	total atomic.Uint64
	mu    sync.Mutex
	byWhy map[string]uint64

	peers atomic.Pointer[raftPeers] // the Raft configuration, cached for the Gate
	raft  atomic.Pointer[raft.Raft] // set once NewRaft returned

	joinMu    sync.Mutex
	joinPeers map[string]struct{} // leader ids learnt while joining; nil once registered
	joining   atomic.Bool
	told      map[string]time.Time // leader: joiners told its id, guarded by Registry.joinMu

	kick chan struct{} // 1-buffered: an expel was applied or a snapshot restored
}

// raftPeers is a copy of the servers of the latest Raft configuration.
type raftPeers struct {
	byID   map[string]string // id -> address
	byAddr map[string]string // address -> id
}

// Refused is how many control frames and commands this node refused.
func (r *Registry) Refused() uint64 { return r.az.total.Load() }

// Refusals counts this node's refusals by reason (the Refusal* constants).
func (r *Registry) Refusals() map[string]uint64 {
	r.az.mu.Lock()
	defer r.az.mu.Unlock()
	return maps.Clone(r.az.byWhy)
}

// refuse logs and counts a refusal and returns err (ErrUnauthorized if nil).
func (r *Registry) refuse(from, what, reason string, err error) error {
	r.az.total.Add(1)
	r.az.mu.Lock()
	if r.az.byWhy == nil {
		r.az.byWhy = make(map[string]uint64)
	}
	r.az.byWhy[reason]++
	r.az.mu.Unlock()
	if err == nil {
		err = fmt.Errorf("%w: %s from %s: %s", ErrUnauthorized, what, from, reason)
	}
	addr := ""
	if pa, ok := r.tr.(interface{ PeerAddr(string) string }); ok {
		addr = pa.PeerAddr(from)
	}
	r.log.Warn("refused registry request", "peer", from, "addr", addr, "request", what, "reason", reason, "err", err)
	return err
}

// allowFrame decides, before dispatch, whether the sender may send a
// control frame of this type at all. A refused request is answered with the
// returned error; a refused ping or pong is dropped.
func (r *Registry) allowFrame(from string, c *ctrl) error {
	denied := r.fsm.m.isDenied(from)
	switch c.Type {
	case msgPing:
		if denied {
			return r.refuse(from, "ping", RefusalExpelled, nil)
		}
	case msgBack:
		mb, ok := r.fsm.m.member(from)
		switch {
		case denied:
			return r.refuse(from, "back", RefusalExpelled, nil)
		case !ok:
			return r.refuse(from, "back", RefusalNotMember, nil)
		case mb.Addr != c.Addr:
			// Another process of the id, elsewhere: it is not the member.
			return r.refuse(from, "back", RefusalIDInUse, nil)
		}
	case msgPong:
		if _, lid := r.raft.LeaderWithID(); string(lid) != from {
			return r.refuse(from, "pong", RefusalPongNotLeader, nil)
		}
	case msgJoin:
		switch {
		case denied:
			return r.refuse(from, "join", RefusalExpelled, &SpawnError{Node: from, Err: ErrExpelled})
		case r.isClient(from):
			return r.refuse(from, "join", RefusalClient,
				fmt.Errorf("%w: %s holds a client certificate: it may call and spawn, not join", ErrUnauthorized, from))
		case c.Origin != "" && c.Origin != from:
			if _, ok := r.fsm.m.member(from); !ok {
				return r.refuse(from, "forwarded join", RefusalNotMember,
					fmt.Errorf("%w: %s forwarded a join but is not a member", ErrNotMember, from))
			}
			return r.refuse(from, "join", RefusalForwardedJoin, nil)
		case c.Node != from:
			return r.refuse(from, "join", RefusalIdentityClaims, &SpawnError{Node: c.Node, Err: ErrIdentityMismatch})
		}
	case msgLookup:
		if denied {
			return r.refuse(from, "lookup", RefusalExpelled, &SpawnError{Node: from, Err: ErrExpelled})
		}
	case msgPropose:
		// Membership is judged per command (authorizeCommand), after the
		// decode check, so a malformed command is ErrBadCommand for all.
		if denied {
			return r.refuse(from, "propose", RefusalExpelled, &SpawnError{Node: from, Err: ErrExpelled})
		}
	case msgRemove:
		mb, ok := r.fsm.m.member(from)
		switch {
		case denied || (ok && mb.Status == Expelled):
			return r.refuse(from, "remove", RefusalExpelled, &SpawnError{Node: from, Err: ErrExpelled})
		case !ok:
			return r.refuse(from, "remove", RefusalNotMember, nil)
		}
	}
	return nil
}

// authorizeCommand checks one proposed command from member `from` on the
// leader, after validateCommand, and returns it re-encoded with Origin set
// to the sender.
func (r *Registry) authorizeCommand(from string, data []byte) ([]byte, error) {
	c, err := decodeCommand(data)
	if err != nil {
		return nil, err
	}
	what := "command " + c.Type.String()
	mb, ok := r.fsm.m.member(from)
	if !ok && r.isClient(from) {
		return r.authorizeClient(from, what, c)
	}
	switch {
	case !ok && !r.HasLease():
		// A new leader still applying earlier entries may not know a
		// member that just joined: let it retry.
		return nil, ErrNotLeader
	case !ok:
		return nil, r.refuse(from, what, RefusalNotMember, nil)
	case mb.Status == Expelled:
		return nil, r.refuse(from, what, RefusalExpelled, &SpawnError{Node: from, Err: ErrExpelled})
	}
	switch c.Type {
	case cmdJoin, cmdFailed, cmdAlive, cmdRehome, cmdRelease:
		return nil, r.refuse(from, what, RefusalLeaderOnly, nil)
	case cmdTypes, cmdLeave, cmdSpawn, cmdForget:
		if c.Node != from {
			return nil, r.refuse(from, what, RefusalWrongNode, nil)
		}
		if c.Spawn.Owner != "" { // only a client owns what it spawns
			return nil, r.refuse(from, what, RefusalWrongNode, nil)
		}
	case cmdExpel:
		if c.Node == r.id {
			return nil, r.refuse(from, what, RefusalExpelLeader,
				fmt.Errorf("%w: %s leads; transfer leadership before expelling it", ErrInvalidRequest, c.Node))
		}
	}
	if mb.Status == Left && c.Type != cmdLeave && c.Type != cmdRead {
		return nil, r.refuse(from, what, RefusalLeft, nil)
	}
	if mb.Status != Alive && mb.Status != Failed && mb.Status != Left {
		return nil, r.refuse(from, what, RefusalNotMember, nil)
	}
	c.Origin = from
	if c.Seq == 0 {
		c.Inc = 0
	} else {
		switch {
		case c.Inc < mb.Inc:
			return nil, r.refuse(from, what, RefusalStaleSession,
				fmt.Errorf("%w: incarnation %d of %s, current %d", ErrStaleRequest, c.Inc, from, mb.Inc))
		case c.Inc > mb.Inc:
			// The sender joined again and this replica has not applied it
			// yet (a new leader catching up): retry.
			return nil, ErrNotLeader
		}
	}
	return encodeCommand(c)
}

// authorizeClient checks a command proposed by a client (a holder of a
// client certificate, never a member): it may spawn on its own behalf (not
// on itself: it hosts nothing), stop, and read; nothing else. Its commands
// carry no session (Seq 0): a client names what it spawns, so a retry
// finds the actor it placed.
func (r *Registry) authorizeClient(from, what string, c command) ([]byte, error) {
	if r.fsm.m.isDenied(from) {
		return nil, r.refuse(from, what, RefusalExpelled, &SpawnError{Node: from, Err: ErrExpelled})
	}
	switch c.Type {
	case cmdSpawn, cmdRelease:
		if c.Node != from {
			return nil, r.refuse(from, what, RefusalWrongNode, nil)
		}
	case cmdStop, cmdRead:
	default:
		return nil, r.refuse(from, what, RefusalClient, nil)
	}
	c.Origin, c.Inc, c.Seq, c.Floor = from, 0, 0, 0
	return encodeCommand(c)
}

// isClient reports whether the transport authenticated peer with a client
// certificate.
func (r *Registry) isClient(peer string) bool {
	ic, ok := r.tr.(interface{ IsClient(string) bool })
	return ok && ic.IsClient(peer)
}

func (t cmdType) String() string {
	names := [...]string{"", "join", "types", "failed", "alive", "leave", "spawn", "stop", "restart", "read", "batch", "expel", "rehome", "forget", "release"}
	if int(t) < len(names) && t > 0 {
		return names[t]
	}
	return fmt.Sprintf("cmd(%d)", uint8(t))
}

// Gate: the transport asks these on handshakes and Raft streams. They read
// copies only (the deny set, the cached Raft configuration, Raft's atomic
// copy of its latest one), never wait on Raft's main loop.

var _ transport.Gate = (*Registry)(nil)

// AllowPeer refuses a connection with an expelled id.
func (r *Registry) AllowPeer(id string) error {
	if r.fsm.m.isDenied(id) {
		return fmt.Errorf("%w: %s", ErrExpelled, id)
	}
	return nil
}

// AllowRaft reports whether id may open Raft streams to this node: a server
// of the latest Raft configuration this node knows, or, while this node
// joins, the leader it sent its join to (the leader starts replicating to
// a joiner before it answers the join).
//
// The cache follows committed configuration entries (StoreConfiguration),
// but Raft counts a server from the moment the entry adding it is in the
// log. A follower that has that entry and not yet its commit when the
// leader dies (a join committed by the leader and the joiner alone) must
// still take the joiner's vote requests: the joiner's log is then the
// longer one, so it is the only server that can win, and refusing it left
// the two live voters of three without a leader until the dead one came
// back. A miss therefore asks Raft's own latest configuration (an atomic
// copy, never Raft's main loop).
func (r *Registry) AllowRaft(id string) bool {
	if r.fsm.m.isDenied(id) {
		return false
	}
	if p := r.az.peers.Load(); p != nil {
		if _, ok := p.byID[id]; ok {
			return true
		}
	}
	if r.inLatestRaftConfig(id) {
		return true
	}
	if !r.az.joining.Load() {
		return false
	}
	r.az.joinMu.Lock()
	_, ok := r.az.joinPeers[id]
	r.az.joinMu.Unlock()
	return ok
}

// RaftPeerID returns the id of the Raft server at addr, or "": from the
// cache, else from Raft's latest configuration (as AllowRaft).
func (r *Registry) RaftPeerID(addr string) string {
	if p := r.az.peers.Load(); p != nil {
		if id, ok := p.byAddr[addr]; ok {
			return id
		}
	}
	s, _ := r.latestRaftServer(func(s raft.Server) bool { return string(s.Address) == addr })
	return string(s.ID)
}

// toldJoiner reports, on the leader with joinMu held, whether joiner id
// was already told this leader's id (and forgets it: the next join asks
// again); if not, it records that it is being told now.
func (r *Registry) toldJoiner(id string) bool {
	now := time.Now()
	if t, ok := r.az.told[id]; ok && now.Sub(t) < 4*r.attemptTimeout() {
		delete(r.az.told, id)
		return true
	}
	if r.az.told == nil {
		r.az.told = make(map[string]time.Time)
	}
	for k, t := range r.az.told { // bounded by the ids joining at once
		if now.Sub(t) >= 4*r.attemptTimeout() {
			delete(r.az.told, k)
		}
	}
	r.az.told[id] = now
	return false
}

// addJoinPeer lets leader id open Raft streams while this node joins.
func (r *Registry) addJoinPeer(id string) {
	if id == "" || !r.az.joining.Load() {
		return
	}
	r.az.joinMu.Lock()
	if r.az.joinPeers == nil {
		r.az.joinPeers = make(map[string]struct{})
	}
	r.az.joinPeers[id] = struct{}{}
	r.az.joinMu.Unlock()
}

func (r *Registry) endJoin() {
	r.az.joining.Store(false)
	r.az.joinMu.Lock()
	r.az.joinPeers = nil
	r.az.joinMu.Unlock()
}

// refreshRaftPeers copies the latest Raft configuration for the Gate.
// hashicorp/raft v1.7.3's GetConfiguration reads an atomic copy and never
// waits on Raft's main loop.
func (r *Registry) refreshRaftPeers() {
	ra := r.az.raft.Load()
	if ra == nil {
		return // startRaft seeds the cache once NewRaft returns
	}
	cf := ra.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	p := &raftPeers{byID: make(map[string]string), byAddr: make(map[string]string)}
	for _, s := range cf.Configuration().Servers {
		p.byID[string(s.ID)] = string(s.Address)
		p.byAddr[string(s.Address)] = string(s.ID)
	}
	r.az.peers.Store(p)
	r.fsm.wake() // Expel waits for the configuration to drop the id
}

// inLatestRaftConfig reports whether id is a server of Raft's latest
// configuration, committed or not.
func (r *Registry) inLatestRaftConfig(id string) bool {
	_, ok := r.latestRaftServer(func(s raft.Server) bool { return string(s.ID) == id })
	return ok
}

// latestRaftServer returns the first server of Raft's latest configuration
// (an atomic copy: it never waits on Raft's main loop) that match accepts.
func (r *Registry) latestRaftServer(match func(raft.Server) bool) (raft.Server, bool) {
	ra := r.az.raft.Load()
	if ra == nil {
		return raft.Server{}, false
	}
	cf := ra.GetConfiguration()
	if cf.Error() != nil {
		return raft.Server{}, false
	}
	for _, s := range cf.Configuration().Servers {
		if match(s) {
			return s, true
		}
	}
	return raft.Server{}, false
}

func (r *Registry) inRaftConfig(id string) bool {
	p := r.az.peers.Load()
	if p == nil {
		return false
	}
	_, ok := p.byID[id]
	return ok
}

func (r *Registry) kickAuthz() {
	select {
	case r.az.kick <- struct{}{}:
	default:
	}
}

// dropLoop closes the connections of expelled ids, on each expel applied
// and after each snapshot restore; on an expelled node it makes Owns refuse
// every actor.
func (r *Registry) dropLoop() {
	dropped := make(map[string]struct{})
	for {
		select {
		case <-r.done:
			return
		case <-r.az.kick:
		}
		d := r.fsm.m.denied.Load()
		if d == nil {
			continue
		}
		for id := range *d {
			if id == r.id && !r.leaving.Load() {
				// This node was expelled: serve nothing from now on (its
				// actors were re-placed; Owns refuses every one).
				r.log.Warn("this node was expelled from the cluster")
				r.leaving.Store(true)
			}
			if _, ok := dropped[id]; ok || id == r.id {
				continue
			}
			dropped[id] = struct{}{}
			r.tr.Drop(id)
		}
	}
}

// raftFSM is the FSM given to Raft: the registry's fsm, plus a cache of the
// Raft configuration refreshed on every configuration entry
// (raft.ConfigurationStore) and the deny set refreshed after a restore.
type raftFSM struct {
	*fsm
	r *Registry
}

var _ raft.ConfigurationStore = raftFSM{}

// Apply applies a committed entry, after Config.applyGate (tests).
func (f raftFSM) Apply(l *raft.Log) any {
	if g := f.r.cfg.applyGate; g != nil {
		g()
	}
	return f.fsm.Apply(l)
}

// StoreConfiguration is called by Raft on its FSM goroutine for every
// committed configuration entry.
func (f raftFSM) StoreConfiguration(uint64, raft.Configuration) { f.r.refreshRaftPeers() }

// Restore restores the snapshot, then refreshes the deny set and the cached
// configuration (which the snapshot carries).
func (f raftFSM) Restore(rc io.ReadCloser) error {
	err := f.fsm.Restore(rc)
	f.r.fsm.m.mu.RLock()
	f.r.fsm.m.refreshDenied()
	f.r.fsm.m.mu.RUnlock()
	f.r.kickAuthz()
	f.r.refreshRaftPeers()
	return err
}
