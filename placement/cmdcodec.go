package placement

import (
	"encoding/binary"
	"math"
)

// The command codec by hand. Every spawn is encoded once (by its
// proposer) and decoded four times in a 3-node cluster (the leader's
// authorization, then each replica's apply), and msgpack's reflecting
// codec cost ~5 µs to encode and ~3.4 µs to decode one: more CPU per spawn
// than the directory's insert on all three replicas together (profiled
// while filling 300 k actors across processes). The bytes stay msgpack —
// the map msgpack makes of a command, with the same keys — so any
// replica, of this version or an older one, decodes them with msgpack to
// the same command; the fast decoder takes only the layout of the common
// case and hands anything else to msgpack (FuzzDecodeCommandFast checks
// that whatever it accepts, msgpack decodes alike).

// appendCommandBody appends c's fields as a msgpack map, leaving out the
// zero ones (msgpack decodes a missing field as zero).
func appendCommandBody(b []byte, c *command) []byte {
	spawn := c.Spawn != (SpawnRequest{})
	n := countTrue(c.Node != "", c.Addr != "", len(c.Types) > 0, c.Voter != 0, c.Takeover, spawn,
		c.ID != "", c.Epoch != 0, c.Reason != "", c.Origin != "", c.Inc != 0, c.Seq != 0, c.Floor != 0)
	b = append(b, 0x80|byte(n)) // 13 fields at most: a fixmap
	if c.Node != "" {
		b = appendStr(appendStr(b, "n"), c.Node)
	}
	if c.Addr != "" {
		b = appendStr(appendStr(b, "a"), c.Addr)
	}
	if len(c.Types) > 0 {
		b = appendArrayLen(appendStr(b, "t"), len(c.Types))
		for _, t := range c.Types {
			b = appendStr(b, t)
		}
	}
	if c.Voter != 0 {
		b = appendUint(appendStr(b, "v"), uint64(c.Voter))
	}
	if c.Takeover {
		b = append(appendStr(b, "k"), 0xc3)
	}
	if spawn {
		b = appendSpawn(appendStr(b, "s"), &c.Spawn)
	}
	if c.ID != "" {
		b = appendStr(appendStr(b, "i"), c.ID)
	}
	if c.Epoch != 0 {
		b = appendUint(appendStr(b, "e"), c.Epoch)
	}
	if c.Reason != "" {
		b = appendStr(appendStr(b, "r"), c.Reason)
	}
	if c.Origin != "" {
		b = appendStr(appendStr(b, "o"), c.Origin)
	}
	if c.Inc != 0 {
		b = appendUint(appendStr(b, "u"), c.Inc)
	}
	if c.Seq != 0 {
		b = appendUint(appendStr(b, "q"), c.Seq)
	}
	if c.Floor != 0 {
		b = appendUint(appendStr(b, "f"), c.Floor)
	}
	return b
}

func appendSpawn(b []byte, s *SpawnRequest) []byte {
	pol := s.Policy != (RestartPolicy{})
	b = append(b, 0x80|byte(countTrue(s.ID != "", s.Type != "", s.Strategy != 0, s.Node != "", pol, s.Owner != "")))
	if s.ID != "" {
		b = appendStr(appendStr(b, "i"), s.ID)
	}
	if s.Type != "" {
		b = appendStr(appendStr(b, "t"), s.Type)
	}
	if s.Strategy != 0 {
		b = appendUint(appendStr(b, "s"), uint64(s.Strategy))
	}
	if s.Node != "" {
		b = appendStr(appendStr(b, "n"), s.Node)
	}
	if pol {
		b = append(appendStr(b, "p"), 0x80|2)
		b = appendInt(appendStr(b, "m"), int64(s.Policy.MaxRestarts))
		b = appendInt(appendStr(b, "b"), int64(s.Policy.Backoff))
	}
	if s.Owner != "" {
		b = appendStr(appendStr(b, "o"), s.Owner)
	}
	return b
}

func countTrue(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

// decodeCommandFast decodes a command body (validated by checkBody) of
// the layout msgpack or appendCommandBody writes: a map of known keys with
// string, integer, bool, string-array and spawn-map values. Anything else
// — nil, binary strings, floats, unknown keys, trailing bytes — reports
// false, and the caller decodes with msgpack.
func decodeCommandFast(body []byte) (command, bool) {
	var c command
	r := mpReader{b: body}
	n, ok := r.mapLen()
	if !ok {
		return c, false
	}
	for range n {
		key, ok := r.str()
		if !ok || len(key) != 1 {
			return c, false
		}
		var u uint64
		switch key[0] {
		case 'n':
			c.Node, ok = r.string()
		case 'a':
			c.Addr, ok = r.string()
		case 't':
			c.Types, ok = r.strings()
		case 'v':
			u, ok = r.uint(math.MaxUint8)
			c.Voter = uint8(u)
		case 'k':
			c.Takeover, ok = r.bool()
		case 's':
			ok = r.spawn(&c.Spawn)
		case 'i':
			c.ID, ok = r.string()
		case 'e':
			c.Epoch, ok = r.uint(math.MaxUint64)
		case 'r':
			c.Reason, ok = r.string()
		case 'o':
			c.Origin, ok = r.string()
		case 'u':
			c.Inc, ok = r.uint(math.MaxUint64)
		case 'q':
			c.Seq, ok = r.uint(math.MaxUint64)
		case 'f':
			c.Floor, ok = r.uint(math.MaxUint64)
		default:
			return c, false
		}
		if !ok {
			return c, false
		}
	}
	return c, r.off == len(body)
}

func (r *mpReader) string() (string, bool) {
	s, ok := r.str()
	return string(s), ok
}

func (r *mpReader) bool() (bool, bool) {
	c, ok := r.byte()
	switch {
	case !ok:
		return false, false
	case c == 0xc2:
		return false, true
	case c == 0xc3:
		return true, true
	}
	return false, false
}

// strings reads an array of strings; an empty array is an empty slice,
// as msgpack decodes it.
func (r *mpReader) strings() ([]string, bool) {
	n, ok := r.arrayLen()
	if !ok || n > len(r.b)-r.off { // each string takes a byte at least
		return nil, false
	}
	out := make([]string, n)
	for i := range out {
		if out[i], ok = r.string(); !ok {
			return nil, false
		}
	}
	return out, true
}

func (r *mpReader) spawn(s *SpawnRequest) bool {
	n, ok := r.mapLen()
	if !ok {
		return false
	}
	for range n {
		key, ok := r.str()
		if !ok || len(key) != 1 {
			return false
		}
		var u uint64
		switch key[0] {
		case 'i':
			s.ID, ok = r.string()
		case 't':
			s.Type, ok = r.string()
		case 's':
			u, ok = r.uint(math.MaxUint8)
			s.Strategy = Strategy(u)
		case 'n':
			s.Node, ok = r.string()
		case 'p':
			ok = r.policy(&s.Policy)
		case 'o':
			s.Owner, ok = r.string()
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	return true
}
