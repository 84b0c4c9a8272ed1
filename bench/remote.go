package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupe-dev/troupe"
	"github.com/troupe-dev/troupe/internal/quicecho"
	"github.com/troupe-dev/troupe/transport"
)

// arg is the 32-byte argument of the cluster scenarios.
var arg = make([]byte, 32)

// unavailable reports a transient failure: the host was unreachable or
// refused the call because its lease from the registry leader had lapsed
// (which happens on a saturated machine; see the notes of each result).
func unavailable(err error) bool { return errors.Is(err, troupe.ErrUnavailable) }

// settle calls fn until it does not fail with ErrUnavailable or time out,
// each attempt bounded by 3s and all by 15s: set-up and check steps ride out
// a lease lapse left by a previous flood of calls on a saturated machine.
func settle[R any](ctx context.Context, fn func(context.Context) (R, error)) (R, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, 3*time.Second)
		r, err := fn(actx)
		acancel()
		if err == nil || ctx.Err() != nil || !(unavailable(err) || errors.Is(err, context.DeadlineExceeded)) {
			return r, err
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// spawnOn spawns a Bench actor on node and calls it once, which activates it.
func spawnOn(ctx context.Context, from *troupe.Node, node string) (troupe.Ref, error) {
	ref, err := from.Spawn(ctx, "Bench", troupe.OnNode(node))
	if err != nil {
		return troupe.Ref{}, fmt.Errorf("spawn on %s: %w", node, err)
	}
	where, err := settle(ctx, func(ctx context.Context) (string, error) {
		return troupe.Call[string](ctx, ref, "Where").Await(ctx)
	})
	if err != nil {
		return troupe.Ref{}, fmt.Errorf("first call to %s: %w", ref, err)
	}
	if where != node {
		return troupe.Ref{}, fmt.Errorf("actor spawned on %s answers from %s", node, where)
	}
	return ref, nil
}

// remoteCall measures Call round trips from main to an actor in worker w1.
func remoteCall(inflight int) func(ctx context.Context, e *env) (*Result, error) {
	return func(ctx context.Context, e *env) (*Result, error) {
		cl, err := e.cluster(ctx)
		if err != nil {
			return nil, err
		}
		ref, err := spawnOn(ctx, cl.main, "w1")
		if err != nil {
			return nil, err
		}
		defer cl.main.StopActor(context.WithoutCancel(ctx), ref)
		var rounds [][]Figure
		var ops, failed int64
		var elapsed time.Duration
		for range e.rounds() {
			fl, err := echoFloor(ctx, cl, "w1", inflight, e.o.duration)
			if err != nil {
				return nil, err
			}
			r, err := closedLoop(ctx, e.o.duration, inflight, unavailable, func(ctx context.Context) error {
				_, err := troupe.Call[[]byte](ctx, ref, "Echo", arg).Await(ctx)
				return err
			})
			if err != nil {
				return nil, err
			}
			ops, failed, elapsed = ops+r.ops, failed+r.failed, elapsed+r.elapsed
			rate := float64(r.ops) / r.elapsed.Seconds()
			figs := append([]Figure{{Name: "throughput", Value: rate, Unit: "rt/s", Higher: true}}, r.lat.figures()...)
			rounds = append(rounds, append(figs, floorFigures(fl, rate, "rt/s")...))
		}
		return &Result{
			Setup: Setup{Nodes: 2, Processes: 2, InFlight: inflight, Payload: len(arg), Duration: elapsed.Round(time.Millisecond).String(), Ops: ops,
				Notes: fmt.Sprintf("caller in the suite's process, actor in worker w1, QUIC+mTLS on 127.0.0.1, every call's ctx has a deadline, default mailbox; "+
					"quic floor: bare quic-go echo over one mTLS stream between the same two processes, same in flight; "+
					"%d alternating rounds of floor then troupe, medians", len(rounds)) + failedNote(failed)},
			Figures: medianFigures(rounds),
		}, nil
	}
}

// remoteTell measures one-way Tells from main to an actor in worker w1,
// both with the default mailbox. The figure counts the messages the actor
// handled; the scenario ends by Count calls until the actor has handled
// every Tell that returned nil, or its count stopped growing for a second
// (10s at most), and reports the rest as lost.
func remoteTell(ctx context.Context, e *env) (*Result, error) {
	cl, err := e.cluster(ctx)
	if err != nil {
		return nil, err
	}
	ref, err := spawnOn(ctx, cl.main, "w1")
	if err != nil {
		return nil, err
	}
	defer cl.main.StopActor(context.WithoutCancel(ctx), ref)
	var rounds [][]Figure
	var notes []string
	var ops int64
	var elapsed time.Duration
	for range e.rounds() {
		fl, err := sendFloor(ctx, cl, "w1", e.o.duration)
		if err != nil {
			return nil, err
		}
		figs, got, el, note, err := tellRound(ctx, e, ref)
		if err != nil {
			return nil, err
		}
		ops, elapsed = ops+got, elapsed+el
		notes = append(notes, note)
		rounds = append(rounds, append(figs, floorFigures(fl, figs[0].Value, "msgs/s")...))
	}
	return &Result{
		Setup: Setup{Nodes: 2, Processes: 2, InFlight: 1, Payload: len(arg), Duration: elapsed.Round(time.Millisecond).String(), Ops: ops,
			Notes: "sender in the suite's process, actor in worker w1, default mailbox (1024), the sender's ctx has a deadline; " +
				"quic floor: one-way frames over one bare quic-go mTLS stream between the same two processes; " +
				fmt.Sprintf("%d alternating rounds of floor then troupe, medians; ", len(rounds)) + strings.Join(notes, "; ")},
		Figures: medianFigures(rounds),
	}, nil
}

// tellRound is one round of remoteTell: Tells for the scenario's duration,
// then Count until they are all handled or lost.
func tellRound(ctx context.Context, e *env, ref troupe.Ref) (figs []Figure, got int64, el time.Duration, note string, err error) {
	before, err := settle(ctx, func(ctx context.Context) (int64, error) {
		return troupe.Call[int64](ctx, ref, "Count").Await(ctx)
	})
	if err != nil {
		return nil, 0, 0, "", err
	}
	deadline := time.Now().Add(e.o.duration)
	start := time.Now()
	var sent, refused int64
	for sent+refused < maxOps {
		if (sent+refused)%256 == 0 && time.Now().After(deadline) {
			break
		}
		if err := troupe.Tell(ctx, ref, "Inc", arg); err != nil {
			if !unavailable(err) && !errors.Is(err, troupe.ErrBackpressure) {
				return nil, 0, 0, "", fmt.Errorf("tell %d: %w", sent, err)
			}
			refused++
			continue
		}
		sent++
	}
	sendEl := time.Since(start)
	count, el, err := awaitCount(ctx, ref, before+sent, start)
	if err != nil {
		return nil, 0, 0, "", err
	}
	got = count - before
	if got == 0 {
		return nil, 0, 0, "", errors.New("no Tell arrived")
	}
	lost := sent - got
	note = fmt.Sprintf("Tell returned nil %d times in %s, the actor handled %d, lost %d, %d refused with an error", sent, sendEl.Round(time.Millisecond), got, lost, refused)
	return []Figure{
		{Name: "throughput", Value: float64(got) / el.Seconds(), Unit: "msgs/s", Higher: true},
		{Name: "send rate", Value: float64(sent) / sendEl.Seconds(), Unit: "msgs/s", Higher: true},
		{Name: "lost", Value: float64(lost), Unit: "msgs"},
	}, got, el, note, nil
}

// awaitCount calls Count on ref until it reaches sent, or stops growing
// for a second, or 10s passed; it returns the count and when it was last
// seen growing (since start). A Count call may overtake Tells still on
// their way, or find the mailbox full of them (ErrBackpressure), hence the
// repeated calls.
func awaitCount(ctx context.Context, ref troupe.Ref, sent int64, start time.Time) (int64, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var got int64
	el := time.Since(start)
	stuck := time.Now()
	for {
		c, err := settle(ctx, func(ctx context.Context) (int64, error) {
			return troupe.Call[int64](ctx, ref, "Count").Await(ctx)
		})
		switch {
		case errors.Is(err, troupe.ErrBackpressure) && ctx.Err() == nil:
			// The mailbox is still full of Tells: ask again.
			c = got
		case err != nil:
			if got > 0 && ctx.Err() != nil {
				return got, el, nil
			}
			return 0, 0, err
		}
		if c > got {
			got, el, stuck = c, time.Since(start), time.Now()
		}
		if got >= sent || time.Since(stuck) > time.Second {
			return got, el, nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return got, el, nil
		}
	}
}

// fanoutCalls is the number of calls of one fan-out round.
const fanoutCalls = 10_000

// fanout issues rounds of 10k Calls from one goroutine to 30 actors spread
// over the 3 nodes and waits for each round with WaitAll.
func fanout(ctx context.Context, e *env) (*Result, error) {
	cl, err := e.cluster(ctx)
	if err != nil {
		return nil, err
	}
	nodes := []string{"main", "w1", "w2"}
	var refs []troupe.Ref
	defer func() {
		for _, r := range refs {
			cl.main.StopActor(context.WithoutCancel(ctx), r)
		}
	}()
	for i := range 30 {
		r, err := spawnOn(ctx, cl.main, nodes[i%len(nodes)])
		if err != nil {
			return nil, err
		}
		refs = append(refs, r)
	}
	var lat latency
	deadline := time.Now().Add(e.o.duration)
	start := time.Now()
	rounds := 0
	var failed int64
	futs := make([]*troupe.Future[[]byte], fanoutCalls)
	for rounds < 1000 && (rounds == 0 || time.Now().Before(deadline)) {
		t0 := time.Now()
		for i := range futs {
			futs[i] = troupe.Call[[]byte](ctx, refs[i%len(refs)], "Echo", arg)
		}
		if err := troupe.WaitAll(ctx, futs...); err != nil {
			if !unavailable(err) {
				return nil, fmt.Errorf("round %d: %w", rounds, err)
			}
			for _, f := range futs {
				if f.Err() != nil {
					failed++
				}
			}
		}
		lat.add(time.Since(t0))
		rounds++
	}
	el := time.Since(start)
	figs := []Figure{{Name: "throughput", Value: float64(int64(rounds*fanoutCalls)-failed) / el.Seconds(), Unit: "calls/s", Higher: true}}
	for _, f := range lat.figures() {
		if f.Name == "p50" {
			figs = append(figs, Figure{Name: "round p50", Value: f.Value / 1000, Unit: "ms"})
		}
	}
	return &Result{
		Setup: Setup{Nodes: 3, Processes: 3, InFlight: fanoutCalls, Payload: len(arg), Duration: el.Round(time.Millisecond).String(), Ops: int64(rounds * fanoutCalls),
			Notes: fmt.Sprintf("%d round(s) of %d Calls from 1 goroutine to 30 actors (10 per node, 10 in the caller's node), WaitAll per round", rounds, fanoutCalls) + failedNote(failed)},
		Figures: figs,
	}, nil
}

// poolMap maps Item over a pool of Bench workers, one per node of the
// three processes, and reports items/s and the busiest worker's share.
func poolMap(ctx context.Context, e *env) (*Result, error) {
	cl, err := e.cluster(ctx)
	if err != nil {
		return nil, err
	}
	items := 100_000
	if e.o.quick {
		items = 10_000
	}
	pool, err := cl.main.NewPool(ctx, "Bench")
	if err != nil {
		return nil, err
	}
	defer pool.Close(context.WithoutCancel(ctx))
	in := make([][]byte, items)
	for i := range in {
		in[i] = arg
	}
	start := time.Now()
	out, err := troupe.Map[string](ctx, pool, "Item", in)
	el := time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("map: %w", err)
	}
	per := map[string]int{}
	for _, node := range out {
		per[node]++
	}
	busiest := 0
	for _, n := range per {
		busiest = max(busiest, n)
	}
	return &Result{
		Setup: Setup{Nodes: 3, Processes: 3, InFlight: 16 * len(pool.Workers()), Payload: len(arg), Duration: el.Round(time.Millisecond).String(), Ops: int64(items),
			Notes: fmt.Sprintf("troupe.Map of %d items from the suite's process over a pool of %d workers (NewPool: one per node), default window (16 per worker); items per node %v", items, len(pool.Workers()), per)},
		Figures: []Figure{
			{Name: "throughput", Value: float64(items) / el.Seconds(), Unit: "items/s", Higher: true},
			{Name: "busiest share", Value: float64(busiest) / float64(items), Unit: "of items"},
		},
	}, nil
}

// failover kills the worker process hosting an actor and measures the time
// until the same Ref answers from another node.
func failover(ctx context.Context, e *env) (*Result, error) {
	cl, err := e.cluster(ctx)
	if err != nil {
		return nil, err
	}
	trials := e.trials(10, 3)
	var lat latency
	var worst time.Duration
	for i := range trials {
		name := fmt.Sprintf("victim%d", i+1)
		w, err := cl.startWorker(ctx, name)
		if err != nil {
			return nil, err
		}
		ref, err := spawnOn(ctx, cl.main, name)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := cl.kill(w); err != nil {
			return nil, err
		}
		where, err := awaitElsewhere(ctx, ref.With(troupe.Idempotent()), name)
		if err != nil {
			return nil, fmt.Errorf("trial %d: %w", i+1, err)
		}
		d := time.Since(t0)
		lat.add(d)
		worst = max(worst, d)
		e.logf("      trial %d/%d: %s killed, actor answered from %s after %s", i+1, trials, name, where, d.Round(time.Millisecond))
		cl.main.StopActor(ctx, ref)
	}
	figs := []Figure{}
	for _, f := range lat.figures() {
		if f.Name == "p50" {
			figs = append(figs, Figure{Name: "failover p50", Value: f.Value / 1000, Unit: "ms"})
		}
	}
	figs = append(figs, Figure{Name: "failover max", Value: float64(worst) / float64(time.Millisecond), Unit: "ms"})
	return &Result{
		Setup: Setup{Nodes: 4, Processes: 4, InFlight: 1, Payload: 0, Duration: lat.total().Round(time.Millisecond).String(), Ops: int64(trials),
			Notes: fmt.Sprintf("%d trials: actor on a 4th process, SIGKILL, then Idempotent Calls (1s timeout each) until it answers elsewhere; HeartbeatTimeout %s, FailTimeout %s", trials, heartbeatTimeout, e.o.failTimeout)},
		Figures: figs,
	}, nil
}

// awaitElsewhere calls ref until it answers from a node other than dead,
// each attempt bounded by 1s, the whole by 30s.
func awaitElsewhere(ctx context.Context, ref troupe.Ref, dead string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		actx, acancel := context.WithTimeout(ctx, time.Second)
		where, err := troupe.Call[string](actx, ref, "Where").Await(actx)
		acancel()
		if err == nil && where != dead {
			return where, nil
		}
		last = err
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			// A fast failure (unavailable, not owner): do not spin.
			select {
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
	return "", fmt.Errorf("actor did not answer elsewhere within 30s (last error: %v)", last)
}

// inproc starts n nodes in this process over QUIC on loopback with the
// development CA, Bench registered on each; with disk each has a DataDir.
func inproc(ctx context.Context, n int, disk bool) ([]*troupe.Node, func(), error) {
	var nodes []*troupe.Node
	var dirs []string
	cleanup := func() {
		for _, nd := range nodes {
			nd.Close()
		}
		for _, d := range dirs {
			os.RemoveAll(d)
		}
	}
	for i := range n {
		cfg := troupe.Config{Name: fmt.Sprintf("r%d", i+1), HeartbeatTimeout: heartbeatTimeout, FailTimeout: defaultFailTimeout}
		if i > 0 {
			cfg.Join = []string{nodes[0].Addr()}
		}
		if disk {
			d, err := os.MkdirTemp("", "troupe-bench-raft-")
			if err != nil {
				cleanup()
				return nil, nil, err
			}
			dirs = append(dirs, d)
			cfg.DataDir = d
		}
		nd, err := troupe.Start(ctx, cfg)
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		nodes = append(nodes, nd)
		if err := register(nd); err != nil {
			cleanup()
			return nil, nil, err
		}
	}
	return nodes, cleanup, nil
}

// registeredSpawn measures registered spawns (one registry entry each,
// through Raft) issued from a non-leader-or-leader node with 64 in flight.
func registeredSpawn(disk bool) func(ctx context.Context, e *env) (*Result, error) {
	return func(ctx context.Context, e *env) (*Result, error) {
		nodes, cleanup, err := inproc(ctx, 3, disk)
		if err != nil {
			return nil, err
		}
		defer cleanup()
		const inflight = 64
		r, err := closedLoop(ctx, e.o.duration, inflight, nil, func(ctx context.Context) error {
			_, err := nodes[1].Spawn(ctx, "Bench")
			return err
		})
		if err != nil {
			return nil, err
		}
		store := "in-memory Raft store"
		if disk {
			store = "raft-boltdb on local disk"
		}
		return &Result{
			Setup: Setup{Nodes: 3, Processes: 1, InFlight: inflight, Duration: r.elapsed.Round(time.Millisecond).String(), Ops: r.ops,
				Notes: "3 nodes in one process over QUIC, spawns issued on node r2 (LeastLoaded), " + store},
			Figures: append([]Figure{{Name: "throughput", Value: float64(r.ops) / r.elapsed.Seconds(), Unit: "spawns/s", Higher: true}}, r.lat.figures()...),
		}, nil
	}
}

// registryLookup spawns named actors, then looks them up from node r3.
func registryLookup(ctx context.Context, e *env) (*Result, error) {
	nodes, cleanup, err := inproc(ctx, 3, false)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	names := make([]string, 1000)
	if e.o.quick {
		names = names[:200]
	}
	var wg sync.WaitGroup
	var next atomic.Int64
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(names); i = int(next.Add(1)) - 1 {
				names[i] = fmt.Sprintf("actor-%d", i)
				if _, err := nodes[0].Spawn(ctx, "Bench", troupe.WithName(names[i])); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	var k atomic.Int64
	inflight := runtime.GOMAXPROCS(0)
	r, err := closedLoop(ctx, e.o.duration, inflight, nil, func(ctx context.Context) error {
		name := names[int(k.Add(1))%len(names)]
		ref, err := nodes[2].Lookup(ctx, name)
		if err == nil && ref.ID == "" {
			err = fmt.Errorf("lookup %s: empty ref", name)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Result{
		Setup: Setup{Nodes: 3, Processes: 1, InFlight: inflight, Duration: r.elapsed.Round(time.Millisecond).String(), Ops: r.ops,
			Notes: fmt.Sprintf("Lookup by name of %d registered actors on node r3 (a local replica read)", len(names))},
		Figures: append([]Figure{{Name: "throughput", Value: float64(r.ops) / r.elapsed.Seconds(), Unit: "lookups/s", Higher: true}}, r.lat.figures()...),
	}, nil
}

// failedNote mentions transient failures in a result's notes.
func failedNote(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %d failed with ErrUnavailable (lease lapse under load) and were not counted", n)
}

// registeredMemory measures the heap a worker process holds per idle
// registered actor it hosts: the registry entry (held by every replica),
// the activation and the instance, after one call each.
func registeredMemory(ctx context.Context, e *env) (*Result, error) {
	cl, err := e.cluster(ctx)
	if err != nil {
		return nil, err
	}
	probe, err := spawnOn(ctx, cl.main, "w2")
	if err != nil {
		return nil, err
	}
	n := e.trials(5000, 1000)
	heap := func() (uint64, error) {
		return settle(ctx, func(ctx context.Context) (uint64, error) {
			return troupe.Call[uint64](ctx, probe, "Heap").Await(ctx)
		})
	}
	before, err := heap()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	refs := make([]troupe.Ref, 0, n)
	defer func() { stopAll(context.WithoutCancel(ctx), cl.main, append(refs, probe)) }()
	for range n {
		r, err := cl.main.Spawn(ctx, "Bench", troupe.OnNode("w2"))
		if err != nil {
			return nil, err
		}
		refs = append(refs, r)
	}
	// Activate them all: one call each, 64 at a time.
	for i := 0; i < len(refs); i += 64 {
		batch := refs[i:min(i+64, len(refs))]
		futs := make([]*troupe.Future[string], len(batch))
		for j, r := range batch {
			futs[j] = troupe.Call[string](ctx, r, "Where")
		}
		if err := troupe.WaitAll(ctx, futs...); err != nil {
			return nil, fmt.Errorf("activating: %w", err)
		}
	}
	el := time.Since(start)
	after, err := heap()
	if err != nil {
		return nil, err
	}
	per := (float64(after) - float64(before)) / float64(n)
	return &Result{
		Setup: Setup{Nodes: 3, Processes: 3, InFlight: 64, Duration: el.Round(time.Millisecond).String(), Ops: int64(n),
			Notes: fmt.Sprintf("%d registered actors spawned on worker w2 and called once each; heap of w2 after GC, before and after", n)},
		Figures: []Figure{{Name: "idle registered actor", Value: per, Unit: "B/actor"}},
	}, nil
}

// stopAll stops refs from 32 goroutines, each stop bounded by 5s.
func stopAll(ctx context.Context, n *troupe.Node, refs []troupe.Ref) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(refs); i = int(next.Add(1)) - 1 {
				sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				n.StopActor(sctx, refs[i])
				cancel()
			}
		})
	}
	wg.Wait()
}

// floor is the bare quic-go figure a remote scenario is compared with.
type floor struct {
	rate float64 // round trips or messages per second
	lat  *latency
}

// echoClient dials the bare quic-go echo server of worker name from this
// process, with main's certificate, for callers callers.
func (c *cluster) echoClient(ctx context.Context, name string, callers int) (*quicecho.Client, error) {
	c.mu.Lock()
	var addr string
	for _, w := range c.workers {
		if w.name == name {
			addr = w.echo
		}
	}
	c.mu.Unlock()
	if addr == "" {
		return nil, fmt.Errorf("worker %s has no echo server", name)
	}
	f := tlsFiles(c.dir, "main")
	ident, err := transport.LoadIdentity(f.CAFile, f.CertFile, f.KeyFile)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return quicecho.Dial(dctx, addr, ident, callers)
}

// echoFloor measures round trips of 32-byte frames over one stream of a
// bare quic-go connection to worker name, inflight at a time, for d.
func echoFloor(ctx context.Context, cl *cluster, name string, inflight int, d time.Duration) (floor, error) {
	ec, err := cl.echoClient(ctx, name, inflight)
	if err != nil {
		return floor{}, err
	}
	defer ec.Close()
	free := make(chan int, inflight)
	for i := range inflight {
		free <- i
	}
	r, err := closedLoop(ctx, d, inflight, nil, func(ctx context.Context) error {
		i := <-free
		p := make([]byte, len(arg))
		err := ec.Call(ctx, i, p)
		free <- i
		return err
	})
	if err != nil {
		return floor{}, fmt.Errorf("bare quic-go floor: %w", err)
	}
	return floor{rate: float64(r.ops) / r.elapsed.Seconds(), lat: r.lat}, nil
}

// sendFloor measures one-way 32-byte frames over one stream of a bare
// quic-go connection to worker name for d, counted once a round trip after
// them returned (the server has read them all).
func sendFloor(ctx context.Context, cl *cluster, name string, d time.Duration) (floor, error) {
	ec, err := cl.echoClient(ctx, name, 1)
	if err != nil {
		return floor{}, err
	}
	defer ec.Close()
	p := make([]byte, len(arg))
	deadline := time.Now().Add(d)
	start := time.Now()
	var sent int64
	for sent < maxOps && (sent%256 != 0 || time.Now().Before(deadline)) {
		if err := ec.Send(p); err != nil {
			return floor{}, fmt.Errorf("bare quic-go floor: %w", err)
		}
		sent++
	}
	if err := ec.Call(ctx, 0, p); err != nil {
		return floor{}, fmt.Errorf("bare quic-go floor: %w", err)
	}
	return floor{rate: float64(sent) / time.Since(start).Seconds()}, nil
}

// floorFigures are the floor's figures beside a scenario's, and the ratio
// of the scenario's rate to the floor's.
func floorFigures(f floor, rate float64, unit string) []Figure {
	figs := []Figure{{Name: "quic floor", Value: f.rate, Unit: unit, Higher: true}}
	if f.lat != nil {
		for _, lf := range f.lat.figures() {
			if lf.Name == "p50" || lf.Name == "p99" {
				figs = append(figs, Figure{Name: "floor " + lf.Name, Value: lf.Value, Unit: lf.Unit})
			}
		}
	}
	return append(figs, Figure{Name: "÷ floor", Value: rate / f.rate, Unit: "×", Higher: true})
}
