package remote

import (
	"encoding/binary"
	"errors"
	"math"
	"sync/atomic"

	"github.com/troupe-dev/troupe/internal/wirecheck"
)

// Minimal hand-written msgpack: appenders for the few types an envelope
// uses, bounds-checked readers, and a skipper that validates one value.
// The formats follow https://github.com/msgpack/msgpack/blob/master/spec.md.

const (
	mpNil     = 0xc0
	mpFalse   = 0xc2
	mpTrue    = 0xc3
	mpBin8    = 0xc4
	mpBin16   = 0xc5
	mpBin32   = 0xc6
	mpExt8    = 0xc7
	mpExt16   = 0xc8
	mpExt32   = 0xc9
	mpFloat32 = 0xca
	mpFloat64 = 0xcb
	mpUint8   = 0xcc
	mpUint16  = 0xcd
	mpUint32  = 0xce
	mpUint64  = 0xcf
	mpInt8    = 0xd0
	mpInt16   = 0xd1
	mpInt32   = 0xd2
	mpInt64   = 0xd3
	mpFixExt1 = 0xd4 // .. 0xd8 FixExt16
	mpStr8    = 0xd9
	mpStr16   = 0xda
	mpStr32   = 0xdb
	mpArray16 = 0xdc
	mpArray32 = 0xdd
	mpMap16   = 0xde
	mpMap32   = 0xdf
)

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v < 128:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, mpUint8, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mpUint16), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, mpUint32), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, mpUint64), v)
}

func appendInt(b []byte, v int64) []byte {
	if v >= 0 {
		return appendUint(b, uint64(v))
	}
	switch {
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, mpInt8, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, mpInt16), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, mpInt32), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, mpInt64), uint64(v))
}

func appendString(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, mpStr8, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, mpStr16), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, mpStr32), uint32(n))
	}
	return append(b, s...)
}

// appendOptString writes nil for "" and a string otherwise.
func appendOptString(b []byte, s string) []byte {
	if s == "" {
		return append(b, mpNil)
	}
	return appendString(b, s)
}

func appendArrayHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mpArray16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, mpArray32), uint32(n))
}

// reader is a bounds-checked cursor over one frame. The first error sticks;
// later reads return zero values.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(reason string) {
	if r.err == nil {
		r.err = &DecodeError{Offset: r.off, Reason: reason}
	}
}

func (r *reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || len(r.b)-r.off < n {
		r.fail("truncated")
		return false
	}
	return true
}

func (r *reader) byte() byte {
	if !r.need(1) {
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) be(n int) uint64 {
	if !r.need(n) {
		return 0
	}
	var v uint64
	for _, c := range r.b[r.off : r.off+n] {
		v = v<<8 | uint64(c)
	}
	r.off += n
	return v
}

// uint reads a non-negative integer in any msgpack integer encoding.
func (r *reader) uint() uint64 {
	start := r.off
	c := r.byte()
	switch {
	case r.err != nil:
		return 0
	case c < 0x80:
		return uint64(c)
	case c == mpUint8:
		return r.be(1)
	case c == mpUint16:
		return r.be(2)
	case c == mpUint32:
		return r.be(4)
	case c == mpUint64:
		return r.be(8)
	}
	r.off = start
	r.fail("want unsigned integer")
	return 0
}

// int reads a signed integer in any msgpack integer encoding.
func (r *reader) int() int64 {
	start := r.off
	c := r.byte()
	switch {
	case r.err != nil:
		return 0
	case c < 0x80:
		return int64(c)
	case c >= 0xe0:
		return int64(int8(c))
	case c == mpInt8:
		return int64(int8(r.be(1)))
	case c == mpInt16:
		return int64(int16(r.be(2)))
	case c == mpInt32:
		return int64(int32(r.be(4)))
	case c == mpInt64:
		return int64(r.be(8))
	case c == mpUint8:
		return int64(r.be(1))
	case c == mpUint16:
		return int64(r.be(2))
	case c == mpUint32:
		return int64(r.be(4))
	case c == mpUint64:
		v := r.be(8)
		if v > math.MaxInt64 {
			r.off = start
			r.fail("integer overflows int64")
			return 0
		}
		return int64(v)
	}
	r.off = start
	r.fail("want integer")
	return 0
}

// Slots of an interner.
const (
	slotTarget = iota
	slotMethod
	slotSender
	slots
)

// interner keeps the last string read into each slot, so that a stream of
// requests to the same actor and method allocates those strings once.
type interner struct {
	s [slots]atomic.Pointer[string] // lock-free: a peer's streams read in parallel
}

// strIn is str, reusing in's string of slot when the bytes are the same
// (in may be nil).
func (r *reader) strIn(in *interner, slot int, optional bool) string {
	if in == nil {
		return r.str(optional)
	}
	start := r.off
	b := r.strBytes(optional)
	if r.err != nil {
		return ""
	}
	if b == nil && r.off == start+1 && optional {
		return ""
	}
	if p := in.s[slot].Load(); p != nil && *p == string(b) { // compares without allocating
		return *p
	}
	s := string(b)
	in.s[slot].Store(&s)
	return s
}

// str reads a string; nil reads as "" when optional is set.
func (r *reader) str(optional bool) string {
	b := r.strBytes(optional)
	if b == nil {
		return ""
	}
	return string(b)
}

// strBytes reads a string and returns its bytes (aliasing the frame); nil
// reads as nil when optional is set.
func (r *reader) strBytes(optional bool) []byte {
	start := r.off
	c := r.byte()
	var n uint64
	switch {
	case r.err != nil:
		return nil
	case c == mpNil && optional:
		return nil
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == mpStr8:
		n = r.be(1)
	case c == mpStr16:
		n = r.be(2)
	case c == mpStr32:
		n = r.be(4)
	default:
		r.off = start
		r.fail("want string")
		return nil
	}
	if !r.need(int(n)) {
		return nil
	}
	b := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return b
}

// arrayHeader reads an array header and returns its length.
func (r *reader) arrayHeader() int {
	start := r.off
	c := r.byte()
	switch {
	case r.err != nil:
		return 0
	case c&0xf0 == 0x90:
		return int(c & 0x0f)
	case c == mpArray16:
		return int(r.be(2))
	case c == mpArray32:
		return int(r.be(4))
	}
	r.off = start
	r.fail("want array")
	return 0
}

// skip advances over exactly one well-formed msgpack value: every length
// and element count within the bytes left, nesting at most
// wirecheck.MaxDepth deep, no reserved code. It does not recurse and
// allocates nothing (see internal/wirecheck), so whatever it accepts a
// msgpack decoder can decode without exhausting memory or stack.
func (r *reader) skip() {
	if r.err != nil {
		return
	}
	n, err := wirecheck.Value(r.b[r.off:], wirecheck.MaxDepth)
	if err != nil {
		r.failWire(err)
		return
	}
	r.off += n
}

// failWire records a wirecheck error as a *DecodeError at its offset in
// the frame.
func (r *reader) failWire(err error) {
	var we *wirecheck.Error
	if errors.As(err, &we) {
		r.off += we.Offset
		r.fail(we.Reason)
		return
	}
	r.fail(err.Error())
}
