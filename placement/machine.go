package placement

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// machine is the deterministic state machine: members and the actor
// directory. Only apply and restore mutate it, from one goroutine (Raft's FSM
// goroutine, or a test); readers use lookup (lock-free) and members (read
// lock). Every decision in apply depends only on the state, the command and
// the log index, so all replicas agree.
type machine struct {
	dir     directory     // the actor directory readers see (directory.go)
	w       *dirWriter    // its writer's side: apply and restore only
	count   atomic.Int64  // entries in the directory
	stopped atomic.Int64  // of which stopped
	applied atomic.Uint64 // index of the last applied entry
	cmds    atomic.Uint64 // commands applied by this process (replay.go)

	mu      sync.RWMutex // guards members for readers
	members map[string]*Member

	sessions map[string]*session // origin node -> its recent request results
	// owned counts, per owning client, its active actors (Placement.Owner);
	// the leader watches the liveness of these clients only.
	owned map[string]int

	// denied is the set of expelled ids, a copy the transport Gate reads
	// without a lock; apply refreshes it on each expel, the Registry after a
	// restore (refreshDenied).
	denied atomic.Pointer[map[string]struct{}]
	// onExpel, if set, is called (under m.mu; it must not block) after an
	// expel is applied.
	onExpel func()

	// moving, if set, sees every actor event before the entry it describes
	// is stored (so before any reader can see it), with whether the
	// previous host is a failed or left member. The Registry fences moves
	// with it.
	moving func(e *Event, prevDown bool)

	// revoked holds, per member, the index of the last entry that took
	// something away from it: an actor placed on it moved, restarted at a
	// new epoch or stopped, or the member itself failed, left or was
	// expelled. A leader's lease grant to a member asks the member's
	// replica to have applied that far, no further (see Registry.pong):
	// a replica behind on entries that concern others serves on. Not in
	// snapshots: a restore sets every member's to the snapshot's index.
	revMu   sync.Mutex
	revoked map[string]uint64

	// memberRev is the index of the last entry that changed a member
	// (joined, changed its types, failed, came back, left, expelled); a
	// restore sets it to the snapshot's index. Derived from the entries,
	// so every replica's is the same: a client's member watch (lookup.go)
	// compares it across members.
	memberRev atomic.Uint64

	// awaiting counts, per node, the active actors placed on it whose
	// Reason says they await a host (its node was down with no other host
	// for the type): a rejoin scans the node's actors only when it has
	// some. Written by apply and restore only (m.mu held).
	awaiting map[string]int

	// rehomeQ holds, per failed or left member, the ids of its actors still
	// to move off it, in rehome order (see rehomeQueue); empty once all
	// moved. Written by apply only, under rqMu (the leader's rehomeLoop
	// reads it). Not in snapshots: a missing queue is rebuilt from the
	// directory, and the rebuilt one moves the same actors a kept one
	// would.
	rqMu    sync.Mutex
	rehomeQ map[string]*rehomeWork
}

// revokedAt returns the index of the last entry that took something away
// from member id (see machine.revoked).
func (m *machine) revokedAt(id string) uint64 {
	m.revMu.Lock()
	defer m.revMu.Unlock()
	return m.revoked[id]
}

func (m *machine) revoke(id string, index uint64) {
	m.revMu.Lock()
	if m.revoked == nil {
		m.revoked = make(map[string]uint64)
	}
	m.revoked[id] = max(m.revoked[id], index)
	m.revMu.Unlock()
}

// sessionWindow bounds the results each node's session keeps for
// exactly-once retries, and how far a node's requests in flight may span
// (seqWindow): a node never has a request in flight whose seq is
// sessionWindow or more below the newest it issued.
const sessionWindow = 4096

// session remembers the results of a node's recent requests so that a
// retried request (same Origin, Inc, Seq) returns the first result instead
// of applying twice.
//
// Requests reach the log in any order (seqs are taken before commands
// queue for the batcher, and retries follow newer requests), so the window
// is not "the last N applied": each request carries its node's Floor, the
// lowest seq whose request that node may still retry. The session keeps
// the result of every seq at or above the highest Floor it has seen, and
// refuses as stale only a seq below it (its node stopped waiting for it) or
// one evicted by the sessionWindow cap, which a node honouring seqWindow
// never reaches (docs/placement.md, "Exactly-once writes").
type session struct {
	Inc        uint64            `msgpack:"u"`
	Order      []uint64          `msgpack:"o"` // seqs with a result, ascending
	Results    map[uint64]result `msgpack:"r"`
	EvictedMax uint64            `msgpack:"e"`           // largest seq dropped by the cap
	Floor      uint64            `msgpack:"f,omitempty"` // highest Floor seen
}

// remember records the result of seq and drops the results below floor,
// then the smallest ones beyond the cap.
func (s *session) remember(seq, floor uint64, res result) {
	s.Results[seq] = res
	if i, found := slices.BinarySearch(s.Order, seq); !found {
		s.Order = slices.Insert(s.Order, i, seq)
	}
	s.forget(floor)
}

// forget raises the floor and drops what falls below it or beyond the cap.
func (s *session) forget(floor uint64) {
	s.Floor = max(s.Floor, floor)
	n := 0
	for n < len(s.Order) && s.Order[n] < s.Floor {
		delete(s.Results, s.Order[n])
		n++
	}
	for len(s.Order)-n > sessionWindow {
		delete(s.Results, s.Order[n])
		s.EvictedMax = max(s.EvictedMax, s.Order[n])
		n++
	}
	if n > 0 {
		s.Order = slices.Delete(s.Order, 0, n)
	}
}

func newMachine() *machine {
	m := &machine{
		dir:      directory{},
		members:  make(map[string]*Member),
		sessions: make(map[string]*session),
	}
	m.w = newDirWriter(&m.dir)
	return m
}

// lookup reads the published directory: any goroutine, no lock.
func (m *machine) lookup(id string) (Placement, bool) { return m.dir.lookup(id) }

// get reads the writer's working directory: apply only.
func (m *machine) get(id string) (Placement, bool) { return m.w.get(id) }

// activeOn returns the ids of the active actors on node in the working
// directory, in the trie's slot order (re-placement order must be the same
// on every replica; walkSlots). It walks the whole directory, so it skips
// a node without any.
func (m *machine) activeOn(node string) []string {
	mb := m.members[node]
	if mb == nil || mb.Load == 0 {
		return nil
	}
	ids := make([]string, 0, mb.Load)
	walkSlots(m.w.root, 0, func(e *entry) {
		if e.cls.state == Active && e.cls.node == node {
			ids = append(ids, e.id)
		}
	})
	return ids
}

// awaitingOn returns activeOn(node) if some of them await a host, else
// nothing.
func (m *machine) awaitingOn(node string) []string {
	if m.awaiting[node] == 0 {
		return nil
	}
	return m.activeOn(node)
}

func (m *machine) member(id string) (Member, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	mb, ok := m.members[id]
	if !ok {
		return Member{}, false
	}
	c := *mb
	c.Types = slices.Clone(mb.Types)
	return c, true
}

// memberStatus is member's Status without a copy of the member.
func (m *machine) memberStatus(id string) (MemberStatus, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if mb, ok := m.members[id]; ok {
		return mb.Status, true
	}
	return 0, false
}

func (m *machine) memberList() []Member {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Member, 0, len(m.members))
	for _, mb := range m.members {
		c := *mb
		c.Types = slices.Clone(mb.Types)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// actorsOn returns the active actors on node, sorted by id, from the
// published directory; it walks all of it.
func (m *machine) actorsOn(node string) []Placement {
	var out []Placement
	walk(m.dir.root.Load(), func(e *entry) bool {
		if e.cls.state == Active && e.cls.node == node {
			out = append(out, e.placement())
		}
		return true
	})
	slices.SortFunc(out, func(a, b Placement) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// apply decodes and applies one log entry holding a single command. A
// malformed entry is refused with an error in the result and changes nothing
// (every replica refuses it alike).
func (m *machine) apply(index uint64, data []byte) (result, []Event) {
	defer m.applied.Store(index) // after the effects: HasLease relies on it
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.w.publish() // before applied: Owns reads applied, then the entry
	var evs []Event
	res := m.applyOne(index, 0, data, &evs)
	m.cmds.Add(1)
	return res, evs
}

// applyEntry applies one log entry: a single command (result) or a batch
// ([]result, one per command, in order).
func (m *machine) applyEntry(index uint64, data []byte) (any, []Event) {
	if len(data) == 0 || cmdType(data[0]) != cmdBatch {
		return m.apply(index, data)
	}
	defer m.applied.Store(index)
	cmds, err := decodeBatch(data)
	if err != nil {
		return result{Index: index, Err: err}, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.w.publish()
	var evs []Event
	out := make([]result, len(cmds))
	for pos, c := range cmds {
		out[pos] = m.applyOne(index, uint64(pos), c, &evs)
	}
	m.cmds.Add(uint64(len(cmds)))
	return out, evs
}

// applyOne applies the command at position pos of entry index; m.mu is held.
func (m *machine) applyOne(index, pos uint64, data []byte, evs *[]Event) result {
	c, err := decodeCommand(data)
	if err != nil {
		return result{Index: index, Err: err}
	}
	var sess *session
	if c.Seq != 0 && c.Origin != "" {
		sess = m.sessions[c.Origin]
		switch {
		case sess == nil || c.Inc > sess.Inc:
			sess = &session{Inc: c.Inc, Results: make(map[uint64]result)}
			m.sessions[c.Origin] = sess
		case c.Inc < sess.Inc:
			return result{Index: index, Err: fmt.Errorf("%w: from an old incarnation of %s", ErrStaleRequest, c.Origin)}
		}
		if prev, ok := sess.Results[c.Seq]; ok {
			prev.Err = fromWire(prev.WireErr)
			prev.WireErr = nil
			return prev // a retry: the first outcome stands
		}
		if c.Seq < max(sess.Floor, c.Floor) || c.Seq <= sess.EvictedMax {
			sess.forget(c.Floor)
			return result{Index: index, Err: fmt.Errorf("%w: request %d is older than the dedup window", ErrStaleRequest, c.Seq)}
		}
	}
	a := applier{m: m, index: index, epoch: index*maxBatch + pos, events: *evs}
	res := a.run(c)
	*evs = a.events
	res.Index = index
	if sess != nil {
		keep := res
		keep.WireErr, keep.Err = toWire(res.Err), nil
		sess.remember(c.Seq, c.Floor, keep)
	}
	return res
}

type applier struct {
	m      *machine
	index  uint64 // Raft log index of the entry
	epoch  uint64 // index*maxBatch + position in the entry: unique, log-ordered
	events []Event
	// cands, if not nil, caches choose's candidates per type while no
	// member changes (a rehome chunk: moves change loads only).
	cands map[string]candSet
}

func (a *applier) emit(e Event) {
	e.Index = a.index
	switch e.Kind {
	case MemberJoined, MemberFailed, MemberAlive, MemberLeft, MemberExpelled:
		a.m.memberRev.Store(a.index)
	}
	a.events = append(a.events, e)
	if a.m.moving != nil && (e.Kind == ActorPlaced || e.Kind == ActorReplaced || e.Kind == ActorStopped) {
		// The queued copy, so e does not escape (an allocation per event).
		mb := a.m.members[e.Prev.Node]
		a.m.moving(&a.events[len(a.events)-1], mb != nil && (mb.Status == Failed || mb.Status == Left))
	}
}

func (a *applier) run(c command) result {
	switch c.Type {
	case cmdJoin:
		return a.join(c)
	case cmdTypes:
		return a.addTypes(c)
	case cmdFailed:
		return a.memberDown(c.Node, Failed)
	case cmdLeave:
		return a.memberDown(c.Node, Left)
	case cmdAlive:
		return a.alive(c)
	case cmdExpel:
		return a.expel(c)
	case cmdRehome:
		return a.rehomeStep(c)
	case cmdSpawn:
		return a.spawn(c)
	case cmdStop:
		return a.stop(c)
	case cmdRestart:
		return a.restart(c)
	case cmdForget:
		return a.forget(c)
	case cmdRelease:
		return a.release(c)
	case cmdRead:
		p, ok := a.m.get(c.ID)
		if !ok {
			return result{Err: &SpawnError{ID: c.ID, Err: ErrNotFound}}
		}
		return result{Placement: p}
	}
	return result{Err: ErrBadCommand}
}

func mergeTypes(have, add []string) []string {
	out := slices.Clone(have)
	for _, t := range add {
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

func (a *applier) join(c command) result {
	if c.Node == "" {
		return result{Err: fmt.Errorf("%w: empty node id", ErrInvalidRequest)}
	}
	mb := a.m.members[c.Node]
	switch {
	case mb == nil:
		mb = &Member{ID: c.Node}
		a.m.members[c.Node] = mb
	case mb.Status == Expelled:
		return result{Err: &SpawnError{Node: c.Node, Err: ErrExpelled}}
	case mb.Status == Alive && mb.Addr != c.Addr && !c.Takeover:
		// One process per node id: the leader checked this before it
		// changed the Raft configuration; every replica refuses alike.
		return result{Err: fmt.Errorf("%w: %s is alive at %s", ErrIDInUse, c.Node, mb.Addr)}
	}
	mb.Addr = c.Addr
	mb.Status = Alive
	a.m.dropRehome(c.Node)
	mb.Inc = a.index
	mb.Types = mergeTypes(mb.Types, c.Types)
	if c.Voter <= uint8(VoterPrefer) {
		mb.Voter = VoterPolicy(c.Voter)
	}
	a.emit(Event{Kind: MemberJoined, Member: a.snap(mb)})
	a.rehome(c.Node)
	return result{}
}

func (a *applier) addTypes(c command) result {
	mb := a.m.members[c.Node]
	if mb == nil {
		return result{Err: &SpawnError{Node: c.Node, Err: ErrNotMember}}
	}
	mb.Types = mergeTypes(mb.Types, c.Types)
	a.emit(Event{Kind: MemberJoined, Member: a.snap(mb)})
	a.rehome(c.Node)
	return result{}
}

func (a *applier) alive(c command) result {
	mb := a.m.members[c.Node]
	if mb == nil {
		return result{Err: &SpawnError{Node: c.Node, Err: ErrNotMember}}
	}
	if mb.Status == Failed {
		mb.Status = Alive
		a.m.dropRehome(c.Node) // what is left on it, it serves again
		a.emit(Event{Kind: MemberAlive, Member: a.snap(mb)})
		a.rehome(c.Node)
	}
	return result{}
}

// expel marks a member expelled (recording the id if it never joined, so a
// leaked certificate can be denied up front) and re-places its actors as a
// failure would. Moves are fenced: the expelled node may still be up and
// serving until its lease ends.
func (a *applier) expel(c command) result {
	if c.Node == "" {
		return result{Err: fmt.Errorf("%w: empty node id", ErrInvalidRequest)}
	}
	mb := a.m.members[c.Node]
	if mb == nil {
		mb = &Member{ID: c.Node}
		a.m.members[c.Node] = mb
	}
	if mb.Status == Expelled {
		return result{}
	}
	mb.Status = Expelled
	a.m.revoke(c.Node, a.index)
	a.m.refreshDenied()
	if a.m.onExpel != nil {
		a.m.onExpel()
	}
	a.emit(Event{Kind: MemberExpelled, Member: a.snap(mb)})
	a.moveOff(c.Node, mb)
	return result{}
}

// refreshDenied recomputes the deny set from the members; m.mu is held
// (read or write).
func (m *machine) refreshDenied() {
	d := make(map[string]struct{})
	for id, mb := range m.members {
		if mb.Status == Expelled {
			d[id] = struct{}{}
		}
	}
	m.denied.Store(&d)
}

// isDenied reports whether id was expelled, from the lock-free copy.
func (m *machine) isDenied(id string) bool {
	d := m.denied.Load()
	if d == nil {
		return false
	}
	_, ok := (*d)[id]
	return ok
}

// memberDown marks a member failed or left and re-places its actors.
func (a *applier) memberDown(node string, st MemberStatus) result {
	mb := a.m.members[node]
	if mb == nil {
		return result{Err: &SpawnError{Node: node, Err: ErrNotMember}}
	}
	if mb.Status == st || mb.Status == Left || mb.Status == Expelled {
		return result{}
	}
	mb.Status = st
	a.m.revoke(node, a.index)
	kind := MemberFailed
	if st == Left {
		kind = MemberLeft
	}
	a.emit(Event{Kind: kind, Member: a.snap(mb)})
	a.moveOff(node, mb)
	return result{}
}

// moveOff starts moving the actors off member node, down (failed, left or
// expelled) in this entry.
func (a *applier) moveOff(node string, mb *Member) {
	a.m.dropRehome(node)
	if mb.Load == 0 {
		return
	}
	if a.m.count.Load() > rehomeSyncMax {
		// Its actors move in cmdRehome entries once the queue is built.
		a.m.startRehome(node, mb.Load, false)
		return
	}
	// A small directory: the queue now, the first chunk in this entry.
	a.m.startRehome(node, mb.Load, true)
	a.rehomeChunk(node, rehomeChunk)
}

// down reports whether mb's actors are to move off it.
func (mb *Member) down() bool {
	return mb.Status == Failed || mb.Status == Left || mb.Status == Expelled
}

// rehomeSyncMax is the directory size up to which a failure (or leave, or
// expel) entry builds
// its queue itself (a walk of the whole directory, ~0.1 µs an entry) and
// moves the first chunk; past it, a goroutine builds the queue and the
// failure entry moves nothing. A variable for tests.
var rehomeSyncMax int64 = 1 << 14

// rehomeChunk bounds the actors one entry moves off a down member: at
// ~1.2 µs a move in rehome order (BenchmarkApplyRehome), an entry of 8 192
// holds the state machine ~10–35 ms, so other writes and the followers'
// applies go on between the chunks of a large failover. (2 048 cost 2.5×
// as long per move in id order, where each move copied its own path; in
// trie order larger chunks share more of the path and need fewer Raft
// round trips.) The leader proposes chunks (cmdRehome) until none are
// left (Registry.rehomeLoop).
const rehomeChunk = 8192

// rehomeStep applies cmdRehome: the next chunk of c.Node's actors, if the
// member is still down (failed, left or expelled).
func (a *applier) rehomeStep(c command) result {
	mb := a.m.members[c.Node]
	if mb == nil || !mb.down() {
		return result{}
	}
	n := int(min(max(c.Epoch, 1), rehomeChunk))
	return result{More: a.rehomeChunk(c.Node, n)}
}

// rehomeChunk re-places up to n of the actors still on down member node,
// in rehome order (least-loaded depends on order), and reports whether any
// may be left. Its queue is the ids of the actors active on node that do
// not await a host, in rehome order; an id that moved, stopped or came to
// await a host meanwhile is skipped without counting, so a queue rebuilt
// from the directory (after a restore) moves exactly what a kept one
// would.
func (a *applier) rehomeChunk(node string, n int) bool {
	mb := a.m.members[node]
	a.m.rqMu.Lock()
	work := a.m.rehomeQ[node]
	a.m.rqMu.Unlock()
	if work == nil {
		work = a.m.startRehome(node, mb.Load, true) // a restored replica
	}
	<-work.ready // the leader waits for its own before it proposes a chunk
	q := work.ids
	reason, count := "node "+node+" failed", mb.Status != Left // a leave spends no restart
	switch mb.Status {
	case Left:
		reason = "node " + node + " left"
	case Expelled:
		reason = "node " + node + " expelled"
	}
	a.cands = make(map[string]candSet)
	defer func() { a.cands = nil }()
	a.events = slices.Grow(a.events, min(n, len(q))) // an event per move
	moved := 0
	for len(q) > 0 && moved < n {
		id := q[0]
		q[0] = "" // the queue's array lives until the last chunk
		q = q[1:]
		p, ok := a.m.get(id)
		if !ok || p.State != Active || p.Node != node || strings.HasPrefix(p.Reason, awaitingHost) {
			continue
		}
		a.replace(p, reason, count)
		moved++
	}
	a.m.rqMu.Lock()
	work.ids = q
	a.m.rqMu.Unlock()
	return len(q) > 0
}

// rehomeWork is the queue of the actors still to move off one down member,
// built (rehomeQueue) from the directory as the entry that started it left
// it: by that entry in a small directory, else by a goroutine, so a large
// failure entry costs no walk of the directory; the first chunk waits for
// it.
type rehomeWork struct {
	ready chan struct{} // closed once ids is built
	ids   []string      // the builder's until ready; then apply's (rqMu)
}

// startRehome starts building node's queue from the working directory as
// it is now: in a goroutine, unless now is set. The current nodes are
// frozen (a later write in this entry copies them), so the builder walks a
// trie no one changes. load sizes the queue. Called by apply only.
func (m *machine) startRehome(node string, load int, now bool) *rehomeWork {
	work := &rehomeWork{ready: make(chan struct{})}
	if now {
		work.ids = rehomeQueue(m.w.root, node, load)
		close(work.ready)
	} else {
		root := m.w.freeze()
		go func() {
			work.ids = rehomeQueue(root, node, load)
			close(work.ready)
		}()
	}
	m.rqMu.Lock()
	if m.rehomeQ == nil {
		m.rehomeQ = make(map[string]*rehomeWork)
	}
	m.rehomeQ[node] = work
	m.rqMu.Unlock()
	return work
}

// rehomeQueue returns the ids of the actors under root active on node that
// do not await a host, in rehome order: the trie's slot order (walkSlots),
// which is the order of the directory's hash taken 6 bits at a time from
// the low end, then of the ids among full collisions. The hash is the same
// on every replica (siphash.go) and the order does not depend on where in
// the trie an entry sits (inline or pushed down), so every replica moves
// the same actors in the same order; and since the order is the trie's, a
// chunk's moves fall in a few subtries and share their path copies (2 048
// ids in id order copied a distinct ~1 KB node for most moves). load sizes
// the queue.
func rehomeQueue(root *hnode, node string, load int) []string {
	q := make([]string, 0, load)
	walkSlots(root, 0, func(e *entry) {
		if e.cls.state == Active && e.cls.node == node && !strings.HasPrefix(e.cls.reason, awaitingHost) {
			q = append(q, e.id)
		}
	})
	return q
}

// dropRehome forgets node's queue: it is alive again, and what is left on
// it, it serves.
func (m *machine) dropRehome(node string) {
	m.rqMu.Lock()
	delete(m.rehomeQ, node)
	m.rqMu.Unlock()
}

// nextRehome returns a down member with actors still to move off it, or
// "", and the channel closed once its queue is built (nil if it has
// none yet). A down member holding actors and no queue (a restored
// replica) is returned too: its next chunk builds the queue.
func (m *machine) nextRehome() (string, <-chan struct{}) {
	m.mu.RLock() // before rqMu, as apply takes them
	defer m.mu.RUnlock()
	m.rqMu.Lock()
	defer m.rqMu.Unlock()
	for node, w := range m.rehomeQ {
		select {
		case <-w.ready:
			if len(w.ids) == 0 {
				continue
			}
		default:
		}
		return node, w.ready
	}
	for id, mb := range m.members {
		if _, ok := m.rehomeQ[id]; !ok && mb.Load > 0 && mb.down() {
			return id, nil
		}
	}
	return "", nil
}

// replace moves p to a new node (or the same one) with a new epoch under its
// restart policy, or stops it when the budget is spent or no node fits.
// countRestart says whether this uses the budget (a leave does not).
func (a *applier) replace(p Placement, reason string, countRestart bool) Placement {
	prev := p
	if countRestart {
		if p.Policy.MaxRestarts == 0 || (p.Policy.MaxRestarts > 0 && p.Restarts >= p.Policy.MaxRestarts) {
			return a.stopActor(p, reason+"; restart budget spent")
		}
		p.Restarts++
	}
	node, err := a.choose(p.ID, p.Type, p.Strategy, p.Node, p.Node, true)
	if errors.Is(err, ErrNoCandidate) {
		// No alive member hosts the type (the whole cluster is stopping,
		// or its last host went down): the actor stays placed where it
		// was, unserved, until a member hosting its type is alive again
		// (rehome). Stopping it would lose it for good.
		prev.Reason = awaitingHost + reason
		a.store(prev)
		return prev
	}
	if err != nil {
		return a.stopActor(prev, reason+"; "+err.Error())
	}
	p.Node, p.Epoch, p.Reason = node, a.epoch, ""
	a.emit(Event{Kind: ActorReplaced, Actor: p, Prev: prev}) // before store: see machine.moving
	a.store(p)
	return p
}

// awaitingHost prefixes the Reason of an active actor whose node is down
// and that no alive member could take (see replace).
const awaitingHost = "awaiting a host: "

// rehome re-places the actors left on down members for want of a host
// (replace) that member node, alive now, hosts. Only down members still
// holding actors are walked, so a join costs nothing in the usual case.
func (a *applier) rehome(node string) {
	to := a.m.members[node]
	if to == nil || to.Status != Alive || len(to.Types) == 0 {
		return
	}
	// Its own waiting actors are served by it again, where they are.
	// (Only then is its whole directory walked: a member with a million
	// actors rejoins in one cheap entry.)
	for _, id := range a.m.awaitingOn(node) {
		if p, _ := a.m.get(id); strings.HasPrefix(p.Reason, awaitingHost) {
			p.Reason = ""
			a.store(p)
		}
	}
	var down []string
	for id, mb := range a.m.members {
		if mb.Status != Alive && mb.Load > 0 {
			down = append(down, id)
		}
	}
	slices.Sort(down)
	for _, d := range down {
		for _, id := range a.m.activeOn(d) {
			p, _ := a.m.get(id)
			if to.hosts(p.Type) {
				a.replace(p, strings.TrimPrefix(p.Reason, awaitingHost), false)
			}
		}
	}
}

func (a *applier) stopActor(p Placement, reason string) Placement {
	prev := p
	p.State, p.Reason = Stopped, reason
	a.emit(Event{Kind: ActorStopped, Actor: p, Prev: prev}) // before store: see machine.moving
	a.store(p)
	return p
}

// store puts p in the working directory and keeps the members' loads.
func (a *applier) store(p Placement) {
	old, existed := a.m.w.put(p)
	if existed && old.State == Stopped {
		a.m.stopped.Add(-1)
	}
	if p.State == Stopped {
		a.m.stopped.Add(1)
	}
	if !existed {
		a.m.count.Add(1)
	} else if old.State == Active {
		a.count(old, -1)
		if old.Node != p.Node || old.Epoch != p.Epoch || p.State != Active {
			a.m.revoke(old.Node, a.index)
		}
	}
	if p.State == Active {
		a.count(p, 1)
	}
}

// count adds d to what active placement p counts for: its node's load,
// the actors awaiting a host there, its owner's actors.
func (a *applier) count(p Placement, d int) {
	if mb := a.m.members[p.Node]; mb != nil {
		mb.Load += d
	}
	if strings.HasPrefix(p.Reason, awaitingHost) {
		a.m.await(p.Node, d)
	}
	if p.Owner != "" {
		a.m.own(p.Owner, d)
	}
}

// drop removes active placement p from the working directory and keeps
// the counts and loads store keeps.
func (a *applier) drop(p Placement) {
	if _, ok := a.m.w.del(p.ID); !ok {
		return
	}
	a.m.count.Add(-1)
	a.count(p, -1)
	a.m.revoke(p.Node, a.index)
}

// own adds d to client's count of owned active actors.
func (m *machine) own(client string, d int) { bump(&m.owned, client, d) }

// bump adds d to (*counts)[k], dropping keys that reach zero.
func bump(counts *map[string]int, k string, d int) {
	if *counts == nil {
		*counts = make(map[string]int)
	}
	if (*counts)[k] += d; (*counts)[k] <= 0 {
		delete(*counts, k)
	}
}

// owners returns the clients owning active actors, sorted.
func (m *machine) owners() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := slices.Collect(maps.Keys(m.owned))
	slices.Sort(out)
	return out
}

// await adds d to node's count of actors awaiting a host.
func (m *machine) await(node string, d int) { bump(&m.awaiting, node, d) }

func (a *applier) snap(mb *Member) Member {
	c := *mb
	c.Types = slices.Clone(mb.Types)
	return c
}

// choose picks a node for actor id of type typ. given is the OnNode target,
// caller the Local target. With fallback (a re-placement, where both are the
// old node) a dead or unfit target falls back to LeastLoaded.
func (a *applier) choose(id, typ string, s Strategy, given, caller string, fallback bool) (string, error) {
	cs, ok := a.cands[typ]
	if !ok {
		cs = a.candidates(typ)
		if a.cands != nil {
			a.cands[typ] = cs
		}
	}
	if !cs.known {
		return "", &SpawnError{ID: id, Type: typ, Err: ErrUnknownType}
	}
	cands := cs.alive
	pinned := func(node string) (string, error) {
		mb := a.m.members[node]
		if mb == nil || mb.Status != Alive {
			return "", &SpawnError{ID: id, Type: typ, Node: node, Err: ErrNodeNotAlive}
		}
		if !mb.hosts(typ) {
			return "", &SpawnError{ID: id, Type: typ, Node: node, Err: ErrTypeNotHosted}
		}
		return node, nil
	}
	switch s {
	case OnNode:
		n, err := pinned(given)
		if err == nil || !fallback { // a spawn: no fallback
			return n, err
		}
	case Local:
		n, err := pinned(caller)
		if err == nil || !fallback {
			return n, err
		}
	}
	if len(cands) == 0 {
		return "", &SpawnError{ID: id, Type: typ, Err: ErrNoCandidate}
	}
	switch s {
	case Random:
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], a.epoch)
		h := fnv.New64a()
		h.Write(b[:])
		h.Write([]byte(id))
		return cands[h.Sum64()%uint64(len(cands))].ID, nil
	case HashID:
		best, bestH := "", uint64(0)
		for _, mb := range cands {
			h := fnv.New64a()
			h.Write([]byte(id))
			h.Write([]byte{0})
			h.Write([]byte(mb.ID))
			if v := h.Sum64(); best == "" || v > bestH {
				best, bestH = mb.ID, v
			}
		}
		return best, nil
	}
	best := cands[0]
	for _, mb := range cands[1:] {
		if mb.Load < best.Load {
			best = mb
		}
	}
	return best.ID, nil
}

// candSet is what choose needs of the members for one type: whether any
// member hosts it, and the alive ones that do, by id. Loads are read
// through the pointers, so a set stays right while only loads change.
type candSet struct {
	known bool
	alive []*Member
}

func (a *applier) candidates(typ string) candSet {
	var cs candSet
	for _, mb := range a.m.members {
		if mb.hosts(typ) {
			cs.known = true
			if mb.Status == Alive {
				cs.alive = append(cs.alive, mb)
			}
		}
	}
	slices.SortFunc(cs.alive, func(x, y *Member) int { return cmp.Compare(x.ID, y.ID) })
	return cs
}

func (a *applier) spawn(c command) result {
	req := c.Spawn
	fail := func(err error) result {
		return result{Err: &SpawnError{ID: req.ID, Type: req.Type, Node: req.Node, Err: err}}
	}
	if req.Type == "" || strings.HasPrefix(req.ID, "~") || req.Strategy >= strategyEnd {
		return fail(ErrInvalidRequest)
	}
	if !req.Policy.valid() {
		return fail(ErrInvalidPolicy)
	}
	if req.Owner != "" && (req.Owner != c.Origin || a.m.members[req.Owner] != nil) {
		return fail(fmt.Errorf("%w: an actor is owned only by the client that spawns it", ErrInvalidRequest))
	}
	if req.ID != "" {
		if p, ok := a.m.get(req.ID); ok && p.State == Active {
			if p.Type != req.Type {
				return fail(fmt.Errorf("%w: id in use by type %s", ErrInvalidRequest, p.Type))
			}
			return result{Placement: p, Existed: true}
		}
	}
	id := req.ID
	if id == "" {
		id = "~" + strconv.FormatUint(a.epoch, 10)
	}
	given := req.Node
	node, err := a.choose(id, req.Type, req.Strategy, given, c.Node, false)
	if err != nil {
		var se *SpawnError
		if errors.As(err, &se) {
			se.ID = req.ID // not the id a refused unnamed spawn would have had
		}
		return result{Err: err}
	}
	p := Placement{ID: id, Type: req.Type, Node: node, Epoch: a.epoch, Strategy: req.Strategy, Policy: req.Policy, Owner: req.Owner}
	a.store(p)
	a.emit(Event{Kind: ActorPlaced, Actor: p})
	return result{Placement: p}
}

func (a *applier) stop(c command) result {
	p, ok := a.m.get(c.ID)
	if !ok {
		return result{Err: &SpawnError{ID: c.ID, Err: ErrNotFound}}
	}
	if c.Epoch != 0 && c.Epoch != p.Epoch {
		return result{Placement: p, Err: &SpawnError{ID: c.ID, Err: ErrStaleEpoch}}
	}
	if p.State == Stopped {
		return result{Placement: p}
	}
	reason := c.Reason
	if reason == "" {
		reason = "stopped"
	}
	return result{Placement: a.stopActor(p, reason)}
}

// forget drops the entry of an actor its host passivated: only the host's
// own command (Origin, stamped by the leader from its certificate), only
// for the active placement at the epoch the host served. Anything else —
// the actor moved, restarted or stopped meanwhile — leaves it as it is.
func (a *applier) forget(c command) result {
	p, ok := a.m.get(c.ID)
	switch {
	case !ok:
		return result{Err: &SpawnError{ID: c.ID, Err: ErrNotFound}}
	case p.State != Active || p.Node != c.Node || p.Node != c.Origin:
		return result{Placement: p, Err: &SpawnError{ID: c.ID, Type: p.Type, Node: c.Node, Err: ErrNotOwner}}
	case c.Epoch != p.Epoch:
		return result{Placement: p, Err: &SpawnError{ID: c.ID, Type: p.Type, Err: ErrStaleEpoch}}
	}
	a.drop(p)
	a.emit(Event{Kind: ActorForgotten, Prev: p})
	return result{Placement: p}
}

// release stops every active actor owned by client c.Node: it closed, or
// went silent past the registry's client timeout. Only that client or the
// leader proposes it (authz.go).
func (a *applier) release(c command) result {
	if c.Node == "" {
		return result{Err: fmt.Errorf("%w: empty owner", ErrInvalidRequest)}
	}
	if a.m.owned[c.Node] == 0 {
		return result{}
	}
	var owned []Placement
	walk(a.m.w.root, func(e *entry) bool {
		if e.cls.owner == c.Node && e.cls.state == Active {
			owned = append(owned, e.placement())
		}
		return true
	})
	slices.SortFunc(owned, func(x, y Placement) int { return cmp.Compare(x.ID, y.ID) }) // trie order is per process
	reason := c.Reason
	if reason == "" {
		reason = "owner " + c.Node + " gone"
	}
	for _, p := range owned {
		a.stopActor(p, reason)
	}
	return result{}
}

func (a *applier) restart(c command) result {
	p, ok := a.m.get(c.ID)
	if !ok {
		return result{Err: &SpawnError{ID: c.ID, Err: ErrNotFound}}
	}
	if p.State == Stopped {
		return result{Placement: p}
	}
	if c.Epoch != 0 && c.Epoch != p.Epoch {
		// Already restarted by someone else: nothing to do.
		return result{Placement: p, Err: &SpawnError{ID: c.ID, Err: ErrStaleEpoch}}
	}
	reason := c.Reason
	if reason == "" {
		reason = "crashed"
	}
	return result{Placement: a.replace(p, reason, true)}
}
