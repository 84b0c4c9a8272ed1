package troupe

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actor"
	"github.com/troupe-dev/troupe/transport"
	"github.com/vmihailenco/msgpack/v5"
)

func TestZeroConfigStart(t *testing.T) {
	ctx := ctxT(t)
	n, err := Start(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := Register(n, "Counter", func() *Counter { return &Counter{} }); err != nil {
		t.Fatal(err)
	}
	ref := must[Ref](t)(n.Spawn(ctx, "Counter"))
	got, err := Call[int](ctx, ref, "Add", 5).Await(ctx)
	if err != nil || got != 5 {
		t.Fatalf("Add = %d, %v; want 5", got, err)
	}
	if err := n.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := n.Spawn(ctx, "Counter"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Spawn after Stop: %v, want ErrClosed", err)
	}
}

func TestDevCARefusedOffLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:0", true},
		{"localhost:0", true},
		{"[::1]:0", true},
		{"0.0.0.0:0", false},
		{":7000", false},
		{"192.0.2.10:7000", false},
		{"[2001:db8::1]:7000", false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			if got := isLoopback(tc.addr); got != tc.ok {
				t.Fatalf("isLoopback(%q) = %v", tc.addr, got)
			}
			if tc.ok {
				return
			}
			_, err := Start(context.Background(), Config{Addr: tc.addr})
			if !errors.Is(err, ErrDevCAOnNetwork) {
				t.Fatalf("Start(Addr %q) = %v, want ErrDevCAOnNetwork", tc.addr, err)
			}
		})
	}
}

func TestCalls(t *testing.T) {
	transports(t, func(t *testing.T, quic bool) {
		c := newTestCluster(t, quic, 3, nil)
		ctx := ctxT(t)
		n1 := c.nodes[0]
		// One counter on each node, all called from n1.
		var refs []Ref
		for _, n := range c.nodes {
			refs = append(refs, must[Ref](t)(n1.Spawn(ctx, "Counter", OnNode(n.ID()))))
		}
		for i, r := range refs {
			if where, err := Call[string](ctx, r, "Where").Await(ctx); err != nil || where != c.nodes[i].ID() {
				t.Fatalf("Where = %q, %v; want %s", where, err, c.nodes[i].ID())
			}
		}
		r := refs[1]
		t.Run("call", func(t *testing.T) {
			for want := 1; want <= 3; want++ {
				if got, err := Call[int](ctx, r, "Add", 1).Await(ctx); err != nil || got != want {
					t.Fatalf("Add = %d, %v; want %d", got, err, want)
				}
			}
		})
		t.Run("tell", func(t *testing.T) {
			before := must[int](t)(Call[int](ctx, r, "Get").Await(ctx))
			for range 10 {
				if err := Tell(ctx, r, "Add", 1); err != nil {
					t.Fatal(err)
				}
			}
			// Calls from one node to one actor arrive in order: Get sees all ten.
			if got := must[int](t)(Call[int](ctx, r, "Get").Await(ctx)); got != before+10 {
				t.Fatalf("Get after 10 tells = %d, want %d", got, before+10)
			}
		})
		t.Run("ref as argument and result", func(t *testing.T) {
			target := refs[2]
			before := must[int](t)(Call[int](ctx, target, "Get").Await(ctx))
			// n1 asks the actor on n2 to add 7 to the actor on n3.
			got, err := Call[int](ctx, refs[1], "AddVia", target, 7).Await(ctx)
			if err != nil || got != before+7 {
				t.Fatalf("AddVia = %d, %v; want %d", got, err, before+7)
			}
			echo := must[Ref](t)(Call[Ref](ctx, refs[0], "Echo", target).Await(ctx))
			if echo.ID != target.ID || echo.Bound() {
				t.Fatalf("Echo = %v (bound %v), want unbound %v", echo, echo.Bound(), target)
			}
			if got := must[int](t)(Call[int](ctx, n1.Ref(echo), "Get").Await(ctx)); got != before+7 {
				t.Fatalf("Get through echoed ref = %d", got)
			}
		})
		t.Run("errors", func(t *testing.T) {
			for _, tc := range []struct {
				name   string
				method string
				args   []any
				want   error
			}{
				{"unknown method", "Nope", nil, ErrUnknownMethod},
				{"unexported method", "add", []any{1}, ErrUnknownMethod},
				{"too few arguments", "Add", nil, ErrBadArgs},
				{"too many arguments", "Add", []any{1, 2}, ErrBadArgs},
				{"wrong argument type", "Add", []any{"five"}, ErrBadArgs},
				{"application error", "Fail", []any{"no luck"}, ErrApplication},
			} {
				t.Run(tc.name, func(t *testing.T) {
					_, err := Call[int](ctx, r, tc.method, tc.args...).Await(ctx)
					if !errors.Is(err, tc.want) {
						t.Fatalf("%s: %v, want %v", tc.method, err, tc.want)
					}
					var re *Error
					if !errors.As(err, &re) || re.Actor != r.ID || re.Method != tc.method {
						t.Fatalf("%s: error %#v does not name actor %s", tc.method, err, r.ID)
					}
				})
			}
			_, err := Call[string](ctx, r, "Add", 1).Await(ctx) // result type mismatch
			if !errors.Is(err, ErrBadArgs) {
				t.Fatalf("int into string: %v, want ErrBadArgs", err)
			}
		})
		t.Run("deadline", func(t *testing.T) {
			dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			_, err := Call[int](dctx, r, "Block").Await(ctx)
			if !errors.Is(err, ErrDeadline) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Block with deadline: %v", err)
			}
			// The actor is free again: the callee's ctx was cancelled.
			if _, err := Call[int](ctx, r, "Get").Await(ctx); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("cancel", func(t *testing.T) {
			cctx, cancel := context.WithCancel(ctx)
			f := Call[int](cctx, r, "Block")
			cancel()
			_, err := f.Await(ctx)
			if !errors.Is(err, ErrCanceled) || !errors.Is(err, context.Canceled) {
				t.Fatalf("Block cancelled: %v", err)
			}
			if _, err := Call[int](ctx, r, "Get").Await(ctx); err != nil {
				t.Fatal(err)
			}
		})
	})
}

func TestWaitAllAndAny(t *testing.T) {
	c := newTestCluster(t, false, 2, nil)
	ctx := ctxT(t)
	n1 := c.nodes[0]
	r := must[Ref](t)(n1.Spawn(ctx, "Counter", OnNode("n2")))
	var futs []*Future[int]
	for range 10 {
		futs = append(futs, Call[int](ctx, r, "Add", 1))
	}
	if err := WaitAll(ctx, futs...); err != nil {
		t.Fatal(err)
	}
	for i, f := range futs {
		if v, err := f.Await(ctx); err != nil || v != i+1 {
			t.Fatalf("future %d = %d, %v", i, v, err)
		}
	}
	// WaitAll reports the first failure in argument order.
	bad := []*Future[int]{Call[int](ctx, r, "Get"), Call[int](ctx, r, "Fail", "x")}
	if err := WaitAll(ctx, bad...); !errors.Is(err, ErrApplication) {
		t.Fatalf("WaitAll with a failure = %v", err)
	}

	// WaitAny: one call blocks until its ctx ends, two complete.
	blockCtx, unblock := context.WithCancel(ctx)
	defer unblock()
	blocked := Call[int](blockCtx, must[Ref](t)(n1.Spawn(ctx, "Counter", OnNode("n2"))), "Block")
	quick := []*Future[int]{blocked, Call[int](ctx, r, "Get"), Call[int](ctx, r, "Get")}
	ready, notReady := WaitAny(ctx, 2, quick...)
	if len(ready) != 2 || len(notReady) != 1 || notReady[0] != blocked {
		t.Fatalf("WaitAny(2) = %d ready, %d not ready", len(ready), len(notReady))
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	ready, notReady = WaitAny(short, 3, quick...)
	if len(ready) != 2 || len(notReady) != 1 {
		t.Fatalf("WaitAny(3) past ctx = %d ready, %d not ready", len(ready), len(notReady))
	}
	unblock()
	if _, err := blocked.Await(ctx); !errors.Is(err, ErrCanceled) {
		t.Fatalf("blocked = %v", err)
	}
	// Mixed result types wait together as Awaitable.
	mixed := []Awaitable{Call[int](ctx, r, "Get"), Call[string](ctx, r, "Where")}
	if err := WaitAll(ctx, mixed...); err != nil {
		t.Fatal(err)
	}
}

func TestPanicRestarts(t *testing.T) {
	transports(t, func(t *testing.T, quic bool) {
		c := newTestCluster(t, quic, 2, func(cfg *Config) {
			cfg.Restart = actor.Supervisor{MaxRestarts: 1, Window: time.Minute}
		})
		ctx := ctxT(t)
		n2 := c.nodes[1]
		r := must[Ref](t)(c.nodes[0].Spawn(ctx, "Counter", OnNode("n2")))
		events := must[<-chan ActorEvent](t)(n2.Watch(ctx, r)) // the host sees local panics
		remoteEvents := must[<-chan ActorEvent](t)(c.nodes[0].Watch(ctx, r))
		must[int](t)(Call[int](ctx, r, "Add", 5).Await(ctx))

		// First panic: restarted in place with a fresh instance.
		if _, err := Call[int](ctx, r, "Panic").Await(ctx); !errors.Is(err, ErrPanicked) {
			t.Fatalf("Panic = %v, want ErrPanicked", err)
		}
		if ev := nextEvent(t, events); ev.Kind != Panicked {
			t.Fatalf("event %v, want panicked", ev)
		}
		if got := must[int](t)(Call[int](ctx, r, "Get").Await(ctx)); got != 0 {
			t.Fatalf("Get after restart = %d, want 0 (fresh instance)", got)
		}
		// Second panic in the window: past the local budget, the registry
		// restarts it with a new epoch; the same ref keeps working.
		if _, err := Call[int](ctx, r, "Panic").Await(ctx); !errors.Is(err, ErrPanicked) {
			t.Fatalf("Panic = %v, want ErrPanicked", err)
		}
		if ev := nextEvent(t, events); ev.Kind != Panicked {
			t.Fatalf("event %v, want panicked", ev)
		}
		ev := nextEvent(t, remoteEvents)
		if ev.Kind != Restarted || ev.Ref.Epoch <= r.Epoch {
			t.Fatalf("remote watcher got %v (epoch %d), want restarted at a newer epoch than %d", ev.Kind, ev.Ref.Epoch, r.Epoch)
		}
		if got, err := Call[int](ctx, r, "Add", 2).Await(ctx); err != nil || got != 2 {
			t.Fatalf("Add after cluster restart = %d, %v", got, err)
		}
	})
}

func TestFailover(t *testing.T) {
	transports(t, func(t *testing.T, quic bool) {
		c := newTestCluster(t, quic, 3, nil)
		ctx := ctxT(t)
		n1 := c.nodes[0]
		r := must[Ref](t)(n1.Spawn(ctx, "Counter", WithName("survivor"), OnNode("n3")))
		mortal := must[Ref](t)(n1.Spawn(ctx, "Counter", OnNode("n3"), WithRestart(RestartPolicy{MaxRestarts: 0})))
		must[int](t)(Call[int](ctx, r, "Add", 1).Await(ctx))
		events := must[<-chan ActorEvent](t)(n1.Watch(ctx, r))
		mortalEvents := must[<-chan ActorEvent](t)(n1.Watch(ctx, mortal))
		c.nodes[2].Close() // abrupt: the cluster detects the failure
		ev := nextEvent(t, events)
		if ev.Kind != Restarted || ev.Ref.Node == "n3" {
			t.Fatalf("event %v on %s, want restarted elsewhere", ev.Kind, ev.Ref.Node)
		}
		where, err := Call[string](ctx, r, "Where").Await(ctx)
		if err != nil || where == "n3" || where != ev.Ref.Node {
			t.Fatalf("Where after failover = %q, %v; want %s", where, err, ev.Ref.Node)
		}
		// The name resolves to the new placement too.
		if l := must[Ref](t)(n1.Lookup(ctx, "survivor")); l.Node != ev.Ref.Node {
			t.Fatalf("Lookup = %v", l)
		}
		// An actor whose policy allows no restart stops with its node.
		if ev := nextEvent(t, mortalEvents); ev.Kind != Stopped {
			t.Fatalf("mortal actor: %v, want stopped", ev.Kind)
		}
		if _, err := Call[int](ctx, mortal, "Get").Await(ctx); !errors.Is(err, ErrNotFound) {
			t.Fatalf("call to the stopped mortal actor = %v, want ErrNotFound", err)
		}
	})
}

func TestStopLeaves(t *testing.T) {
	transports(t, func(t *testing.T, quic bool) {
		c := newTestCluster(t, quic, 3, nil)
		ctx := ctxT(t)
		n1 := c.nodes[0]
		r := must[Ref](t)(n1.Spawn(ctx, "Counter", OnNode("n2")))
		must[int](t)(Call[int](ctx, r, "Add", 1).Await(ctx))
		events := must[<-chan ActorEvent](t)(n1.Watch(ctx, r))
		if err := c.nodes[1].Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		ev := nextEvent(t, events)
		if ev.Kind != Moved || ev.Ref.Node == "n2" {
			t.Fatalf("event %v to %s, want moved off n2", ev.Kind, ev.Ref.Node)
		}
		if where := must[string](t)(Call[string](ctx, r, "Where").Await(ctx)); where != ev.Ref.Node {
			t.Fatalf("Where = %s, want %s", where, ev.Ref.Node)
		}
		if got := n1.Members(); len(got) != 2 {
			t.Fatalf("members after leave = %v", got)
		}
	})
}

func TestNamedSpawnRace(t *testing.T) {
	transports(t, func(t *testing.T, quic bool) {
		c := newTestCluster(t, quic, 3, nil)
		ctx := ctxT(t)
		refs := make([]Ref, 100)
		errs := make([]error, 100)
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() {
				refs[i], errs[i] = c.nodes[i%3].Spawn(ctx, "Counter", WithName("only-one"), Random())
			})
		}
		wg.Wait()
		for i := range 100 {
			if errs[i] != nil {
				t.Fatalf("spawn %d: %v", i, errs[i])
			}
			if refs[i].ID != "only-one" || refs[i].Epoch != refs[0].Epoch || refs[i].Node != refs[0].Node {
				t.Fatalf("spawn %d = %v, spawn 0 = %v", i, refs[i], refs[0])
			}
		}
		// One actor: 100 adds through the 100 refs land on one counter.
		var futs []*Future[int]
		for _, r := range refs {
			futs = append(futs, Call[int](ctx, r, "Add", 1))
		}
		if err := WaitAll(ctx, futs...); err != nil {
			t.Fatal(err)
		}
		if got := must[int](t)(Call[int](ctx, refs[0], "Get").Await(ctx)); got != 100 {
			t.Fatalf("Get = %d, want 100", got)
		}
		if _, err := c.nodes[0].Spawn(ctx, "Other", WithName("only-one")); err == nil {
			t.Fatalf("spawn of the name as another type = %v", err)
		}
	})
}

func TestSpawnLocal(t *testing.T) {
	c := newTestCluster(t, false, 2, nil)
	ctx := ctxT(t)
	n2 := c.nodes[1]
	r := must[Ref](t)(n2.SpawnLocal(ctx, "Counter"))
	must[int](t)(Call[int](ctx, r, "Add", 2).Await(ctx))
	// From n1, through the ref's hint: the registry does not know it.
	r1 := c.nodes[0].Ref(r)
	if got := must[int](t)(Call[int](ctx, r1, "Add", 3).Await(ctx)); got != 5 {
		t.Fatalf("Add from n1 = %d, want 5", got)
	}
	if err := n2.StopActor(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := Call[int](ctx, r1, "Get").Await(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("call after stop = %v, want ErrNotFound", err)
	}
	if _, err := n2.SpawnLocal(ctx, "Nope"); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("SpawnLocal of an unregistered type = %v", err)
	}
}

func TestStopActorAndLookup(t *testing.T) {
	c := newTestCluster(t, false, 2, nil)
	ctx := ctxT(t)
	n1, n2 := c.nodes[0], c.nodes[1]
	r := must[Ref](t)(n1.Spawn(ctx, "Counter", WithName("c"), OnNode("n2")))
	l := must[Ref](t)(n2.Lookup(ctx, "c"))
	if l.ID != "c" || l.Node != "n2" {
		t.Fatalf("Lookup = %v", l)
	}
	events := must[<-chan ActorEvent](t)(n1.Watch(ctx, r))
	if err := n1.StopActor(ctx, r); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events); ev.Kind != Stopped {
		t.Fatalf("event %v, want stopped", ev)
	}
	if _, ok := <-events; ok {
		t.Fatal("watch channel not closed after Stopped")
	}
	if _, err := Call[int](ctx, r, "Get").Await(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("call to a stopped actor = %v, want ErrNotFound", err)
	}
	if _, err := n1.Lookup(ctx, "c"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup of a stopped actor = %v", err)
	}
	if _, err := n1.Lookup(ctx, "never"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup of a missing actor = %v", err)
	}
	// Watching a stopped actor reports Stopped at once.
	late := must[<-chan ActorEvent](t)(n2.Watch(ctx, r))
	if ev := nextEvent(t, late); ev.Kind != Stopped {
		t.Fatalf("late watch = %v", ev)
	}
}

func TestUnboundRef(t *testing.T) {
	ctx := ctxT(t)
	raw, err := msgpack.Marshal(Ref{})
	if err != nil {
		t.Fatal(err)
	}
	var r Ref
	if err := msgpack.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	r.ID, r.Node = "ghost", "nowhere"
	_, err = Call[int](ctx, r, "Get").Await(ctx)
	var nn *NoNodeError
	if !errors.Is(err, ErrNoNode) || !errors.As(err, &nn) || nn.Method != "Get" {
		t.Fatalf("call through an unbound ref = %v, want *NoNodeError", err)
	}
	if err := Tell(ctx, r, "Get"); !errors.Is(err, ErrNoNode) {
		t.Fatalf("tell through an unbound ref = %v", err)
	}
	// A ctx that carries a node binds it.
	c := newTestCluster(t, false, 1, nil)
	spawned := must[Ref](t)(c.nodes[0].Spawn(ctx, "Counter"))
	raw, err = msgpack.Marshal(spawned)
	if err != nil {
		t.Fatal(err)
	}
	var decoded Ref
	if err := msgpack.Unmarshal(raw, &decoded); err != nil {
		t.Fatal(err)
	}
	if decoded.Bound() || decoded.Ref != spawned.Ref {
		t.Fatalf("decoded = %+v, want unbound %+v", decoded, spawned)
	}
	if _, err := Call[int](NewContext(ctx, c.nodes[0]), decoded, "Add", 1).Await(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestIdempotentRetry(t *testing.T) {
	// Calls pending on a node that then fails: at-most-once by default
	// (ErrUnavailable, since they may have run); retried once at the new
	// host when idempotent.
	c := newTestCluster(t, false, 3, nil)
	ctx := ctxT(t)
	n1 := c.nodes[0]
	a := must[Ref](t)(n1.Spawn(ctx, "Counter", OnNode("n3")))
	b := must[Ref](t)(n1.Spawn(ctx, "Counter", OnNode("n3")))
	plain := Call[string](ctx, a, "Stall")
	retried := Call[string](ctx, b.With(Idempotent()), "Stall")
	for range 2 { // both requests reached n3 and run there
		select {
		case <-stallStarted:
		case <-ctx.Done():
			t.Fatal("calls did not start on n3")
		}
	}
	c.net.Isolate("n3")
	if _, err := plain.Await(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("plain call on a failed host = %v, want ErrUnavailable", err)
	}
	if where, err := retried.Await(ctx); err != nil || where == "n3" {
		t.Fatalf("idempotent call on a failed host = %q, %v; want a retry elsewhere", where, err)
	}
}

func TestRestartBackoff(t *testing.T) {
	const backoff = 300 * time.Millisecond
	// The local supervisor gives up at once, so a panic goes straight to
	// the registry, which restarts the actor; its host then refuses calls
	// for the backoff.
	c := newTestCluster(t, false, 2, func(cfg *Config) {
		cfg.Restart = actor.Supervisor{Decider: func(error) actor.Directive { return actor.Stop }}
	})
	ctx := ctxT(t)
	n1 := c.nodes[0]
	r := must[Ref](t)(n1.Spawn(ctx, "Counter", OnNode("n2"), WithRestart(RestartPolicy{MaxRestarts: 1, Backoff: backoff})))
	events := must[<-chan ActorEvent](t)(n1.Watch(ctx, r))
	if _, err := Call[int](ctx, r, "Panic").Await(ctx); !errors.Is(err, ErrPanicked) {
		t.Fatalf("Panic = %v", err)
	}
	ev := nextEvent(t, events)
	if ev.Kind != Restarted {
		t.Fatalf("event %v, want restarted", ev.Kind)
	}
	restarted := time.Now()
	// A call during the backoff certainly does not run then: the host
	// refuses it and the runtime retries it until the backoff has passed.
	v, err := Call[int](ctx, r, "Get").Await(ctx)
	if err != nil || v != 0 {
		t.Fatalf("call during backoff = %d, %v; want the fresh instance's 0", v, err)
	}
	if waited := time.Since(restarted); waited < backoff/2 {
		t.Fatalf("served %v after the restart, before the %v backoff", waited, backoff)
	}
	// The policy allowed one restart: the next crash past the budget stops it.
	if _, err := Call[int](ctx, r, "Panic").Await(ctx); !errors.Is(err, ErrPanicked) {
		t.Fatalf("Panic = %v", err)
	}
	if ev := nextEvent(t, events); ev.Kind != Stopped {
		t.Fatalf("event %v, want stopped", ev.Kind)
	}
}

func TestTLSFiles(t *testing.T) {
	dir := t.TempDir()
	ca, err := transport.NewCA("test cluster", 0)
	if err != nil {
		t.Fatal(err)
	}
	caCert, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if err := ca.WriteFiles(caCert, caKey); err != nil {
		t.Fatal(err)
	}
	files := func(id string) TLS {
		cert, key := filepath.Join(dir, id+".pem"), filepath.Join(dir, id+"-key.pem")
		if err := ca.IssueFiles(id, 0, cert, key); err != nil {
			t.Fatal(err)
		}
		return TLS{CAFile: caCert, CertFile: cert, KeyFile: key}
	}
	ctx := ctxT(t)
	a, err := Start(ctx, Config{TLS: files("alpha")})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.ID() != "alpha" {
		t.Fatalf("node id %q, want the certificate's", a.ID())
	}
	b, err := Start(ctx, Config{TLS: files("beta"), Join: []string{a.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := a.Members(); len(got) != 2 {
		t.Fatalf("members %v", got)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"name differs from certificate", Config{Name: "gamma", TLS: files("delta")}},
		{"files incomplete", Config{TLS: TLS{CAFile: caCert}}},
		{"missing file", Config{TLS: TLS{CAFile: caCert, CertFile: filepath.Join(dir, "nope.pem"), KeyFile: caKey}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n, err := Start(ctx, tc.cfg); err == nil {
				n.Close()
				t.Fatal("Start succeeded")
			}
		})
	}
	// A node of the development CA cannot join a cluster of another CA.
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if n, err := Start(short, Config{Join: []string{a.Addr()}}); err == nil {
		n.Close()
		t.Fatal("a dev-CA node joined a cluster of another CA")
	}
}
