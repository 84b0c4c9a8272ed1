package troupe

import (
	"errors"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/remote"
)

// Errors of calls. They are remote's sentinels, so errors.Is works against
// every call error wherever in the cluster it was made; errors.As with
// *Error gives the code, message, node, actor and method.
var (
	ErrNotFound      = remote.ErrNotFound      // no such actor, or its type is not registered on the host
	ErrNotOwner      = remote.ErrNotOwner      // the host does not own the actor at that epoch (retried once)
	ErrUnavailable   = remote.ErrUnavailable   // the call did not run: the host could not serve it (after the runtime's retries); also matched by ErrUnknownOutcome
	ErrDeadline      = remote.ErrDeadline      // the caller's deadline passed (also matches context.DeadlineExceeded)
	ErrBackpressure  = remote.ErrBackpressure  // the actor's mailbox is full; the call did not run
	ErrPanicked      = remote.ErrPanicked      // the method panicked
	ErrApplication   = remote.ErrApplication   // the method returned an error
	ErrUnknownMethod = remote.ErrUnknownMethod // the type has no callable method of that name
	ErrBadArgs       = remote.ErrBadArgs       // wrong argument count or types, or a result of the wrong type
	ErrCanceled      = remote.ErrCanceled      // the caller cancelled (also matches context.Canceled)
	// ErrUnknownOutcome: the request left and its host failed, left or lost
	// the connection before answering, so the call may have run. It also
	// matches ErrUnavailable. Retry only idempotent calls; Error.MayHaveRun
	// tells, for any call error, whether a retry could run the method twice.
	ErrUnknownOutcome = remote.ErrUnknownOutcome
	ErrTooLarge       = remote.ErrTooLarge // an argument or result exceeds Config.MaxFrameSize; names both
)

// Error is the typed error of a failed call: code, message, node, actor and
// method, carried over the wire.
type Error = remote.Error

// Errors of spawning. Spawn wraps the registry's *placement.SpawnError, so
// errors.Is works with these and errors.As gives the data.
var (
	ErrUnknownType   = placement.ErrUnknownType   // no member ever registered the type
	ErrTypeNotHosted = placement.ErrTypeNotHosted // the chosen node does not host the type
	ErrNoCandidate   = placement.ErrNoCandidate   // no alive node hosts the type
	ErrNodeNotAlive  = placement.ErrNodeNotAlive  // the node asked for is not an alive member
)

// Errors of the package itself.
var (
	// ErrNoNode means a call had no node to go through: the Ref was decoded
	// (not from Spawn or Lookup) and ctx carries no node (it is not a
	// method's ctx, nor made by NewContext). Bind the ref with Node.Ref or
	// the ctx with NewContext. It comes as a *NoNodeError.
	ErrNoNode = errors.New("troupe: no node to call through")
	// ErrClosed is returned by a node after Close or Stop.
	ErrClosed = errors.New("troupe: node closed")
	// ErrTypeMismatch is returned by Spawn when an actor of that name exists
	// with another type, and by Register for a name registered twice.
	ErrTypeMismatch = errors.New("troupe: actor type mismatch")
	// ErrBadType is returned by Register for a type it cannot make
	// callable: an empty name, a nil producer, or exported methods of a
	// shape that cannot be called (the error names each one and why).
	ErrBadType = remote.ErrBadType
	// errRestarting refuses calls to a restarted actor during its backoff;
	// callers see ErrUnavailable.
	errRestarting = errors.New("troupe: actor restarting")
)

// NoNodeError is the error of a call that had no node to go through.
type NoNodeError struct {
	Ref    Ref
	Method string
}

func (e *NoNodeError) Error() string {
	return "troupe: no node to call " + e.Ref.String() + "." + e.Method +
		" through: bind the ref with Node.Ref or the ctx with troupe.NewContext"
}

// Is matches ErrNoNode.
func (e *NoNodeError) Is(target error) bool { return target == ErrNoNode }
