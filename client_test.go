package troupe

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/transport"
)

// startClient starts a client of c over QUIC (the development CA issues it
// a client certificate).
func startClient(t *testing.T, c *testCluster, name string) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := Start(ctx, Config{Name: name, Client: true, Join: []string{c.nodes[1].Addr(), c.nodes[0].Addr()}})
	if err != nil {
		t.Fatalf("start client: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestClientProcess: a client calls, spawns, looks up and stops actors
// over real QUIC with a client certificate, without being a member: it is
// in nobody's member list, never votes, hosts nothing, and what needs a
// replica answers ErrClient. A call to an actor whose host fails reaches
// it on its new host.
func TestClientProcess(t *testing.T) {
	c := newTestCluster(t, true, 3, nil)
	ctx := ctxT(t)
	cl := startClient(t, c, "client1")
	if !cl.IsClient() {
		t.Fatal("IsClient = false")
	}

	ref, err := cl.Spawn(ctx, "Counter", OnNode("n3"), WithRestart(RestartPolicy{MaxRestarts: -1}))
	if err != nil {
		t.Fatalf("client spawn: %v", err)
	}
	for i := 1; i <= 3; i++ {
		if got, err := Call[int](ctx, ref, "Add", 1).Await(ctx); err != nil || got != i {
			t.Fatalf("call %d from the client = %d, %v", i, got, err)
		}
	}
	if err := Tell(ctx, ref, "Add", 10); err != nil {
		t.Fatal(err)
	}
	if got, err := Call[int](ctx, ref, "Get").Await(ctx); err != nil || got != 13 {
		t.Fatalf("Get after a tell = %d, %v", got, err)
	}
	// A member finds what the client spawned, and the client finds what a
	// member spawned.
	named := must[Ref](t)(c.nodes[0].Spawn(ctx, "Counter", WithName("shared"), OnNode("n2")))
	if _, err := Call[int](ctx, named, "Add", 5).Await(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := cl.Lookup(ctx, "shared")
	if err != nil {
		t.Fatalf("client lookup: %v", err)
	}
	if v, err := Call[int](ctx, got, "Get").Await(ctx); err != nil || v != 5 {
		t.Fatalf("client call to a member's actor = %d, %v", v, err)
	}
	if where, err := Call[string](ctx, cl.Virtual("Counter", "k1"), "Where").Await(ctx); err != nil || where == "" {
		t.Fatalf("client call to a virtual actor = %q, %v", where, err)
	}

	for _, n := range c.nodes {
		if slices.Contains(n.Members(), "client1") {
			t.Fatalf("%s lists the client as a member", n.ID())
		}
		if st, err := n.Status(ctx); err != nil || slices.ContainsFunc(st.Members, func(m MemberInfo) bool { return m.ID == "client1" }) {
			t.Fatalf("%s status lists the client (%v)", n.ID(), err)
		}
	}
	if _, err := cl.Status(ctx); !errors.Is(err, ErrClient) {
		t.Fatalf("client Status: %v, want ErrClient", err)
	}
	if err := Register(cl, "Counter", func() *Counter { return &Counter{} }); !errors.Is(err, ErrClient) {
		t.Fatalf("client Register: %v, want ErrClient", err)
	}
	if _, err := cl.Spawn(ctx, "Counter", Local()); err == nil {
		t.Fatal("a client placed an actor on itself")
	}

	// n3 dies: the client's next call reaches the actor where it restarted.
	c.nodes[2].Close()
	if where, err := Call[string](ctx, ref.With(Idempotent()), "Where").Await(ctx); err != nil || where == "n3" {
		t.Fatalf("call after the host failed = %q, %v", where, err)
	}
	if err := cl.StopActor(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := Call[int](ctx, ref, "Get").Await(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("call to a stopped actor: %v, want ErrNotFound", err)
	}
}

// TestClientPoolMap: a client makes a pool over the members that host the
// type and maps over it.
func TestClientPoolMap(t *testing.T) {
	c := newTestCluster(t, true, 3, nil)
	ctx := ctxT(t)
	cl := startClient(t, c, "client2")
	p, err := cl.NewPool(ctx, "Counter")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if len(p.Workers()) != 3 {
		t.Fatalf("pool of %d workers, want one per member", len(p.Workers()))
	}
	in := make([]int, 100)
	for i := range in {
		in[i] = i
	}
	out, err := Map[int](ctx, p, "Add", in)
	if err != nil || len(out) != len(in) {
		t.Fatalf("map: %d results, %v", len(out), err)
	}
	sum := 0
	for _, w := range p.Workers() {
		v, err := Call[int](ctx, w, "Get").Await(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	if sum != 99*100/2 {
		t.Fatalf("the workers added up to %d, want %d", sum, 99*100/2)
	}
}

// TestClientCertificateCannotJoin: a holder of a client certificate who
// starts as a member is refused at its join, and the refusal is counted.
func TestClientCertificateCannotJoin(t *testing.T) {
	c := newTestCluster(t, true, 1, nil)
	ca, err := devCA()
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.IssueWith("intruder", transport.IssueOptions{Client: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := Start(ctx, Config{TLS: TLS{Identity: id}, Join: []string{c.nodes[0].Addr()}})
	if err == nil {
		n.Close()
		t.Fatal("a client certificate joined as a member")
	}
	if !errors.Is(err, placement.ErrUnauthorized) {
		t.Fatalf("join with a client certificate: %v, want ErrUnauthorized", err)
	}
	if got := c.nodes[0].reg.Refusals()[placement.RefusalClient]; got == 0 {
		t.Fatalf("refusals by reason: %v", c.nodes[0].reg.Refusals())
	}
	if slices.Contains(c.nodes[0].Members(), "intruder") {
		t.Fatal("the intruder is a member")
	}
}

// TestClientSeesHostFailure: a host that goes silent without closing its
// connections (a process killed, a cable pulled) is failed by the
// registry; a client learns it from its member watch, not from a
// connection timeout: a call pending on the host is retried where the
// actor restarted, and a call started afterwards goes there at once,
// instead of waiting out their deadlines in the silence.
func TestClientSeesHostFailure(t *testing.T) {
	c := newTestCluster(t, false, 3, nil)
	ctx := ctxT(t)
	tr, err := c.net.JoinConfig("cl", transport.MemConfig{Client: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	cl, err := Start(ctx, Config{Name: "cl", Client: true, Transport: tr, Join: []string{c.nodes[0].Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	ref := must[Ref](t)(cl.Spawn(ctx, "Counter", OnNode("n3"), WithRestart(RestartPolicy{MaxRestarts: -1})))
	if where, err := Call[string](ctx, ref, "Where").Await(ctx); err != nil || where != "n3" {
		t.Fatalf("first call = %q, %v", where, err)
	}

	for _, peer := range []string{"n1", "n2", "cl"} {
		c.net.Drop("n3", peer, 1) // n3 is silent; its connections stay up
	}
	pctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	pending := Call[string](pctx, ref.With(Idempotent()), "Where") // lost in n3's silence
	for !cl.cl.HostDown("n3") {
		tm := time.NewTimer(10 * time.Millisecond)
		select {
		case <-tm.C:
		case <-ctx.Done():
		}
		tm.Stop()
		if ctx.Err() != nil {
			break
		}
	}
	if !cl.cl.HostDown("n3") {
		t.Fatal("the client never learned that n3 failed")
	}
	if where, err := pending.Await(pctx); err != nil || where == "n3" {
		t.Fatalf("call pending on n3 when it failed = %q, %v; want answered on its new host", where, err)
	}
	nctx, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if where, err := Call[string](nctx, ref, "Where").Await(nctx); err != nil || where == "n3" {
		t.Fatalf("call after n3 failed = %q, %v; want its new host", where, err)
	}
}
