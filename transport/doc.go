// Package transport carries bytes between troupe nodes. Each node has one
// endpoint: a QUIC connection per peer over one UDP socket, authenticated by
// mutual TLS with certificates from the cluster CA, whose streams are tagged by
// their first byte (Kind). Raft streams are handed to hashicorp/raft through a
// raft.StreamLayer; every other kind carries length-prefixed frames that a
// per-stream writer coalesces into large writes and a per-stream reader hands,
// with the sender's authenticated node id, to the Handler the layer above
// registered. On the path of a call it sits at the bottom: remote encodes a
// request, transport.Send queues it to the peer, and the peer's Handler gets
// the frame; a reply that must not wait goes through TrySend, which never
// dials or blocks. The trust boundary sits here too: a Gate from the
// placement registry decides at each handshake who may connect and who may
// carry Raft, every Raft RPC header is checked against the sender's
// certificate, and per-connection byte budgets bound what a peer can make a
// node hold (docs/transport.md). Mem implements the same Transport in memory
// with partitions, drops and delays, so every layer above can test on it
// deterministically.
package transport
