// Package actor is troupe's local actor engine: it runs actors inside one
// process and knows nothing about networks. A System hosts a tree of actors,
// each addressed by a PID, each with a bounded multi-producer single-consumer
// mailbox that is drained one message at a time by a goroutine that exists
// only while the actor has work. On the path of a call it is the last hop:
// Tell and Ask (or, from the layers above, a remote call decoded by the
// remote package) enqueue a message here, the engine invokes the actor's
// Receive, and Context.Respond completes the caller's Future. Failures (a
// panic in Receive) are recovered at the single place the engine invokes an
// actor and handed to the parent's Supervisor, which resumes, restarts (with
// intensity limits and exponential backoff), stops or escalates; watchers
// learn of every termination exactly once through Terminated.
package actor
