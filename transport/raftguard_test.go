//lint:file-ignore SA1019 raft v1.7.3 still sends the deprecated Leader and Candidate fields and encodes with BasicHandle options: the tests build requests exactly as raft does.

package transport

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// fakeGate is a Gate with fixed answers: denied ids, raft servers and the
// ids at raft addresses.
type fakeGate struct {
	deny  map[string]bool
	raft  map[string]bool // nil: everyone
	addrs map[string]string
}

func (g *fakeGate) AllowPeer(id string) error {
	if g.deny[id] {
		return errors.New("expelled: " + id)
	}
	return nil
}

func (g *fakeGate) AllowRaft(id string) bool { return g.raft == nil || g.raft[id] }

func (g *fakeGate) RaftPeerID(addr string) string { return g.addrs[addr] }

var guardGate = &fakeGate{addrs: map[string]string{"10.0.0.1:7000": "n1", "10.0.0.2:7000": "n2"}}

// encodeRPC writes one RPC the way raft's NetworkTransport does (sendRPC):
// the rpc type byte, then the request encoded by go-msgpack.
func encodeRPC(t testing.TB, newTime bool, rpcType byte, req any) []byte {
	t.Helper()
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	enc := codec.NewEncoder(w, &codec.MsgpackHandle{BasicHandle: codec.BasicHandle{TimeNotBuiltin: !newTime}})
	w.WriteByte(rpcType)
	if err := enc.Encode(req); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	return b.Bytes()
}

func hdr(id, addr string) raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte(addr)}
}

func appendEntries(id, addr string) *raft.AppendEntriesRequest {
	return &raft.AppendEntriesRequest{
		RPCHeader: hdr(id, addr), Term: 7, Leader: []byte(addr), PrevLogEntry: 41, PrevLogTerm: 6,
		Entries: []*raft.Log{
			{Index: 42, Term: 7, Type: raft.LogCommand, Data: bytes.Repeat([]byte("d"), 3000), Extensions: []byte("x"), AppendedAt: time.Unix(1700000000, 5)},
			{Index: 43, Term: 7, Type: raft.LogConfiguration, Data: []byte{0x81, 0xa2, 'I', 'D', 0xa2, 'n', '2'}}, // a map with an "ID" key, nested
		},
		LeaderCommitIndex: 40,
	}
}

// rpcStream is a legitimate sequence from n1: every RPC type, a snapshot
// whose data looks like a forged request, then a heartbeat.
func rpcStream(t testing.TB, newTime bool) (stream []byte, snapshot []byte) {
	a := "10.0.0.1:7000"
	snapshot = encodeRPC(t, newTime, rpcAppendEntries, appendEntries("n2", "10.0.0.2:7000"))
	var b []byte
	b = append(b, encodeRPC(t, newTime, rpcAppendEntries, appendEntries("n1", a))...)
	b = append(b, encodeRPC(t, newTime, rpcRequestVote, &raft.RequestVoteRequest{RPCHeader: hdr("n1", a), Term: 8, Candidate: []byte(a), LastLogIndex: 43, LastLogTerm: 7, LeadershipTransfer: true})...)
	b = append(b, encodeRPC(t, newTime, rpcRequestPreVote, &raft.RequestPreVoteRequest{RPCHeader: hdr("n1", a), Term: 9, LastLogIndex: 43, LastLogTerm: 7})...)
	b = append(b, encodeRPC(t, newTime, rpcTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: hdr("n1", a)})...)
	b = append(b, encodeRPC(t, newTime, rpcInstallSnapshot, &raft.InstallSnapshotRequest{
		RPCHeader: hdr("n1", a), SnapshotVersion: 1, Term: 9, Leader: []byte(a), LastLogIndex: 50, LastLogTerm: 9,
		Configuration: []byte("conf"), ConfigurationIndex: 3, Size: int64(len(snapshot)),
	})...)
	b = append(b, snapshot...)
	b = append(b, encodeRPC(t, newTime, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: hdr("n1", a), Term: 9})...)
	// Legacy senders: no ID, only the deprecated address fields.
	b = append(b, encodeRPC(t, newTime, rpcAppendEntries, &raft.AppendEntriesRequest{Term: 9, Leader: []byte(a)})...)
	return b, snapshot
}

// feedChunks feeds in chunks of the given size and returns the bytes
// accepted before the first error.
func feedChunks(g *raftGuard, b []byte, size int) (int, error) {
	n := 0
	for len(b) > 0 {
		c := min(size, len(b))
		if err := g.check(b[:c], nil); err != nil {
			return n, err
		}
		n += c
		b = b[c:]
	}
	return n, nil
}

func TestRaftGuardAcceptsRaftEncodings(t *testing.T) {
	for _, newTime := range []bool{false, true} {
		stream, _ := rpcStream(t, newTime)
		for _, size := range []int{1, 2, 7, 64, 4096, len(stream)} {
			g := newRaftGuard("n1", guardGate, 0)
			if n, err := feedChunks(g, stream, size); err != nil {
				t.Fatalf("newTime=%v chunk %d: refused at byte %d of %d: %v", newTime, size, n, len(stream), err)
			}
			if g.state != gsRPCType || len(g.stack) != 0 {
				t.Fatalf("guard not between requests at the end: state %d, depth %d", g.state, len(g.stack))
			}
		}
	}
}

func TestRaftGuardRefuses(t *testing.T) {
	a1, a2 := "10.0.0.1:7000", "10.0.0.2:7000"
	// raw builds a request map by hand: pairs of pre-encoded keys and values.
	raw := func(rpc byte, kv ...[]byte) []byte {
		b := []byte{rpc, 0x80 | byte(len(kv)/2)}
		for _, x := range kv {
			b = append(b, x...)
		}
		return b
	}
	str := func(s string) []byte { return append([]byte{0xa0 | byte(len(s))}, s...) }
	bin := func(s string) []byte { return append([]byte{0xc4, byte(len(s))}, s...) }
	arr := func(s string) []byte { // bytes as an array of uint8, which go-msgpack accepts
		b := []byte{0x90 | byte(len(s))}
		return append(b, s...)
	}
	tests := []struct {
		name   string
		in     []byte
		reason string
	}{
		{"append entries in another member's name", encodeRPC(t, false, rpcAppendEntries, appendEntries("n2", a1)), RefusalRaftHeader},
		{"request vote in another member's name", encodeRPC(t, false, rpcRequestVote, &raft.RequestVoteRequest{RPCHeader: hdr("n2", a1), Term: 99}), RefusalRaftHeader},
		{"pre-vote in another member's name", encodeRPC(t, false, rpcRequestPreVote, &raft.RequestPreVoteRequest{RPCHeader: hdr("n2", a1), Term: 99}), RefusalRaftHeader},
		{"timeout now in another member's name", encodeRPC(t, false, rpcTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: hdr("n2", "")}), RefusalRaftHeader},
		{"install snapshot in another member's name", encodeRPC(t, false, rpcInstallSnapshot, &raft.InstallSnapshotRequest{RPCHeader: hdr("n2", a1), Size: 10}), RefusalRaftHeader},
		{"no id, another member's address", encodeRPC(t, false, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: hdr("", a2), Term: 9}), RefusalRaftHeader},
		{"no id, another member's legacy leader address", encodeRPC(t, false, rpcAppendEntries, &raft.AppendEntriesRequest{Term: 9, Leader: []byte(a2)}), RefusalRaftHeader},
		{"no id, another member's candidate address", encodeRPC(t, false, rpcRequestVote, &raft.RequestVoteRequest{Term: 9, Candidate: []byte(a2)}), RefusalRaftHeader},
		{"good request then a forged one", append(encodeRPC(t, false, rpcTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: hdr("n1", a1)}), encodeRPC(t, false, rpcTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: hdr("n2", a1)})...), RefusalRaftHeader},
		{"duplicate ID key, the last forged", raw(rpcTimeoutNow, str("ID"), str("n1"), str("ID"), str("n2")), RefusalRaftHeader},
		{"ID as bin", raw(rpcTimeoutNow, str("ID"), bin("n2")), RefusalRaftHeader},
		{"key as bin", raw(rpcTimeoutNow, bin("ID"), str("n2")), RefusalRaftHeader},
		{"key as an array of bytes", raw(rpcTimeoutNow, arr("ID"), str("n2")), RefusalRaftMalformed},
		{"ID as an array of bytes", raw(rpcTimeoutNow, str("ID"), arr("n2")), RefusalRaftMalformed},
		{"ID as a number", raw(rpcTimeoutNow, str("ID"), []byte{0x01}), RefusalRaftMalformed},
		{"Size as a string", raw(rpcInstallSnapshot, str("Size"), str("9")), RefusalRaftMalformed},
		{"request as an array", []byte{rpcTimeoutNow, 0x93, 0x01, 0xa2, 'n', '2', 0xc0}, RefusalRaftMalformed},
		{"unknown rpc type", []byte{9, 0x80}, RefusalRaftMalformed},
		{"reserved byte", raw(rpcTimeoutNow, str("Term"), []byte{0xc1}), RefusalRaftMalformed},
		{"too deep", append([]byte{rpcTimeoutNow, 0x81, 0xa1, 'x'}, bytes.Repeat([]byte{0x91}, 40)...), RefusalRaftMalformed},
		{"ID too long", raw(rpcTimeoutNow, str("ID"), append([]byte{0xda, 0x08, 0x00}, bytes.Repeat([]byte("n"), 2048)...)), RefusalRaftMalformed},
		{"request over the limit", raw(rpcTimeoutNow, str("Data"), append([]byte{0xc6, 0, 0x10, 0, 0}, make([]byte, 1<<20)...)), RefusalRaftTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{1, 5, len(tt.in)} {
				g := newRaftGuard("n1", guardGate, 1<<20)
				var seen *RaftRPCError
				_, err := feedChunks(g, tt.in, size)
				if err == nil {
					t.Fatalf("chunk %d: accepted", size)
				}
				var rerr *RaftRPCError
				if !errors.As(err, &rerr) || rerr.Reason != tt.reason || !errors.Is(err, ErrRaftRPC) {
					t.Fatalf("chunk %d: err = %v, want reason %q", size, err, tt.reason)
				}
				// Sticky, and reported to the callback once.
				if err2 := g.check([]byte{0}, func(e *RaftRPCError) { seen = e }); err2 != err || seen != nil {
					t.Fatalf("second check = %v (callback %v), want the same error and no callback", err2, seen)
				}
			}
		})
	}
}

// TestRaftGuardStopsBeforeTheForgedRequest checks that the bytes a guard
// lets through before refusing never hold a whole forged request: raft's
// own decoder fails on them.
func TestRaftGuardStopsBeforeTheForgedRequest(t *testing.T) {
	forged := encodeRPC(t, false, rpcAppendEntries, appendEntries("n2", "10.0.0.1:7000"))
	for size := 1; size <= len(forged); size += 97 {
		g := newRaftGuard("n1", guardGate, 0)
		n, err := feedChunks(g, forged, size)
		if err == nil {
			t.Fatal("forged request accepted")
		}
		dec := codec.NewDecoder(bytes.NewReader(forged[1:max(n, 1)]), &codec.MsgpackHandle{})
		var req raft.AppendEntriesRequest
		if n > 1 && dec.Decode(&req) == nil {
			t.Fatalf("chunk %d: the %d bytes let through decode to a whole request", size, n)
		}
	}
}

// FuzzRaftRPC feeds arbitrary streams to the guard. It must never panic,
// and whatever it accepts must, decoded the way raft's NetworkTransport
// decodes it, name the stream's peer (or nobody) in every header field.
func FuzzRaftRPC(f *testing.F) {
	stream, snapshot := rpcStream(f, false)
	f.Add(stream)
	f.Add(snapshot)
	f.Add(encodeRPC(f, true, rpcRequestVote, &raft.RequestVoteRequest{RPCHeader: hdr("n1", "10.0.0.1:7000"), Term: 3}))
	f.Add([]byte{rpcTimeoutNow, 0x82, 0xa2, 'I', 'D', 0xa2, 'n', '1', 0xa2, 'I', 'D', 0xc4, 2, 'n', '2'})
	f.Fuzz(func(t *testing.T, in []byte) {
		g := newRaftGuard("n1", guardGate, 1<<16)
		if g.check(in, nil) != nil || (g.state != gsRPCType && g.state != gsRaw) {
			// Refused, or it ends inside a request: raft has not
			// decoded that request yet (and decoding a truncated one
			// only costs this test time).
			return
		}
		r := bufio.NewReader(bytes.NewReader(in))
		dec := codec.NewDecoder(r, &codec.MsgpackHandle{})
		for range 16 {
			typ, err := r.ReadByte()
			if err != nil {
				return
			}
			var h raft.RPCHeader
			var addrs [][]byte
			var size int64
			switch typ {
			case rpcAppendEntries:
				var req raft.AppendEntriesRequest
				err = dec.Decode(&req)
				h, addrs = req.RPCHeader, [][]byte{req.Leader}
			case rpcRequestVote:
				var req raft.RequestVoteRequest
				err = dec.Decode(&req)
				h, addrs = req.RPCHeader, [][]byte{req.Candidate}
			case rpcRequestPreVote:
				var req raft.RequestPreVoteRequest
				err = dec.Decode(&req)
				h = req.RPCHeader
			case rpcInstallSnapshot:
				var req raft.InstallSnapshotRequest
				err = dec.Decode(&req)
				h, addrs, size = req.RPCHeader, [][]byte{req.Leader}, req.Size
			case rpcTimeoutNow:
				var req raft.TimeoutNowRequest
				err = dec.Decode(&req)
				h = req.RPCHeader
			default:
				t.Fatalf("guard accepted rpc type %d", typ)
			}
			if err != nil {
				return // raft would drop the stream too
			}
			if len(h.ID) > 0 && string(h.ID) != "n1" {
				t.Fatalf("guard accepted a request with header id %q", h.ID)
			}
			for _, a := range append(addrs, h.Addr) {
				if id := guardGate.RaftPeerID(string(a)); id != "" && id != "n1" {
					t.Fatalf("guard accepted a request with %q's address", id)
				}
			}
			if size > 0 {
				if _, err := io.CopyN(io.Discard, r, size); err != nil {
					return
				}
			}
		}
	})
}
