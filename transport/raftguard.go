package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// DefaultMaxRaftRPCSize is Config.MaxRaftRPCSize when zero.
const DefaultMaxRaftRPCSize = 64 << 20

// ErrRaftRPC means an incoming Raft stream carried an RPC the transport
// refused; the error is a *RaftRPCError.
var ErrRaftRPC = errors.New("transport: raft rpc refused")

// RaftRPCError reports why a Raft stream was aborted. It matches ErrRaftRPC
// with errors.Is.
type RaftRPCError struct {
	Peer   string // the node id of the stream's certificate
	Reason string // RefusalRaftHeader, RefusalRaftMalformed or RefusalRaftTooLarge
	Detail string
}

func (e *RaftRPCError) Error() string {
	return fmt.Sprintf("transport: raft rpc from %q refused: %s: %s", e.Peer, e.Reason, e.Detail)
}

// Is reports whether target is ErrRaftRPC.
func (e *RaftRPCError) Is(target error) bool { return target == ErrRaftRPC }

// The RPC types of hashicorp/raft's NetworkTransport (net_transport.go).
const (
	rpcAppendEntries   = 0
	rpcRequestVote     = 1
	rpcInstallSnapshot = 2
	rpcTimeoutNow      = 3
	rpcRequestPreVote  = 4
)

// Limits of the guard's parser: nesting deeper than raft ever encodes, and
// the longest node id or address a header field may carry.
const (
	guardMaxDepth    = 32
	guardMaxField    = 1024
	guardMaxKeyMatch = 16 // longer keys cannot be a watched field
)

// raftGuard checks, without decoding them, the Raft RPC requests a peer
// sends on one incoming stream. NetworkTransport writes each request as one
// rpc-type byte and a msgpack map (go-msgpack, MsgpackHandle) in which the
// embedded RPCHeader's fields are inlined; an InstallSnapshot request is
// followed by Size raw bytes of snapshot. The guard follows that grammar a
// byte at a time for headers and in bulk for payloads, keeping only a
// container stack and the value of the field being read, and it refuses:
//
//   - an ID (RPCHeader.ID) that is not empty and not the stream's peer id;
//   - an Addr, Leader or Candidate (addresses raft falls back on) that the
//     Gate maps to another member;
//   - a request that is not a map, has a key that is neither str nor bin, a
//     watched field of another type, an unknown rpc type or nesting deeper
//     than guardMaxDepth (raft's own encoder never does any of these, and
//     go-msgpack would accept some of them as bytes);
//   - a request over max bytes.
//
// Every occurrence of a watched key is checked, so a duplicate key (the
// decoder keeps the last) cannot smuggle a forged id past the first.
type raftGuard struct {
	peer string
	gate Gate
	max  int
	err  *RaftRPCError // sticky once set

	state    guardState
	rpcType  byte
	msgBytes int

	// the value being read
	lead    byte
	hdr     [8]byte
	hdrNeed int
	hdrHave int
	payload uint64 // str/bin/ext/float bytes left to skip or capture
	role    guardRole
	capture []byte

	stack   []guardContainer
	field   string // the top-level key whose value is next
	size    int64  // InstallSnapshot's Size, last seen
	rawLeft uint64 // snapshot bytes left to pass through
}

type guardState uint8

const (
	gsRPCType guardState = iota // next byte is an rpc type
	gsLead                      // next byte starts a msgpack value
	gsHeader                    // reading the value's length or number bytes
	gsPayload                   // skipping or capturing the value's bytes
	gsRaw                       // passing snapshot data through
)

type guardRole uint8

const (
	roleNone  guardRole = iota
	roleKey             // a key of the top-level map
	roleField           // the value of a watched top-level key
)

type guardContainer struct {
	left uint64 // items (keys and values) still to read
	idx  uint64 // items read
	top  bool   // the request map itself
}

func newRaftGuard(peer string, gate Gate, max int) *raftGuard {
	if max <= 0 {
		max = DefaultMaxRaftRPCSize
	}
	return &raftGuard{peer: peer, gate: gate, max: max}
}

// check runs the bytes a Read returned through the parser. On the first
// refusal it calls onViolation (if not nil) and returns the error; it keeps
// returning it afterwards. The bytes of a refused request are never to be
// handed on: the caller returns the error instead of them.
func (g *raftGuard) check(p []byte, onViolation func(*RaftRPCError)) error {
	if g.err != nil {
		return g.err
	}
	if err := g.feed(p); err != nil {
		g.err = err
		if onViolation != nil {
			onViolation(err)
		}
		return err
	}
	return nil
}

func (g *raftGuard) fail(reason, format string, args ...any) *RaftRPCError {
	return &RaftRPCError{Peer: g.peer, Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

func (g *raftGuard) feed(p []byte) *RaftRPCError {
	for len(p) > 0 {
		if g.state == gsRaw {
			n := uint64(len(p))
			if n > g.rawLeft {
				n = g.rawLeft
			}
			g.rawLeft -= n
			p = p[n:]
			if g.rawLeft == 0 {
				g.state = gsRPCType
			}
			continue
		}
		// Every other byte belongs to a request and counts against max.
		n := len(p)
		if g.state == gsPayload && uint64(n) > g.payload {
			n = int(g.payload)
		} else if g.state != gsPayload {
			n = 1
		}
		if g.msgBytes+n > g.max {
			return g.fail(RefusalRaftTooLarge, "request over %d bytes", g.max)
		}
		g.msgBytes += n
		var err *RaftRPCError
		switch g.state {
		case gsRPCType:
			err = g.startRPC(p[0])
		case gsLead:
			err = g.startValue(p[0])
		case gsHeader:
			g.hdr[g.hdrHave] = p[0]
			g.hdrHave++
			if g.hdrHave == g.hdrNeed {
				err = g.headerDone()
			}
		case gsPayload:
			if g.capture != nil {
				g.capture = append(g.capture, p[:n]...)
			}
			g.payload -= uint64(n)
			if g.payload == 0 {
				err = g.valueDone()
			}
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

func (g *raftGuard) startRPC(t byte) *RaftRPCError {
	if t > rpcRequestPreVote {
		return g.fail(RefusalRaftMalformed, "unknown rpc type %d", t)
	}
	g.rpcType = t
	g.size = 0
	g.stack = g.stack[:0]
	g.state = gsLead
	return nil
}

// startValue reads the first byte of a msgpack value.
func (g *raftGuard) startValue(b byte) *RaftRPCError {
	g.lead = b
	g.role = roleNone
	if len(g.stack) == 0 {
		if !(b >= 0x80 && b <= 0x8f) && b != 0xde && b != 0xdf {
			return g.fail(RefusalRaftMalformed, "request is not a map (0x%02x)", b)
		}
	} else if c := g.stack[len(g.stack)-1]; c.top {
		if c.idx%2 == 0 {
			g.role = roleKey
		} else if g.field != "" {
			g.role = roleField
		}
	}
	isStr := (b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb) || (b >= 0xc4 && b <= 0xc6)
	isInt := b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)
	switch {
	case g.role == roleKey && !isStr:
		return g.fail(RefusalRaftMalformed, "request key of type 0x%02x", b)
	case g.role == roleField && g.field == "Size" && !isInt:
		return g.fail(RefusalRaftMalformed, "Size of type 0x%02x", b)
	case g.role == roleField && g.field != "Size" && !isStr && b != 0xc0:
		return g.fail(RefusalRaftMalformed, "%s of type 0x%02x", g.field, b)
	}
	g.hdrHave, g.hdrNeed = 0, 0
	switch {
	case b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3:
		if g.role == roleField && g.field == "Size" {
			g.size = int64(int8(b)) // a positive fixint is below 0x80
		}
		return g.valueDone()
	case b <= 0x8f:
		return g.push(uint64(b&0x0f) * 2)
	case b <= 0x9f:
		return g.push(uint64(b & 0x0f))
	case b <= 0xbf:
		return g.startPayload(uint64(b & 0x1f))
	case b == 0xc1:
		return g.fail(RefusalRaftMalformed, "reserved byte 0xc1")
	case b >= 0xd4 && b <= 0xd8: // fixext 1, 2, 4, 8, 16: type byte + data
		return g.startPayload(1 + 1<<(b-0xd4))
	}
	switch b {
	case 0xc4, 0xc7, 0xcc, 0xd0, 0xd9:
		g.hdrNeed = 1
	case 0xc5, 0xc8, 0xcd, 0xd1, 0xda, 0xdc, 0xde:
		g.hdrNeed = 2
	case 0xc6, 0xc9, 0xca, 0xce, 0xd2, 0xdb, 0xdd, 0xdf:
		g.hdrNeed = 4
	case 0xcb, 0xcf, 0xd3:
		g.hdrNeed = 8
	}
	g.state = gsHeader
	return nil
}

// headerDone interprets the length or number bytes of the current value.
func (g *raftGuard) headerDone() *RaftRPCError {
	h := g.hdr[:g.hdrNeed]
	var u uint64
	switch g.hdrNeed {
	case 1:
		u = uint64(h[0])
	case 2:
		u = uint64(binary.BigEndian.Uint16(h))
	case 4:
		u = uint64(binary.BigEndian.Uint32(h))
	case 8:
		u = binary.BigEndian.Uint64(h)
	}
	switch b := g.lead; {
	case b == 0xca || b == 0xcb: // float: the bytes were the value
		return g.valueDone()
	case b >= 0xcc && b <= 0xcf: // uint
		if g.role == roleField && g.field == "Size" {
			if u > 1<<63-1 {
				return g.fail(RefusalRaftMalformed, "Size %d", u)
			}
			g.size = int64(u)
		}
		return g.valueDone()
	case b >= 0xd0 && b <= 0xd3: // int
		if g.role == roleField && g.field == "Size" {
			switch g.hdrNeed {
			case 1:
				g.size = int64(int8(u))
			case 2:
				g.size = int64(int16(u))
			case 4:
				g.size = int64(int32(u))
			case 8:
				g.size = int64(u)
			}
		}
		return g.valueDone()
	case b >= 0xc7 && b <= 0xc9: // ext: type byte + data
		return g.startPayload(u + 1)
	case b == 0xdc || b == 0xdd:
		return g.push(u)
	case b == 0xde || b == 0xdf:
		return g.push(2 * u)
	default: // str, bin
		return g.startPayload(u)
	}
}

func (g *raftGuard) startPayload(n uint64) *RaftRPCError {
	g.capture = nil
	switch g.role {
	case roleKey:
		if n <= guardMaxKeyMatch {
			g.capture = make([]byte, 0, n)
		}
	case roleField:
		if n > guardMaxField {
			return g.fail(RefusalRaftMalformed, "%s of %d bytes", g.field, n)
		}
		g.capture = make([]byte, 0, n)
	}
	if n == 0 {
		return g.valueDone()
	}
	g.payload = n
	g.state = gsPayload
	return nil
}

func (g *raftGuard) push(items uint64) *RaftRPCError {
	if len(g.stack) >= guardMaxDepth {
		return g.fail(RefusalRaftMalformed, "nesting deeper than %d", guardMaxDepth)
	}
	g.stack = append(g.stack, guardContainer{left: items, top: len(g.stack) == 0})
	g.field = ""
	if items == 0 {
		g.stack = g.stack[:len(g.stack)-1]
		return g.valueDone()
	}
	g.state = gsLead
	return nil
}

// valueDone is called when a value (scalar, or a container whose last item
// was read) is complete: it checks a watched field, then moves its
// container on, completing the containers it finishes.
func (g *raftGuard) valueDone() *RaftRPCError {
	switch g.role {
	case roleKey:
		g.field = ""
		switch k := string(g.capture); k {
		case "ID", "Addr", "Leader", "Candidate", "Size":
			g.field = k
		}
	case roleField:
		if err := g.checkField(string(g.capture)); err != nil {
			return err
		}
		g.field = ""
	}
	g.role, g.capture = roleNone, nil
	for {
		if len(g.stack) == 0 { // the request is complete
			g.msgBytes = 0
			g.state = gsRPCType
			if g.rpcType == rpcInstallSnapshot && g.size > 0 {
				g.rawLeft = uint64(g.size)
				g.state = gsRaw
			}
			return nil
		}
		c := &g.stack[len(g.stack)-1]
		c.idx++
		c.left--
		if c.left > 0 {
			g.state = gsLead
			return nil
		}
		g.stack = g.stack[:len(g.stack)-1]
	}
}

func (g *raftGuard) checkField(v string) *RaftRPCError {
	if v == "" || g.field == "Size" {
		return nil
	}
	if g.field == "ID" {
		if v != g.peer {
			return g.fail(RefusalRaftHeader, "header id %q on a stream from %q", v, g.peer)
		}
		return nil
	}
	if g.gate != nil {
		if id := g.gate.RaftPeerID(v); id != "" && id != g.peer {
			return g.fail(RefusalRaftHeader, "%s %q is member %q's, stream from %q", g.field, v, id, g.peer)
		}
	}
	return nil
}
