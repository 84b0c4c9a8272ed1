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

// Request is a call envelope. On the wire it is one msgpack array:
//
//	[1, id, target, epoch, method, flags, deadline, sender|nil, after, [args...]]
//
// (a 9-element request without after is accepted too, with After 0).
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
	Args  []byte // raw msgpack array
}

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
	b = append(b, 0x90|requestFields, byte(FrameRequest))
	b = appendUint(b, q.ID)
	b = appendString(b, q.Target)
	b = appendUint(b, q.Epoch)
	b = appendString(b, q.Method)
	b = appendUint(b, uint64(q.Flags))
	b = appendInt(b, q.Deadline)
	b = appendOptString(b, q.Sender)
	return appendUint(b, q.After)
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
		if n != requestFields && n != requestFields-1 {
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
		if n == requestFields {
			q.After = r.uint()
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
