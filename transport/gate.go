package transport

import (
	"context"
	"errors"
)

// Placeholder implementations of the admission and non-blocking send API;
// the transport owner replaces them with the real ones.

var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func trySendVia(send func(context.Context, Peer, Kind, []byte) error, to Peer, k Kind, frame []byte) error {
	err := send(doneCtx, Peer{ID: to.ID}, k, frame)
	if errors.Is(err, context.Canceled) {
		return ErrQueueFull
	}
	return err
}

// TrySend queues frame on an existing connection without waiting.
func (q *QUIC) TrySend(to Peer, k Kind, frame []byte) error { return trySendVia(q.Send, to, k, frame) }

// SetGate installs the admission policy.
func (q *QUIC) SetGate(g Gate) {}

// OnDisconnect sets the disconnect callback.
func (q *QUIC) OnDisconnect(f func(peer string)) {}

// Drop closes every connection to peer.
func (q *QUIC) Drop(peer string) {}

// TrySend queues frame without waiting.
func (m *Mem) TrySend(to Peer, k Kind, frame []byte) error { return trySendVia(m.Send, to, k, frame) }

// SetGate installs the admission policy.
func (m *Mem) SetGate(g Gate) {}

// OnDisconnect sets the disconnect callback.
func (m *Mem) OnDisconnect(f func(peer string)) {}

// Drop closes every connection to peer.
func (m *Mem) Drop(peer string) {}
