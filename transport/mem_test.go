package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// collector is a Handler that records frames and signals each one.
type collector struct {
	mu     sync.Mutex
	frames []string
	from   []string
	got    chan struct{}
}

func newCollector() *collector { return &collector{got: make(chan struct{}, 1<<16)} }

func (c *collector) HandleFrame(from string, frame []byte) {
	c.mu.Lock()
	c.frames = append(c.frames, string(frame))
	c.from = append(c.from, from)
	c.mu.Unlock()
	c.got <- struct{}{}
}

func (c *collector) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.frames...)
}

// wait waits for n more frames or fails the test after d.
func (c *collector) wait(t *testing.T, n int, d time.Duration) {
	t.Helper()
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for range n {
		select {
		case <-c.got:
		case <-timeout.C:
			t.Fatalf("timed out waiting for frames; have %d", len(c.snapshot()))
		}
	}
}

func mustJoin(t *testing.T, n *MemNetwork, ids ...string) []*Mem {
	t.Helper()
	var out []*Mem
	for _, id := range ids {
		m, err := n.Join(id)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		out = append(out, m)
	}
	return out
}

func TestMemSendOrderAndStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := NewMemNetwork()
		ms := mustJoin(t, nw, "a", "b")
		a, b := ms[0], ms[1]
		got := newCollector()
		b.Handle(KindCalls, got)
		const n = 100
		for i := range n {
			to := Peer{ID: "b"}
			if i%2 == 1 {
				to = Peer{Addr: b.Addr()}
			}
			if err := a.Send(t.Context(), to, KindCalls, fmt.Appendf(nil, "m%03d", i)); err != nil {
				t.Fatal(err)
			}
		}
		got.wait(t, n, time.Second)
		frames := got.snapshot()
		for i, f := range frames {
			if want := fmt.Sprintf("m%03d", i); f != want {
				t.Fatalf("frame %d = %q, want %q", i, f, want)
			}
			if got.from[i] != "a" {
				t.Fatalf("from = %q, want a", got.from[i])
			}
		}
		synctest.Wait()
		sa, sb := a.Stats(), b.Stats()
		if len(sa) != 1 || sa[0].Peer != "b" || sa[0].FramesSent != n || sa[0].BytesSent != 4*n || sa[0].QueuedBytes != 0 {
			t.Errorf("sender stats = %+v", sa)
		}
		if len(sb) != 1 || sb[0].Peer != "a" || sb[0].FramesReceived != n || sb[0].BytesReceived != 4*n {
			t.Errorf("receiver stats = %+v", sb)
		}
	})
}

func TestMemSendErrors(t *testing.T) {
	nw := NewMemNetwork()
	ms := mustJoin(t, nw, "a", "b")
	a := ms[0]
	closed, err := nw.Join("c")
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	tests := []struct {
		name  string
		from  *Mem
		to    Peer
		frame []byte
		want  error
	}{
		{"unknown id", a, Peer{ID: "zz"}, []byte("x"), ErrUnreachable},
		{"bad address", a, Peer{Addr: "127.0.0.1:1"}, []byte("x"), ErrUnreachable},
		{"identity mismatch", a, Peer{ID: "c", Addr: "mem:b"}, []byte("x"), ErrPeerIdentity},
		{"closed peer", a, Peer{ID: "c"}, []byte("x"), ErrUnreachable},
		{"closed sender", closed, Peer{ID: "a"}, []byte("x"), ErrClosed},
		{"too large", a, Peer{ID: "b"}, make([]byte, DefaultMaxFrameSize+1), ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.from.Send(t.Context(), tt.to, KindCalls, tt.frame)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Send = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := nw.Join("a"); err == nil {
		t.Error("joining an id in use succeeded")
	}
}

func TestMemPartitionIsolateHeal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := NewMemNetwork()
		ms := mustJoin(t, nw, "a", "b", "c")
		a := ms[0]
		gb, gc := newCollector(), newCollector()
		ms[1].Handle(KindCalls, gb)
		ms[2].Handle(KindCalls, gc)
		send := func(to string) error { return a.Send(t.Context(), Peer{ID: to}, KindCalls, []byte(to)) }
		steps := []struct {
			name         string
			fault        func()
			wantB, wantC bool
		}{
			{"healthy", func() {}, true, true},
			{"partition a-b", func() { nw.Partition("a", "b") }, false, true},
			{"heal a-b", func() { nw.Heal("b", "a") }, true, true},
			{"isolate c", func() { nw.Isolate("c") }, true, false},
			{"heal pair does not undo isolate", func() { nw.Heal("a", "c") }, true, false},
			{"heal node c", func() { nw.HealNode("c") }, true, true},
			{"isolate a", func() { nw.Isolate("a") }, false, false},
			{"heal all", func() { nw.HealAll() }, true, true},
		}
		for _, s := range steps {
			s.fault()
			for _, p := range []struct {
				id   string
				want bool
				c    *collector
			}{{"b", s.wantB, gb}, {"c", s.wantC, gc}} {
				err := send(p.id)
				if p.want != (err == nil) {
					t.Fatalf("%s: Send to %s = %v, want ok=%v", s.name, p.id, err, p.want)
				}
				if err != nil && !errors.Is(err, ErrUnreachable) {
					t.Fatalf("%s: Send to %s = %v, want ErrUnreachable", s.name, p.id, err)
				}
				if p.want {
					p.c.wait(t, 1, time.Second)
				}
			}
		}
	})
}

// TestMemPartitionLosesQueuedFrames checks that frames in flight when a
// partition starts are lost, as on a real link.
func TestMemPartitionLosesQueuedFrames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := NewMemNetwork()
		ms := mustJoin(t, nw, "a", "b")
		got := newCollector()
		ms[1].Handle(KindCalls, got)
		nw.Delay("a", "b", 10*time.Millisecond)
		if err := ms[0].Send(t.Context(), Peer{ID: "b"}, KindCalls, []byte("lost")); err != nil {
			t.Fatal(err)
		}
		nw.Partition("a", "b")
		time.Sleep(20 * time.Millisecond) // fake time: let the delay expire
		synctest.Wait()
		if f := got.snapshot(); len(f) != 0 {
			t.Fatalf("delivered across a partition: %q", f)
		}
		if s := ms[0].Stats(); s[0].FramesDropped != 1 {
			t.Fatalf("FramesDropped = %d, want 1", s[0].FramesDropped)
		}
	})
}

func TestMemDropIsSeededAndDeterministic(t *testing.T) {
	run := func(seed uint64) []string {
		var out []string
		synctest.Test(t, func(t *testing.T) {
			nw := NewMemNetwork()
			nw.SetSeed(seed)
			ms := mustJoin(t, nw, "a", "b")
			got := newCollector()
			ms[1].Handle(KindCalls, got)
			nw.Drop("a", "b", 0.3)
			for i := range 1000 {
				if err := ms[0].Send(t.Context(), Peer{ID: "b"}, KindCalls, fmt.Append(nil, i)); err != nil {
					t.Fatal(err)
				}
			}
			synctest.Wait()
			out = got.snapshot()
			if s := ms[0].Stats(); int(s[0].FramesDropped) != 1000-len(out) {
				t.Errorf("FramesDropped = %d, delivered %d", s[0].FramesDropped, len(out))
			}
		})
		return out
	}
	first, again, other := run(7), run(7), run(8)
	if len(first) < 600 || len(first) > 800 {
		t.Fatalf("delivered %d of 1000 with 30%% drop", len(first))
	}
	if fmt.Sprint(first) != fmt.Sprint(again) {
		t.Fatal("same seed, different drops")
	}
	if fmt.Sprint(first) == fmt.Sprint(other) {
		t.Fatal("different seeds, same drops")
	}
}

func TestMemDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := NewMemNetwork()
		ms := mustJoin(t, nw, "a", "b")
		arrived := make(chan time.Time, 2)
		ms[1].Handle(KindCalls, HandlerFunc(func(string, []byte) { arrived <- time.Now() }))
		nw.Delay("a", "b", 250*time.Millisecond)
		start := time.Now()
		for range 2 {
			if err := ms[0].Send(t.Context(), Peer{ID: "b"}, KindCalls, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 {
			if got := (<-arrived).Sub(start); got != 250*time.Millisecond {
				t.Fatalf("arrived after %v, want 250ms", got)
			}
		}
		nw.Delay("a", "b", 0)
		start = time.Now()
		ms[0].Send(t.Context(), Peer{ID: "b"}, KindCalls, []byte("x"))
		if got := (<-arrived).Sub(start); got != 0 {
			t.Fatalf("arrived after %v with no delay", got)
		}
	})
}

func TestMemSendBlocksWhenQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := NewMemNetwork()
		a, err := nw.JoinConfig("a", MemConfig{MaxQueueBytes: 100})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b := mustJoin(t, nw, "b")[0]
		release := make(chan struct{})
		entered := make(chan struct{}, 10)
		b.Handle(KindCalls, HandlerFunc(func(string, []byte) {
			entered <- struct{}{}
			<-release
		}))
		frame := make([]byte, 60)
		ctx := t.Context()
		// The first frame is taken by the blocked handler, the second fills
		// the queue (60 bytes), the third would exceed 100 bytes.
		for range 2 {
			if err := a.Send(ctx, Peer{ID: "b"}, KindCalls, frame); err != nil {
				t.Fatal(err)
			}
		}
		<-entered
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		start := time.Now()
		if err := a.Send(tctx, Peer{ID: "b"}, KindCalls, frame); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send on a full queue = %v, want deadline exceeded", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Fatalf("Send gave up after %v, want 1s", d)
		}
		if q := a.Stats()[0].QueuedBytes; q != 60 {
			t.Fatalf("QueuedBytes = %d, want 60", q)
		}
		// Control frames have their own queue, budget and delivery: a
		// stalled calls handler and a full calls queue do not hold them.
		ctl := make(chan struct{}, 1)
		b.Handle(KindControl, HandlerFunc(func(string, []byte) { ctl <- struct{}{} }))
		if err := a.Send(ctx, Peer{ID: "b"}, KindControl, frame); err != nil {
			t.Fatalf("control Send behind a full calls queue: %v", err)
		}
		<-ctl
		// Space frees when the handler returns: a waiting Send goes through.
		errc := make(chan error, 1)
		go func() { errc <- a.Send(ctx, Peer{ID: "b"}, KindCalls, frame) }()
		synctest.Wait()
		select {
		case err := <-errc:
			t.Fatalf("Send returned %v while the queue was full", err)
		default:
		}
		close(release)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	})
}

func TestMemStreamLayer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := NewMemNetwork()
		ms := mustJoin(t, nw, "a", "b")
		la, lb := ms[0].StreamLayer(), ms[1].StreamLayer()
		if got := lb.Addr().String(); got != "mem:b" {
			t.Fatalf("Addr = %q", got)
		}
		accepted := make(chan error, 1)
		var server net.Conn
		go func() {
			c, err := lb.Accept()
			server = c
			accepted <- err
		}()
		client, err := la.Dial("mem:b", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := <-accepted; err != nil {
			t.Fatal(err)
		}
		if client.RemoteAddr().String() != "mem:b" || server.RemoteAddr().String() != "mem:a" {
			t.Fatalf("addrs: %v %v", client.RemoteAddr(), server.RemoteAddr())
		}
		go client.Write([]byte("ping"))
		buf := make([]byte, 4)
		if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("read %q, %v", buf, err)
		}

		// A partition breaks the open conn both ways and refuses new dials.
		readErr := make(chan error, 1)
		go func() { _, err := server.Read(buf); readErr <- err }()
		nw.Partition("a", "b")
		if err := <-readErr; err == nil {
			t.Fatal("read across a partition succeeded")
		}
		if _, err := client.Write([]byte("x")); err == nil {
			t.Fatal("write across a partition succeeded")
		}
		if _, err := la.Dial("mem:b", time.Second); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("Dial across a partition = %v, want ErrUnreachable", err)
		}
		nw.Heal("a", "b")

		// Nobody accepting: the dial times out.
		start := time.Now()
		if _, err := la.Dial("mem:b", 100*time.Millisecond); !errors.Is(err, ErrUnreachable) || time.Since(start) != 100*time.Millisecond {
			t.Fatalf("Dial with no acceptor = %v after %v", err, time.Since(start))
		}

		// Closing a node closes its conns and its listener.
		go func() {
			c, err := lb.Accept()
			server = c
			accepted <- err
		}()
		client, err = la.Dial("mem:b", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		<-accepted
		ms[1].Close()
		if _, err := client.Read(buf); err == nil {
			t.Fatal("read from a closed node succeeded")
		}
		if _, err := lb.Accept(); !errors.Is(err, ErrClosed) {
			t.Fatalf("Accept after Close = %v", err)
		}
	})
}

func TestMemRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := NewMemNetwork()
		ms := mustJoin(t, nw, "a", "b")
		ms[1].Close()
		if err := ms[0].Send(t.Context(), Peer{ID: "b"}, KindCalls, []byte("x")); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("Send to a closed node = %v", err)
		}
		b2 := mustJoin(t, nw, "b")[0]
		got := newCollector()
		b2.Handle(KindCalls, got)
		if err := ms[0].Send(t.Context(), Peer{ID: "b"}, KindCalls, []byte("again")); err != nil {
			t.Fatal(err)
		}
		got.wait(t, 1, time.Second)
	})
}

// TestMemDialWaitsForPeer: a Raft dial to a peer not on the network (down,
// restarting) or cut off waits for it until its timeout, as a QUIC dial
// retransmits its handshake: it connects when the peer joins or the
// partition heals, and fails with ErrUnreachable at the timeout.
func TestMemDialWaitsForPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMemNetwork()
		a, err := net.Join("a")
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		t0 := time.Now()
		if _, err := a.StreamLayer().Dial("mem:gone", time.Second); !errors.Is(err, ErrUnreachable) || time.Since(t0) != time.Second {
			t.Fatalf("dial of an absent peer = %v after %v, want ErrUnreachable after 1s", err, time.Since(t0))
		}
		type dialed struct {
			c   interface{ Close() error }
			err error
		}
		dial := func() chan dialed {
			ch := make(chan dialed, 1)
			go func() {
				c, err := a.StreamLayer().Dial("mem:b", 2*time.Second)
				ch <- dialed{c, err}
			}()
			return ch
		}
		accept := func(b *Mem) {
			go func() {
				if c, err := b.StreamLayer().Accept(); err == nil {
					c.Close()
				}
			}()
		}
		ch := dial()
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		if len(ch) != 0 {
			t.Fatal("dial returned before the peer joined")
		}
		b, err := net.Join("b")
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		accept(b)
		if d := <-ch; d.err != nil {
			t.Fatalf("dial after the peer joined: %v", d.err)
		} else {
			d.c.Close()
		}
		net.Isolate("b")
		ch = dial()
		time.Sleep(time.Second)
		synctest.Wait()
		if len(ch) != 0 {
			t.Fatal("dial returned while the peer was cut off")
		}
		net.HealNode("b")
		accept(b)
		if d := <-ch; d.err != nil {
			t.Fatalf("dial after the heal: %v", d.err)
		} else {
			d.c.Close()
		}
		// AbortDials (before raft.Shutdown) ends a waiting dial at once,
		// and every later one.
		net.Isolate("b")
		ch = dial()
		synctest.Wait()
		a.StreamLayer().(DialAborter).AbortDials()
		t0 = time.Now()
		if d := <-ch; !errors.Is(d.err, ErrClosed) || time.Since(t0) != 0 {
			t.Fatalf("dial after AbortDials = %v after %v, want ErrClosed at once", d.err, time.Since(t0))
		}
		net.HealNode("b")
		if _, err := a.StreamLayer().Dial("mem:b", time.Second); !errors.Is(err, ErrClosed) {
			t.Fatalf("dial after AbortDials = %v, want ErrClosed", err)
		}
	})
}
