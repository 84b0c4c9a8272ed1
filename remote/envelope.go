package remote

import "time"

// FrameType is the second element of every frame (after the array header).
type FrameType uint8

// Frame types of the calls stream.
const (
	FrameRequest FrameType = 1
	FrameReply   FrameType = 2
	FrameCancel  FrameType = 3
)

// Flags qualify a request.
type Flags uint8

const (
	// FlagOneWay marks a send that expects no reply (and so has no sender).
	FlagOneWay Flags = 1 << iota
	// FlagIdempotent allows the caller to retry the call even after it may
	// have been delivered.
	FlagIdempotent
	// FlagNoCancel promises that no cancel frame will follow (the caller's
	// ctx cannot be cancelled), so the callee skips cancel bookkeeping.
	FlagNoCancel

	flagsKnown = FlagOneWay | FlagIdempotent | FlagNoCancel
)

const (
	requestFields = 10
	replyFields   = 4
	cancelFields  = 2
	errorFields   = 4
)

const (
	// tracedFields is the field count of a request that carries a trace
	// context (Request.Trace): one more, between after and the arguments.
	tracedFields = requestFields + 1
	traceLen     = 16 + 8 + 1 // trace id, span id, flags
)

// Request is a call envelope. On the wire it is one msgpack array:
//
//	[1, id, target, epoch, method, flags, deadline, sender|nil, after, [args...]]
//
// (a 9-element request without after is accepted too, with After 0). A
// request that carries a trace context has 11 elements, the context between
// after and the arguments:
//
//	[1, id, target, epoch, method, flags, deadline, sender|nil, after, trace, [args...]]
//
// where trace is nil or a bin of exactly 25 bytes: the W3C trace id (16),
// parent span id (8) and trace flags (1). A request without one is written
// in 10 elements, byte for byte as before the field existed.
//
// Args holds the raw msgpack array of arguments, sliced from the frame; the
// method's decoder reads it.
type Request struct {
	ID       uint64 // request id, unique per sending node
	Target   string // actor id
	Epoch    uint64 // placement epoch the caller resolved
	Method   string
	Flags    Flags
	Deadline int64  // unix nanoseconds; 0 means none
	Sender   string // sending node; "" (nil on the wire) means no sender
	// After is the number of one-way requests the sender had queued to
	// this node when it sent this call: the host admits the call only after
	// as many one-way requests of the sender (they travel on a stream of
	// their own), so a Tell followed by a Call arrives in that order.
	After uint64
	// Trace is the caller's span, the parent of the host's; nil means none.
	Trace *TraceContext
	Args  []byte // raw msgpack array
}

// TraceContext is the part of a W3C trace context a request carries: the
// trace id, the id of the caller's span and the trace flags (bit 0:
// sampled). A decoded one has a non-zero trace id and span id, as W3C
// requires. Trace state is not carried.
type TraceContext struct {
	TraceID [16]byte
	SpanID  [8]byte
	Flags   byte
}

// valid reports whether t's ids are both non-zero.
func (t *TraceContext) valid() bool { return t.TraceID != [16]byte{} && t.SpanID != [8]byte{} }

// DeadlineTime returns the deadline, and false when there is none.
func (q *Request) DeadlineTime() (time.Time, bool) {
	if q.Deadline == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, q.Deadline), true
}

// AppendRequestHeader appends every field of q but Args to b. The caller then
// appends the argument array (AppendArgs, or raw bytes) to complete the frame.
func AppendRequestHeader(b []byte, q *Request) []byte {
	n := requestFields
	if q.Trace != nil {
		n = tracedFields
	}
	b = append(b, 0x90|byte(n), byte(FrameRequest))
	b = appendUint(b, q.ID)
	b = appendString(b, q.Target)
	b = appendUint(b, q.Epoch)
	b = appendString(b, q.Method)
	b = appendUint(b, uint64(q.Flags))
	b = appendInt(b, q.Deadline)
	b = appendOptString(b, q.Sender)
	b = appendUint(b, q.After)
	if n == tracedFields {
		b = append(b, mpBin8, traceLen)
		b = append(b, q.Trace.TraceID[:]...)
		b = append(b, q.Trace.SpanID[:]...)
		b = append(b, q.Trace.Flags)
	}
	return b
}

// AppendRequest appends the whole frame of q, with q.Args copied verbatim
// (an empty Args is written as an empty array).
func AppendRequest(b []byte, q *Request) []byte {
	b = AppendRequestHeader(b, q)
	if len(q.Args) == 0 {
		return append(b, 0x90)
	}
	return append(b, q.Args...)
}

// Reply is the answer to a Request. On the wire:
//
//	[2, id, code, result]              when code == 0 (result: raw msgpack, nil if none)
//	[2, id, code, [message, node, actor, method]]  otherwise
type Reply struct {
	ID     uint64
	Err    *Error // nil on success
	Result []byte // raw msgpack of the result; nil on error

	at int64 // a local reply: the host's monoNow at the end of the call; not on the wire
}

// AppendReplyHeader appends a successful reply's header to b; the caller
// appends exactly one msgpack value, the result.
func AppendReplyHeader(b []byte, id uint64) []byte {
	b = append(b, 0x90|replyFields, byte(FrameReply))
	b = appendUint(b, id)
	return append(b, byte(CodeOK))
}

// replyHeaderLen is the length of AppendReplyHeader's bytes for id.
func replyHeaderLen(id uint64) int {
	switch {
	case id < 128:
		return 4
	case id <= 0xff:
		return 5
	case id <= 0xffff:
		return 6
	case id <= 0xffffffff:
		return 8
	}
	return 12
}

// AppendReply appends the whole frame of p.
func AppendReply(b []byte, p *Reply) []byte {
	if p.Err == nil {
		b = AppendReplyHeader(b, p.ID)
		if len(p.Result) == 0 {
			return append(b, mpNil)
		}
		return append(b, p.Result...)
	}
	return AppendErrorReply(b, p.ID, p.Err)
}

// AppendErrorReply appends a failed reply carrying e.
func AppendErrorReply(b []byte, id uint64, e *Error) []byte {
	code := e.Code
	if code == CodeOK {
		code = CodeInternal
	}
	b = append(b, 0x90|replyFields, byte(FrameReply))
	b = appendUint(b, id)
	b = appendUint(b, uint64(code))
	b = append(b, 0x90|errorFields)
	b = appendString(b, e.Message)
	b = appendString(b, e.Node)
	b = appendString(b, e.Actor)
	return appendString(b, e.Method)
}

// AppendCancel appends a cancel frame for request id: [3, id].
func AppendCancel(b []byte, id uint64) []byte {
	b = append(b, 0x90|cancelFields, byte(FrameCancel))
	return appendUint(b, id)
}

// Envelope is one decoded frame: Type says which of Request, Reply or
// CancelID is set.
type Envelope struct {
	Type     FrameType
	Request  Request
	Reply    Reply
	CancelID uint64
}

// trace reads a request's trace field: nil (none), or a bin of exactly
// traceLen bytes whose trace id and span id are not zero. It allocates
// only once those bytes are there.
func (r *reader) trace() *TraceContext {
	start := r.off
	switch c := r.byte(); {
	case r.err != nil:
		return nil
	case c == mpNil:
		return nil
	case c != mpBin8 || r.byte() != traceLen || r.err != nil:
		r.off = start
		r.fail("request: trace: want nil or bin of 25 bytes")
		return nil
	}
	if !r.need(traceLen) {
		return nil
	}
	b := r.b[r.off : r.off+traceLen]
	var t TraceContext
	copy(t.TraceID[:], b[:16])
	copy(t.SpanID[:], b[16:24])
	t.Flags = b[24]
	if !t.valid() {
		r.fail("request: trace: zero trace id or span id")
		return nil
	}
	r.off += traceLen
	return &t
}

// DecodeEnvelope decodes one frame into env. Byte slices in env (Args,
// Result) alias frame. Any malformation, including trailing bytes, returns a
// *DecodeError (errors.Is(err, ErrMalformed)); it never panics.
func DecodeEnvelope(frame []byte, env *Envelope) error {
	return decodeEnvelope(frame, env, nil)
}

// decodeEnvelope is DecodeEnvelope; with names non-nil, a request's
// target, method and sender reuse the strings of the previous requests
// when their bytes are the same, rather than allocating them again.
func decodeEnvelope(frame []byte, env *Envelope, names *interner) error {
	r := reader{b: frame}
	n := r.arrayHeader()
	t := FrameType(r.uint())
	if r.err != nil {
		return r.err
	}
	env.Type = t
	switch t {
	case FrameRequest:
		if n != requestFields && n != requestFields-1 && n != tracedFields {
			return &DecodeError{Offset: 0, Reason: "request: wrong field count"}
		}
		q := &env.Request
		q.ID = r.uint()
		q.Target = r.strIn(names, slotTarget, false)
		q.Epoch = r.uint()
		q.Method = r.strIn(names, slotMethod, false)
		flags := r.uint()
		if r.err == nil && flags > uint64(flagsKnown) {
			r.fail("request: unknown flags")
		}
		q.Flags = Flags(flags)
		q.Deadline = r.int()
		q.Sender = r.strIn(names, slotSender, true)
		q.After = 0
		if n >= requestFields {
			q.After = r.uint()
		}
		q.Trace = nil
		if n == tracedFields {
			q.Trace = r.trace()
		}
		start := r.off
		r.arrayHeader()
		if r.err == nil {
			r.off = start
			r.skip()
		}
		q.Args = frame[start:r.off]
	case FrameReply:
		if n != replyFields {
			return &DecodeError{Offset: 0, Reason: "reply: wrong field count"}
		}
		p := &env.Reply
		p.ID = r.uint()
		code := r.uint()
		if r.err == nil && code > 0xffff {
			r.fail("reply: code out of range")
		}
		if code == uint64(CodeOK) {
			start := r.off
			r.skip()
			p.Result, p.Err = frame[start:r.off], nil
			break
		}
		if r.arrayHeader() != errorFields && r.err == nil {
			r.fail("reply: error: wrong field count")
		}
		p.Result = nil
		p.Err = &Error{Code: Code(code)}
		p.Err.Message = r.str(false)
		p.Err.Node = r.str(false)
		p.Err.Actor = r.str(false)
		p.Err.Method = r.str(false)
	case FrameCancel:
		if n != cancelFields {
			return &DecodeError{Offset: 0, Reason: "cancel: wrong field count"}
		}
		env.CancelID = r.uint()
	default:
		return &DecodeError{Offset: 1, Reason: "unknown frame type"}
	}
	if r.err != nil {
		return r.err
	}
	if r.off != len(frame) {
		return &DecodeError{Offset: r.off, Reason: "trailing bytes"}
	}
	return nil
}
