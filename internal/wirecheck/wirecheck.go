package wirecheck

import (
	"errors"
	"strconv"
)

// MaxDepth is the project's default bound on nesting: a value may hold
// containers nested this deep (a top-level array is depth 1).
const MaxDepth = 256

// ErrMalformed is matched (errors.Is) by every *Error.
var ErrMalformed = errors.New("wirecheck: malformed msgpack")

// Error reports where validation stopped and why.
type Error struct {
	Offset int    // byte offset in the input where the bad value starts
	Reason string // what is wrong there
}

func (e *Error) Error() string {
	return "wirecheck: malformed msgpack at byte " + strconv.Itoa(e.Offset) + ": " + e.Reason
}

// Is matches ErrMalformed.
func (e *Error) Is(target error) bool { return target == ErrMalformed }

// Value validates that b starts with exactly one well-formed msgpack value
// and returns its encoded length; bytes after it are not examined. Every
// length must fit in the bytes that remain (an array of n elements needs at
// least n bytes after its header, a map of n pairs 2n), the nesting must be
// at most maxDepth containers deep (maxDepth <= 0 means MaxDepth), and the
// reserved code 0xc1 is refused. It does not recurse and allocates nothing
// unless the nesting exceeds 16 levels. Failures are *Error.
func Value(b []byte, maxDepth int) (n int, err error) {
	return Check(b, 1, Limits{Depth: maxDepth})
}

// Values is Value for count consecutive values: it returns the length of
// the first count values of b. count <= 0 validates nothing and returns 0.
func Values(b []byte, count, maxDepth int) (n int, err error) {
	return Check(b, count, Limits{Depth: maxDepth})
}

// Limits bound a value beyond what its bytes allow.
type Limits struct {
	// Depth bounds the nesting of containers. Zero means MaxDepth.
	Depth int
	// Items bounds the elements of every array and the pairs of every map.
	// A decoder may allocate a whole Go element (a struct, say) for each
	// one-byte nil, so where the decoded types are known to be small in
	// count, a bound here caps that amplification. Zero means no bound
	// beyond the bytes.
	Items int
}

// Check is Values under limits l.
func Check(b []byte, count int, l Limits) (n int, err error) {
	if count <= 0 {
		return 0, nil
	}
	maxDepth := l.Depth
	if maxDepth <= 0 {
		maxDepth = MaxDepth
	}
	// open holds, per open container, the values it still lacks; the
	// outermost entry is the count asked for. pending is their sum: every
	// value takes at least one byte, so pending <= bytes left, always.
	var fixed [17]int
	open := append(fixed[:0], count)
	pending := count
	off := 0
	for {
		if pending > len(b)-off {
			return 0, fail(off, "more values announced than bytes left")
		}
		start := off
		c := b[off]
		off++
		var skip uint64  // payload bytes after the header
		var items uint64 // values a container holds
		isContainer, isMap := false, false
		switch {
		case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		case c <= 0x8f: // fixmap
			items, isMap, isContainer = 2*uint64(c&0x0f), true, true
		case c <= 0x9f: // fixarray
			items, isContainer = uint64(c&0x0f), true
		case c <= 0xbf: // fixstr
			skip = uint64(c & 0x1f)
		case c == 0xc1:
			return 0, fail(start, "reserved code 0xc1")
		case c == 0xc4, c == 0xd9: // bin8, str8
			skip, off, err = length(b, off, 1)
		case c == 0xc5, c == 0xda: // bin16, str16
			skip, off, err = length(b, off, 2)
		case c == 0xc6, c == 0xdb: // bin32, str32
			skip, off, err = length(b, off, 4)
		case c == 0xc7: // ext8: length, then type and data
			skip, off, err = length(b, off, 1)
			skip++
		case c == 0xc8: // ext16
			skip, off, err = length(b, off, 2)
			skip++
		case c == 0xc9: // ext32
			skip, off, err = length(b, off, 4)
			skip++
		case c == 0xca, c == 0xce, c == 0xd2: // float32, uint32, int32
			skip = 4
		case c == 0xcb, c == 0xcf, c == 0xd3: // float64, uint64, int64
			skip = 8
		case c == 0xcc, c == 0xd0: // uint8, int8
			skip = 1
		case c == 0xcd, c == 0xd1: // uint16, int16
			skip = 2
		case c >= 0xd4 && c <= 0xd8: // fixext 1..16: type, then data
			skip = 1 + 1<<(c-0xd4)
		case c == 0xdc: // array16
			items, off, err = length(b, off, 2)
			isContainer = true
		case c == 0xdd: // array32
			items, off, err = length(b, off, 4)
			isContainer = true
		case c == 0xde: // map16
			items, off, err = length(b, off, 2)
			items, isMap, isContainer = 2*items, true, true
		case c == 0xdf: // map32
			items, off, err = length(b, off, 4)
			items, isMap, isContainer = 2*items, true, true
		}
		if err != nil {
			return 0, fail(start, "truncated header")
		}
		left := uint64(len(b) - off)
		switch {
		case isContainer:
			// pending counts the container itself; it becomes its items.
			if items > left || uint64(pending-1)+items > left {
				return 0, fail(start, "container longer than input")
			}
			if l.Items > 0 && (items > uint64(l.Items) && !isMap || items > 2*uint64(l.Items)) {
				return 0, fail(start, "more than "+strconv.Itoa(l.Items)+" items")
			}
			if len(open) > maxDepth { // open[0] is the count asked for, not a container
				return 0, fail(start, "nested deeper than "+strconv.Itoa(maxDepth))
			}
			if items > 0 {
				open = append(open, int(items))
				pending += int(items) - 1
				continue
			}
		case skip > left:
			return 0, fail(start, "length longer than input")
		default:
			off += int(skip)
		}
		// One value is complete: close every container it completes.
		pending--
		for {
			top := len(open) - 1
			open[top]--
			if open[top] > 0 {
				break
			}
			open = open[:top]
			if top == 0 {
				return off, nil
			}
		}
	}
}

var errShort = errors.New("short")

// length reads a big-endian unsigned integer of size bytes at off.
func length(b []byte, off, size int) (uint64, int, error) {
	if len(b)-off < size {
		return 0, off, errShort
	}
	var v uint64
	for _, c := range b[off : off+size] {
		v = v<<8 | uint64(c)
	}
	return v, off + size, nil
}

func fail(off int, reason string) *Error { return &Error{Offset: off, Reason: reason} }
