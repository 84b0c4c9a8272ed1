package troupe

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// decode returns r as a callee sees it: encoded, decoded, unbound.
func decode(t *testing.T, r Ref) Ref {
	t.Helper()
	raw, err := msgpack.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var d Ref
	if err := msgpack.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	if d.Bound() {
		t.Fatal("a decoded Ref is bound")
	}
	return d
}

// TestTwoClustersOneProcess: a method's ctx carries its hosting node, so a
// Ref it receives is called in its own cluster, even when another cluster
// of the process (started first) has an actor of the same name.
func TestTwoClustersOneProcess(t *testing.T) {
	ctx := ctxT(t)
	b := newTestCluster(t, false, 2, nil)
	a := newTestCluster(t, false, 2, nil)
	targetB := must[Ref](t)(b.nodes[0].Spawn(ctx, "Counter", WithName("target"), OnNode("n2")))
	targetA := must[Ref](t)(a.nodes[0].Spawn(ctx, "Counter", WithName("target"), OnNode("n2")))
	callerA := must[Ref](t)(a.nodes[0].Spawn(ctx, "Counter", WithName("caller"), OnNode("n1")))
	// The Ref travels as an argument: the callee decodes it unbound.
	if got, err := Call[int](ctx, callerA, "AddVia", decode(t, targetA), 7).Await(ctx); err != nil || got != 7 {
		t.Fatalf("AddVia = %d, %v", got, err)
	}
	if got := must[int](t)(Call[int](ctx, targetA, "Get").Await(ctx)); got != 7 {
		t.Fatalf("cluster A's target = %d, want 7", got)
	}
	if got := must[int](t)(Call[int](ctx, targetB, "Get").Await(ctx)); got != 0 {
		t.Fatalf("cluster B's target = %d, want 0 (reached from cluster A)", got)
	}
}

// TestUnboundRefNoFallback: outside a method, an unbound Ref does not
// borrow a node of the process, even one that knows the actor.
func TestUnboundRefNoFallback(t *testing.T) {
	ctx := ctxT(t)
	c := newTestCluster(t, false, 1, nil)
	r := decode(t, must[Ref](t)(c.nodes[0].Spawn(ctx, "Counter")))
	var nn *NoNodeError
	if _, err := Call[int](ctx, r, "Get").Await(ctx); !errors.As(err, &nn) || !errors.Is(err, ErrNoNode) {
		t.Fatalf("call through an unbound ref = %v, want *NoNodeError", err)
	}
	if err := Tell(ctx, r, "Add", 1); !errors.Is(err, ErrNoNode) {
		t.Fatalf("tell through an unbound ref = %v, want ErrNoNode", err)
	}
	if _, err := Call[int](ctx, c.nodes[0].Ref(r), "Get").Await(ctx); err != nil {
		t.Fatalf("call through the bound ref = %v", err)
	}
}

// recv waits for a value from ch, or fails the test when ctx ends first.
func recv[T any](ctx context.Context, t *testing.T, ch <-chan T) {
	t.Helper()
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatal("no event before ctx ended")
	}
}

// Gate holds its callers until the test opens it.
type Gate struct {
	node    string
	started chan<- struct{}
	open    <-chan struct{}
}

// Hold reports its start, waits for the gate to open (or ctx) and returns
// its node.
func (g *Gate) Hold(ctx context.Context) (string, error) {
	g.started <- struct{}{}
	select {
	case <-g.open:
		return g.node, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Where returns the gate's node.
func (g *Gate) Where() string { return g.node }

// signalHandler is a slog.Handler that closes ch at the first record with
// message msg.
type signalHandler struct {
	msg  string
	once *sync.Once
	ch   chan struct{}
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.ch) })
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }

// TestStopDrains: a call running on a node when it Stops completes and is
// answered; a call arriving while it drains is refused there and moves with
// the actor to its next host; Stop then leaves and closes.
func TestStopDrains(t *testing.T) {
	transports(t, func(t *testing.T, quic bool) {
		draining := signalHandler{msg: "remote: draining", once: new(sync.Once), ch: make(chan struct{})}
		c := newTestCluster(t, quic, 3, func(cfg *Config) {
			if cfg.Name == "n3" {
				cfg.Logger = slog.New(draining)
			}
		})
		ctx := ctxT(t)
		started := make(chan struct{}, 4)
		open := make(chan struct{})
		for _, n := range c.nodes {
			id := n.ID()
			if err := Register(n, "Gate", func() *Gate { return &Gate{node: id, started: started, open: open} }); err != nil {
				t.Fatal(err)
			}
		}
		n1, n3 := c.nodes[0], c.nodes[2]
		r := must[Ref](t)(n1.Spawn(ctx, "Gate", WithName("gate"), OnNode("n3")))
		slow := Call[string](ctx, r, "Hold")
		recv(ctx, t, started)
		stopped := make(chan error, 1)
		go func() { stopped <- n3.Stop(ctx) }()
		recv(ctx, t, draining.ch)
		// n3 refuses this call now (ErrNotOwner), or it arrives after n3
		// closed; either way it never ran, and it is retried at the actor's
		// next host. Idempotent covers the second case: the caller cannot
		// tell a lost request from a lost reply.
		moved := Call[string](ctx, r.With(Idempotent()), "Where")
		close(open)
		if got, err := slow.Await(ctx); err != nil || got != "n3" {
			t.Fatalf("call in flight during Stop = %q, %v; want n3, nil", got, err)
		}
		if err := <-stopped; err != nil {
			t.Fatalf("Stop = %v", err)
		}
		if got, err := moved.Await(ctx); err != nil || got == "n3" {
			t.Fatalf("call during the drain = %q, %v; want an answer from another node", got, err)
		}
		if slices.Contains(n1.Members(), "n3") {
			t.Fatalf("n3 still a member after Stop: %v", n1.Members())
		}
	})
}

// TestLeader: every started node knows the leader, a member of the cluster.
func TestLeader(t *testing.T) {
	c := newTestCluster(t, false, 3, nil)
	leaders := 0
	for _, n := range c.nodes {
		l := n.Leader()
		if !slices.Contains(n.Members(), l) {
			t.Fatalf("%s: Leader() = %q, not among %v", n.ID(), l, n.Members())
		}
		if l == n.ID() {
			leaders++
		}
	}
	if leaders > 1 {
		t.Fatalf("%d nodes think they lead", leaders)
	}
}

// Eager reports each instance its producer makes.
type Eager struct{ node string }

// Where returns the instance's node.
func (e *Eager) Where() string { return e.node }

// TestActivationOnReplacement: when its node fails, the new host activates
// the actor by itself once the restart backoff passed, before any call.
func TestActivationOnReplacement(t *testing.T) {
	const backoff = 300 * time.Millisecond
	type made struct {
		node string
		at   time.Time
	}
	created := make(chan made, 8)
	c := newTestCluster(t, false, 3, nil)
	ctx := ctxT(t)
	for _, n := range c.nodes {
		id := n.ID()
		if err := Register(n, "Eager", func() *Eager {
			created <- made{id, time.Now()}
			return &Eager{node: id}
		}); err != nil {
			t.Fatal(err)
		}
	}
	n1 := c.nodes[0]
	r := must[Ref](t)(n1.Spawn(ctx, "Eager", OnNode("n3"), WithRestart(RestartPolicy{MaxRestarts: -1, Backoff: backoff})))
	if got := must[string](t)(Call[string](ctx, r, "Where").Await(ctx)); got != "n3" {
		t.Fatalf("Where = %q", got)
	}
	if m := <-created; m.node != "n3" {
		t.Fatalf("first instance on %s", m.node)
	}
	events := must[<-chan ActorEvent](t)(n1.Watch(ctx, r))
	c.nodes[2].Close()
	ev := nextEvent(t, events)
	if ev.Kind != Restarted || ev.Ref.Node == "n3" {
		t.Fatalf("event %v on %s, want restarted elsewhere", ev.Kind, ev.Ref.Node)
	}
	replaced := time.Now()
	var m made
	select {
	case m = <-created: // no call was made
	case <-ctx.Done():
		t.Fatal("the new host did not activate the actor")
	}
	if m.node != ev.Ref.Node {
		t.Fatalf("activated on %s, placed on %s", m.node, ev.Ref.Node)
	}
	if early := m.at.Sub(replaced); early < backoff/2 {
		t.Fatalf("activated %v after the re-placement, before the %v backoff", early, backoff)
	}
	if got := must[string](t)(Call[string](ctx, r, "Where").Await(ctx)); got != m.node {
		t.Fatalf("Where = %q, want %s", got, m.node)
	}
	select {
	case m := <-created:
		t.Fatalf("a second instance was made on %s", m.node)
	default:
	}
}

// TestStopReplyAfterLeave: the reply of a call drained by a stopping node
// can reach the caller after the registry's news that the node left (they
// travel on different links); the caller still takes it.
func TestStopReplyAfterLeave(t *testing.T) {
	draining := signalHandler{msg: "remote: draining", once: new(sync.Once), ch: make(chan struct{})}
	c := newTestCluster(t, false, 3, func(cfg *Config) {
		if cfg.Name == "n3" {
			cfg.Logger = slog.New(draining)
		}
	})
	ctx := ctxT(t)
	leader := c.nodes[0].Leader()
	if leader == "n3" {
		t.Skip("n3 leads: its leave moves the leadership first")
	}
	caller := c.nodes[0]
	if leader == "n1" {
		caller = c.nodes[1]
	}
	started := make(chan struct{}, 4)
	open := make(chan struct{})
	for _, n := range c.nodes {
		id := n.ID()
		if err := Register(n, "Gate", func() *Gate { return &Gate{node: id, started: started, open: open} }); err != nil {
			t.Fatal(err)
		}
	}
	r := must[Ref](t)(caller.Spawn(ctx, "Gate", OnNode("n3")))
	events := must[<-chan ActorEvent](t)(caller.Watch(ctx, r))
	slow := Call[string](ctx, r, "Hold")
	recv(ctx, t, started)
	// Frames between the caller and n3 now take 300ms; the registry's
	// traffic (leader <-> n3, leader <-> caller) does not.
	c.net.Delay(caller.ID(), "n3", 300*time.Millisecond)
	stopped := make(chan error, 1)
	go func() { stopped <- c.nodes[2].Stop(ctx) }()
	recv(ctx, t, draining.ch)
	close(open)
	if ev := nextEvent(t, events); ev.Kind != Moved {
		t.Fatalf("event %v, want moved", ev.Kind)
	}
	if slices.Contains(caller.Members(), "n3") {
		t.Fatalf("the caller still lists n3 after the move: %v", caller.Members())
	}
	if got, err := slow.Await(ctx); err != nil || got != "n3" {
		t.Fatalf("call drained by n3 = %q, %v; want n3, nil", got, err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop = %v", err)
	}
}

// TestStopLastMemberDrains: the last member has nobody to leave to, but it
// still lets the call it holds finish before it closes.
func TestStopLastMemberDrains(t *testing.T) {
	draining := signalHandler{msg: "remote: draining", once: new(sync.Once), ch: make(chan struct{})}
	c := newTestCluster(t, false, 1, func(cfg *Config) { cfg.Logger = slog.New(draining) })
	ctx := ctxT(t)
	n1 := c.nodes[0]
	started := make(chan struct{}, 1)
	open := make(chan struct{})
	if err := Register(n1, "Gate", func() *Gate { return &Gate{node: "n1", started: started, open: open} }); err != nil {
		t.Fatal(err)
	}
	r := must[Ref](t)(n1.Spawn(ctx, "Gate"))
	slow := Call[string](ctx, r, "Hold")
	recv(ctx, t, started)
	stopped := make(chan error, 1)
	go func() { stopped <- n1.Stop(ctx) }()
	recv(ctx, t, draining.ch)
	close(open)
	if got, err := slow.Await(ctx); err != nil || got != "n1" {
		t.Fatalf("call in flight during Stop = %q, %v", got, err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop = %v", err)
	}
	if _, err := n1.Spawn(ctx, "Gate"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Spawn after Stop = %v, want ErrClosed", err)
	}
}
