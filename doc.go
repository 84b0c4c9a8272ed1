// Package troupe is an embeddable actor runtime for Go: nodes join into a
// cluster whose placement registry is replicated with Raft, talk over QUIC
// with mutual TLS, spawn actors anywhere and call their methods through
// references that return futures.
//
// This package is the composition root: it wires the local engine (actor),
// the wire (transport), the registry (placement) and remote objects (remote).
package troupe
