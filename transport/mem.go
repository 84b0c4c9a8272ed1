package transport

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// MemAddrPrefix starts the address of every Mem node: "mem:" + node id.
const MemAddrPrefix = "mem:"

// MemConfig configures one in-memory node. The zero value is valid.
type MemConfig struct {
	// MaxFrameSize bounds one frame. Zero means 4 MiB.
	MaxFrameSize int
	// MaxQueueBytes bounds the bytes of one kind queued to one peer and
	// not yet delivered; Send waits while it is exceeded. Each kind has its
	// own budget, so a full calls queue never holds back control frames.
	// Zero means 8 MiB.
	MaxQueueBytes int
	// Logger receives dropped frames and refused dials. Nil means silent.
	Logger *slog.Logger
	// Client makes the node a client, as a client certificate does over
	// QUIC (see IssueOptions.Client and IsClient).
	Client bool
}

func (c MemConfig) withDefaults() MemConfig {
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = DefaultMaxQueueBytes
	}
	return c
}

// MemNetwork is an in-memory network of Mem nodes with fault injection:
// partitions, isolation, seeded frame drops and delays, all per pair of node
// ids and symmetric. It uses no sockets and no goroutines of its own; every
// wait goes through the time package and channels created by the calling
// goroutine, so a network built inside a testing/synctest bubble runs on the
// bubble's fake clock. Faults apply to frames at delivery time, so frames
// already queued when a partition starts are lost, as on a real link.
type MemNetwork struct {
	mu       sync.Mutex
	seed     uint64
	nodes    map[string]*Mem
	parts    map[memPair]bool
	isolated map[string]bool
	drops    map[memPair]float64
	delays   map[memPair]time.Duration
	// changed is closed (and replaced) when a node joins or a partition
	// heals: a Raft Dial waiting for its peer to become reachable looks
	// again.
	changed chan struct{}
}

type memPair struct{ a, b string }

// changes returns the channel the next join or heal closes.
func (n *MemNetwork) changes() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.changed
}

// changedLocked wakes the dials waiting on changes. n.mu must be held.
func (n *MemNetwork) changedLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
}

func mkPair(a, b string) memPair {
	if b < a {
		a, b = b, a
	}
	return memPair{a, b}
}

// NewMemNetwork returns an empty network whose drop decisions are seeded
// with 1; see SetSeed.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{
		seed:     1,
		nodes:    make(map[string]*Mem),
		parts:    make(map[memPair]bool),
		isolated: make(map[string]bool),
		drops:    make(map[memPair]float64),
		delays:   make(map[memPair]time.Duration),
		changed:  make(chan struct{}),
	}
}

// SetSeed sets the seed of the drop decisions of links created from now on.
// Each directed link draws from its own generator seeded by (seed, from, to),
// so its drops depend only on the order of its own frames.
func (n *MemNetwork) SetSeed(seed uint64) {
	n.mu.Lock()
	n.seed = seed
	n.mu.Unlock()
}

// Join creates node id on the network with a default MemConfig.
func (n *MemNetwork) Join(id string) (*Mem, error) {
	return n.JoinConfig(id, MemConfig{})
}

// JoinConfig creates node id on the network. The id must not be in use by an
// open node; a closed node's id may be joined again (a restart).
func (n *MemNetwork) JoinConfig(id string, cfg MemConfig) (*Mem, error) {
	if id == "" {
		return nil, fmt.Errorf("transport: empty node id")
	}
	m := &Mem{
		net:     n,
		id:      id,
		cfg:     cfg.withDefaults(),
		done:    make(chan struct{}),
		links:   make(map[memLinkKey]*memLink),
		stats:   make(map[string]*peerCounters),
		conns:   make(map[*memConn]struct{}),
		handler: make(map[Kind]Handler),

		connected: make(map[string]bool),
	}
	m.layer = &memStreamLayer{m: m, accept: make(chan net.Conn), closed: make(chan struct{}), abort: make(chan struct{})}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.nodes[id]; ok {
		return nil, fmt.Errorf("transport: node %q already joined", id)
	}
	n.nodes[id] = m
	n.changedLocked()
	return m, nil
}

// Partition cuts the link between a and b: frames between them are dropped,
// Send and Dial between them fail with ErrUnreachable, and their open Raft
// stream conns are closed.
func (n *MemNetwork) Partition(a, b string) {
	n.mu.Lock()
	n.parts[mkPair(a, b)] = true
	n.mu.Unlock()
	n.breakConns(func(x, y string) bool { return mkPair(x, y) == mkPair(a, b) })
}

// Isolate cuts id from every other node, present and future, until HealNode
// or HealAll.
func (n *MemNetwork) Isolate(id string) {
	n.mu.Lock()
	n.isolated[id] = true
	n.mu.Unlock()
	n.breakConns(func(x, y string) bool { return x == id || y == id })
}

// Heal restores the link between a and b cut by Partition. It does not undo
// Isolate.
func (n *MemNetwork) Heal(a, b string) {
	n.mu.Lock()
	delete(n.parts, mkPair(a, b))
	n.changedLocked()
	n.mu.Unlock()
}

// HealNode undoes Isolate(id) and every Partition involving id.
func (n *MemNetwork) HealNode(id string) {
	n.mu.Lock()
	delete(n.isolated, id)
	for p := range n.parts {
		if p.a == id || p.b == id {
			delete(n.parts, p)
		}
	}
	n.changedLocked()
	n.mu.Unlock()
}

// HealAll removes every fault: partitions, isolation, drops and delays.
func (n *MemNetwork) HealAll() {
	n.mu.Lock()
	clear(n.parts)
	clear(n.isolated)
	clear(n.drops)
	clear(n.delays)
	n.changedLocked()
	n.mu.Unlock()
}

// Drop makes the link between a and b lose the given fraction (0 to 1) of
// frames, in both directions, chosen by the seeded generator of each link.
// Raft stream conns are not affected (they model a reliable stream).
func (n *MemNetwork) Drop(a, b string, fraction float64) {
	n.mu.Lock()
	if fraction <= 0 {
		delete(n.drops, mkPair(a, b))
	} else {
		n.drops[mkPair(a, b)] = min(fraction, 1)
	}
	n.mu.Unlock()
}

// Delay makes frames between a and b arrive d after they were sent, in both
// directions and in order, and makes Dial between them take d.
func (n *MemNetwork) Delay(a, b string, d time.Duration) {
	n.mu.Lock()
	if d <= 0 {
		delete(n.delays, mkPair(a, b))
	} else {
		n.delays[mkPair(a, b)] = d
	}
	n.mu.Unlock()
}

// reachableLocked reports whether a and b can talk. n.mu must be held.
func (n *MemNetwork) reachableLocked(a, b string) bool {
	return !n.isolated[a] && !n.isolated[b] && !n.parts[mkPair(a, b)]
}

// breakConns closes every Raft conn between a pair matching cut and ends
// the "connection" of every such pair (OnDisconnect fires on both ends).
func (n *MemNetwork) breakConns(cut func(a, b string) bool) {
	n.mu.Lock()
	nodes := make([]*Mem, 0, len(n.nodes))
	for _, m := range n.nodes {
		nodes = append(nodes, m)
	}
	n.mu.Unlock()
	var doomed []*memConn
	for _, m := range nodes {
		m.mu.Lock()
		for c := range m.conns {
			if cut(m.id, c.peer) {
				doomed = append(doomed, c)
			}
		}
		for peer := range m.connected {
			if cut(m.id, peer) {
				m.disconnectLocked(peer)
			}
		}
		m.mu.Unlock()
	}
	for _, c := range doomed {
		c.Close()
	}
}

// lookup resolves a peer to an open node, checking reachability from "from".
func (n *MemNetwork) lookup(from string, to Peer) (*Mem, time.Duration, error) {
	id := to.ID
	if to.Addr != "" {
		aid, ok := strings.CutPrefix(to.Addr, MemAddrPrefix)
		if !ok {
			return nil, 0, fmt.Errorf("%w: %q is not a mem address", ErrUnreachable, to.Addr)
		}
		if to.ID != "" && to.ID != aid {
			return nil, 0, fmt.Errorf("%w: %q answers at %q, want %q", ErrPeerIdentity, aid, to.Addr, to.ID)
		}
		id = aid
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	m, ok := n.nodes[id]
	if !ok || id == "" {
		return nil, 0, fmt.Errorf("%w: %q", ErrUnreachable, id)
	}
	if !n.reachableLocked(from, id) {
		return nil, 0, fmt.Errorf("%w: %q partitioned from %q", ErrUnreachable, id, from)
	}
	return m, n.delays[mkPair(from, id)], nil
}

func (n *MemNetwork) leave(m *Mem) {
	n.mu.Lock()
	if n.nodes[m.id] == m {
		delete(n.nodes, m.id)
	}
	n.mu.Unlock()
}

// Mem is one node of a MemNetwork; it implements Transport. Frames to one
// peer go through a queue bounded in bytes and one delivery goroutine per
// peer, which calls the receiver's Handler.
type Mem struct {
	net   *MemNetwork
	id    string
	cfg   MemConfig
	done  chan struct{}
	layer *memStreamLayer

	gate   atomic.Pointer[gateBox]
	onDisc atomic.Pointer[func(peer string)]

	mu         sync.Mutex
	closed     bool
	connected  map[string]bool // peers this node has a "connection" with
	handler    map[Kind]Handler
	links      map[memLinkKey]*memLink // one queue and goroutine per peer and kind
	stats      map[string]*peerCounters
	conns      map[*memConn]struct{}
	wg         sync.WaitGroup // delivery goroutines
	deliveries sync.WaitGroup // handler calls into this node
}

var _ Transport = (*Mem)(nil)

// ID returns the node id.
func (m *Mem) ID() string { return m.id }

// Addr returns "mem:" + ID().
func (m *Mem) Addr() string { return MemAddrPrefix + m.id }

// Handle sets the handler of frames of kind k.
func (m *Mem) Handle(k Kind, h Handler) {
	m.mu.Lock()
	m.handler[k] = h
	m.mu.Unlock()
}

// Send queues a copy of frame to the peer. It fails with ErrUnreachable when
// the peer is not on the network or is cut off from this node, and with
// ErrFrameTooLarge when frame exceeds MaxFrameSize.
func (m *Mem) Send(ctx context.Context, to Peer, k Kind, frame []byte) error {
	if len(frame) > m.cfg.MaxFrameSize {
		return &FrameSizeError{Size: uint64(len(frame)), Max: m.cfg.MaxFrameSize}
	}
	if m.isClosed() {
		return ErrClosed
	}
	target, delay, err := m.net.lookup(m.id, to)
	if err != nil {
		return err
	}
	if target == m {
		return fmt.Errorf("%w: %q is this node", ErrUnreachable, m.id)
	}
	if err := m.admit(target); err != nil {
		return err
	}
	l, err := m.link(target.id, k)
	if err != nil {
		return err
	}
	f := memFrame{kind: k, data: append([]byte(nil), frame...)}
	if delay > 0 {
		f.due = time.Now().Add(delay)
	}
	// Connected before the frame can arrive: the peer's answer to it (a
	// TrySend) must find the connection, as it would over QUIC.
	connect(m, target)
	return l.enqueue(ctx, f, true)
}

// StreamLayer returns the node's Raft stream layer.
func (m *Mem) StreamLayer() raft.StreamLayer { return m.layer }

// IsClient reports whether peer is an open node joined as a client
// (MemConfig.Client).
func (m *Mem) IsClient(peer string) bool {
	p := m.net.node(peer)
	return p != nil && p.cfg.Client
}

// Stats returns the counters of every peer this node has exchanged frames with.
func (m *Mem) Stats() []PeerStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]PeerStats, 0, len(m.stats))
	for id, c := range m.stats {
		s := c.snapshot(id)
		for key, l := range m.links {
			if key.peer == id {
				l.mu.Lock()
				s.QueuedBytes += l.queued
				l.mu.Unlock()
			}
		}
		out = append(out, s)
	}
	sortStats(out)
	return out
}

// Close leaves the network, closes every Raft conn, drops queued frames and
// waits for the node's goroutines and for handler calls into it to return.
func (m *Mem) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.done)
	conns := make([]*memConn, 0, len(m.conns))
	for c := range m.conns {
		conns = append(conns, c)
	}
	peers := make([]string, 0, len(m.connected))
	for p := range m.connected {
		peers = append(peers, p)
	}
	clear(m.connected)
	m.mu.Unlock()
	m.net.leave(m)
	for _, p := range peers { // the link broke for them
		if peer := m.net.node(p); peer != nil {
			peer.disconnect(m.id)
		}
	}
	m.layer.Close()
	for _, c := range conns {
		c.Close()
	}
	m.wg.Wait()
	m.deliveries.Wait()
	return nil
}

func (m *Mem) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

func (m *Mem) countersLocked(peer string) *peerCounters {
	c := m.stats[peer]
	if c == nil {
		c = new(peerCounters)
		m.stats[peer] = c
	}
	return c
}

// memLinkKey names the outgoing link of one kind to one peer. Kinds have
// their own queues, byte budgets and delivery goroutines, as QUIC streams
// do, so a slow calls handler or a full calls queue never holds back
// control frames.
type memLinkKey struct {
	peer string
	kind Kind
}

// link returns the outgoing link of kind k to peer, starting its goroutine
// if new.
func (m *Mem) link(peer string, k Kind) (*memLink, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	key := memLinkKey{peer, k}
	if l := m.links[key]; l != nil {
		return l, nil
	}
	m.net.mu.Lock()
	seed := m.net.seed
	m.net.mu.Unlock()
	h := fnv.New64a()
	h.Write([]byte(m.id))
	h.Write([]byte{0})
	h.Write([]byte(peer))
	if k != KindCalls { // KindCalls keeps the sequence it had with one link per peer
		h.Write([]byte{0, byte(k)})
	}
	l := &memLink{
		from:  m,
		to:    peer,
		kind:  k,
		stats: m.countersLocked(peer),
		wake:  make(chan struct{}, 1),
		space: make(chan struct{}),
		rng:   rand.New(rand.NewPCG(seed, h.Sum64())),
	}
	m.links[key] = l
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		l.run()
	}()
	return l, nil
}

// deliver hands f from "from" to this node's handler, unless closed.
func (m *Mem) deliver(from string, f memFrame) bool {
	if g := m.loadGate(); g != nil && g.AllowPeer(from) != nil {
		return false
	}
	m.mu.Lock()
	h := m.handler[f.kind]
	if m.closed || h == nil {
		m.mu.Unlock()
		return false
	}
	c := m.countersLocked(from)
	m.deliveries.Add(1)
	m.mu.Unlock()
	defer m.deliveries.Done()
	c.framesReceived.Add(1)
	c.bytesReceived.Add(uint64(len(f.data)))
	h.HandleFrame(from, f.data)
	return true
}

type memFrame struct {
	kind Kind
	data []byte
	due  time.Time // zero: no delay
}

// memLink is the queue from one node to one peer and its delivery goroutine.
type memLink struct {
	from  *Mem
	to    string
	kind  Kind
	stats *peerCounters
	wake  chan struct{} // capacity 1: frames were queued
	rng   *rand.Rand    // used only by run

	mu     sync.Mutex
	queue  []memFrame
	queued int
	gen    uint64        // incremented by discard
	space  chan struct{} // closed and replaced whenever bytes leave the queue
}

// enqueue queues f, waiting for room; without wait, a full queue is
// ErrQueueFull.
func (l *memLink) enqueue(ctx context.Context, f memFrame, wait bool) error {
	for {
		l.mu.Lock()
		if l.queued == 0 || l.queued+len(f.data) <= l.from.cfg.MaxQueueBytes {
			l.queue = append(l.queue, f)
			l.queued += len(f.data)
			l.mu.Unlock()
			l.stats.framesSent.Add(1)
			l.stats.bytesSent.Add(uint64(len(f.data)))
			select {
			case l.wake <- struct{}{}:
			default:
			}
			return nil
		}
		space := l.space
		if !wait {
			queued := l.queued
			l.mu.Unlock()
			return fmt.Errorf("%w: %s, kind %d: %d bytes queued, limit %d", ErrQueueFull, l.to, l.kind, queued, l.from.cfg.MaxQueueBytes)
		}
		l.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.from.done:
			return ErrClosed
		}
	}
}

// discard drops every queued frame (Drop).
func (l *memLink) discard() {
	l.mu.Lock()
	n := len(l.queue)
	clear(l.queue)
	l.queue = l.queue[:0]
	l.queued = 0
	l.gen++
	close(l.space)
	l.space = make(chan struct{})
	l.mu.Unlock()
	l.stats.framesDropped.Add(uint64(n))
}

func (l *memLink) run() {
	done := l.from.done
	for {
		select {
		case <-l.wake:
		case <-done:
			return
		}
		for {
			l.mu.Lock()
			if len(l.queue) == 0 {
				l.mu.Unlock()
				break
			}
			f, gen := l.queue[0], l.gen
			l.mu.Unlock()
			if !f.due.IsZero() {
				if d := time.Until(f.due); d > 0 {
					t := time.NewTimer(d)
					select {
					case <-t.C:
					case <-done:
						t.Stop()
						return
					}
				}
			}
			l.mu.Lock()
			if l.gen != gen { // discarded while it waited
				l.mu.Unlock()
				continue
			}
			l.queue[0] = memFrame{}
			l.queue = l.queue[1:]
			l.queued -= len(f.data)
			close(l.space)
			l.space = make(chan struct{})
			l.mu.Unlock()
			l.deliver(f)
		}
	}
}

func (l *memLink) deliver(f memFrame) {
	n := l.from.net
	n.mu.Lock()
	target := n.nodes[l.to]
	ok := target != nil && n.reachableLocked(l.from.id, l.to)
	drop := n.drops[mkPair(l.from.id, l.to)]
	n.mu.Unlock()
	if ok && drop > 0 && l.rng.Float64() < drop {
		ok = false
	}
	if !ok || !target.deliver(l.from.id, f) {
		l.stats.framesDropped.Add(1)
		if lg := l.from.cfg.Logger; lg != nil {
			lg.Debug("transport: frame dropped", "node", l.from.id, "peer", l.to, "kind", f.kind)
		}
	}
}

// memAddr is the net.Addr of a Mem node.
type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

// memStreamLayer is Mem's raft.StreamLayer: Dial makes a synchronous
// in-memory pipe (net.Pipe) and hands the far end to the peer's Accept.
type memStreamLayer struct {
	m         *Mem
	accept    chan net.Conn
	closed    chan struct{}
	once      sync.Once
	abort     chan struct{} // closed by AbortDials
	abortOnce sync.Once
}

// AbortDials fails pending and later Dials (DialAborter).
func (s *memStreamLayer) AbortDials() { s.abortOnce.Do(func() { close(s.abort) }) }

func (s *memStreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.accept:
		return c, nil
	case <-s.closed:
		return nil, ErrClosed
	}
}

func (s *memStreamLayer) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func (s *memStreamLayer) Addr() net.Addr { return memAddr(s.m.Addr()) }

// Dial connects to the Mem node at address. Zero timeout means no timeout.
func (s *memStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	m := s.m
	if m.isClosed() {
		return nil, ErrClosed
	}
	select {
	case <-s.abort:
		return nil, ErrClosed
	default:
	}
	var expire <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expire = t.C
	}
	// A peer not on the network (down, or restarting) or cut off is
	// waited for until the timeout, as a QUIC dial retransmits its
	// handshake until it is answered or times out: Raft's replication to
	// a restarting follower resumes when it is back, instead of backing
	// off exponentially after a run of instant failures.
	var target *Mem
	var delay time.Duration
	for {
		changed := m.net.changes() // before the lookup: no join is missed
		var err error
		target, delay, err = m.net.lookup(m.id, Peer{Addr: string(address)})
		if err == nil {
			break
		}
		if !errors.Is(err, ErrUnreachable) || !strings.HasPrefix(string(address), MemAddrPrefix) || expire == nil {
			return nil, err
		}
		select {
		case <-changed:
		case <-expire:
			return nil, fmt.Errorf("dial %s: timeout: %w", address, err)
		case <-m.done:
			return nil, ErrClosed
		case <-s.closed: // the Raft transport is closing
			return nil, ErrClosed
		case <-s.abort:
			return nil, ErrClosed
		}
	}
	if g := m.loadGate(); g != nil {
		if want := g.RaftPeerID(string(address)); want != "" && want != target.id {
			return nil, fmt.Errorf("%w: %s is %q, want %q", ErrPeerIdentity, address, target.id, want)
		}
	}
	if err := m.admit(target); err != nil {
		return nil, err
	}
	tg := target.loadGate()
	if tg != nil && !tg.AllowRaft(m.id) {
		target.logRefusal(m.id, RefusalRaftNotAllowed)
		return nil, fmt.Errorf("%w: %q refuses raft streams from %q", ErrRefused, target.id, m.id)
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-expire:
			return nil, fmt.Errorf("%w: dial %s: timeout", ErrUnreachable, address)
		case <-m.done:
			return nil, ErrClosed
		}
	}
	a, b := net.Pipe()
	local := &memConn{Conn: a, owner: m, peer: target.id}
	remote := &memConn{Conn: b, owner: target, peer: m.id}
	if tg != nil { // without a gate, every peer is trusted
		remote.guard = newRaftGuard(m.id, tg, DefaultMaxRaftRPCSize)
	}
	local.other, remote.other = remote, local
	if !m.track(local) {
		a.Close()
		b.Close()
		return nil, ErrClosed
	}
	if !target.track(remote) {
		local.Close()
		return nil, fmt.Errorf("%w: %q closed", ErrUnreachable, target.id)
	}
	// A partition that started while we were dialling must not leave the
	// pair connected.
	if _, _, err := m.net.lookup(m.id, Peer{ID: target.id}); err != nil {
		local.Close()
		return nil, err
	}
	var err error
	select {
	case target.layer.accept <- remote:
		connect(m, target)
		return local, nil
	case <-target.layer.closed:
		err = fmt.Errorf("%w: %q not accepting", ErrUnreachable, target.id)
	case <-expire:
		err = fmt.Errorf("%w: dial %s: timeout", ErrUnreachable, address)
	case <-m.done:
		err = ErrClosed
	}
	local.Close()
	return nil, err
}

func (m *Mem) track(c *memConn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.conns[c] = struct{}{}
	return true
}

// memConn is one end of a Raft stream between two Mem nodes. Closing either
// end closes both, so the peer's reads and writes fail at once.
type memConn struct {
	net.Conn
	owner *Mem
	peer  string
	other *memConn
	once  sync.Once
	guard *raftGuard // on the accepting end
}

func (c *memConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.guard != nil {
		if gerr := c.guard.check(p[:n], func(e *RaftRPCError) {
			c.owner.logRefusal(c.peer, e.Reason)
		}); gerr != nil {
			c.Close()
			return 0, gerr
		}
	}
	return n, err
}

func (c *memConn) LocalAddr() net.Addr  { return memAddr(MemAddrPrefix + c.owner.id) }
func (c *memConn) RemoteAddr() net.Addr { return memAddr(MemAddrPrefix + c.peer) }

func (c *memConn) Close() error {
	c.closeOne()
	c.other.closeOne()
	return nil
}

func (c *memConn) closeOne() {
	c.once.Do(func() {
		c.Conn.Close()
		c.owner.mu.Lock()
		delete(c.owner.conns, c)
		c.owner.mu.Unlock()
	})
}

// peerCounters are the live counters behind PeerStats.
type peerCounters struct {
	framesSent, bytesSent         atomic.Uint64
	framesReceived, bytesReceived atomic.Uint64
	framesDropped                 atomic.Uint64
}

func (c *peerCounters) snapshot(peer string) PeerStats {
	return PeerStats{
		Peer:           peer,
		FramesSent:     c.framesSent.Load(),
		BytesSent:      c.bytesSent.Load(),
		FramesReceived: c.framesReceived.Load(),
		BytesReceived:  c.bytesReceived.Load(),
		FramesDropped:  c.framesDropped.Load(),
	}
}

// node returns the open node id, or nil.
func (n *MemNetwork) node(id string) *Mem {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[id]
}

// connect records that a and b have a "connection": what TrySend needs and
// what OnDisconnect reports the end of.
func connect(a, b *Mem) {
	for _, x := range [2][2]*Mem{{a, b}, {b, a}} {
		x[0].mu.Lock()
		if !x[0].closed {
			x[0].connected[x[1].id] = true
		}
		x[0].mu.Unlock()
	}
}

func (m *Mem) disconnect(peer string) {
	m.mu.Lock()
	m.disconnectLocked(peer)
	m.mu.Unlock()
}

// disconnectLocked ends the connection with peer and, if there was one,
// calls the OnDisconnect callback on a goroutine Close waits for.
func (m *Mem) disconnectLocked(peer string) {
	if !m.connected[peer] {
		return
	}
	delete(m.connected, peer)
	f := m.onDisc.Load()
	if f == nil || m.closed {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		(*f)(peer)
	}()
}

// admit asks both ends' gates whether the two may connect.
func (m *Mem) admit(target *Mem) error {
	if g := m.loadGate(); g != nil {
		if err := g.AllowPeer(target.id); err != nil {
			m.logRefusal(target.id, RefusalDenied)
			return fmt.Errorf("%w: %q: %v", ErrRefused, target.id, err)
		}
	}
	if g := target.loadGate(); g != nil {
		if err := g.AllowPeer(m.id); err != nil {
			target.logRefusal(m.id, RefusalDenied)
			return fmt.Errorf("%w: %q refuses %q: %v", ErrRefused, target.id, m.id, err)
		}
	}
	return nil
}

func (m *Mem) logRefusal(peer, reason string) {
	if lg := m.cfg.Logger; lg != nil {
		lg.Warn("transport: peer refused", "node", m.id, "addr", MemAddrPrefix+peer, "peer", peer, "reason", reason)
	}
}

func (m *Mem) loadGate() Gate {
	if b := m.gate.Load(); b != nil {
		return b.g
	}
	return nil
}

// SetGate installs the admission policy: both ends' AllowPeer are asked on
// every Send and Dial (and the receiver's on every delivery), the
// receiver's AllowRaft on every Dial, and the dialler's RaftPeerID on every
// Dial. Nil removes it.
func (m *Mem) SetGate(g Gate) {
	if g == nil {
		m.gate.Store(nil)
		return
	}
	m.gate.Store(&gateBox{g})
}

// TrySend queues a copy of frame to a peer this node is connected with (it
// has sent to, received from or dialled it since the link last broke)
// without waiting: ErrUnreachable without a connection, ErrQueueFull when
// the peer's queue of kind k is over MaxQueueBytes.
func (m *Mem) TrySend(to Peer, k Kind, frame []byte) error {
	if len(frame) > m.cfg.MaxFrameSize {
		return &FrameSizeError{Size: uint64(len(frame)), Max: m.cfg.MaxFrameSize}
	}
	m.mu.Lock()
	closed, ok := m.closed, m.connected[to.ID]
	m.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if !ok {
		return fmt.Errorf("%w: no connection to %q", ErrUnreachable, to.ID)
	}
	target, delay, err := m.net.lookup(m.id, Peer{ID: to.ID})
	if err != nil {
		return err
	}
	l, err := m.link(target.id, k)
	if err != nil {
		return err
	}
	f := memFrame{kind: k, data: append([]byte(nil), frame...)}
	if delay > 0 {
		f.due = time.Now().Add(delay)
	}
	return l.enqueue(context.Background(), f, false)
}

// OnDisconnect sets f to be called, on a goroutine Close waits for, when
// this node's connection with a peer ends: a Partition or Isolate cutting
// them, the peer's Close, or Drop on either end. Nil clears it.
func (m *Mem) OnDisconnect(f func(peer string)) {
	if f == nil {
		m.onDisc.Store(nil)
		return
	}
	m.onDisc.Store(&f)
}

// Drop ends this node's connection with peer: its Raft conns are closed,
// frames queued to it are lost and both ends' OnDisconnect fire.
func (m *Mem) Drop(peer string) {
	m.mu.Lock()
	var doomed []*memConn
	for c := range m.conns {
		if c.peer == peer {
			doomed = append(doomed, c)
		}
	}
	var links []*memLink
	for key, l := range m.links {
		if key.peer == peer {
			links = append(links, l)
		}
	}
	m.disconnectLocked(peer)
	m.mu.Unlock()
	for _, c := range doomed {
		c.Close()
	}
	for _, l := range links {
		l.discard()
	}
	if p := m.net.node(peer); p != nil {
		p.disconnect(m.id)
	}
}
