package transport

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
)

// Reasons a handshake, stream or connection is refused, as counted by
// (*QUIC).Refusals and logged under the key "reason".
const (
	RefusalNoCertificate  = "no certificate"
	RefusalUnknownCA      = "unknown authority"
	RefusalExpired        = "expired"
	RefusalBadCertificate = "bad certificate"
	RefusalNoNodeID       = "no node id"
	RefusalSelfID         = "claims this node's id"
	RefusalIDMismatch     = "id mismatch"
	RefusalDenied         = "denied by gate"
	RefusalTooManyStreams = "too many streams"
	RefusalRaftNotAllowed = "raft not allowed"
	RefusalRaftHeader     = "raft header mismatch"
	RefusalRaftMalformed  = "raft rpc malformed"
	RefusalRaftTooLarge   = "raft rpc too large"
	RefusalFrameTooLarge  = "frame too large"
	RefusalMalformedFrame = "malformed frame"
	RefusalIDInUse        = "id in use at another address"
)

// refusalCounts counts refusals by reason.
type refusalCounts struct {
	mu sync.Mutex
	m  map[string]uint64
}

func (r *refusalCounts) add(reason string) {
	r.mu.Lock()
	if r.m == nil {
		r.m = make(map[string]uint64)
	}
	r.m[reason]++
	r.mu.Unlock()
}

func (r *refusalCounts) snapshot() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.m)
}

type gateBox struct{ g Gate }

// SetGate installs the admission policy: AllowPeer is asked at every
// handshake, AllowRaft for every incoming Raft stream (and by the raftGuard
// of streams already open, which reads the gate it was created with), and
// RaftPeerID for every Raft dial. Nil removes it.
func (q *QUIC) SetGate(g Gate) {
	if g == nil {
		q.gate.Store(nil)
		return
	}
	q.gate.Store(&gateBox{g})
}

func (q *QUIC) loadGate() Gate {
	if b := q.gate.Load(); b != nil {
		return b.g
	}
	return nil
}

// TrySend queues frame on the existing usable connection to to.ID without
// dialling and without waiting. With no such connection it returns an
// error matching ErrUnreachable; when the peer's queue of kind k is over
// MaxQueueBytes, one matching ErrQueueFull.
func (q *QUIC) TrySend(to Peer, k Kind, frame []byte) error {
	if len(frame) > q.cfg.MaxFrameSize {
		return &FrameSizeError{Size: uint64(len(frame)), Max: q.cfg.MaxFrameSize}
	}
	if k == KindRaft {
		return ErrRaftKind
	}
	q.mu.RLock()
	closed, pc := q.closed, q.conns[to.ID]
	q.mu.RUnlock()
	switch {
	case closed:
		return ErrClosed
	case pc == nil || !pc.usable():
		return fmt.Errorf("%w: no connection to %q", ErrUnreachable, to.ID)
	}
	if err := pc.enqueue(context.Background(), k, frame, false); err != errConnGone {
		return err
	}
	return fmt.Errorf("%w: connection to %q ended", ErrUnreachable, to.ID)
}

// OnDisconnect sets f to be called, on the goroutine that watched the
// connection, when the last usable connection to a peer ends: not when a
// duplicate is retired while another stays usable, and not while this node
// closes. Nil clears it.
func (q *QUIC) OnDisconnect(f func(peer string)) {
	if f == nil {
		q.onDisc.Store(nil)
		return
	}
	q.onDisc.Store(&f)
}

// Drop closes every connection with peer now, with an application error
// meaning "refused"; frames queued to it are lost. It does not stop the peer
// from connecting again: the Gate decides that.
func (q *QUIC) Drop(peer string) {
	q.mu.Lock()
	var doomed []*peerConn
	for pc := range q.all {
		if pc.peer == peer {
			doomed = append(doomed, pc)
		}
	}
	if q.conns[peer] != nil {
		delete(q.conns, peer)
	}
	q.mu.Unlock()
	for _, pc := range doomed {
		pc.dead.Store(true)
		pc.mu.Lock()
		pc.wakeWaitersLocked()
		pc.mu.Unlock()
		pc.conn.CloseWithError(codeDropped, "refused")
	}
	if len(doomed) > 0 {
		q.log(slog.LevelWarn, "transport: peer dropped", "peer", peer, "conns", len(doomed))
	}
}

// certReason names why a peer's certificate failed verifyPeer.
func certReason(err error) string {
	var ua x509.UnknownAuthorityError
	var inv x509.CertificateInvalidError
	switch {
	case errors.Is(err, errNoCertificate):
		return RefusalNoCertificate
	case errors.As(err, &ua):
		return RefusalUnknownCA
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return RefusalExpired
	case errors.Is(err, ErrNoNodeID):
		return RefusalNoNodeID
	}
	return RefusalBadCertificate
}
