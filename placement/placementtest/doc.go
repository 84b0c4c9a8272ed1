// Package placementtest is the test harness of the placement registry: a
// cluster of Registry nodes on an in-memory transport (transport.MemNetwork)
// with accessors to partition, heal, kill and restart nodes, and a bounded
// wait helper. Layers above placement use it to run their own tests against
// a real, replicated registry without sockets.
package placementtest
