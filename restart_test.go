package troupe

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// durableCluster starts n nodes over QUIC, each with a DataDir of its own,
// and returns the configs they were started with (to start them again).
// tweak, if set, edits each Config too.
func durableCluster(t *testing.T, n int, tweak ...func(*Config)) (*testCluster, []Config) {
	t.Helper()
	cfgs := make([]Config, 0, n)
	c := newTestCluster(t, true, n, func(cfg *Config) {
		cfg.DataDir = t.TempDir()
		for _, f := range tweak {
			f(cfg)
		}
		cfgs = append(cfgs, *cfg)
	})
	return c, cfgs
}

// TestRestartOnNewPort: a node killed and restarted from its DataDir on a
// new port, without Join, finds its peers from its own Raft configuration
// and serves again; the others see its new address. Its actor answers
// whether it was re-placed on a survivor while the node was failed, or
// stayed placed on the node, which came back before it was failed (the
// leader lets the new process take the place of the old one once that is
// silent past its lease): then the callers' retries find it at its new
// address.
func TestRestartOnNewPort(t *testing.T) {
	tests := []struct {
		name   string
		victim int // index of the node restarted; n1 leads
		tweak  func(*Config)
		failed bool // wait until the others fail it before restarting it
	}{
		{"the leader, after it was failed", 0, nil, true},
		// A FailTimeout far beyond the test keeps n3 placed and alive.
		{"a follower, before it was failed", 2, func(cfg *Config) {
			cfg.FailTimeout, cfg.LeaseTimeout = time.Hour, 300*time.Millisecond
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tweaks []func(*Config)
			if tt.tweak != nil {
				tweaks = append(tweaks, tt.tweak)
			}
			c, cfgs := durableCluster(t, 3, tweaks...)
			ctx := ctxT(t)
			v := tt.victim
			id := c.nodes[v].ID()
			other := c.nodes[(v+1)%3]
			ref := must[Ref](t)(other.Spawn(ctx, "Counter", OnNode(id)))
			if _, err := Call[int](ctx, ref, "Add", 1).Await(ctx); err != nil {
				t.Fatalf("call before the restart: %v", err)
			}
			old := c.nodes[v].Addr()
			c.nodes[v].Close()
			if tt.failed {
				waitMemberState(t, ctx, other, id, "failed")
			}

			cfg := cfgs[v]
			cfg.Addr, cfg.Join = "127.0.0.1:0", nil
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			nd, err := Start(sctx, cfg)
			if err != nil {
				t.Fatalf("restart on a new port: %v", err)
			}
			c.nodes[v] = nd
			if nd.Addr() == old {
				t.Fatalf("restarted on the old address %s", old)
			}
			if err := Register(nd, "Counter", func() *Counter { return &Counter{node: id} }); err != nil {
				t.Fatal(err)
			}
			if err := nd.Ready(ctx); err != nil {
				t.Fatalf("Ready after a restart on a new port: %v (%v)", err, nd.readyNow())
			}
			for i, n := range c.nodes {
				if i != v {
					waitMemberAddr(t, ctx, n, id, nd.Addr())
				}
			}
			where, err := Call[string](ctx, ref, "Where").Await(ctx)
			if err != nil {
				t.Fatalf("call after the restart: %v", err)
			}
			if !tt.failed && where != id {
				t.Fatalf("the actor of a node never failed moved to %s", where)
			}
			ref2 := must[Ref](t)(c.nodes[(v+2)%3].Spawn(ctx, "Counter", OnNode(id)))
			if where, err := Call[string](ctx, ref2, "Where").Await(ctx); err != nil || where != id {
				t.Fatalf("actor spawned on the restarted node: %q, %v", where, err)
			}
		})
	}
}

// waitMemberState waits until n's status lists member id in state.
func waitMemberState(t *testing.T, ctx context.Context, n *Node, id, state string) {
	t.Helper()
	waitMember(t, ctx, n, id+" "+state, func(m MemberInfo) bool { return m.ID == id && m.State == state })
}

// waitMemberAddr waits until n's status lists member id alive at addr.
func waitMemberAddr(t *testing.T, ctx context.Context, n *Node, id, addr string) {
	t.Helper()
	waitMember(t, ctx, n, id+" alive at "+addr, func(m MemberInfo) bool { return m.ID == id && m.Addr == addr && m.State == "alive" })
}

// waitMember waits, on registry events, until n's status lists a member
// for which ok holds.
func waitMember(t *testing.T, ctx context.Context, n *Node, what string, ok func(MemberInfo) bool) {
	t.Helper()
	sub := n.reg.Subscribe()
	defer sub.Close()
	for {
		st, err := n.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range st.Members {
			if ok(m) {
				return
			}
		}
		if _, err := sub.Next(ctx); err != nil {
			t.Fatalf("%s never saw %s: %+v", n.ID(), what, st.Members)
		}
	}
}

// TestColdRestartOneAtATime: a whole cluster stopped at once (SIGTERM to
// every node) starts again from its DataDirs one node at a time, each
// Start returning before the next node is started, as a start script or
// an init system does; once all run, every node becomes ready and the
// actors spawned before the stop are still known.
func TestColdRestartOneAtATime(t *testing.T) {
	c, cfgs := durableCluster(t, 3)
	ctx := ctxT(t)
	var refs []Ref
	for i := range 3 {
		refs = append(refs, must[Ref](t)(c.nodes[i].Spawn(ctx, "Counter", WithName(fmt.Sprint("cold", i)))))
	}
	addrs := make([]string, 3)
	errs := make(chan error, 3)
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
		go func() { errs <- n.Stop(ctx) }()
	}
	for range c.nodes {
		if err := <-errs; err != nil {
			t.Fatalf("Stop: %v", err)
		}
	}
	for i := range cfgs {
		cfg := cfgs[i]
		cfg.Addr = addrs[i]
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n, err := Start(sctx, cfg)
		cancel()
		if err != nil {
			t.Fatalf("cold start of %s (%d of 3 up): %v", cfg.Name, i, err)
		}
		c.nodes[i] = n
		if err := Register(n, "Counter", func() *Counter { return &Counter{node: cfg.Name} }); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// Alone: it runs, and says why it cannot serve yet.
			if err := n.readyNow(); !errors.Is(err, errNotReady) {
				t.Fatalf("first node of a cold start: readyNow = %v, want errNotReady", err)
			}
		}
	}
	for _, n := range c.nodes {
		if err := n.Ready(ctx); err != nil {
			t.Fatalf("%s Ready after the cold start: %v", n.ID(), err)
		}
	}
	for i := range refs {
		// Each node's actors, through another node (refs bound to the
		// stopped nodes went with them).
		r := c.nodes[(i+1)%3].Ref(refs[i])
		if n, err := Call[int](ctx, r, "Add", 1).Await(ctx); err != nil || n != 1 {
			t.Fatalf("call to %v after the cold start: %d, %v", r, n, err)
		}
	}
	// Where they live now: all placed, none waiting for a host.
	page, err := c.nodes[0].Actors(ctx, ActorFilter{Type: "Counter"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Actors) != 3 {
		t.Fatalf("actors after the cold start: %+v", page.Actors)
	}
	for _, a := range page.Actors {
		if a.State != "active" {
			t.Fatalf("actor after the cold start: %+v", a)
		}
	}
}
