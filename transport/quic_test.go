package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/quic-go/quic-go"
)

// logEvents is a slog.Handler that forwards each record's message and
// attributes as one line, so tests can wait on a logged event.
type logEvents struct {
	ch    chan string
	attrs []slog.Attr
}

func newLogEvents() *logEvents { return &logEvents{ch: make(chan string, 1024)} }

func (h *logEvents) Enabled(context.Context, slog.Level) bool { return true }
func (h *logEvents) WithAttrs(as []slog.Attr) slog.Handler {
	return &logEvents{ch: h.ch, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}
func (h *logEvents) WithGroup(string) slog.Handler { return h }
func (h *logEvents) Handle(_ context.Context, r slog.Record) error {
	var b bytes.Buffer
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	select {
	case h.ch <- b.String():
	default:
	}
	return nil
}

// waitLog waits for a logged line containing every one of parts.
func (h *logEvents) waitLog(t *testing.T, d time.Duration, parts ...string) string {
	t.Helper()
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		select {
		case line := <-h.ch:
			ok := true
			for _, p := range parts {
				ok = ok && bytes.Contains([]byte(line), []byte(p))
			}
			if ok {
				return line
			}
		case <-timeout.C:
			t.Fatalf("no log line with %q after %v", parts, d)
		}
	}
}

var (
	testCAOnce sync.Once
	testCA     *CA
	testCAErr  error
)

// devCA returns the CA shared by the tests of this package.
func devCA(t *testing.T) *CA {
	t.Helper()
	testCAOnce.Do(func() { testCA, testCAErr = NewDevCA() })
	if testCAErr != nil {
		t.Fatal(testCAErr)
	}
	return testCA
}

func issue(t *testing.T, ca *CA, id string) *Identity {
	t.Helper()
	ident, err := ca.Issue(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ident
}

// newNode starts a QUIC node with a fresh identity from the shared CA and
// closes it when the test ends.
func newNode(t *testing.T, id string, mod func(*Config)) *QUIC {
	t.Helper()
	cfg := Config{Identity: issue(t, devCA(t), id), HandshakeTimeout: 2 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	q, err := NewQUIC(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func TestQUICSendReceiveAndReply(t *testing.T) {
	a := newNode(t, "a", nil)
	b := newNode(t, "b", nil)
	got := newCollector()
	b.Handle(KindCalls, got)
	replies := newCollector()
	a.Handle(KindControl, replies)
	// b replies by id only: the connection a opened is reused.
	b.Handle(KindControl, HandlerFunc(func(from string, f []byte) {
		if err := b.Send(context.Background(), Peer{ID: from}, KindControl, f); err != nil {
			t.Errorf("reply: %v", err)
		}
	}))
	const n = 2000
	ctx := t.Context()
	for i := range n {
		if err := a.Send(ctx, Peer{ID: "b", Addr: b.Addr()}, KindCalls, fmt.Appendf(nil, "m%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	got.wait(t, n, 10*time.Second)
	for i, f := range got.snapshot() {
		if want := fmt.Sprintf("m%05d", i); f != want || got.from[i] != "a" {
			t.Fatalf("frame %d = %q from %q, want %q from a", i, f, got.from[i], want)
		}
	}
	if err := a.Send(ctx, Peer{ID: "b"}, KindControl, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	replies.wait(t, 1, 5*time.Second)
	if r := replies.snapshot(); r[0] != "ping" || replies.from[0] != "b" {
		t.Fatalf("reply %q from %q", r[0], replies.from[0])
	}
	sa := a.Stats()
	if len(sa) != 1 || sa[0].Peer != "b" || sa[0].FramesSent != n+1 || sa[0].BytesSent != 6*n+4 || sa[0].FramesReceived != 1 {
		t.Errorf("a stats = %+v", sa)
	}
	sb := b.Stats()
	if len(sb) != 1 || sb[0].FramesReceived != n+1 || sb[0].BytesReceived != 6*n+4 {
		t.Errorf("b stats = %+v", sb)
	}
}

func TestQUICSendErrors(t *testing.T) {
	a := newNode(t, "a", func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	b := newNode(t, "b", nil)
	// A UDP port with nobody behind it.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.LocalAddr().String()
	dead.Close()
	tests := []struct {
		name  string
		to    Peer
		kind  Kind
		frame []byte
		want  error
	}{
		{"too large", Peer{ID: "b", Addr: b.Addr()}, KindCalls, make([]byte, DefaultMaxFrameSize+1), ErrFrameTooLarge},
		{"raft kind", Peer{ID: "b", Addr: b.Addr()}, KindRaft, []byte("x"), ErrRaftKind},
		{"no address", Peer{ID: "zz"}, KindCalls, []byte("x"), ErrUnreachable},
		{"nobody there", Peer{Addr: deadAddr}, KindCalls, []byte("x"), ErrUnreachable},
		{"wrong id", Peer{ID: "c", Addr: b.Addr()}, KindCalls, []byte("x"), ErrPeerIdentity},
		{"self", Peer{ID: "a"}, KindCalls, []byte("x"), ErrUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.Send(t.Context(), tt.to, tt.kind, tt.frame)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Send = %v, want %v", err, tt.want)
			}
		})
	}
	a.Close()
	if err := a.Send(t.Context(), Peer{ID: "b", Addr: b.Addr()}, KindCalls, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
}

// TestQUICRefusals checks that peers without a valid certificate from the
// cluster CA are refused at the handshake, logged and counted, and that no
// frame of theirs is ever delivered.
func TestQUICRefusals(t *testing.T) {
	ca := devCA(t)
	other, err := NewCA("other", 0)
	if err != nil {
		t.Fatal(err)
	}
	foreign := issue(t, other, "mallory")
	foreign.CAs = issue(t, ca, "x").CAs // trusts the cluster CA, holds another's cert
	expired, err := ca.issue("old", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		dial func(t *testing.T, server *QUIC)
		want string // in the server's refusal log line
	}{
		{"certificate from another CA", func(t *testing.T, s *QUIC) { sendFrom(t, foreign, s) }, "unknown authority"},
		{"expired certificate", func(t *testing.T, s *QUIC) { sendFrom(t, expired, s) }, "expired"},
		{"no certificate", func(t *testing.T, s *QUIC) { dialRaw(t, s, nil) }, "no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := newLogEvents()
			server := newNode(t, "server", func(c *Config) { c.Logger = slog.New(logs) })
			got := newCollector()
			server.Handle(KindCalls, got)
			tt.dial(t, server)
			logs.waitLog(t, 5*time.Second, "peer refused", "node=server", tt.want)
			if n := server.Refused(); n != 1 {
				t.Errorf("Refused = %d, want 1", n)
			}
			if f := got.snapshot(); len(f) != 0 {
				t.Errorf("frames delivered from a refused peer: %q", f)
			}
			if s := server.Stats(); len(s) != 0 {
				t.Errorf("refused peer has stats: %+v", s)
			}
		})
	}

	t.Run("server with a certificate from another CA", func(t *testing.T) {
		bad := issue(t, other, "server")
		bad.CAs = foreign.CAs
		server, err := NewQUIC(Config{Identity: bad})
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close()
		logs := newLogEvents()
		client := newNode(t, "client", func(c *Config) { c.Logger = slog.New(logs) })
		err = client.Send(t.Context(), Peer{Addr: server.Addr()}, KindCalls, []byte("x"))
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("Send to a server from another CA = %v", err)
		}
		logs.waitLog(t, time.Second, "peer refused", "dir=outgoing", "unknown authority")
		if n := client.Refused(); n != 1 {
			t.Errorf("client Refused = %d, want 1", n)
		}
	})
}

// TestQUICRefusedClientLearnsIt: a node whose certificate a peer refuses
// is told so (ErrRefused, naming the handshake) by the next Send, which
// does not dial again: in TLS 1.3 the client's handshake ends before the
// server checks the client's certificate, so the refusal comes as the
// close of a connection already established, and each new dial would be
// refused (and counted) once more.
func TestQUICRefusedClientLearnsIt(t *testing.T) {
	ca := devCA(t)
	other, err := NewCA("other", 0)
	if err != nil {
		t.Fatal(err)
	}
	foreign := issue(t, other, "mallory")
	foreign.CAs = issue(t, ca, "x").CAs
	server := newNode(t, "server", nil)
	got := newCollector()
	server.Handle(KindCalls, got)
	c, err := NewQUIC(Config{Identity: foreign})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	gone := make(chan string, 1)
	c.OnDisconnect(func(peer string) { gone <- peer })
	to := Peer{Addr: server.Addr()}
	if err := c.Send(t.Context(), to, KindCalls, []byte("let me in")); err == nil {
		// Queued before the refusal came: wait for the connection's end.
		select {
		case <-gone:
		case <-t.Context().Done():
			t.Fatal("the refused connection never ended")
		}
	} else if !errors.Is(err, ErrRefused) {
		t.Fatalf("first Send = %v, want nil or ErrRefused", err)
	}
	for i := range 3 {
		err := c.Send(t.Context(), to, KindCalls, []byte("let me in"))
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "certificate refused") {
			t.Fatalf("Send %d after the refusal = %v, want ErrRefused naming the certificate", i, err)
		}
	}
	if n := server.Refused(); n != 1 {
		t.Errorf("server refused %d handshakes, want 1 (no redial)", n)
	}
	if f := got.snapshot(); len(f) != 0 {
		t.Errorf("frames delivered from a refused peer: %q", f)
	}
}

// sendFrom starts a node with ident and makes it send a frame to server.
// Whether Send reports the refusal depends on timing (in TLS 1.3 the client
// may finish before the server checks its certificate), so it is ignored.
func sendFrom(t *testing.T, ident *Identity, server *QUIC) {
	t.Helper()
	c, err := NewQUIC(Config{Identity: ident})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Send(t.Context(), Peer{Addr: server.Addr()}, KindCalls, []byte("let me in"))
}

// dialRaw dials server with plain quic-go and the given client certificates,
// opens a stream and writes a frame on it. It returns the connection, or nil
// if the handshake failed.
func dialRaw(t *testing.T, server *QUIC, certs []tls.Certificate) *quic.Conn {
	t.Helper()
	conn := dialRawConn(t, server, certs)
	if conn == nil {
		return nil
	}
	if s, err := conn.OpenStream(); err == nil {
		s.Write(appendFrame([]byte{byte(KindCalls)}, []byte("let me in")))
	}
	return conn
}

// dialRawConn dials server with plain quic-go and the given client
// certificates. It returns the connection, or nil if the handshake failed.
func dialRawConn(t *testing.T, server *QUIC, certs []tls.Certificate) *quic.Conn {
	t.Helper()
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{ALPN},
		InsecureSkipVerify: true,
		Certificates:       certs,
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, server.Addr(), conf, &quic.Config{})
	if err != nil {
		return nil
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	return conn
}

// TestQUICBadFrames checks that an oversized or malformed frame resets only
// its stream: the connection and its other streams go on.
func TestQUICBadFrames(t *testing.T) {
	logs := newLogEvents()
	server := newNode(t, "server", func(c *Config) {
		c.MaxFrameSize = 1024
		c.Logger = slog.New(logs)
	})
	got := newCollector()
	server.Handle(KindCalls, got)
	server.Handle(KindControl, got)
	client := issue(t, devCA(t), "client")

	tests := []struct {
		name  string
		bytes []byte // after the kind byte
		fin   bool
		want  string
		code  quic.StreamErrorCode // seen by the writer, if it did not finish
	}{
		{"over the limit", appendFrame(nil, make([]byte, 1025)), false, "frame too large: 1025 bytes, limit 1024", codeFrameTooLarge},
		{"huge length prefix", []byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}, false, "frame too large: 4294967295 bytes", codeFrameTooLarge},
		{"truncated frame", []byte{0, 0, 0, 9, 'a', 'b'}, true, "malformed frame", codeMalformed},
		{"truncated prefix", []byte{0, 0}, true, "malformed frame", codeMalformed},
	}
	conn := dialRaw(t, server, []tls.Certificate{client.Cert})
	if conn == nil {
		t.Fatal("handshake with a valid certificate failed")
	}
	// A healthy stream that lives through every bad one.
	good, err := conn.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := good.Write([]byte{byte(KindControl)}); err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := conn.OpenStreamSync(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			s.Write(append([]byte{byte(KindCalls)}, tt.bytes...))
			if tt.fin {
				s.Close()
			}
			logs.waitLog(t, 5*time.Second, "stream reset", tt.want)
			if !tt.fin {
				// The writer learns the reason through STOP_SENDING.
				var serr *quic.StreamError
				s.SetWriteDeadline(time.Now().Add(5 * time.Second))
				for range 1 << 20 {
					if _, err = s.Write([]byte{0}); err != nil {
						break
					}
				}
				if !errors.As(err, &serr) || serr.ErrorCode != tt.code || !serr.Remote {
					t.Fatalf("write after reset = %v, want remote stream error %#x", err, tt.code)
				}
			}
			// The connection and the other stream go on.
			if _, err := good.Write(appendFrame(nil, fmt.Append(nil, i))); err != nil {
				t.Fatal(err)
			}
			got.wait(t, 1, 5*time.Second)
		})
	}
	if n := server.StreamsReset(); n != uint64(len(tests)) {
		t.Errorf("StreamsReset = %d, want %d", n, len(tests))
	}
	if s := conn.Context().Err(); s != nil {
		t.Errorf("connection ended: %v", context.Cause(conn.Context()))
	}
}

// TestQUICOversizedSendResetsOnlyItsStream sends, through the transport, a
// frame over the receiver's smaller limit: the stream is reset, a frame of
// another kind still arrives, and later frames of the same kind get through
// on a fresh stream.
func TestQUICOversizedSendResetsOnlyItsStream(t *testing.T) {
	logs := newLogEvents()
	b := newNode(t, "b", func(c *Config) { c.MaxFrameSize = 100; c.Logger = slog.New(logs) })
	a := newNode(t, "a", nil)
	got := newCollector()
	b.Handle(KindCalls, got)
	b.Handle(KindControl, got)
	to := Peer{ID: "b", Addr: b.Addr()}
	if err := a.Send(t.Context(), to, KindCalls, make([]byte, 101)); err != nil {
		t.Fatal(err)
	}
	logs.waitLog(t, 5*time.Second, "stream reset", "frame too large")
	if err := a.Send(t.Context(), to, KindControl, []byte("other kind")); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1, 5*time.Second)
	// The sender learns of the reset when its next write fails; frames
	// written before that are lost, later ones go on a new stream.
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("no frame of the reset kind got through")
		}
		if err := a.Send(t.Context(), to, KindCalls, []byte("again")); err != nil {
			t.Fatal(err)
		}
		if waitOne(got, 50*time.Millisecond) {
			break
		}
	}
	if len(b.Stats()) != 1 || len(a.Stats()) != 1 {
		t.Fatalf("stats: %+v / %+v", a.Stats(), b.Stats())
	}
}

// waitOne reports whether a frame arrived within d.
func waitOne(c *collector, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.got:
		return true
	case <-t.C:
		return false
	}
}

func TestQUICNewWins(t *testing.T) {
	q := &QUIC{id: "b", cfg: Config{HandshakeTimeout: time.Second}}
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name                 string
		oldDialer, newDialer string
		gap                  time.Duration
		want                 bool
	}{
		{"race: lower id's dial wins when new", "c", "b", 10 * time.Millisecond, true},
		{"race: lower id's dial wins when old", "b", "c", 10 * time.Millisecond, false},
		{"race seen from the other side", "a", "b", 10 * time.Millisecond, false},
		{"same dialer: newer wins", "c", "c", 10 * time.Millisecond, true},
		{"old connection: new wins (peer restarted)", "b", "c", 2 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer := tt.oldDialer
			if peer == q.id {
				peer = tt.newDialer
			}
			old := &peerConn{peer: peer, dialer: tt.oldDialer, est: t0}
			new := &peerConn{peer: peer, dialer: tt.newDialer, est: t0.Add(tt.gap)}
			if got := q.newWins(old, new); got != tt.want {
				t.Fatalf("newWins = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestQUICSimultaneousDial makes two nodes dial each other at once and
// checks that both keep the same connection (the one the lower id dialled)
// and that frames flow both ways.
func TestQUICSimultaneousDial(t *testing.T) {
	short := func(c *Config) { c.HandshakeTimeout = 500 * time.Millisecond }
	a, b := newNode(t, "a", short), newNode(t, "b", short)
	ga, gb := newCollector(), newCollector()
	a.Handle(KindCalls, ga)
	b.Handle(KindCalls, gb)
	var wg sync.WaitGroup
	var pa, pb *peerConn
	var ea, eb error
	wg.Go(func() { pa, ea = a.dial(t.Context(), b.Addr(), "b") })
	wg.Go(func() { pb, eb = b.dial(t.Context(), a.Addr(), "a") })
	wg.Wait()
	if ea != nil || eb != nil {
		t.Fatal(ea, eb)
	}
	// Frames sent now may ride the losing connection while it drains.
	if err := a.Send(t.Context(), Peer{ID: "b"}, KindCalls, []byte("a1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(t.Context(), Peer{ID: "a"}, KindCalls, []byte("b1")); err != nil {
		t.Fatal(err)
	}
	ga.wait(t, 1, 5*time.Second)
	gb.wait(t, 1, 5*time.Second)
	// Each side's own dial: the one b made is the loser, retired on both
	// sides and closed after the grace period.
	_ = pa
	<-connOf(t, b, pb, "a").conn.Context().Done()
	for _, side := range []struct {
		q    *QUIC
		peer string
	}{{a, "b"}, {b, "a"}} {
		side.q.mu.RLock()
		pc := side.q.conns[side.peer]
		side.q.mu.RUnlock()
		if pc == nil || pc.dialer != "a" || !pc.usable() {
			t.Fatalf("%s keeps %+v, want the connection a dialled", side.q.id, pc)
		}
	}
	if err := a.Send(t.Context(), Peer{ID: "b"}, KindCalls, []byte("a2")); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(t.Context(), Peer{ID: "a"}, KindCalls, []byte("b2")); err != nil {
		t.Fatal(err)
	}
	ga.wait(t, 1, 5*time.Second)
	gb.wait(t, 1, 5*time.Second)
}

// connOf returns the connection b dialled to peer: pb if the dial returned
// it, or the retired one if the dial returned the winner.
func connOf(t *testing.T, q *QUIC, pc *peerConn, peer string) *peerConn {
	t.Helper()
	if pc.dialer == q.id {
		return pc
	}
	q.mu.RLock()
	defer q.mu.RUnlock()
	for c := range q.all {
		if c.peer == peer && c.dialer == q.id {
			return c
		}
	}
	t.Fatalf("%s has no connection it dialled to %s", q.id, peer)
	return nil
}

// TestQUICPeerRestart crashes a node (no CONNECTION_CLOSE), restarts it on
// the same address with the same identity, and checks that traffic resumes
// well under the idle timeout: the restarted node's stateless resets, keyed
// by its identity, end the old connection at once.
func TestQUICPeerRestart(t *testing.T) {
	a := newNode(t, "a", func(c *Config) {
		if testing.Verbose() {
			c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	})
	ident := issue(t, devCA(t), "b")
	b, err := NewQUIC(Config{Identity: ident})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	got := newCollector()
	b.Handle(KindCalls, got)
	b.Handle(KindControl, HandlerFunc(func(from string, f []byte) {
		b.Send(context.Background(), Peer{ID: from}, KindControl, f)
	}))
	replies := newCollector()
	a.Handle(KindControl, replies)
	to := Peer{ID: "b", Addr: addr}
	// A round trip first: a connection whose handshake a has not seen
	// confirmed (HANDSHAKE_DONE) still sends long-header packets, which the
	// restarted node drops without a stateless reset; it then ends only at
	// the idle timeout. See docs/transport.md.
	if err := a.Send(t.Context(), to, KindControl, []byte("before")); err != nil {
		t.Fatal(err)
	}
	replies.wait(t, 1, 5*time.Second)
	b.crash()

	b2, err := NewQUIC(Config{Identity: ident, Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	got2 := newCollector()
	b2.Handle(KindCalls, got2)
	start := time.Now()
	for i := 0; ; i++ {
		if time.Since(start) > 3*time.Second {
			t.Fatalf("traffic did not resume within 3s (idle timeout 5s) after %d sends", i)
		}
		// quic-go answers only packets over 42 bytes with a stateless
		// reset (so resets cannot loop); a 32-byte frame makes one.
		err := a.Send(t.Context(), to, KindCalls, make([]byte, 32))
		if err != nil && !errors.Is(err, ErrUnreachable) {
			t.Fatal(err)
		}
		if waitOne(got2, 20*time.Millisecond) {
			break
		}
	}
	t.Logf("traffic resumed %v after the restart", time.Since(start))
}

// TestQUICStreamLayer checks the Raft stream layer: Accept gets what Dial
// opens, and closing a conn also cancels its read side, so many short-lived
// streams never pile up against a small incoming-stream limit.
func TestQUICStreamLayer(t *testing.T) {
	a := newNode(t, "a", nil)
	b := newNode(t, "b", func(c *Config) { c.MaxIncomingStreams = 4 })
	la, lb := a.StreamLayer(), b.StreamLayer()
	if la.Addr().String() != a.Addr() {
		t.Fatalf("layer Addr %v, node Addr %v", la.Addr(), a.Addr())
	}
	accepted := make(chan net.Conn)
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := lb.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		lb.Close()
		<-acceptDone
	}()
	// One echo round trip.
	c, err := la.Dial(raft.ServerAddress(b.Addr()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if s.RemoteAddr().String() != a.Addr() {
		t.Fatalf("RemoteAddr = %v, want %v", s.RemoteAddr(), a.Addr())
	}
	c.Close()
	if _, err := s.Read(buf); err == nil {
		t.Fatal("read after the peer closed succeeded")
	}
	s.Close()
	// Many more streams than the limit, each closed by both sides without
	// reading to the end.
	for i := range 40 {
		c, err := la.Dial(raft.ServerAddress(b.Addr()), 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		c.Write([]byte("unread"))
		s := <-accepted
		s.Close()
		c.Close()
	}
}

// TestRaftOverQUIC forms a three-node Raft cluster over QUIC stream layers
// behind a gate, commits an entry, stops the leader and checks the other two elect a new
// one that commits.
func TestRaftOverQUIC(t *testing.T) {
	ids := []string{"n1", "n2", "n3"}
	var nodes []*QUIC
	var layers []raft.StreamLayer
	// A gate admitting exactly the three, so every RPC raft sends (votes,
	// heartbeats, pipelined appends) goes through the raftGuard.
	gate := &fakeGate{raft: map[string]bool{}, addrs: map[string]string{}}
	for _, id := range ids {
		q := newNode(t, id, nil)
		nodes = append(nodes, q)
		layers = append(layers, q.StreamLayer())
		gate.raft[id], gate.addrs[q.Addr()] = true, id
	}
	for _, q := range nodes {
		q.SetGate(gate)
	}
	defer func() {
		for _, q := range nodes {
			if r := q.Refusals(); len(r) != 0 {
				t.Errorf("%s refused legitimate traffic: %v", q.ID(), r)
			}
		}
	}()
	c := startRaft(t, ids, layers)
	defer func() {
		// Transports first: a replication goroutine dialling the stopped
		// node would otherwise hold Raft's shutdown for a handshake timeout.
		for _, q := range nodes {
			q.Close()
		}
		c.shutdown()
	}()
	start := time.Now()
	first := c.leader(20*time.Second, 0, 1, 2)
	c.apply(first)
	t.Logf("first leader %s after %v", ids[first], time.Since(start))

	start = time.Now()
	if err := c.rafts[first].Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	nodes[first].Close()
	var rest []int
	for i := range ids {
		if i != first {
			rest = append(rest, i)
		}
	}
	second := c.leader(20*time.Second, rest...)
	c.apply(second)
	t.Logf("second leader %s after %v", ids[second], time.Since(start))
}

// TestQUICCloseNotifiesPeers checks that Close sends CONNECTION_CLOSE: the
// peer learns at once, not after its idle timeout.
func TestQUICCloseNotifiesPeers(t *testing.T) {
	a := newNode(t, "a", nil)
	b := newNode(t, "b", nil)
	got := newCollector()
	b.Handle(KindCalls, got)
	if err := a.Send(t.Context(), Peer{ID: "b", Addr: b.Addr()}, KindCalls, []byte("x")); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1, 5*time.Second)
	a.mu.RLock()
	pc := a.conns["b"]
	a.mu.RUnlock()
	start := time.Now()
	b.Close()
	select {
	case <-pc.conn.Context().Done():
	case <-time.After(time.Second):
		t.Fatal("peer not told of Close within 1s")
	}
	var aerr *quic.ApplicationError
	if err := context.Cause(pc.conn.Context()); !errors.As(err, &aerr) || !aerr.Remote || aerr.ErrorCode != codeClosing {
		t.Fatalf("connection ended with %v, want a remote application close", err)
	}
	t.Logf("peer noticed Close after %v", time.Since(start))
}

// TestQUICSendBackpressure blocks the receiver's handler until QUIC flow
// control stops the writer and the send queue fills: Send then waits until
// its ctx is done, the queue stays within its bound, and once the handler
// runs again Send goes through.
func TestQUICSendBackpressure(t *testing.T) {
	const limit = 64 << 10
	a := newNode(t, "a", func(c *Config) { c.MaxQueueBytes = limit })
	b := newNode(t, "b", nil)
	release := make(chan struct{})
	b.Handle(KindCalls, HandlerFunc(func(string, []byte) { <-release }))
	to := Peer{ID: "b", Addr: b.Addr()}
	frame := make([]byte, 4096)
	blocked := false
	for i := 0; i < 20000 && !blocked; i++ { // 80 MB at most
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		err := a.Send(ctx, to, KindCalls, frame)
		cancel()
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			blocked = true
		case err != nil:
			t.Fatal(err)
		}
	}
	if !blocked {
		close(release)
		t.Fatal("Send never blocked on a stalled receiver")
	}
	if q := a.Stats()[0].QueuedBytes; q > limit || q < limit-len(frame)-frameHeaderLen {
		t.Errorf("QueuedBytes = %d with a %d-byte bound", q, limit)
	}
	// Control frames have their own budget and stream: the full calls
	// queue and the stalled calls reader do not hold them back.
	ctl := make(chan struct{}, 1)
	b.Handle(KindControl, HandlerFunc(func(string, []byte) { ctl <- struct{}{} }))
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := a.Send(ctx, to, KindControl, []byte("ping")); err != nil {
		t.Errorf("control Send behind a full calls queue: %v", err)
	} else {
		select {
		case <-ctl:
		case <-ctx.Done():
			t.Error("control frame not delivered behind a stalled calls stream")
		}
	}
	close(release)
	if err := a.Send(t.Context(), to, KindCalls, frame); err != nil {
		t.Fatalf("Send after the receiver resumed: %v", err)
	}
}

// batchCollector is a BatchHandler that records every frame in order and
// the size of each call.
type batchCollector struct {
	mu     sync.Mutex
	frames []string
	calls  []int
	all    chan struct{}
	want   int
}

func (c *batchCollector) HandleFrame(from string, f []byte) { c.HandleFrames(from, [][]byte{f}) }

func (c *batchCollector) HandleFrames(_ string, fs [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range fs {
		c.frames = append(c.frames, string(f))
	}
	c.calls = append(c.calls, len(fs))
	if len(c.frames) == c.want {
		close(c.all)
	}
}

// A BatchHandler gets every frame, in order, in calls of at most MaxBatch.
func TestQUICBatchHandler(t *testing.T) {
	a := newNode(t, "a", nil)
	b := newNode(t, "b", nil)
	const n = 20000
	got := &batchCollector{all: make(chan struct{}), want: n}
	b.Handle(KindOneWay, got)
	ctx := t.Context()
	for i := range n {
		if err := a.Send(ctx, Peer{ID: "b", Addr: b.Addr()}, KindOneWay, fmt.Appendf(nil, "m%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-got.all:
	case <-time.After(20 * time.Second):
		t.Fatalf("%d of %d frames arrived", len(got.frames), n)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	for i, f := range got.frames {
		if want := fmt.Sprintf("m%05d", i); f != want {
			t.Fatalf("frame %d = %q, want %q", i, f, want)
		}
	}
	biggest := 0
	for _, c := range got.calls {
		if c > MaxBatch || c < 1 {
			t.Fatalf("a call of %d frames", c)
		}
		biggest = max(biggest, c)
	}
	t.Logf("%d frames in %d calls, the biggest of %d", n, len(got.calls), biggest)
}

// Frames written straight from the sender's goroutine (when nothing is
// queued) and frames queued behind a stalled stream keep one order: each
// sender's frames arrive in the order it sent them, none lost, through
// Send and TrySend, while the receiver stalls and resumes.
func TestQUICDirectAndQueuedKeepOrder(t *testing.T) {
	a := newNode(t, "a", func(c *Config) { c.StreamReceiveWindow = 64 << 10 })
	b := newNode(t, "b", func(c *Config) { c.StreamReceiveWindow = 64 << 10 })
	const senders, per = 3, 3000
	var mu sync.Mutex
	next := make([]int, senders)
	got := 0
	all := make(chan struct{})
	stall := make(chan struct{})
	var bad error
	b.Handle(KindCalls, HandlerFunc(func(_ string, f []byte) {
		var s, i int
		if _, err := fmt.Sscanf(string(f[:16]), "%03d %012d", &s, &i); err != nil {
			mu.Lock()
			bad = fmt.Errorf("frame %q: %v", f[:16], err)
			mu.Unlock()
			return
		}
		if i == per/3 && s == 0 {
			<-stall // the stream backs up behind this frame
		}
		mu.Lock()
		defer mu.Unlock()
		if next[s] != i && bad == nil {
			bad = fmt.Errorf("sender %d: frame %d arrived when %d was next", s, i, next[s])
		}
		next[s] = i + 1
		if got++; got == senders*per {
			close(all)
		}
	}))
	to := Peer{ID: "b", Addr: b.Addr()}
	if err := a.Send(t.Context(), to, KindControl, []byte("dial")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range per {
				// Sizes vary so that some frames fit the window's rest
				// and some do not; a few are bigger than a queue chunk.
				size := 16 + (i%7)*300
				if i%500 == 499 {
					size = slabSize + 1000
				}
				f := make([]byte, size)
				copy(f, fmt.Sprintf("%03d %012d", s, i))
				var err error
				if i%2 == 0 {
					err = a.Send(t.Context(), to, KindCalls, f)
				} else {
					for {
						if err = a.TrySend(to, KindCalls, f); !errors.Is(err, ErrQueueFull) {
							break
						}
						runtime.Gosched()
					}
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		// Released once the senders have had to queue behind the stall.
		for a.Stats()[0].QueuedBytes == 0 {
			runtime.Gosched()
		}
		close(stall)
	})
	wg.Wait()
	select {
	case <-all:
	case <-time.After(20 * time.Second):
		t.Fatalf("%d of %d frames arrived", got, senders*per)
	}
	mu.Lock()
	defer mu.Unlock()
	if bad != nil {
		t.Fatal(bad)
	}
}

// TestQUICAbortDials: a Raft dial to an address that never answers (a
// down peer: its handshake is retransmitted until the timeout) ends at
// once with ErrClosed when AbortDials is called, as Registry.Close does
// before raft.Shutdown; later dials fail at once.
func TestQUICAbortDials(t *testing.T) {
	q := newNode(t, "a", func(c *Config) { c.HandshakeTimeout = 10 * time.Minute })
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	got := make(chan error, 1)
	go func() {
		_, err := q.StreamLayer().Dial(raft.ServerAddress(silent.LocalAddr().String()), 10*time.Minute)
		got <- err
	}()
	// The dial's first handshake packet arrives: it is under way.
	buf := make([]byte, 2048)
	if _, _, err := silent.ReadFromUDP(buf); err != nil {
		t.Fatal(err)
	}
	q.StreamLayer().(DialAborter).AbortDials()
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("dial to a silent address succeeded")
		}
	case <-time.After(time.Minute): // a bound on a hang, not a speed check
		t.Fatal("dial still waiting a minute after AbortDials")
	}
	if _, err := q.StreamLayer().Dial(raft.ServerAddress(silent.LocalAddr().String()), time.Minute); !errors.Is(err, ErrClosed) {
		t.Fatalf("dial after AbortDials = %v, want ErrClosed", err)
	}
}

// TestQUICBurstWrites: while the reader of a peer's stream of a kind has
// seen a burst, frames of that kind to the peer go out through the writer
// (which yields first so a burst's answers share writes): they still
// arrive whole and in order, and the first write that gathered only one
// frame ends the burst, so a lone frame is flushed by its sender again.
func TestQUICBurstWrites(t *testing.T) {
	a := newNode(t, "a", nil)
	b := newNode(t, "b", nil)
	echoes := newCollector()
	a.Handle(KindCalls, echoes)
	b.Handle(KindCalls, HandlerFunc(func(from string, f []byte) {
		if err := b.Send(context.Background(), Peer{ID: from}, KindCalls, f); err != nil {
			t.Errorf("echo: %v", err)
		}
	}))
	ctx := t.Context()
	send := func(i int) {
		t.Helper()
		if err := a.Send(ctx, Peer{ID: "b", Addr: b.Addr()}, KindCalls, fmt.Appendf(nil, "m%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	send(0)
	echoes.wait(t, 1, 10*time.Second)
	b.mu.RLock()
	pc := b.conns["a"]
	b.mu.RUnlock()
	if pc == nil {
		t.Fatal("b has no connection to a")
	}
	bit := kindBit(KindCalls)

	// b's echoes start in burst mode, whatever its reader sees.
	pc.burst.Or(bit)
	const n = 2000
	for i := 1; i <= n; i++ {
		send(i)
	}
	echoes.wait(t, n, 10*time.Second)
	for i, f := range echoes.snapshot() {
		if want := fmt.Sprintf("m%05d", i); f != want {
			t.Fatalf("echo %d = %q, want %q", i, f, want)
		}
	}

	// A lone frame in burst mode: the writer sends it, gathers nothing
	// else, and ends the burst before the write.
	pc.burst.Or(bit)
	send(n + 1)
	echoes.wait(t, 1, 10*time.Second)
	if pc.burst.Load()&bit != 0 {
		t.Error("a write of one frame left b in burst mode")
	}
	send(n + 2) // flushed by b's handler itself
	echoes.wait(t, 1, 10*time.Second)
	if got := echoes.snapshot(); got[len(got)-1] != fmt.Sprintf("m%05d", n+2) {
		t.Fatalf("last echo %q", got[len(got)-1])
	}
	if kindBit(Kind(64)) != 0 || kindBit(KindOneWay) == kindBit(KindCalls) {
		t.Error("kindBit maps kinds wrongly")
	}
}
