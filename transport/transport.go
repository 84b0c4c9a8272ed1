package transport

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/hashicorp/raft"
)

// Kind tags a stream: it is the first byte written on every stream a node
// opens, and it selects the Handler that frames of that stream are given to.
type Kind byte

const (
	// KindRaft streams carry hashicorp/raft RPCs; they are exposed through
	// StreamLayer and are not framed by this package.
	KindRaft Kind = 1
	// KindControl frames carry the placement registry's own messages
	// (forwarded writes, joins, leaves).
	KindControl Kind = 2
	// KindCalls frames carry remote actor calls and their replies.
	KindCalls Kind = 3
	// KindOneWay frames carry one-way sends only. Their receiver may stop
	// reading while the target mailbox is full, so flow control pushes back
	// on the sender without delaying calls or replies.
	KindOneWay Kind = 4
)

// Peer names a remote node. ID is checked against the node id in the peer's
// certificate; it may be empty when only the address is known (a first join),
// in which case whoever holds a valid certificate at Addr is accepted. Addr may
// be empty when a connection to ID already exists (replying to a sender).
type Peer struct {
	ID   string
	Addr string
}

// Handler receives each decoded frame of one Kind together with the
// authenticated node id of its sender. The frame is owned by the handler from
// then on. HandleFrame is called from the stream's reader goroutine: it must
// not block for long, or it stalls every later frame on that stream.
type Handler interface {
	HandleFrame(from string, frame []byte)
}

// BatchHandler is a Handler that can take a burst of frames at once. The
// QUIC transport hands it, in order, every frame of a stream that had
// already arrived whole when it read the first (at most MaxBatch, each
// small), so that it can share per-frame work across them; a lone frame
// comes alone, without waiting for others. Frames are owned as with
// HandleFrame. Other transports may call HandleFrame only.
type BatchHandler interface {
	Handler
	HandleFrames(from string, frames [][]byte)
}

// MaxBatch bounds the frames of one HandleFrames call.
const MaxBatch = 64

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(from string, frame []byte)

// HandleFrame calls f(from, frame).
func (f HandlerFunc) HandleFrame(from string, frame []byte) { f(from, frame) }

// Transport is one node's endpoint: one address, one identity, one
// connection per peer. *QUIC and *Mem implement it.
type Transport interface {
	// ID is this node's id, as its own certificate names it.
	ID() string
	// Addr is the address peers dial to reach this node.
	Addr() string
	// Handle sets the handler for frames of kind k. Call it before frames of
	// that kind can arrive; frames of a kind without a handler are dropped
	// and counted.
	Handle(k Kind, h Handler)
	// Send queues frame for delivery to the peer on its stream of kind k,
	// dialling it if needed. The caller may reuse frame once Send returns.
	// When the peer's send queue is full, Send waits until space frees or ctx
	// is done. Frames to one peer of one kind arrive in the order sent.
	Send(ctx context.Context, to Peer, k Kind, frame []byte) error
	// TrySend is Send for replies and other frames whose sender must never
	// wait on the network: it queues frame only on an existing connection to
	// to.ID and returns at once. It never dials: with no usable connection it
	// returns an error matching ErrUnreachable; when the peer's queue of kind
	// k is over its budget it returns ErrQueueFull.
	TrySend(to Peer, k Kind, frame []byte) error
	// SetGate installs the policy that decides who may connect and who may
	// carry Raft traffic (see Gate). Nil means every holder of a valid
	// certificate may connect and carry Raft (tests only).
	SetGate(g Gate)
	// OnDisconnect sets f to be called, on a goroutine the transport owns,
	// each time the last usable connection to a peer ends (the peer closed,
	// crashed, timed out or was dropped). f must not block for long. Nil
	// clears it.
	OnDisconnect(f func(peer string))
	// Drop closes every connection to the peer at once (used when a node is
	// expelled); queued frames to it are lost.
	Drop(peer string)
	// StreamLayer carries Raft traffic over this transport's connections.
	StreamLayer() raft.StreamLayer
	// Stats reports the counters of every peer this node has talked to.
	Stats() []PeerStats
	// Close ends every connection and waits for every goroutine it started.
	Close() error
}

// DialAborter is implemented by the stream layers of Mem and QUIC.
// AbortDials fails every pending and later Dial at once with ErrClosed: a
// dial to a down peer otherwise waits up to its timeout (as a handshake is
// retransmitted until answered), and raft.Shutdown waits for the
// replication goroutine doing it. The owner of a raft.NetworkTransport
// calls it just before raft.Shutdown.
type DialAborter interface{ AbortDials() }

// Gate is the admission policy the placement registry gives the transport.
// Its methods are called on handshake and stream paths: they must be cheap
// and must not block (read a cached copy, never wait on Raft).
type Gate interface {
	// AllowPeer is asked at every handshake, incoming and outgoing, with the
	// node id of the peer's verified certificate; a non-nil error refuses the
	// connection (logged at Warn and counted with its reason).
	AllowPeer(id string) error
	// AllowRaft reports whether the node id may open Raft streams to this
	// node: it is a server of the Raft configuration this node knows.
	AllowRaft(id string) bool
	// RaftPeerID returns the node id that must answer at a Raft server
	// address, or "" when no member is known there.
	RaftPeerID(addr string) string
}

// PeerStats are the counters of one peer link.
type PeerStats struct {
	Peer           string
	FramesSent     uint64
	BytesSent      uint64
	FramesReceived uint64
	BytesReceived  uint64
	QueuedBytes    int
	// FramesDropped counts frames to or from this peer that were lost:
	// no handler for their kind, a fault injected by MemNetwork, or a
	// queue discarded when the link broke.
	FramesDropped uint64
	// Connections and Streams are the usable connections to this peer
	// now, and their open streams: frame streams either side opened, and
	// Raft's incoming ones. Zero on transports without connections (Mem).
	Connections int
	Streams     int
	// PacketsSent and PacketsReceived count the QUIC packets of the usable
	// connections to this peer (ACK-only ones included): frames per
	// packet is how well sends were coalesced. Zero on Mem.
	PacketsSent     uint64
	PacketsReceived uint64
}

func sortStats(s []PeerStats) {
	slices.SortFunc(s, func(a, b PeerStats) int { return strings.Compare(a.Peer, b.Peer) })
}

// Errors returned by transports.
var (
	ErrClosed        = errors.New("transport: closed")
	ErrFrameTooLarge = errors.New("transport: frame too large")
	ErrUnreachable   = errors.New("transport: peer unreachable")
	ErrPeerIdentity  = errors.New("transport: peer identity mismatch")
	// ErrIDInUse means a peer refused this node's connection because a
	// connection with this node's id from another address is live there:
	// another process holds this node's identity.
	ErrIDInUse = errors.New("transport: node id in use by another process")
	// ErrQueueFull means TrySend found the peer's queue over its budget.
	ErrQueueFull = errors.New("transport: peer queue full")
)
