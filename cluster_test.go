package troupe

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actor"
	"github.com/troupe-dev/troupe/transport"
)

// Counter is the actor type of the tests.
type Counter struct {
	node string // the node whose producer made it
	n    int
}

func (c *Counter) Add(_ context.Context, d int) (int, error) { c.n += d; return c.n, nil }
func (c *Counter) Get() int                                  { return c.n }
func (c *Counter) Where() string                             { return c.node }
func (c *Counter) Panic()                                    { panic("boom") }
func (c *Counter) Fail(msg string) error                     { return errors.New(msg) }

// Block waits for ctx: the deadline and cancellation tests use it.
func (c *Counter) Block(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// stallStarted hears of every Stall that blocks.
var stallStarted = make(chan struct{}, 16)

// Stall blocks until ctx ends on n3 and returns the node elsewhere.
func (c *Counter) Stall(ctx context.Context) (string, error) {
	if c.node == "n3" {
		stallStarted <- struct{}{}
		<-ctx.Done()
		return "", ctx.Err()
	}
	return c.node, nil
}

// AddVia adds d to the counter other names, through the ctx's node.
func (c *Counter) AddVia(ctx context.Context, other Ref, d int) (int, error) {
	return Call[int](ctx, other, "Add", d).Await(ctx)
}

// Self returns a Ref argument unchanged: refs travel as results.
func (c *Counter) Echo(r Ref) Ref { return r }

// Keep takes any value: the hostile-argument tests aim at it.
func (c *Counter) Keep(v any) int { return c.n }

// Pad returns n bytes: a large reply.
func (c *Counter) Pad(n int) []byte { return make([]byte, n) }

// napsDone counts the Naps that ran to the end.
var napsDone atomic.Int64

// Nap takes d unless its ctx ends first.
func (c *Counter) Nap(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		napsDone.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type testCluster struct {
	t     *testing.T
	net   *transport.MemNetwork // nil over QUIC
	nodes []*Node
	trs   []transport.Transport
}

// fastTimeouts keep failover tests short on a loaded machine while keeping
// the lease below the failure timeout.
var fastTimeouts = Config{HeartbeatTimeout: 200 * time.Millisecond, FailTimeout: 800 * time.Millisecond}

// newTestCluster starts n nodes n1..nN over QUIC on loopback (quic) or on
// one transport.MemNetwork, each with Counter registered. tweak may edit
// each node's Config.
func newTestCluster(t *testing.T, quic bool, n int, tweak func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	if !quic {
		c.net = transport.NewMemNetwork()
	}
	t.Cleanup(c.close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		cfg := fastTimeouts
		cfg.Name = id
		if c.net != nil {
			tr, err := c.net.Join(id)
			if err != nil {
				t.Fatal(err)
			}
			c.trs = append(c.trs, tr)
			cfg.Transport = tr
		}
		if i > 0 {
			cfg.Join = []string{c.nodes[0].Addr()}
		}
		if tweak != nil {
			tweak(&cfg)
		}
		nd, err := Start(ctx, cfg)
		if err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
		c.nodes = append(c.nodes, nd)
		if err := Register(nd, "Counter", func() *Counter { return &Counter{node: id} }); err != nil {
			t.Fatalf("register on %s: %v", id, err)
		}
	}
	c.settle(ctx)
	return c
}

// settle waits until every node's replica has applied what the most
// advanced one has: a test that cuts the leader off right after start must
// not begin in the window of the last join (docs/placement.md, "Losing the
// leader during a join").
func (c *testCluster) settle(ctx context.Context) {
	c.t.Helper()
	var target uint64
	for _, n := range c.nodes {
		if n.reg != nil {
			target = max(target, n.reg.AppliedIndex())
		}
	}
	for _, n := range c.nodes {
		if n.reg == nil {
			continue
		}
		if err := n.reg.WaitApplied(ctx, target); err != nil {
			c.t.Fatalf("%s never applied the cluster's formation (index %d): %v", n.ID(), target, err)
		}
	}
}

func (c *testCluster) close() {
	for _, n := range c.nodes {
		n.Close()
	}
	for _, tr := range c.trs {
		tr.Close()
	}
}

// transports runs f over the in-memory transport and over QUIC.
func transports(t *testing.T, f func(t *testing.T, quic bool)) {
	for _, tc := range []struct {
		name string
		quic bool
	}{{"mem", false}, {"quic", true}} {
		t.Run(tc.name, func(t *testing.T) { f(t, tc.quic) })
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// nextEvent waits for the next event on ch.
func nextEvent(t *testing.T, ch <-chan ActorEvent) ActorEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(20 * time.Second):
		t.Fatal("no event within 20s")
	}
	return ActorEvent{}
}

var _ = actor.Supervisor{}
