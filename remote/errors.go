package remote

import (
	"context"
	"errors"
	"strconv"
	"strings"
)

// Code classifies a remote failure. Codes travel on the wire as unsigned
// integers; their values are part of the protocol and never change.
type Code uint16

// Wire error codes. CodeOK marks a successful reply and is never the code of
// an *Error.
const (
	CodeOK            Code = 0
	CodeApplication   Code = 1  // the method returned a non-nil error
	CodeNotFound      Code = 2  // no such actor, or its type is not registered here
	CodeNotOwner      Code = 3  // the node does not own the actor at that epoch
	CodeUnavailable   Code = 4  // the host could not serve the call now; it did not run
	CodeDeadline      Code = 5  // the caller's deadline passed
	CodeBackpressure  Code = 6  // the actor's mailbox is full
	CodePanicked      Code = 7  // the method panicked
	CodeUnknownMethod Code = 8  // the type has no callable method of that name
	CodeBadArgs       Code = 9  // wrong argument count or types
	CodeCanceled      Code = 10 // the caller cancelled the call
	CodeInternal      Code = 11 // the runtime failed (e.g. the result did not encode)
	// CodeUnknownOutcome: the request was sent but no answer will come (the
	// host failed, left or lost its connection to the caller): the call may
	// have run. See Error.MayHaveRun for the rule of every code.
	CodeUnknownOutcome Code = 12
	// CodeTooLarge: an argument or result frame exceeds the frame limit.
	CodeTooLarge Code = 13
)

var codeNames = [...]string{
	CodeOK:             "ok",
	CodeApplication:    "application",
	CodeNotFound:       "not found",
	CodeNotOwner:       "not owner",
	CodeUnavailable:    "unavailable",
	CodeDeadline:       "deadline exceeded",
	CodeBackpressure:   "backpressure",
	CodePanicked:       "panicked",
	CodeUnknownMethod:  "unknown method",
	CodeBadArgs:        "bad arguments",
	CodeCanceled:       "canceled",
	CodeInternal:       "internal",
	CodeUnknownOutcome: "unknown outcome",
	CodeTooLarge:       "too large",
}

// String names the code.
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "code " + strconv.Itoa(int(c))
}

// Sentinel errors. errors.Is(err, ErrX) holds for an *Error whose Code is the
// matching code, wherever in the cluster it was created.
var (
	ErrApplication   = errors.New("remote: application error")
	ErrNotFound      = errors.New("remote: actor not found")
	ErrNotOwner      = errors.New("remote: not owner")
	ErrUnavailable   = errors.New("remote: unavailable")
	ErrDeadline      = errors.New("remote: deadline exceeded")
	ErrBackpressure  = errors.New("remote: mailbox full")
	ErrPanicked      = errors.New("remote: method panicked")
	ErrUnknownMethod = errors.New("remote: unknown method")
	ErrBadArgs       = errors.New("remote: bad arguments")
	ErrCanceled      = errors.New("remote: call canceled")
	ErrInternal      = errors.New("remote: internal error")
	// ErrUnknownOutcome means the call may have run: the request left, and
	// its host failed, left or lost the connection before answering. It
	// also matches ErrUnavailable, so code written before it still works.
	ErrUnknownOutcome = errors.New("remote: outcome unknown, the call may have run")
	// ErrTooLarge means an argument or result exceeds the frame limit; the
	// method did not run (argument) or its result was lost (result).
	ErrTooLarge = errors.New("remote: message too large")
)

// Errors of the package itself (not carried on the wire).
var (
	// ErrClosed is returned by an Endpoint after Close.
	ErrClosed = errors.New("remote: endpoint closed")
	// ErrMalformed is matched by every *DecodeError.
	ErrMalformed = errors.New("remote: malformed frame")
	// ErrDuplicateType is returned when a type name is registered twice.
	ErrDuplicateType = errors.New("remote: type already registered")
	// ErrBadType is returned by NewType for an unusable name or producer.
	ErrBadType = errors.New("remote: bad type")
)

var sentinels = [...]error{
	CodeApplication:    ErrApplication,
	CodeNotFound:       ErrNotFound,
	CodeNotOwner:       ErrNotOwner,
	CodeUnavailable:    ErrUnavailable,
	CodeDeadline:       ErrDeadline,
	CodeBackpressure:   ErrBackpressure,
	CodePanicked:       ErrPanicked,
	CodeUnknownMethod:  ErrUnknownMethod,
	CodeBadArgs:        ErrBadArgs,
	CodeCanceled:       ErrCanceled,
	CodeInternal:       ErrInternal,
	CodeUnknownOutcome: ErrUnknownOutcome,
	CodeTooLarge:       ErrTooLarge,
}

// Error is the typed error of a failed call. Every field but cause travels on
// the wire, so the caller sees what the callee produced.
type Error struct {
	Code    Code
	Message string // human-readable detail; for CodeApplication, the method's err.Error()
	Node    string // node that produced the error ("" when unknown)
	Actor   string // target actor id
	Method  string // target method

	cause error // local cause (never sent), exposed by Unwrap
	sent  bool  // local: the request may have reached the host (for MayHaveRun)
}

// Error formats the error as "remote: <code>: Type.Method on actor@node: message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("remote: ")
	b.WriteString(e.Code.String())
	if e.Method != "" || e.Actor != "" {
		b.WriteString(": ")
		if e.Actor != "" {
			b.WriteString(e.Actor)
			if e.Method != "" {
				b.WriteByte('.')
			}
		}
		b.WriteString(e.Method)
		if e.Node != "" {
			b.WriteString(" @")
			b.WriteString(e.Node)
		}
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Is matches the sentinel of e's code, and context.DeadlineExceeded or
// context.Canceled for CodeDeadline and CodeCanceled.
func (e *Error) Is(target error) bool {
	if int(e.Code) < len(sentinels) && e.Code != CodeOK && sentinels[e.Code] == target {
		return true
	}
	switch e.Code {
	case CodeUnknownOutcome:
		return target == ErrUnavailable
	case CodeDeadline:
		return target == context.DeadlineExceeded
	case CodeCanceled:
		return target == context.Canceled
	}
	return false
}

// MayHaveRun reports whether the failed call may have run on its host, in
// whole or in part, so that retrying it is safe only if it is idempotent:
// true for CodeUnknownOutcome, CodeApplication and CodePanicked (the method
// ran), and for CodeDeadline and CodeCanceled once the request may have
// reached a running method. The runtime itself retries, within the caller's
// ctx, every failure that certainly did not run (not owner, no lease, host
// unreachable before the send, node closing before delivery).
func (e *Error) MayHaveRun() bool {
	switch e.Code {
	case CodeUnknownOutcome, CodeApplication, CodePanicked:
		return true
	case CodeDeadline, CodeCanceled:
		return e.sent
	}
	return false
}

// Unwrap returns the local cause, if any (for instance a transport error
// behind CodeUnavailable). Causes do not cross the wire.
func (e *Error) Unwrap() error { return e.cause }

// DecodeError reports a malformed frame: where decoding stopped and why.
type DecodeError struct {
	Offset int
	Reason string
}

func (e *DecodeError) Error() string {
	return "remote: malformed frame at byte " + strconv.Itoa(e.Offset) + ": " + e.Reason
}

// Is matches ErrMalformed.
func (e *DecodeError) Is(target error) bool { return target == ErrMalformed }
