// Command supervision shows troupe's local supervision (package actor) step
// by step: a manager actor supervises a worker child; the worker panics, is
// restarted with exponential backoff (same PID, fresh state), and when it
// fails once more than its restart intensity allows, the failure escalates:
// the manager fails with an *actor.EscalationError, its own supervisor (the
// system's root) stops it, and a watcher learns why. It exits 0.
//
//	go run ./examples/supervision
//	go run ./examples/supervision -backoff 200ms
package main
