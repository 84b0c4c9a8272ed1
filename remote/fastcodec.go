package remote

import (
	"encoding/binary"
	"math"
)

// Fast paths of the codec for the argument and result types most methods
// use — int, int64, uint64, string, []byte, bool, float64 — read and
// written without the msgpack library or reflection. Each decoder accepts
// only the encodings it is sure of and reports false for any other, and the
// caller then takes the general path, so either way a value decodes exactly
// as msgpack would decode it.

// DecodeFast decodes raw, one msgpack value such as a call's result, into
// a value of type R when R is int, int64, uint64, string, []byte, bool or
// float64 and raw is in an encoding of R it is sure of, without the msgpack
// library; false means: decode it with Unmarshal (which gives the same
// value where both succeed).
func DecodeFast[R any](raw []byte) (R, bool) { return decodeFast[R](raw) }

// decodeFast decodes the one msgpack value b holds into a value of type A.
// It reports false when A is not one of the fast types, when b holds an
// encoding the fast path does not take, or when b holds anything after it.
// A []byte result is a copy: it never aliases b.
func decodeFast[A any](b []byte) (v A, ok bool) {
	if len(b) == 0 {
		return v, false
	}
	switch p := any(&v).(type) {
	case *int:
		n, ok := fastInt(b)
		*p = int(n)
		return v, ok
	case *int64:
		n, ok := fastInt(b)
		*p = n
		return v, ok
	case *uint64:
		n, ok := fastUint(b)
		*p = n
		return v, ok
	case *string:
		s, ok := fastStr(b)
		if ok {
			*p = string(s)
		}
		return v, ok
	case *[]byte:
		if len(b) == 1 && b[0] == mpNil {
			return v, true // nil, as msgpack decodes it
		}
		s, ok := fastBin(b)
		if ok {
			*p = append([]byte{}, s...)
		}
		return v, ok
	case *bool:
		if len(b) == 1 && (b[0] == mpTrue || b[0] == mpFalse) {
			*p = b[0] == mpTrue
			return v, true
		}
	case *float64:
		switch {
		case len(b) == 9 && b[0] == mpFloat64:
			*p = math.Float64frombits(binary.BigEndian.Uint64(b[1:]))
			return v, true
		case len(b) == 5 && b[0] == mpFloat32:
			*p = float64(math.Float32frombits(binary.BigEndian.Uint32(b[1:])))
			return v, true
		}
	}
	return v, false
}

// fastInt reads an integer that fits int64, and nothing after it.
func fastInt(b []byte) (int64, bool) {
	c := b[0]
	switch {
	case c < 0x80 && len(b) == 1:
		return int64(c), true
	case c >= 0xe0 && len(b) == 1:
		return int64(int8(c)), true
	case c == mpInt8 && len(b) == 2:
		return int64(int8(b[1])), true
	case c == mpInt16 && len(b) == 3:
		return int64(int16(binary.BigEndian.Uint16(b[1:]))), true
	case c == mpInt32 && len(b) == 5:
		return int64(int32(binary.BigEndian.Uint32(b[1:]))), true
	case c == mpInt64 && len(b) == 9:
		return int64(binary.BigEndian.Uint64(b[1:])), true
	}
	if u, ok := fastUint(b); ok && u <= math.MaxInt64 {
		return int64(u), true
	}
	return 0, false
}

// fastUint reads a non-negative integer, and nothing after it.
func fastUint(b []byte) (uint64, bool) {
	c := b[0]
	switch {
	case c < 0x80 && len(b) == 1:
		return uint64(c), true
	case c == mpUint8 && len(b) == 2:
		return uint64(b[1]), true
	case c == mpUint16 && len(b) == 3:
		return uint64(binary.BigEndian.Uint16(b[1:])), true
	case c == mpUint32 && len(b) == 5:
		return uint64(binary.BigEndian.Uint32(b[1:])), true
	case c == mpUint64 && len(b) == 9:
		return binary.BigEndian.Uint64(b[1:]), true
	}
	return 0, false
}

// fastStr returns the bytes of a str value that is all of b.
func fastStr(b []byte) ([]byte, bool) {
	if c := b[0]; c&0xe0 == 0xa0 {
		return whole(b, int(c&0x1f), 1)
	}
	return sized(b, mpStr8, mpStr16, mpStr32)
}

// fastBin returns the bytes of a bin value that is all of b.
func fastBin(b []byte) ([]byte, bool) { return sized(b, mpBin8, mpBin16, mpBin32) }

// sized reads a value with an 8, 16 or 32-bit length after its code (c8,
// c16, c32) that is all of b, and returns its bytes.
func sized(b []byte, c8, c16, c32 byte) ([]byte, bool) {
	switch c := b[0]; {
	case c == c8 && len(b) >= 2:
		return whole(b, int(b[1]), 2)
	case c == c16 && len(b) >= 3:
		return whole(b, int(binary.BigEndian.Uint16(b[1:])), 3)
	case c == c32 && len(b) >= 5:
		return whole(b, int(binary.BigEndian.Uint32(b[1:])), 5)
	}
	return nil, false
}

// whole returns b's n bytes after its h-byte header, if that is all of b.
func whole(b []byte, n, h int) ([]byte, bool) {
	if len(b)-h != n {
		return nil, false
	}
	return b[h:], true
}

// appendFast appends v when it is of a fast type, and reports false
// otherwise (nothing appended).
func appendFast(dst []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case int:
		return appendInt(dst, int64(x)), true
	case int64:
		return appendInt(dst, x), true
	case uint64:
		return appendUint(dst, x), true
	case string:
		return appendString(dst, x), true
	case []byte:
		if x == nil {
			return append(dst, mpNil), true
		}
		return append(appendBinHeader(dst, len(x)), x...), true
	case bool:
		if x {
			return append(dst, mpTrue), true
		}
		return append(dst, mpFalse), true
	case float64:
		return binary.BigEndian.AppendUint64(append(dst, mpFloat64), math.Float64bits(x)), true
	}
	return dst, false
}

func appendBinHeader(b []byte, n int) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(b, mpBin8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mpBin16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, mpBin32), uint32(n))
}
