//lint:file-ignore SA1019 raft v1.7.3 still sends the deprecated Leader and Candidate fields and encodes with BasicHandle options: the tests build requests exactly as raft does.

package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"
	"github.com/quic-go/quic-go"
)

// raftServer runs a hashicorp/raft NetworkTransport on a stream layer and
// answers every AppendEntries it consumes, recording the header ids.
type raftServer struct {
	nt   *raft.NetworkTransport
	ids  chan string
	stop chan struct{}
	done chan struct{}
}

func newRaftServer(t *testing.T, l raft.StreamLayer) *raftServer {
	t.Helper()
	s := &raftServer{
		nt:   raft.NewNetworkTransport(l, 4, 5*time.Second, io.Discard),
		ids:  make(chan string, 64),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		for {
			select {
			case rpc := <-s.nt.Consumer():
				var id string
				if h, ok := rpc.Command.(raft.WithRPCHeader); ok {
					id = string(h.GetRPCHeader().ID)
				}
				s.ids <- id
				if rpc.Reader != nil { // InstallSnapshot: its data follows
					n, err := io.Copy(io.Discard, rpc.Reader)
					rpc.Respond(&raft.InstallSnapshotResponse{Term: 1, Success: err == nil && n == rpc.Command.(*raft.InstallSnapshotRequest).Size}, nil)
					continue
				}
				rpc.Respond(&raft.AppendEntriesResponse{Term: 1, Success: true}, nil)
			case <-s.stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(s.stop)
		<-s.done
		s.nt.Close()
	})
	return s
}

// raftClient returns a NetworkTransport over l for sending RPCs; it is
// closed when the test ends.
func raftClient(t *testing.T, l raft.StreamLayer) *raft.NetworkTransport {
	nt := raft.NewNetworkTransport(l, 4, 5*time.Second, io.Discard)
	t.Cleanup(func() { nt.Close() })
	return nt
}

func heartbeat(id, addr string) *raft.AppendEntriesRequest {
	return &raft.AppendEntriesRequest{RPCHeader: hdr(id, addr), Term: 1, Leader: []byte(addr)}
}

// TestAdversarialRaft: a certificate holder that is not a raft server is
// refused its raft stream (a); one that is allowed raft but sends an
// AppendEntries in another member's name has its stream aborted (b); in
// both cases the refusal is logged with its reason and counted, and the
// legitimate member's RPCs still work.
func TestAdversarialRaft(t *testing.T) {
	logs := newLogEvents()
	server := newNode(t, "server", func(c *Config) { c.Logger = slog.New(logs) })
	n1 := newNode(t, "n1", nil)
	mallory := newNode(t, "mallory", nil)
	eve := newNode(t, "eve", nil)
	gate := &fakeGate{
		raft:  map[string]bool{"n1": true, "eve": true},
		addrs: map[string]string{n1.Addr(): "n1", eve.Addr(): "eve"},
	}
	server.SetGate(gate)
	srv := newRaftServer(t, server.StreamLayer())
	target := raft.ServerAddress(server.Addr())
	legit := raftClient(t, n1.StreamLayer())
	legitCall := func() {
		t.Helper()
		var resp raft.AppendEntriesResponse
		if err := legit.AppendEntries("server", target, heartbeat("n1", n1.Addr()), &resp); err != nil || !resp.Success {
			t.Fatalf("legitimate AppendEntries: %v, %+v", err, resp)
		}
		if id := <-srv.ids; id != "n1" {
			t.Fatalf("server consumed an RPC from %q", id)
		}
	}
	legitCall()
	// A snapshot whose data is itself a forged request passes through.
	data := encodeRPC(t, false, rpcAppendEntries, appendEntries("n2", "10.0.0.2:7000"))
	var sresp raft.InstallSnapshotResponse
	err := legit.InstallSnapshot("server", target, &raft.InstallSnapshotRequest{
		RPCHeader: hdr("n1", n1.Addr()), SnapshotVersion: 1, Term: 1, Leader: []byte(n1.Addr()),
		LastLogIndex: 10, LastLogTerm: 1, Size: int64(len(data)),
	}, &sresp, bytes.NewReader(data))
	if err != nil || !sresp.Success {
		t.Fatalf("legitimate InstallSnapshot: %v, %+v", err, sresp)
	}
	if id := <-srv.ids; id != "n1" {
		t.Fatalf("server consumed a snapshot from %q", id)
	}
	legitCall()

	t.Run("a: raft stream from a non-member", func(t *testing.T) {
		c := raftClient(t, mallory.StreamLayer())
		var resp raft.AppendEntriesResponse
		err := c.AppendEntries("server", target, heartbeat("n1", n1.Addr()), &resp)
		// raft's decoder flattens the stream error into its message.
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("canceled by remote with error code %d", codeRaftRefused)) {
			t.Fatalf("AppendEntries from a non-member = %v, want the stream reset with %#x", err, codeRaftRefused)
		}
		logs.waitLog(t, 5*time.Second, "stream refused", "peer=mallory", "reason="+RefusalRaftNotAllowed, "addr="+mallory.Addr())
		if n := server.Refusals()[RefusalRaftNotAllowed]; n != 1 {
			t.Errorf("refusals %q = %d, want 1", RefusalRaftNotAllowed, n)
		}
		legitCall()
	})

	t.Run("b: append entries in another member's name", func(t *testing.T) {
		c := raftClient(t, eve.StreamLayer())
		var resp raft.AppendEntriesResponse
		// eve is a raft server, but claims to be n1, with n1's address.
		err := c.AppendEntries("server", target, heartbeat("n1", n1.Addr()), &resp)
		if err == nil {
			t.Fatal("forged AppendEntries answered")
		}
		logs.waitLog(t, 5*time.Second, "stream refused", "peer=eve", "reason="+RefusalRaftHeader, `member "n1"`)
		// n1's id with eve's own address: the header id gives it away.
		if err := c.AppendEntries("server", target, heartbeat("n1", eve.Addr()), &resp); err == nil {
			t.Fatal("forged AppendEntries answered")
		}
		logs.waitLog(t, 5*time.Second, "stream refused", "peer=eve", "reason="+RefusalRaftHeader, `header id "n1"`)
		if n := server.Refusals()[RefusalRaftHeader]; n != 2 {
			t.Errorf("refusals %q = %d, want 2", RefusalRaftHeader, n)
		}
		// Its own name is fine.
		if err := c.AppendEntries("server", target, heartbeat("eve", eve.Addr()), &resp); err != nil {
			t.Fatalf("eve's own AppendEntries: %v", err)
		}
		if id := <-srv.ids; id != "eve" {
			t.Fatalf("server consumed an RPC from %q, want eve's", id)
		}
		legitCall()
	})
	select {
	case id := <-srv.ids:
		t.Fatalf("server consumed a stray RPC from %q", id)
	default:
	}
}

// TestAdversarialRaftDialChecksID: with the gate naming the member at an
// address, a raft Dial there refuses anyone else's certificate.
func TestAdversarialRaftDialChecksID(t *testing.T) {
	a := newNode(t, "a", nil)
	impostor := newNode(t, "impostor", nil)
	a.SetGate(&fakeGate{addrs: map[string]string{impostor.Addr(): "n2"}})
	_, err := a.StreamLayer().Dial(raft.ServerAddress(impostor.Addr()), 2*time.Second)
	if !errors.Is(err, ErrPeerIdentity) {
		t.Fatalf("Dial to an impostor = %v, want ErrPeerIdentity", err)
	}
	if n := a.Refusals()[RefusalIDMismatch]; n != 1 {
		t.Errorf("refusals %q = %d, want 1", RefusalIDMismatch, n)
	}
}

// TestAdversarialHalfSentFrames (c): a certificate holder opens 64 streams
// and sends half of a 4 MiB frame on each. Before budgets this pinned 64
// frames of 4 MiB (256 MiB); now the node holds at most MaxConnBufferBytes
// in partial frames, its heap grows by well under the documented
// per-connection bound, and a legitimate peer's frames still arrive.
func TestAdversarialHalfSentFrames(t *testing.T) {
	const streams, frame = 64, 4 << 20
	server := newNode(t, "server", nil)
	legit := newNode(t, "legit", nil)
	got := make(chan int, 16)
	server.Handle(KindCalls, HandlerFunc(func(from string, f []byte) {
		if from == "legit" {
			got <- len(f) // not kept: only the attacker's bytes are measured
		}
	}))

	var m0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)

	conn := dialRawConn(t, server, []tls.Certificate{issue(t, devCA(t), "mallory").Cert})
	if conn == nil {
		t.Fatal("handshake failed")
	}
	half := make([]byte, frame/2) // shared: quic-go sends from it without copying
	var wg sync.WaitGroup
	var written sync.Map
	for i := range streams {
		s, err := conn.OpenStreamSync(t.Context())
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		wg.Go(func() {
			// Writes stop when flow control does; the deadline bounds how
			// long the test waits for that.
			s.SetWriteDeadline(time.Now().Add(3 * time.Second))
			n, _ := s.Write(binary.BigEndian.AppendUint32([]byte{byte(KindCalls)}, frame))
			k, _ := s.Write(half)
			written.Store(i, n+k)
		})
	}
	wg.Wait()
	total := 0
	written.Range(func(_, v any) bool { total += v.(int); return true })

	var m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m1)
	grew := int64(m1.HeapInuse) - int64(m0.HeapInuse)
	cfg := server.cfg
	// The documented bound on what one peer can make a node hold: its
	// partial frames, what QUIC buffers, and each stream's read buffers.
	bound := cfg.MaxConnBufferBytes + cfg.ConnReceiveWindow + int(cfg.MaxIncomingStreams)*(64<<10+slabSize)
	t.Logf("attacker wrote %d KiB on %d streams; heap grew %d KiB (bound %d KiB)", total>>10, streams, grew>>10, bound>>10)
	if grew > int64(bound)+16<<20 {
		t.Errorf("heap grew %d MiB, over the %d MiB bound", grew>>20, bound>>20)
	}

	// The legitimate peer's frames, small and large, still get through.
	to := Peer{ID: "server", Addr: server.Addr()}
	big := make([]byte, 1<<20)
	for i := range 10 {
		if err := legit.Send(t.Context(), to, KindCalls, big[:len(big)-i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		select {
		case n := <-got:
			if n != len(big)-i {
				t.Fatalf("legit frame %d has %d bytes", i, n)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("legit frame %d did not arrive", i)
		}
	}
	server.mu.RLock()
	pc := server.conns["mallory"]
	server.mu.RUnlock()
	if pc == nil {
		t.Fatal("attacker's connection gone")
	}
	held, peak := pc.budget.stats()
	if peak > cfg.MaxConnBufferBytes || held == 0 {
		t.Errorf("budget held %d, peak %d, limit %d", held, peak, cfg.MaxConnBufferBytes)
	}
	conn.CloseWithError(0, "")
}

// TestConnBudgetNoDeadlock: two streams of one connection each receive a
// frame of MaxFrameSize under the smallest budget; the budget makes the
// second wait, never both, and both frames complete within the limit.
func TestConnBudgetNoDeadlock(t *testing.T) {
	const maxFrame = 1 << 20
	done := make(chan struct{})
	defer close(done)
	b := newConnBudget(maxFrame+bigChunk, maxFrame, done)
	payload := make([]byte, maxFrame)
	frames := make(chan int, 2)
	var wg sync.WaitGroup
	var ws []*io.PipeWriter
	for i := range 2 {
		r, w := io.Pipe()
		ws = append(ws, w)
		fr := newFrameReader(r, maxFrame)
		fr.budget = b
		wg.Go(func() {
			f, err := fr.next()
			if err != nil {
				t.Errorf("stream %d: %v", i, err)
			}
			frames <- len(f)
		})
	}
	// Both announce a frame and send it at once, interleaved.
	hdr := binary.BigEndian.AppendUint32(nil, maxFrame)
	var wwg sync.WaitGroup
	for _, w := range ws {
		wwg.Go(func() {
			w.Write(hdr)
			w.Write(payload)
			w.Close()
		})
	}
	wwg.Wait()
	wg.Wait()
	for range 2 {
		if n := <-frames; n != maxFrame {
			t.Fatalf("frame of %d bytes, want %d", n, maxFrame)
		}
	}
	if held, peak := b.stats(); held != 0 || peak > b.limit {
		t.Fatalf("budget held %d after, peak %d, limit %d", held, peak, b.limit)
	}
}

// TestAdversarialDeniedHandshake (d): an id the gate denies is refused at
// the handshake in both directions, logged with its reason and counted.
func TestAdversarialDeniedHandshake(t *testing.T) {
	logs := newLogEvents()
	server := newNode(t, "server", func(c *Config) { c.Logger = slog.New(logs) })
	server.SetGate(&fakeGate{deny: map[string]bool{"mallory": true}})
	got := newCollector()
	server.Handle(KindCalls, got)
	mallory := newNode(t, "mallory", nil)
	mallory.Handle(KindCalls, got)

	// Incoming: mallory dials the server.
	mallory.Send(t.Context(), Peer{Addr: server.Addr()}, KindCalls, []byte("let me in"))
	logs.waitLog(t, 5*time.Second, "peer refused", "dir=incoming", "peer=mallory", "reason="+RefusalDenied, "expelled: mallory", "addr="+mallory.Addr())
	// Outgoing: the server dials mallory.
	err := server.Send(t.Context(), Peer{Addr: mallory.Addr()}, KindCalls, []byte("hello"))
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Send to a denied peer = %v, want ErrUnreachable", err)
	}
	logs.waitLog(t, 5*time.Second, "peer refused", "dir=outgoing", "peer=mallory", "reason="+RefusalDenied)
	if n := server.Refusals()[RefusalDenied]; n != 2 {
		t.Errorf("refusals %q = %d, want 2", RefusalDenied, n)
	}
	if f := got.snapshot(); len(f) != 0 {
		t.Errorf("frames crossed a denied link: %q", f)
	}
	// Another peer still gets in.
	legit := newNode(t, "legit", nil)
	if err := legit.Send(t.Context(), Peer{ID: "server", Addr: server.Addr()}, KindCalls, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1, 5*time.Second)
}

// TestAdversarialSilentPeer (e): a peer that never reads its streams.
// TrySend fills the queue and then returns ErrQueueFull at once, never
// waiting; Send still honours its ctx.
func TestAdversarialSilentPeer(t *testing.T) {
	const limit = 64 << 10
	server := newNode(t, "server", func(c *Config) { c.MaxQueueBytes = limit })
	hello := newCollector()
	server.Handle(KindCalls, hello)
	conn := dialRaw(t, server, []tls.Certificate{issue(t, devCA(t), "silent").Cert})
	if conn == nil {
		t.Fatal("handshake failed")
	}
	// dialRaw's frame arriving means the server has the connection.
	hello.wait(t, 1, 5*time.Second)
	var err error
	frame := make([]byte, 4096)
	to := Peer{ID: "silent"}
	var slowest time.Duration
	// The queue is full for good once the peer's flow-control window is
	// spent too: until then the writer drains it now and then. A hundred
	// refusals in a row mean it no longer drains.
	inARow := 0
	for i := 0; i < 50000 && inARow < 100; i++ {
		start := time.Now()
		err = server.TrySend(to, KindCalls, frame)
		slowest = max(slowest, time.Since(start))
		switch {
		case err == nil:
			inARow = 0
		case errors.Is(err, ErrQueueFull):
			inARow++
		default:
			t.Fatal(err)
		}
	}
	if inARow < 100 {
		t.Fatalf("TrySend never reported a full queue for good: %v", err)
	}
	t.Logf("slowest TrySend %v", slowest)
	if slowest > 50*time.Millisecond {
		t.Errorf("a TrySend took %v", slowest)
	}
	if q := server.Stats()[0].QueuedBytes; q > limit {
		t.Errorf("queued %d bytes, limit %d", q, limit)
	}
	// Control has its own queue: still room there.
	if err := server.TrySend(to, KindControl, []byte("ping")); err != nil {
		t.Errorf("control TrySend behind a full calls queue: %v", err)
	}
}

// TestTrySendNeverDials (e): TrySend to a peer with no connection fails at
// once with ErrUnreachable and sends not one packet to its address.
func TestTrySendNeverDials(t *testing.T) {
	a := newNode(t, "a", func(c *Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	sock, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	addr := sock.LocalAddr().String()
	// a knows the address: an earlier Send tried it. Wait that dial out.
	if err := a.Send(t.Context(), Peer{ID: "ghost", Addr: addr}, KindCalls, []byte("x")); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Send to a socket that does not answer = %v", err)
	}
	drain := func() int {
		n := 0
		buf := make([]byte, 2048)
		for {
			sock.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, _, err := sock.ReadFrom(buf); err != nil {
				return n
			}
			n++
		}
	}
	if drain() == 0 {
		t.Fatal("the counting socket saw no packet from a dialling Send")
	}
	for _, to := range []Peer{{ID: "ghost"}, {ID: "ghost", Addr: addr}, {Addr: addr}} {
		if err := a.TrySend(to, KindCalls, []byte("x")); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("TrySend(%+v) = %v, want ErrUnreachable", to, err)
		}
	}
	a.mu.RLock()
	dials := len(a.dials)
	a.mu.RUnlock()
	if n := drain(); n != 0 || dials != 0 {
		t.Fatalf("TrySend dialled: %d packets, %d dials", n, dials)
	}
}

// TestOnDisconnectQUIC (f, g): OnDisconnect fires once when the peer
// closes, when it crashes (at the idle timeout: it sends nothing), and on
// both ends when one Drops the other, whose connection ends with the
// "refused" code.
func TestOnDisconnectQUIC(t *testing.T) {
	fast := func(c *Config) {
		c.MaxIdleTimeout = 600 * time.Millisecond
		c.KeepAlivePeriod = 100 * time.Millisecond
	}
	a := newNode(t, "a", fast)
	gone := make(chan string, 16)
	a.OnDisconnect(func(peer string) { gone <- peer })
	expect := func(t *testing.T, peer string) {
		t.Helper()
		select {
		case p := <-gone:
			if p != peer {
				t.Fatalf("OnDisconnect(%q), want %q", p, peer)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no OnDisconnect(%q)", peer)
		}
	}
	connect := func(t *testing.T, b *QUIC) {
		t.Helper()
		got := newCollector()
		b.Handle(KindCalls, got)
		if err := a.Send(t.Context(), Peer{ID: b.ID(), Addr: b.Addr()}, KindCalls, []byte("x")); err != nil {
			t.Fatal(err)
		}
		got.wait(t, 1, 5*time.Second)
	}

	t.Run("peer closes", func(t *testing.T) {
		b := newNode(t, "b", fast)
		connect(t, b)
		b.Close()
		expect(t, "b")
		if err := a.TrySend(Peer{ID: "b"}, KindCalls, []byte("x")); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("TrySend after the peer closed = %v", err)
		}
	})
	t.Run("peer crashes", func(t *testing.T) {
		b := newNode(t, "c", fast)
		connect(t, b)
		b.crash()
		expect(t, "c")
	})
	t.Run("drop", func(t *testing.T) {
		b := newNode(t, "d", fast)
		bgone := make(chan string, 1)
		b.OnDisconnect(func(peer string) { bgone <- peer })
		connect(t, b)
		b.mu.RLock()
		pc := b.conns["a"]
		b.mu.RUnlock()
		a.Drop("d")
		expect(t, "d")
		if err := a.TrySend(Peer{ID: "d"}, KindCalls, []byte("x")); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("TrySend after Drop = %v", err)
		}
		<-pc.conn.Context().Done()
		var aerr *quic.ApplicationError
		if err := context.Cause(pc.conn.Context()); !errors.As(err, &aerr) || !aerr.Remote || aerr.ErrorCode != codeDropped {
			t.Fatalf("dropped peer's connection ended with %v, want remote code %#x", err, codeDropped)
		}
		if p := <-bgone; p != "a" {
			t.Fatalf("peer's OnDisconnect(%q)", p)
		}
	})
	select {
	case p := <-gone:
		t.Fatalf("extra OnDisconnect(%q)", p)
	default:
	}
}

// TestOnDisconnectNotForDuplicate: when a simultaneous dial retires one of
// two connections, OnDisconnect does not fire: the other stays usable.
func TestOnDisconnectNotForDuplicate(t *testing.T) {
	logs := newLogEvents()
	short := func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond; c.Logger = slog.New(logs) }
	a, b := newNode(t, "a", short), newNode(t, "b", short)
	gone := make(chan string, 4)
	a.OnDisconnect(func(p string) { gone <- p })
	b.OnDisconnect(func(p string) { gone <- p })
	var wg sync.WaitGroup
	var pb *peerConn
	wg.Go(func() { a.dial(t.Context(), b.Addr(), "b") })
	wg.Go(func() { pb, _ = b.dial(t.Context(), a.Addr(), "a") })
	wg.Wait()
	if pb == nil {
		t.Fatal("dial failed")
	}
	<-connOf(t, b, pb, "a").conn.Context().Done() // the loser closes
	// Both ends have forgotten it (logged after OnDisconnect's decision).
	seen := map[string]bool{}
	timeout := time.After(5 * time.Second)
	for !seen["a"] || !seen["b"] {
		select {
		case line := <-logs.ch:
			for _, n := range []string{"a", "b"} {
				if strings.Contains(line, "disconnected") && strings.Contains(line, "node="+n+" ") && strings.Contains(line, "last=false") {
					seen[n] = true
				}
			}
		case <-timeout:
			t.Fatalf("retired duplicate not forgotten on both ends: %v", seen)
		}
	}
	got := newCollector()
	b.Handle(KindCalls, got)
	if err := a.TrySend(Peer{ID: "b"}, KindCalls, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1, 5*time.Second)
	select {
	case p := <-gone:
		t.Fatalf("OnDisconnect(%q) for a retired duplicate", p)
	default:
	}
}

// TestMemTrySendAndDisconnect: on Mem, TrySend never waits (in a synctest
// bubble a wait would deadlock the test), needs a connection, and
// OnDisconnect fires on partition, peer Close and Drop.
func TestMemTrySendAndDisconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := NewMemNetwork()
		a, err := nw.JoinConfig("a", MemConfig{MaxQueueBytes: 8 << 10})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		ms := mustJoin(t, nw, "b", "c", "d")
		b, c, d := ms[0], ms[1], ms[2]
		gone := make(chan string, 16)
		a.OnDisconnect(func(p string) { gone <- p })
		expect := func(t *testing.T, want string) {
			t.Helper()
			synctest.Wait()
			select {
			case p := <-gone:
				if p != want {
					t.Fatalf("OnDisconnect(%q), want %q", p, want)
				}
			default:
				t.Fatalf("no OnDisconnect(%q)", want)
			}
		}
		if err := a.TrySend(Peer{ID: "b"}, KindCalls, []byte("x")); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("TrySend before any exchange = %v", err)
		}
		stuck := make(chan struct{})
		b.Handle(KindCalls, HandlerFunc(func(string, []byte) { <-stuck }))
		if err := a.Send(t.Context(), Peer{ID: "b"}, KindCalls, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		full := false
		for range 100 {
			err := a.TrySend(Peer{ID: "b"}, KindCalls, make([]byte, 1024))
			if errors.Is(err, ErrQueueFull) {
				full = true
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !full || time.Since(start) != 0 {
			t.Fatalf("full=%v after %v", full, time.Since(start))
		}
		close(stuck)

		nw.Partition("a", "b")
		expect(t, "b")
		if err := a.TrySend(Peer{ID: "b"}, KindCalls, []byte("x")); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("TrySend across a partition = %v", err)
		}
		c.Handle(KindControl, HandlerFunc(func(string, []byte) {}))
		if err := a.Send(t.Context(), Peer{ID: "c"}, KindControl, []byte("x")); err != nil {
			t.Fatal(err)
		}
		c.Close()
		expect(t, "c")
		if err := a.Send(t.Context(), Peer{ID: "d"}, KindControl, []byte("x")); err != nil {
			t.Fatal(err)
		}
		dgone := make(chan string, 1)
		d.OnDisconnect(func(p string) { dgone <- p })
		a.Drop("d")
		expect(t, "d")
		synctest.Wait()
		if p := <-dgone; p != "a" {
			t.Fatalf("d's OnDisconnect(%q)", p)
		}
		if err := a.TrySend(Peer{ID: "d"}, KindCalls, []byte("x")); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("TrySend after Drop = %v", err)
		}
	})
}

// TestMemGate: Mem enforces the gate like QUIC: denied peers cannot send
// or dial, raft Dial needs AllowRaft, and forged raft headers abort the
// conn.
func TestMemGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := NewMemNetwork()
		ms := mustJoin(t, nw, "server", "n1", "mallory")
		server, n1, mallory := ms[0], ms[1], ms[2]
		defer func() {
			for _, m := range ms {
				m.Close()
			}
		}()
		server.SetGate(&fakeGate{deny: map[string]bool{"mallory": true}, raft: map[string]bool{"n1": true}})
		if err := mallory.Send(t.Context(), Peer{ID: "server"}, KindCalls, []byte("x")); !errors.Is(err, ErrRefused) {
			t.Fatalf("Send from a denied peer = %v", err)
		}
		if _, err := mallory.StreamLayer().Dial(raft.ServerAddress(server.Addr()), time.Second); !errors.Is(err, ErrRefused) {
			t.Fatalf("Dial from a denied peer = %v", err)
		}
		server.SetGate(&fakeGate{raft: map[string]bool{"n1": true}})
		if _, err := mallory.StreamLayer().Dial(raft.ServerAddress(server.Addr()), time.Second); !errors.Is(err, ErrRefused) {
			t.Fatalf("raft Dial from a non-member = %v", err)
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := server.StreamLayer().Accept()
			if err == nil {
				accepted <- c
			}
		}()
		c, err := n1.StreamLayer().Dial(raft.ServerAddress(server.Addr()), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		s := <-accepted
		forged := encodeRPC(t, false, rpcTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: hdr("n2", "")})
		go c.Write(forged)
		buf := make([]byte, len(forged))
		if _, err := io.ReadFull(s, buf); !errors.Is(err, ErrRaftRPC) {
			t.Fatalf("read of a forged request = %v, want ErrRaftRPC", err)
		}
		c.Close()
		s.Close()
	})
}

// A second process presenting a connected peer's id from another address is
// refused while the first one's connection lives: one process per node id.
// The first keeps being served; once it is gone, the id may connect again.
func TestAdversarialSecondProcessSameID(t *testing.T) {
	server := newNode(t, "server", nil)
	got := newCollector()
	server.Handle(KindCalls, got)
	first := newNode(t, "twin", nil)
	ctx := t.Context()
	if err := first.Send(ctx, Peer{ID: "server", Addr: server.Addr()}, KindCalls, []byte("first")); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1, 10*time.Second)
	impostor := newNode(t, "twin", nil)
	refused := make(chan struct{})
	var once sync.Once
	impostor.OnDisconnect(func(string) { once.Do(func() { close(refused) }) })
	err := impostor.Send(ctx, Peer{ID: "server", Addr: server.Addr()}, KindCalls, []byte("impostor"))
	for err == nil { // the refusal may reach the impostor only after its first send
		err = impostor.Send(ctx, Peer{ID: "server", Addr: server.Addr()}, KindCalls, []byte("impostor"))
		if server.Refusals()[RefusalIDInUse] > 0 {
			break
		}
	}
	if n := server.Refusals()[RefusalIDInUse]; n == 0 {
		t.Fatalf("impostor not refused (send err %v), refusals %v", err, server.Refusals())
	}
	// The impostor learns why: once its connection is closed, its next dial
	// there fails with ErrIDInUse.
	if err == nil {
		select {
		case <-refused:
		case <-time.After(10 * time.Second):
			t.Fatal("the impostor's refused connection did not end")
		}
		err = impostor.Send(ctx, Peer{ID: "server", Addr: server.Addr()}, KindCalls, []byte("impostor"))
	}
	if !errors.Is(err, ErrIDInUse) {
		t.Fatalf("impostor's send after the refusal: %v, want ErrIDInUse", err)
	}
	if err := first.Send(ctx, Peer{ID: "server"}, KindCalls, []byte("first again")); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1, 10*time.Second)
	for i, f := range got.snapshot() {
		if f == "impostor" {
			t.Fatalf("frame %d from the impostor was delivered", i)
		}
	}
	// The first process goes away: the id may connect from elsewhere now.
	// Each attempt is sent once the server has seen the previous one's
	// connection refused or the first one's close; the successor's frame
	// arrives within a bounded number of attempts.
	first.Close()
	for attempt := 0; ; attempt++ {
		if attempt == 200 {
			t.Fatal("the id could not connect after its first process left")
		}
		if err := impostor.Send(ctx, Peer{ID: "server", Addr: server.Addr()}, KindCalls, []byte("successor")); err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatal(err)
			}
			<-time.After(100 * time.Millisecond) // the refusal is remembered for a while
			continue
		}
		select {
		case <-got.got:
			if f := got.snapshot(); f[len(f)-1] == "successor" {
				return
			}
		case <-time.After(100 * time.Millisecond): // this attempt's connection was refused
		}
	}
}
