// Package troupe is an embeddable actor runtime for Go: a service starts a
// Node, nodes join into a cluster whose placement registry is replicated
// with Raft and talk over QUIC with mutual TLS, and code on any node spawns
// actors anywhere (Node.Spawn) and calls their methods through Refs that
// return futures (Call, Tell, Future.Await, WaitAll, WaitAny). It is the top
// of the path of a call and its composition root: Call resolves the actor in
// the local registry replica (placement), encodes the arguments and sends the
// request (remote, over transport, or straight to the local endpoint when
// the actor lives here); the host checks that it owns the actor at that
// epoch, runs the method on the local engine (actor), and the reply
// completes the Future. The package wires those layers: the registry is the
// remote layer's Resolver and Owner, its events drive deactivation, failed
// nodes and Watch, and crashes past a node's local restart budget go back to
// the registry, which restarts the actor by its policy.
package troupe
