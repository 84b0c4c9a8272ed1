// Command quickstart is a tour of troupe's embedding API: three nodes in
// one process on embedded defaults (in-memory Raft, QUIC on loopback, a
// development CA), a registered actor type, actors placed across the nodes,
// method calls as futures, and a node failure after which the same ref
// answers from another node.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/troupe-dev/troupe"
)

// Counter is the actor type of the tour. Its exported methods are callable
// from any node.
type Counter struct {
	node  string // the node that made this instance
	total int
}

// Add adds n and returns the new total.
func (c *Counter) Add(_ context.Context, n int) (int, error) {
	c.total += n
	return c.total, nil
}

// Where returns the node hosting this instance.
func (c *Counter) Where() string { return c.node }

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) (err error) {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }

	// 1. Three nodes. Zero TLS on loopback: they share the process's dev CA.
	var nodes []*troupe.Node
	defer func() {
		for _, n := range nodes {
			err = errors.Join(err, n.Close())
		}
	}()
	for _, name := range []string{"n1", "n2", "n3"} {
		cfg := troupe.Config{Name: name}
		if len(nodes) > 0 {
			cfg.Join = []string{nodes[0].Addr()}
		}
		n, err := troupe.Start(ctx, cfg)
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
		say("started %s at %s", n.ID(), n.Addr())
	}
	say("cluster members: %v, Raft leader: %s", nodes[0].Members(), nodes[0].Leader())

	// 2. Every node registers the type it may host.
	for _, n := range nodes {
		id := n.ID()
		if err := troupe.Register(n, "Counter", func() *Counter { return &Counter{node: id} }); err != nil {
			return err
		}
	}
	say("registered Counter on every node")

	// 3. Spawn named actors from n1, one on each node.
	n1 := nodes[0]
	var refs []troupe.Ref
	for i, n := range nodes {
		r, err := n1.Spawn(ctx, "Counter", troupe.WithName(fmt.Sprintf("counter-%d", i+1)),
			troupe.OnNode(n.ID()), troupe.WithRestart(troupe.RestartPolicy{MaxRestarts: -1}))
		if err != nil {
			return err
		}
		refs = append(refs, r)
		say("spawned %s on %s", r.ID, r.Node)
	}

	// 4. Call methods as futures, then wait for all of them.
	var futs []*troupe.Future[int]
	for i, r := range refs {
		futs = append(futs, troupe.Call[int](ctx, r, "Add", (i+1)*10))
	}
	if err := troupe.WaitAll(ctx, futs...); err != nil {
		return err
	}
	for i, f := range futs {
		v, _ := f.Await(ctx)
		say("%s.Add(%d) = %d", refs[i].ID, (i+1)*10, v)
	}

	// 5. A name resolves from any node.
	looked, err := nodes[1].Lookup(ctx, "counter-3")
	if err != nil {
		return err
	}
	where, err := troupe.Call[string](ctx, looked, "Where").Await(ctx)
	if err != nil {
		return err
	}
	say("n2 looked up counter-3: hosted on %s", where)

	// 6. Close n3 abruptly. The registry notices, re-places counter-3, and
	// the same ref answers from another node.
	victim := refs[2]
	events, err := n1.Watch(ctx, victim)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := nodes[2].Close(); err != nil {
		return err
	}
	nodes = nodes[:2]
	say("closed n3 (abrupt)")
	ev, ok := <-events
	if !ok || ev.Kind != troupe.Restarted {
		return fmt.Errorf("watch: got %v, want a restart", ev.Kind)
	}
	say("watch: %s %s on %s (reason: %s)", victim.ID, ev.Kind, ev.Ref.Node, ev.Reason)
	where, err = troupe.Call[string](ctx, victim, "Where").Await(ctx)
	if err != nil {
		return err
	}
	total, err := troupe.Call[int](ctx, victim, "Add", 1).Await(ctx)
	if err != nil {
		return err
	}
	say("failover: the same ref now answers from %s (total restarted at %d) after %v",
		where, total, time.Since(start).Round(100*time.Millisecond))
	if where == "n3" {
		return errors.New("failover: still answered by n3")
	}

	say("members after the failure: %v, Raft leader: %s", n1.Members(), n1.Leader())

	// 7. The remaining nodes close at the end (deferred above).
	say("done: closing n1 and n2")
	return nil
}
