// Package placement is troupe's cluster registry: a Raft-replicated state
// machine holding the members of the cluster and the directory of registered
// actors (id → type, node, epoch, restart policy, state). Every node runs a
// Raft replica over its transport's StreamLayer, so a caller resolves an
// actor's location with Lookup, a local map read, before sending a call; the
// callee's remote layer asks Owns whether it may serve that actor at the
// epoch the caller sent. Writes (spawn, stop, restart, membership) are
// forwarded to the leader over KindControl frames and batched, many to one
// Raft entry; the leader detects failed nodes and re-places their actors by
// restart policy, and a lease keeps a node cut off from the leader from
// serving before its actors are restarted elsewhere.
package placement
