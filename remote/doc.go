// Package remote turns registered Go types into actors whose methods can be
// called by name from any node: it holds the per-node type registry and the
// method tables built once by reflection, the hand-written msgpack envelopes
// of requests, replies and cancels, the typed errors that survive the wire,
// the serialisable Ref, and the Endpoint that carries calls. On the path of a
// call it sits between the public troupe API and the transport: the caller's
// Endpoint resolves the target through a Resolver, encodes the arguments and
// sends a request frame (or, for a same-node target, hands the request straight
// to its own server side); the callee's Endpoint checks ownership at the
// epoch, queues the call in the actor's mailbox on the local engine, runs the
// method with the caller's deadline and cancellation, and sends the reply that
// completes the caller's Call.
package remote
