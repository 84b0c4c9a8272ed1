package actor

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of these, so
// callers test them with errors.Is.
var (
	// ErrNilContext is returned when a nil context.Context is passed.
	ErrNilContext = errors.New("actor: nil context")
	// ErrNilPID is returned when the zero PID is used as an address.
	ErrNilPID = errors.New("actor: nil PID")
	// ErrForeignPID is returned when a PID of another System is passed.
	ErrForeignPID = errors.New("actor: PID belongs to another system")
	// ErrNilProducer is returned by Spawn for a nil Producer.
	ErrNilProducer = errors.New("actor: nil producer")
	// ErrNilActor is the failure reason when a Producer returns nil.
	ErrNilActor = errors.New("actor: producer returned a nil actor")
	// ErrDuplicateName is returned by Spawn when the name is taken.
	ErrDuplicateName = errors.New("actor: duplicate name")
	// ErrMailboxFull is returned by Tell and Ask (and by Context.Tell) when
	// the target's mailbox is at its bound. Send waits for room instead.
	ErrMailboxFull = errors.New("actor: mailbox full")
	// ErrDeadLetter is returned when the target has stopped, and completes
	// an Ask whose message was dropped because its target stopped.
	ErrDeadLetter = errors.New("actor: dead letter")
	// ErrClosed is returned once Shutdown or Close has begun.
	ErrClosed = errors.New("actor: system closed")
	// ErrRestartLimit wraps a failure that exceeded the supervisor's restart
	// intensity; the failure then escalates.
	ErrRestartLimit = errors.New("actor: restart intensity exceeded")
	// ErrNoFutures is returned by WaitAny when it is given no futures.
	ErrNoFutures = errors.New("actor: no futures")
	// ErrReplyType is returned by Await when the reply is not of the
	// future's type.
	ErrReplyType = errors.New("actor: reply of unexpected type")
)

// PanicError is the failure reason of an actor whose Receive (or Producer)
// panicked. It is what the supervisor's Decider, the logger and an Ask whose
// message caused the panic see.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the goroutine's stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("actor: panic: %v", e.Value) }

// Unwrap returns the panic value when it is an error, so errors.Is and
// errors.As see through a panic(err).
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// EscalationError is the failure reason of a supervisor whose child's
// failure escalated to it (by the Decider or by exceeding the restart
// intensity).
type EscalationError struct {
	Child  PID   // the child whose failure escalated
	Reason error // the child's failure reason
}

func (e *EscalationError) Error() string {
	return fmt.Sprintf("actor: failure of %v escalated: %v", e.Child, e.Reason)
}

func (e *EscalationError) Unwrap() error { return e.Reason }
