package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupe-dev/troupe"
)

// The failover-at-scale scenario's shape.
const (
	scaleActors      = 1_000_000 // actors spawned (-actors overrides)
	scaleQuickActors = 20_000    // with -quick
	scaleSpawners    = 256       // concurrent Spawns while filling the cluster
	scaleInFlight    = 32        // calls kept in flight to the healthy hosts
	scaleCallTime    = 5 * time.Second
	scaleSample      = 1000 // victim actors polled until they answer elsewhere
	scaleSweepers    = 128  // concurrent calls of the final sweep
	scaleMoveBound   = 60 * time.Second
)

// failoverAtScale fills a cluster with actors spread evenly over three
// host processes, keeps a call load on the two hosts that stay, and kills
// the third (SIGKILL) halfway: fs3, or with leader fs1, the Raft leader
// (then the cluster elects a new leader before it can declare fs1 failed).
// What it measures is what a healthy node
// does while a third of the registry moves: failed-calls counts the calls
// to actors on the surviving hosts that failed (no retry by the bench, a
// deadline of scaleCallTime each), which should be none. Beside it: how
// long the victim's actors take to answer elsewhere (a sample of
// scaleSample polled from the kill on), and a sweep afterwards that calls
// every one of them and counts those that never answered (unmoved).
//
// Its cluster is its own: fs1 (a worker process that bootstraps it, so the
// Raft leader), fsc (the caller, in the suite's process, hosting nothing),
// fs2 and fs3 (worker processes); fs1, fs2 and fs3 host the actors. The
// voters are fs1, fsc and fs2 (Voters 3, in the order they joined).
func failoverAtScale(leader bool) func(ctx context.Context, e *env) (*Result, error) {
	return func(ctx context.Context, e *env) (*Result, error) { return failoverAt(ctx, e, leader) }
}

func failoverAt(ctx context.Context, e *env, leader bool) (*Result, error) {
	total := e.o.actors
	if total == 0 {
		total = scaleActors
		if e.o.quick {
			total = scaleQuickActors
		}
	}
	cl, err := newCluster(e)
	if err != nil {
		return nil, err
	}
	defer cl.close()
	first, err := cl.startWorkerJoin(ctx, "fs1", "")
	if err != nil {
		return nil, err
	}
	if err := cl.issue("fsc"); err != nil {
		return nil, err
	}
	e.logf("      failover-at-scale: starting node fsc in this process")
	if cl.main, err = troupe.Start(ctx, nodeConfig(cl.dir, "fsc", []string{first.addr}, e.o.verbose)); err != nil {
		return nil, fmt.Errorf("start fsc: %w", err)
	}
	hosts := []string{"fs1", "fs2", "fs3"}
	workers := []*worker{first}
	for _, name := range hosts[1:] {
		w, err := cl.startWorkerJoin(ctx, name, first.addr)
		if err != nil {
			return nil, err
		}
		workers = append(workers, w)
	}
	vi := 2 // the victim's index in hosts
	if leader {
		vi = 0
	}
	victim, dead := workers[vi], hosts[vi]

	// Fill: actor i goes to host i%3, spawned from fsc.
	refs := make([][]troupe.Ref, len(hosts))
	for h := range hosts {
		refs[h] = make([]troupe.Ref, (total-h+len(hosts)-1)/len(hosts))
	}
	e.logf("      failover-at-scale: spawning %d actors", total)
	t0 := time.Now()
	if err := parallel(ctx, scaleSpawners, total, func(ctx context.Context, i int) error {
		h := i % len(hosts)
		r, err := cl.main.Spawn(ctx, "Bench", troupe.OnNode(hosts[h]))
		if err != nil {
			return fmt.Errorf("spawn %d on %s: %w", i, hosts[h], err)
		}
		refs[h][i/len(hosts)] = r
		return nil
	}); err != nil {
		return nil, err
	}
	spawnTime := time.Since(t0)
	e.logf("      failover-at-scale: %d actors spawned in %s", total, spawnTime.Round(time.Millisecond))
	if l := cl.main.Leader(); l != "fs1" {
		return nil, fmt.Errorf("leader is %q, not the bootstrapping fs1", l)
	}
	moved := refs[vi]
	var healthy [][]troupe.Ref
	var healthyHosts []string
	for h := range hosts {
		if h != vi {
			healthy, healthyHosts = append(healthy, refs[h]), append(healthyHosts, hosts[h])
		}
	}

	window := max(e.o.duration, 2*time.Second)
	var (
		mu        sync.Mutex
		killedAt  time.Time
		before    latency
		after     latency
		calls     int64
		failed    int64
		failedOn  = map[string]int64{}
		firstErr  error
		worstPost time.Duration
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range scaleInFlight {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 0x5ca1e))
			for range maxOps {
				select {
				case <-stop:
					return
				default:
				}
				h := rng.IntN(len(healthy))
				ref := healthy[h][rng.IntN(len(healthy[h]))]
				cctx, cancel := context.WithTimeout(ctx, scaleCallTime)
				t0 := time.Now()
				_, err := troupe.Call[[]byte](cctx, ref, "Echo", arg).Await(cctx)
				cancel()
				end := time.Now()
				mu.Lock()
				calls++
				switch {
				case err != nil:
					failed++
					failedOn[healthyHosts[h]]++
					if firstErr == nil {
						firstErr = fmt.Errorf("call to %s on %s: %w", ref, healthyHosts[h], err)
					}
				case killedAt.IsZero() || end.Before(killedAt):
					before.add(end.Sub(t0))
				default:
					after.add(end.Sub(t0))
					worstPost = max(worstPost, end.Sub(t0))
				}
				mu.Unlock()
			}
		})
	}
	stopLoad := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	defer stopLoad()
	if !sleepCtx(ctx, window) {
		return nil, ctx.Err()
	}

	// The kill, then a sample of the victim's actors polled until each
	// answers from another host.
	sample := sampleRefs(moved, scaleSample)
	mu.Lock()
	killedAt = time.Now()
	mu.Unlock()
	if err := cl.kill(victim); err != nil {
		return nil, fmt.Errorf("kill %s: %w", dead, err)
	}
	e.logf("      failover-at-scale: %s killed (hosting %d actors)", dead, len(moved))
	mctx, mcancel := context.WithTimeout(ctx, scaleMoveBound)
	moveLat, err := pollMoved(mctx, sample, killedAt, dead)
	mcancel()
	if err != nil {
		return nil, err
	}
	movedMin, movedMax := slices.Min(moveLat.samples), slices.Max(moveLat.samples)
	e.logf("      failover-at-scale: %d sampled actors answered elsewhere, the first %s and the last %s after the kill",
		len(sample), movedMin.Round(time.Millisecond), movedMax.Round(time.Millisecond))
	// The load goes on for another window once the sample has moved: the
	// new hosts serving what they took over.
	if !sleepCtx(ctx, window) {
		return nil, ctx.Err()
	}
	stopLoad()
	loadTime := time.Since(killedAt) + window

	// The sweep: every actor of the victim, once.
	e.logf("      failover-at-scale: calling each of the %d moved actors", len(moved))
	var unmoved atomic.Int64
	where := make([]atomic.Int64, len(hosts))
	t0 = time.Now()
	err = parallel(ctx, scaleSweepers, len(moved), func(ctx context.Context, i int) error {
		ref := moved[i].With(troupe.Idempotent())
		cctx, cancel := context.WithTimeout(ctx, scaleCallTime)
		at, err := troupe.Call[string](cctx, ref, "Where").Await(cctx)
		cancel()
		if err != nil || at == dead {
			if at, err = awaitElsewhere(ctx, ref, dead); err != nil {
				unmoved.Add(1)
				return nil
			}
		}
		if h := slices.Index(hosts, at); h >= 0 {
			where[h].Add(1)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sweepTime := time.Since(t0)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	p := func(l *latency, name string) float64 {
		for _, f := range l.figures() {
			if f.Name == name {
				return f.Value / 1000
			}
		}
		return 0
	}
	if len(before.samples) == 0 || len(after.samples) == 0 {
		return nil, fmt.Errorf("no call completed before (%d) or after (%d) the kill; %d failed, first: %v",
			len(before.samples), len(after.samples), failed, firstErr)
	}
	errNote := ""
	if firstErr != nil {
		errNote = fmt.Sprintf("; failed per host %v, first failure: %v", failedOn, firstErr)
		var te *troupe.Error
		if errors.As(firstErr, &te) {
			errNote += fmt.Sprintf(" (code %v)", te.Code)
		}
	}
	return &Result{
		Setup: Setup{Nodes: 4, Processes: 4, InFlight: scaleInFlight, Payload: len(arg),
			Duration: loadTime.Round(time.Millisecond).String(), Ops: calls,
			Notes: fmt.Sprintf("%d actors spawned from fsc (suite's process, hosting none) evenly over fs1 (leader), fs2 and fs3 (worker processes) in %s; Calls (no retry by the bench, %s deadline each) from fsc to random actors on %s and %s, %s of load, SIGKILL of %s, load until %d sampled actors of %s answered elsewhere, %s more; new leader %q; p99 %.1f ms before, %.1f ms after, max after %.1f ms; sweep of all %d moved actors in %s, now on %s; %d calls failed; HeartbeatTimeout %s, FailTimeout %s%s",
				total, spawnTime.Round(time.Millisecond), scaleCallTime, healthyHosts[0], healthyHosts[1], window, dead, len(sample), dead, window,
				cl.main.Leader(), p(&before, "p99"), p(&after, "p99"), ms(worstPost), len(moved), sweepTime.Round(time.Millisecond),
				spread(hosts, where), failed, heartbeatTimeout, failTimeout, errNote)},
		Figures: []Figure{
			{Name: "failed-calls", Value: float64(failed), Unit: "calls"},
			{Name: "moved p50", Value: p(moveLat, "p50"), Unit: "ms"},
			{Name: "moved max", Value: ms(movedMax), Unit: "ms"},
			{Name: "unmoved", Value: float64(unmoved.Load()), Unit: "actors"},
			{Name: "spawn rate", Value: float64(total) / spawnTime.Seconds(), Unit: "spawns/s", Higher: true},
		},
	}, nil
}

// pollMoved calls every ref in rounds (all pending ones at once, a second
// each at most, 10 ms between rounds) until each has answered from a node
// other than dead, and returns for each how long after since it answered:
// a call is timed when it completes, so the figures do not depend on how
// many calls are in flight.
func pollMoved(ctx context.Context, refs []troupe.Ref, since time.Time, dead string) (*latency, error) {
	var lat latency
	pending := make([]int, len(refs))
	for i := range pending {
		pending[i] = i
	}
	at := make([]time.Time, len(refs))
	var last error
	for len(pending) > 0 {
		if !sleepCtx(ctx, 10*time.Millisecond) {
			return nil, fmt.Errorf("%d of %d sampled actors did not answer elsewhere (last error: %v): %w", len(pending), len(refs), last, ctx.Err())
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		futs := make([]*troupe.Future[string], len(pending))
		timed := make([]chan struct{}, len(pending))
		for j, i := range pending {
			futs[j] = troupe.Call[string](rctx, refs[i].With(troupe.Idempotent()), "Where")
			timed[j] = make(chan struct{})
			futs[j].OnDone(func() { at[i] = time.Now(); close(timed[j]) })
		}
		next := pending[:0]
		for j, i := range pending {
			where, err := futs[j].Await(rctx)
			if err != nil || where == dead {
				last = err
				next = append(next, i)
				continue
			}
			<-timed[j]
			lat.add(at[i].Sub(since))
		}
		cancel()
		pending = next
	}
	return &lat, nil
}

// parallel runs fn(i) for i in [0, n) on k goroutines and returns the
// first error (after which no new i starts).
func parallel(ctx context.Context, k, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(k, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// spread says how many of the moved actors each host now holds.
func spread(hosts []string, where []atomic.Int64) string {
	var out []string
	for h, name := range hosts {
		if n := where[h].Load(); n > 0 {
			out = append(out, fmt.Sprintf("%s %d", name, n))
		}
	}
	return strings.Join(out, ", ")
}

// sampleRefs picks up to k of refs, evenly spaced.
func sampleRefs(refs []troupe.Ref, k int) []troupe.Ref {
	if len(refs) <= k {
		return slices.Clone(refs)
	}
	out := make([]troupe.Ref, 0, k)
	for i := range k {
		out = append(out, refs[i*len(refs)/k])
	}
	return out
}

// sleepCtx waits d, or until ctx ends (then false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
