package remote

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/troupe-dev/troupe/transport"
)

// probe lets a test observe a worker from outside.
type probe struct {
	started chan string // Block and Wait report their start
	ended   chan error  // Block reports the ctx error it saw
	release chan struct{}
	nodes   func() []*Endpoint
	node    int          // index of the hosting node, set per registry
	adds    atomic.Int32 // Add calls run on this node
}

func newProbe() *probe {
	return &probe{started: make(chan string, 16), ended: make(chan error, 16), release: make(chan struct{})}
}

type worker struct {
	p *probe
	n int
}

func (w *worker) Add(ctx context.Context, n int) (int, error) {
	w.p.adds.Add(1)
	w.n += n
	return w.n, nil
}
func (w *worker) Get() int              { return w.n }
func (w *worker) Fail(msg string) error { return errors.New(msg) }
func (w *worker) Boom()                 { panic("boom") }
func (w *worker) Echo(r Ref) Ref        { return r }
func (w *worker) Deadline(ctx context.Context) int64 {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	return dl.UnixNano()
}

// Block waits for its ctx to end and reports the ctx error.
func (w *worker) Block(ctx context.Context) error {
	w.p.started <- "Block"
	<-ctx.Done()
	w.p.ended <- ctx.Err()
	return ctx.Err()
}

// Wait waits for the test to release it.
func (w *worker) Wait(ctx context.Context) error {
	w.p.started <- "Wait"
	select {
	case <-w.p.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Forward calls Add on another actor through the hosting node's endpoint,
// with its own ctx, and returns that actor's answer.
func (w *worker) Forward(ctx context.Context, to Ref, n int) (int, error) {
	var got int
	err := w.p.nodes()[w.p.node].Call(ctx, to, "Add", CallOptions{}, n).Decode(ctx, &got)
	return got, err
}

// newWorkerCluster starts n nodes that all register "Worker".
func newWorkerCluster(t *testing.T, n int, tweak func(*Config)) (*cluster, []*probe) {
	return newWorkerClusterOn(t, false, n, tweak)
}

func newWorkerClusterOn(t *testing.T, quic bool, n int, tweak func(*Config)) (*cluster, []*probe) {
	t.Helper()
	probes := make([]*probe, n)
	var c *cluster
	c = newClusterOn(t, quic, n, func(ts *Types, i int) {
		p := newProbe()
		p.node = i
		p.nodes = func() []*Endpoint { return c.nodes }
		probes[i] = p
		if _, err := Register(ts, "Worker", func() *worker { return &worker{p: p} }); err != nil {
			t.Fatal(err)
		}
	}, tweak)
	return c, probes
}

func callInt(t *testing.T, ctx context.Context, e *Endpoint, ref Ref, method string, args ...any) (int, error) {
	t.Helper()
	var got int
	err := e.Call(ctx, ref, method, CallOptions{}, args...).Decode(ctx, &got)
	return got, err
}

func TestCallRemoteAndLocal(t *testing.T) {
	c, _ := newWorkerCluster(t, 2, nil)
	ref := c.reg.place("w1", "Worker", "n2", 1)
	ctx := context.Background()
	tests := []struct {
		name   string
		caller int
		want   int
	}{
		{"remote", 0, 5},
		{"local", 1, 10},
		{"remote again", 0, 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := callInt(t, ctx, c.nodes[tt.caller], ref, "Add", 5)
			if err != nil || got != tt.want {
				t.Fatalf("Add = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestTell(t *testing.T) {
	c, _ := newWorkerCluster(t, 2, nil)
	ref := c.reg.place("w1", "Worker", "n2", 1)
	ctx := context.Background()
	for range 10 {
		if err := c.nodes[0].Tell(ctx, ref, "Add", 1); err != nil {
			t.Fatal(err)
		}
	}
	// One stream, one mailbox: the call runs after the ten sends.
	if got, err := callInt(t, ctx, c.nodes[0], ref, "Get"); err != nil || got != 10 {
		t.Fatalf("Get = %d, %v; want 10", got, err)
	}
	// A one-way failure is not reported to anyone, and does not break the actor.
	if err := c.nodes[0].Tell(ctx, ref, "Boom"); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[0].Tell(ctx, Ref{ID: "nowhere"}, "Add", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Tell to unknown actor: %v", err)
	}
}

func TestRefsAsArgumentsAndResults(t *testing.T) {
	c, _ := newWorkerCluster(t, 3, nil)
	a := c.reg.place("a", "Worker", "n2", 1)
	b := c.reg.place("b", "Worker", "n3", 4)
	ctx := context.Background()
	var echoed Ref
	if err := c.nodes[0].Call(ctx, a, "Echo", CallOptions{}, b).Decode(ctx, &echoed); err != nil {
		t.Fatal(err)
	}
	if echoed != b {
		t.Fatalf("Echo = %v, want %v", echoed, b)
	}
	// a (on n2) calls b (on n3) with the ref it was given.
	for i, want := range []int{7, 14} {
		got, err := callInt(t, ctx, c.nodes[0], a, "Forward", b, 7)
		if err != nil || got != want {
			t.Fatalf("Forward #%d = %d, %v; want %d", i, got, err, want)
		}
	}
	if got, err := callInt(t, ctx, c.nodes[0], b, "Get"); err != nil || got != 14 {
		t.Fatalf("b.Get = %d, %v", got, err)
	}
}

func TestCancelReachesCallee(t *testing.T) {
	for _, caller := range []int{0, 1} { // remote and same-node
		t.Run([]string{"remote", "local"}[caller], func(t *testing.T) {
			c, probes := newWorkerCluster(t, 2, nil)
			ref := c.reg.place("w1", "Worker", "n2", 1)
			ctx, cancel := context.WithCancel(context.Background())
			call := c.nodes[caller].Call(ctx, ref, "Block", CallOptions{})
			<-probes[1].started
			cancel()
			_, err := call.Wait(context.Background())
			if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCanceled) {
				t.Fatalf("caller err = %v", err)
			}
			if err := <-probes[1].ended; !errors.Is(err, context.Canceled) {
				t.Fatalf("callee saw %v", err)
			}
			// The actor is free again.
			if got, err := callInt(t, context.Background(), c.nodes[caller], ref, "Add", 1); err != nil || got != 1 {
				t.Fatalf("Add after cancel = %d, %v", got, err)
			}
		})
	}
}

func TestDeadlineTravels(t *testing.T) {
	c, _ := newWorkerCluster(t, 2, nil)
	ref := c.reg.place("w1", "Worker", "n2", 1)
	dl := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	var got int64
	if err := c.nodes[0].Call(ctx, ref, "Deadline", CallOptions{}).Decode(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if got != dl.UnixNano() {
		t.Fatalf("callee deadline %v, want %v", time.Unix(0, got), dl)
	}
	if err := c.nodes[0].Call(context.Background(), ref, "Deadline", CallOptions{}).Decode(ctx, &got); err != nil || got != 0 {
		t.Fatalf("no deadline: %d, %v", got, err)
	}
}

func TestDeadlineExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, probes := newWorkerCluster(t, 2, nil)
		ref := c.reg.place("w1", "Worker", "n2", 1)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.nodes[0].Call(ctx, ref, "Block", CallOptions{}).Wait(context.Background())
		if !errors.Is(err, ErrDeadline) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("caller err = %v", err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Fatalf("failed after %v, want 3s", d)
		}
		if err := <-probes[1].ended; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("callee saw %v", err)
		}
		c.close()
		synctest.Wait()
	})
}

func TestCallErrors(t *testing.T) {
	c, _ := newWorkerCluster(t, 2, nil)
	ref := c.reg.place("w1", "Worker", "n2", 1)
	ctx := context.Background()
	tests := []struct {
		name   string
		ref    Ref
		method string
		args   []any
		is     error
		msg    string
	}{
		{"application error", ref, "Fail", []any{"out of stock"}, ErrApplication, "out of stock"},
		{"unknown method", ref, "Fly", nil, ErrUnknownMethod, "Worker.Fly"},
		{"too many arguments", ref, "Add", []any{1, 2}, ErrBadArgs, "Worker.Add: want 1 argument, got 2"},
		{"wrong argument type", ref, "Add", []any{"x"}, ErrBadArgs, "Worker.Add: argument 0 (int)"},
		{"unencodable argument", ref, "Add", []any{func() {}}, ErrBadArgs, "argument 0 (func())"},
		{"unknown actor", Ref{ID: "ghost", Node: "n2"}, "Add", []any{1}, ErrNotFound, ""},
		{"no location", Ref{ID: "ghost"}, "Add", []any{1}, ErrNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.nodes[0].Call(ctx, tt.ref, tt.method, CallOptions{}, tt.args...).Wait(ctx)
			var re *Error
			if !errors.Is(err, tt.is) || !errors.As(err, &re) {
				t.Fatalf("err = %v, want %v", err, tt.is)
			}
			if !strings.Contains(re.Message, tt.msg) || re.Actor != tt.ref.ID || re.Method != tt.method {
				t.Fatalf("err = %#v", re)
			}
		})
	}
}

func TestRemoteErrorNamesNode(t *testing.T) {
	c, _ := newWorkerCluster(t, 2, nil)
	ref := c.reg.place("w1", "Worker", "n2", 1)
	_, err := c.nodes[0].Call(context.Background(), ref, "Fail", CallOptions{}, "nope").Wait(context.Background())
	want := &Error{Code: CodeApplication, Message: "nope", Node: "n2", Actor: "w1", Method: "Fail"}
	if re, ok := err.(*Error); !ok || *re != *want {
		t.Fatalf("err = %#v, want %#v", err, want)
	}
}

func TestPanicFreshInstanceAndHook(t *testing.T) {
	hooked := make(chan Ref, 1)
	c, _ := newWorkerCluster(t, 2, func(cfg *Config) {
		cfg.OnPanic = func(ref Ref, method string, p *PanicError) {
			if method == "Boom" && p.Value == "boom" {
				hooked <- ref
			}
		}
	})
	ref := c.reg.place("w1", "Worker", "n2", 3)
	ctx := context.Background()
	if _, err := callInt(t, ctx, c.nodes[0], ref, "Add", 5); err != nil {
		t.Fatal(err)
	}
	_, err := c.nodes[0].Call(ctx, ref, "Boom", CallOptions{}).Wait(ctx)
	if !errors.Is(err, ErrPanicked) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v", err)
	}
	if got := <-hooked; got != (Ref{ID: "w1", Type: "Worker", Node: "n2", Epoch: 3}) {
		t.Fatalf("hook ref = %v", got)
	}
	if got, err := callInt(t, ctx, c.nodes[0], ref, "Get"); err != nil || got != 0 {
		t.Fatalf("Get after panic = %d, %v; want a fresh instance", got, err)
	}
}

func TestNotOwnerRetriedOnce(t *testing.T) {
	c, _ := newWorkerCluster(t, 3, nil)
	ref := c.reg.place("w1", "Worker", "n3", 2)
	ctx := context.Background()
	// n1 still believes w1 lives on n2 at epoch 1.
	c.reg.setStale("n1", "w1", Location{Node: "n2", Epoch: 1})
	if got, err := callInt(t, ctx, c.nodes[0], ref, "Add", 1); err != nil || got != 1 {
		t.Fatalf("Add = %d, %v", got, err)
	}
	// Only once: when the refreshed location refuses too, the call fails.
	c.reg.setStale("n1", "w1", Location{Node: "n2", Epoch: 1})
	c.reg.mu.Lock()
	c.reg.refuse["n3"] = true
	c.reg.mu.Unlock()
	_, err := c.nodes[0].Call(ctx, ref, "Add", CallOptions{}, 1).Wait(ctx)
	if !errors.Is(err, ErrNotOwner) {
		t.Fatalf("err = %v, want ErrNotOwner after one retry", err)
	}
}

func TestUnreachableRetried(t *testing.T) {
	c, _ := newWorkerCluster(t, 3, nil)
	ref := c.reg.place("w1", "Worker", "n3", 2)
	c.reg.setStale("n1", "w1", Location{Node: "n2", Epoch: 1})
	c.net.Partition("n1", "n2")
	if got, err := callInt(t, context.Background(), c.nodes[0], ref, "Add", 4); err != nil || got != 4 {
		t.Fatalf("Add = %d, %v", got, err)
	}
	// Without a better location the refresh waits, and the caller's ctx ends it.
	c.net.Partition("n1", "n3")
	ctx, cancel := context.WithCancel(context.Background())
	call := c.nodes[0].Call(ctx, ref, "Add", CallOptions{}, 1)
	cancel()
	if _, err := call.Wait(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestBackpressure(t *testing.T) {
	// The engine counts the call being processed against the bound too.
	c, probes := newWorkerCluster(t, 2, func(cfg *Config) { cfg.MailboxSize = 2 })
	ref := c.reg.place("w1", "Worker", "n2", 1)
	ctx := context.Background()
	running := c.nodes[0].Call(ctx, ref, "Wait", CallOptions{})
	<-probes[1].started
	queued := c.nodes[0].Call(ctx, ref, "Add", CallOptions{}, 1)
	_, err := c.nodes[0].Call(ctx, ref, "Add", CallOptions{}, 1).Wait(ctx)
	if !errors.Is(err, ErrBackpressure) {
		t.Fatalf("err = %v, want ErrBackpressure", err)
	}
	close(probes[1].release)
	if _, err := running.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := queued.Decode(ctx, &n); err != nil || n != 1 {
		t.Fatalf("queued call = %d, %v", n, err)
	}
}

func TestNodeFailed(t *testing.T) {
	tests := []struct {
		name       string
		idempotent bool
	}{{"at most once", false}, {"idempotent retried", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, probes := newWorkerCluster(t, 3, nil)
			ref := c.reg.place("w1", "Worker", "n2", 1)
			ctx := context.Background()
			call := c.nodes[0].Call(ctx, ref, "Wait", CallOptions{Idempotent: tt.idempotent})
			<-probes[1].started
			// n2 dies; the registry re-places w1 on n3.
			c.net.Isolate("n2")
			c.reg.place("w1", "Worker", "n3", 2)
			c.nodes[0].NodeFailed("n2")
			if tt.idempotent {
				if <-probes[2].started != "Wait" {
					t.Fatal("not retried on n3")
				}
				close(probes[2].release)
				if _, err := call.Wait(ctx); err != nil {
					t.Fatalf("retried call: %v", err)
				}
			} else if _, err := call.Wait(ctx); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			close(probes[1].release)
		})
	}
}

func TestDeactivateRetires(t *testing.T) {
	c, _ := newWorkerCluster(t, 2, nil)
	ref := c.reg.place("w1", "Worker", "n2", 1)
	ctx := context.Background()
	if _, err := callInt(t, ctx, c.nodes[0], ref, "Add", 3); err != nil {
		t.Fatal(err)
	}
	c.nodes[1].Deactivate("w1")
	if got, err := callInt(t, ctx, c.nodes[0], ref, "Get"); err != nil || got != 0 {
		t.Fatalf("Get after Deactivate = %d, %v; want a fresh activation", got, err)
	}
	// A newer epoch replaces the activation too.
	if _, err := callInt(t, ctx, c.nodes[0], ref, "Add", 3); err != nil {
		t.Fatal(err)
	}
	ref = c.reg.place("w1", "Worker", "n2", 2)
	if got, err := callInt(t, ctx, c.nodes[0], ref, "Get"); err != nil || got != 0 {
		t.Fatalf("Get at new epoch = %d, %v", got, err)
	}
}

func TestCloseFailsPending(t *testing.T) {
	c, probes := newWorkerCluster(t, 2, nil)
	ref := c.reg.place("w1", "Worker", "n2", 1)
	call := c.nodes[0].Call(context.Background(), ref, "Wait", CallOptions{})
	<-probes[1].started
	c.nodes[0].Close()
	if _, err := call.Wait(context.Background()); !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
	if _, err := c.nodes[0].Call(context.Background(), ref, "Get", CallOptions{}).Wait(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
	close(probes[1].release)
}

func TestRestartLimitStops(t *testing.T) {
	stopped := make(chan Ref, 1)
	c, _ := newWorkerCluster(t, 2, func(cfg *Config) {
		cfg.Restart.MaxRestarts = 1
		cfg.OnStop = func(ref Ref, reason error) { stopped <- ref }
	})
	ref := c.reg.place("w1", "Worker", "n2", 1)
	ctx := context.Background()
	for i := range 2 { // the first panic restarts, the second exceeds the intensity
		if _, err := c.nodes[0].Call(ctx, ref, "Boom", CallOptions{}).Wait(ctx); !errors.Is(err, ErrPanicked) {
			t.Fatalf("panic #%d: %v", i, err)
		}
	}
	if got := <-stopped; got.ID != "w1" {
		t.Fatalf("OnStop ref = %v", got)
	}
	if _, err := c.nodes[0].Call(ctx, ref, "Get", CallOptions{}).Wait(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("call to stopped actor: %v", err)
	}
	// Re-placed (a new epoch), it serves again with a fresh instance.
	ref = c.reg.place("w1", "Worker", "n2", 2)
	if got, err := callInt(t, ctx, c.nodes[0], ref, "Add", 2); err != nil || got != 2 {
		t.Fatalf("Add after re-placement = %d, %v", got, err)
	}
}

func TestOverQUIC(t *testing.T) {
	c, probes := newWorkerClusterOn(t, true, 3, nil)
	a := c.reg.place("a", "Worker", "n2", 1)
	b := c.reg.place("b", "Worker", "n3", 1)
	ctx, cancelAll := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelAll()
	t.Run("call", func(t *testing.T) {
		if got, err := callInt(t, ctx, c.nodes[0], a, "Add", 2); err != nil || got != 2 {
			t.Fatalf("Add = %d, %v", got, err)
		}
	})
	t.Run("tell", func(t *testing.T) {
		for range 5 {
			if err := c.nodes[0].Tell(ctx, a, "Add", 1); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := callInt(t, ctx, c.nodes[0], a, "Get"); err != nil || got != 7 {
			t.Fatalf("Get = %d, %v", got, err)
		}
	})
	t.Run("ref argument", func(t *testing.T) {
		if got, err := callInt(t, ctx, c.nodes[0], a, "Forward", b, 3); err != nil || got != 3 {
			t.Fatalf("Forward = %d, %v", got, err)
		}
	})
	t.Run("errors", func(t *testing.T) {
		_, err := c.nodes[0].Call(ctx, a, "Add", CallOptions{}, "x").Wait(ctx)
		var re *Error
		if !errors.As(err, &re) || re.Code != CodeBadArgs || re.Node != "n2" {
			t.Fatalf("err = %#v", err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		call := c.nodes[0].Call(cctx, b, "Block", CallOptions{})
		<-probes[2].started
		cancel()
		if _, err := call.Wait(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("caller err = %v", err)
		}
		if err := <-probes[2].ended; !errors.Is(err, context.Canceled) {
			t.Fatalf("callee saw %v", err)
		}
	})
}

func TestQueuedCallsMoveWithTheActor(t *testing.T) {
	c, probes := newWorkerCluster(t, 3, nil)
	ref := c.reg.place("w1", "Worker", "n2", 1)
	ctx := context.Background()
	running := c.nodes[0].Call(ctx, ref, "Wait", CallOptions{})
	<-probes[1].started
	queued := c.nodes[0].Call(ctx, ref, "Add", CallOptions{}, 1)
	// The actor moves to n3: n2 drops its activation; the queued call was
	// never delivered, so it is retried on n3.
	c.reg.place("w1", "Worker", "n3", 2)
	c.nodes[1].Deactivate("w1")
	close(probes[1].release)
	if _, err := running.Wait(ctx); err != nil {
		t.Fatalf("running call: %v", err)
	}
	var n int
	if err := queued.Decode(ctx, &n); err != nil || n != 1 {
		t.Fatalf("queued call = %d, %v", n, err)
	}
}

// TestWireSenderMarker checks the frames an Endpoint actually sends: a call
// names its sender, a one-way send carries the explicit "no sender" nil
// even when sent right after a call on the same stream.
func TestWireSenderMarker(t *testing.T) {
	c, _ := newWorkerCluster(t, 1, nil)
	spy, err := c.net.Join("spy")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spy.Close() })
	frames := make(chan []byte, 4)
	spy.Handle(transport.KindCalls, transport.HandlerFunc(func(from string, f []byte) { frames <- f }))
	oneWays := make(chan []byte, 4) // one-way sends have a stream of their own
	spy.Handle(transport.KindOneWay, transport.HandlerFunc(func(from string, f []byte) { oneWays <- f }))
	ref := Ref{ID: "x", Type: "Worker", Node: "spy", Epoch: 9}
	ctx, cancel := context.WithCancel(context.Background())
	call := c.nodes[0].Call(ctx, ref, "Add", CallOptions{Idempotent: true}, 1)
	if err := c.nodes[0].Tell(context.Background(), ref, "Add", 2); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		sender string
		flags  Flags
		from   chan []byte
	}{{"n1", FlagIdempotent, frames}, {"", FlagOneWay, oneWays}}
	for i, w := range want {
		var env Envelope
		if err := DecodeEnvelope(<-w.from, &env); err != nil {
			t.Fatal(err)
		}
		q := env.Request
		if env.Type != FrameRequest || q.Sender != w.sender || q.Flags != w.flags || q.Epoch != 9 || q.Target != "x" {
			t.Fatalf("frame %d = %+v, want sender %q flags %d", i, q, w.sender, w.flags)
		}
	}
	cancel()
	if _, err := call.Wait(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	var env Envelope
	if err := DecodeEnvelope(<-frames, &env); err != nil || env.Type != FrameCancel {
		t.Fatalf("want a cancel frame, got %+v, %v", env, err)
	}
}

// sendHook wraps a transport so a test can stand in the middle of a Send of
// a calls frame to one peer.
type sendHook struct {
	transport.Transport
	to      string
	entered chan struct{} // receives when the hooked Send begins
	release chan error    // what the hooked Send returns; nil means send it
}

func (h *sendHook) Send(ctx context.Context, to transport.Peer, k transport.Kind, frame []byte) error {
	if k != transport.KindCalls || to.ID != h.to {
		return h.Transport.Send(ctx, to, k, frame)
	}
	h.entered <- struct{}{}
	if err := <-h.release; err != nil {
		return err
	}
	return h.Transport.Send(ctx, to, k, frame)
}

// A host reported gone while a request to it is being sent: the send's
// outcome decides. A request that never left is retried where the actor
// now lives; one that left may have run, so it ends with ErrUnknownOutcome
// — unless the host's reply arrives first, and then the call has its
// result; either way it never runs twice.
func TestNodeFailedDuringSend(t *testing.T) {
	tests := []struct {
		name    string
		sendErr error
		want    error
	}{
		{"not sent", transport.ErrUnreachable, nil},
		{"sent", nil, ErrUnknownOutcome},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hook := &sendHook{to: "n2", entered: make(chan struct{}), release: make(chan error)}
			c, probes := newWorkerCluster(t, 3, func(cfg *Config) {
				if cfg.Transport.ID() == "n1" {
					hook.Transport = cfg.Transport
					cfg.Transport = hook
				}
			})
			ref := c.reg.place("w1", "Worker", "n2", 1)
			ctx := context.Background()
			calls := make(chan *Call, 1)
			go func() { calls <- c.nodes[0].Call(ctx, ref, "Add", CallOptions{}, 3) }()
			<-hook.entered
			c.reg.place("w1", "Worker", "n3", 2)
			c.nodes[0].NodeFailed("n2")
			hook.release <- tt.sendErr
			var got int
			err := (<-calls).Decode(ctx, &got)
			if tt.want == nil {
				if err != nil || got != 3 {
					t.Fatalf("Add = %d, %v; want 3 from n3", got, err)
				}
				return
			}
			if err == nil && got == 3 {
				// A reply came back before the send returned: the outcome
				// is known after all — n2 ran it, or refused it as no
				// longer its owner (the registry moved the actor) and the
				// retry ran it on n3. Either way it ran once.
				if a2, a3 := probes[1].adds.Load(), probes[2].adds.Load(); a2+a3 != 1 {
					t.Fatalf("answered 3, and Add ran %d times on n2 and %d on n3", a2, a3)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
