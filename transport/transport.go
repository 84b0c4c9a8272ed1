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
	// StreamLayer carries Raft traffic over this transport's connections.
	StreamLayer() raft.StreamLayer
	// Stats reports the counters of every peer this node has talked to.
	Stats() []PeerStats
	// Close ends every connection and waits for every goroutine it started.
	Close() error
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
)
