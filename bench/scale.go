package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
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
// the third (SIGKILL) halfway: a host that does not lead (fs3, unless an
// election moved the lead there), or with leader set the Raft leader
// (then the cluster elects a new leader before it can declare it failed).
// What it measures is what a healthy node does while a third of the
// registry moves: failed-calls counts the calls to actors on the surviving
// hosts that failed (no retry by the bench, a deadline of scaleCallTime
// each), which should be none. Beside it: how long the victim's actors
// take to answer elsewhere (a sample of scaleSample polled from the kill
// on), and a sweep afterwards that calls every one of them and counts
// those that never answered (unmoved).
//
// Its cluster is its own: fs1 (a worker process that bootstraps it, so the
// first Raft leader), fsc (the caller, in the suite's process, hosting nothing),
// fs2 and fs3 (worker processes); fs1, fs2 and fs3 host the actors. The
// voters are fs1, fsc and fs2 (Voters 3, in the order they joined).
func failoverAtScale(leader bool) func(ctx context.Context, e *env) (*Result, error) {
	return func(ctx context.Context, e *env) (*Result, error) { return failoverAt(ctx, e, leader) }
}

func failoverAt(ctx context.Context, e *env, leader bool) (*Result, error) {
	sc, err := startScale(ctx, e, "failover-at-scale", nil)
	if err != nil {
		return nil, err
	}
	defer sc.cl.close()
	vi, err := sc.victim(leader)
	if err != nil {
		return nil, err
	}
	victim, dead, moved := sc.workers[vi], sc.hosts[vi], sc.refs[vi]
	load := sc.startLoad(ctx, vi)
	defer load.stop()
	window := max(e.o.duration, 2*time.Second)
	if !sleepCtx(ctx, window) {
		return nil, ctx.Err()
	}

	// The kill, then a sample of the victim's actors polled until each
	// answers from another host.
	sample := sampleRefs(moved, scaleSample)
	killedAt := load.mark()
	if err := sc.cl.kill(victim); err != nil {
		return nil, fmt.Errorf("kill %s: %w", dead, err)
	}
	e.logf("      failover-at-scale: %s killed (hosting %d actors)", dead, len(moved))
	mctx, mcancel := context.WithTimeout(ctx, scaleMoveBound)
	moveLat, _, err := pollAnswer(mctx, sample, killedAt, func(where string) bool { return where != dead })
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
	load.stop()
	loadTime := time.Since(killedAt)

	// The sweep: every actor of the victim, once.
	e.logf("      failover-at-scale: calling each of the %d moved actors", len(moved))
	t0 := time.Now()
	where, unmoved, err := sweep(ctx, moved, sc.hosts, dead)
	if err != nil {
		return nil, err
	}
	sweepTime := time.Since(t0)
	if err := load.check(); err != nil {
		return nil, err
	}
	return &Result{
		Setup: Setup{Nodes: 4, Processes: 4, InFlight: scaleInFlight, Payload: len(arg),
			Duration: loadTime.Round(time.Millisecond).String(), Ops: load.calls,
			Notes: fmt.Sprintf("%s; %s of load, SIGKILL of %s, load until %d sampled actors of %s answered elsewhere, %s more; new leader %q; %s; sweep of all %d moved actors in %s, now on %s; HeartbeatTimeout %s, FailTimeout %s",
				sc.about(), window, dead, len(sample), dead, window,
				sc.cl.main.Leader(), load.about(), len(moved), sweepTime.Round(time.Millisecond),
				spread(sc.hosts, where), heartbeatTimeout, e.o.failTimeout)},
		Figures: []Figure{
			{Name: "failed-calls", Value: float64(load.failed), Unit: "calls"},
			{Name: "moved p50", Value: percentile(moveLat, "p50"), Unit: "ms"},
			{Name: "moved max", Value: ms(movedMax), Unit: "ms"},
			{Name: "unmoved", Value: float64(unmoved), Unit: "actors"},
			{Name: "spawn rate", Value: float64(sc.total) / sc.spawnTime.Seconds(), Unit: "spawns/s", Higher: true},
		},
	}, nil
}

// restartAtScale fills the failover-at-scale cluster, every host with a
// DataDir (raft-boltdb), keeps the call load on the other two, kills a
// host that does not lead (fs3, unless an election moved the lead there;
// SIGKILL) and starts it again at once from its DataDir at its address.
// It measures how long that host takes to serve its actors again (a sample
// polled from the kill on), whether they stayed on it (a restart within
// FailTimeout + RestartGrace keeps them: stayed), and, as in
// failover-at-scale, the calls to the other two that failed.
func restartAtScale(ctx context.Context, e *env) (*Result, error) {
	dataDir := func(c *cluster, name string) string { return filepath.Join(c.dir, "data-"+name) }
	sc, err := startScale(ctx, e, "restart-at-scale", func(c *cluster, name string) []string {
		return []string{envData + "=" + dataDir(c, name)}
	})
	if err != nil {
		return nil, err
	}
	defer sc.cl.close()
	vi, err := sc.victim(false)
	if err != nil {
		return nil, err
	}
	victim, name, own := sc.workers[vi], sc.hosts[vi], sc.refs[vi]
	load := sc.startLoad(ctx, vi)
	defer load.stop()
	window := max(e.o.duration, 2*time.Second)
	if !sleepCtx(ctx, window) {
		return nil, ctx.Err()
	}

	sample := sampleRefs(own, scaleSample)
	killedAt := load.mark()
	if err := sc.cl.kill(victim); err != nil {
		return nil, fmt.Errorf("kill %s: %w", name, err)
	}
	e.logf("      restart-at-scale: %s killed (hosting %d actors), starting it again", name, len(own))
	back, err := sc.cl.startWorkerEnv(ctx, name, sc.workers[0].addr, envData+"="+dataDir(sc.cl, name), envAddr+"="+victim.addr)
	if err != nil {
		return nil, fmt.Errorf("restart %s: %w", name, err)
	}
	ready := time.Since(killedAt)
	e.logf("      restart-at-scale: %s ready %s after the kill", back.name, ready.Round(time.Millisecond))
	mctx, mcancel := context.WithTimeout(ctx, scaleMoveBound)
	serveLat, stayed, err := pollAnswer(mctx, sample, killedAt, func(string) bool { return true })
	mcancel()
	if err != nil {
		return nil, err
	}
	servedMax := slices.Max(serveLat.samples)
	e.logf("      restart-at-scale: %d sampled actors answered (%d from %s), the last %s after the kill",
		len(sample), stayed[name], name, servedMax.Round(time.Millisecond))
	if !sleepCtx(ctx, window) {
		return nil, ctx.Err()
	}
	load.stop()
	loadTime := time.Since(killedAt)

	e.logf("      restart-at-scale: calling each of %s's %d actors", name, len(own))
	where, unanswered, err := sweep(ctx, own, sc.hosts, "")
	if err != nil {
		return nil, err
	}
	if err := load.check(); err != nil {
		return nil, err
	}
	return &Result{
		Setup: Setup{Nodes: 4, Processes: 4, InFlight: scaleInFlight, Payload: len(arg),
			Duration: loadTime.Round(time.Millisecond).String(), Ops: load.calls,
			Notes: fmt.Sprintf("%s, each host with a DataDir (raft-boltdb); %s of load, SIGKILL of %s and at once a new process from its DataDir at its address (ready %s after the kill), load until %d sampled actors of %s answered, %s more; %s; afterwards %s's actors are on %s (%d did not answer); HeartbeatTimeout %s, FailTimeout %s, RestartGrace default",
				sc.about(), window, name, ready.Round(time.Millisecond), len(sample), name, window,
				load.about(), name, spread(sc.hosts, where), unanswered, heartbeatTimeout, e.o.failTimeout)},
		Figures: []Figure{
			{Name: "failed-calls", Value: float64(load.failed), Unit: "calls"},
			{Name: "ready", Value: ms(ready), Unit: "ms"},
			{Name: "serving p50", Value: percentile(serveLat, "p50"), Unit: "ms"},
			{Name: "serving max", Value: ms(servedMax), Unit: "ms"},
			{Name: "stayed", Value: float64(where[vi].Load()) / float64(len(own)), Unit: "of its actors", Higher: true},
			{Name: "spawn rate", Value: float64(sc.total) / sc.spawnTime.Seconds(), Unit: "spawns/s", Higher: true},
		},
	}, nil
}

// scale is the cluster of the at-scale scenarios, filled.
type scale struct {
	cl        *cluster
	hosts     []string       // fs1, fs2, fs3
	workers   []*worker      // their processes, in hosts' order
	refs      [][]troupe.Ref // each host's actors
	leader    string         // the Raft leader once filled
	total     int
	spawnTime time.Duration
}

// startScale starts fs1 (bootstrapping), fsc in this process, fs2 and fs3
// (env gives each worker's extra environment), and spawns the actors from
// fsc: actor i on host i%3. On error it closes what it started.
func startScale(ctx context.Context, e *env, tag string, env func(c *cluster, name string) []string) (*scale, error) {
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
	ok := false
	defer func() {
		if !ok {
			cl.close()
		}
	}()
	extra := func(name string) []string {
		if env == nil {
			return nil
		}
		return env(cl, name)
	}
	sc := &scale{cl: cl, hosts: []string{"fs1", "fs2", "fs3"}, total: total}
	first, err := cl.startWorkerEnv(ctx, "fs1", "", extra("fs1")...)
	if err != nil {
		return nil, err
	}
	sc.workers = append(sc.workers, first)
	if err := cl.issue("fsc"); err != nil {
		return nil, err
	}
	e.logf("      %s: starting node fsc in this process", tag)
	if cl.main, err = troupe.Start(ctx, nodeConfig(cl.dir, "fsc", []string{first.addr}, e.o.verbose, e.o.failTimeout)); err != nil {
		return nil, fmt.Errorf("start fsc: %w", err)
	}
	for _, name := range sc.hosts[1:] {
		w, err := cl.startWorkerEnv(ctx, name, first.addr, extra(name)...)
		if err != nil {
			return nil, err
		}
		sc.workers = append(sc.workers, w)
	}
	n := len(sc.hosts)
	sc.refs = make([][]troupe.Ref, n)
	for h := range n {
		sc.refs[h] = make([]troupe.Ref, (total-h+n-1)/n)
	}
	e.logf("      %s: spawning %d actors", tag, total)
	t0 := time.Now()
	if err := parallel(ctx, scaleSpawners, total, func(ctx context.Context, i int) error {
		h := i % n
		r, err := cl.main.Spawn(ctx, "Bench", troupe.OnNode(sc.hosts[h]))
		if err != nil {
			return fmt.Errorf("spawn %d on %s: %w", i, sc.hosts[h], err)
		}
		sc.refs[h][i/n] = r
		return nil
	}); err != nil {
		return nil, err
	}
	sc.spawnTime = time.Since(t0)
	e.logf("      %s: %d actors spawned in %s", tag, total, sc.spawnTime.Round(time.Millisecond))
	sc.leader = cl.main.Leader()
	ok = true
	return sc, nil
}

// victim returns the index in hosts of the host to kill: the leader's
// (leader set) or the last host that does not lead. fs1 bootstrapped the
// cluster and so led it first, but an election under the fill's load
// (two cores, four processes) may have moved the lead.
func (sc *scale) victim(leader bool) (int, error) {
	li := slices.Index(sc.hosts, sc.leader)
	if leader {
		if li < 0 {
			return 0, fmt.Errorf("the leader is %q, not a host process", sc.leader)
		}
		return li, nil
	}
	for h := len(sc.hosts) - 1; h >= 0; h-- {
		if h != li {
			return h, nil
		}
	}
	return 0, errors.New("no host but the leader")
}

// about describes the filled cluster.
func (sc *scale) about() string {
	return fmt.Sprintf("%d actors spawned from fsc (suite's process, hosting none, a voter) evenly over fs1, fs2 and fs3 (worker processes; fs1 bootstrapped) in %s; leader then %s",
		sc.total, sc.spawnTime.Round(time.Millisecond), sc.leader)
}

// callLoad is the at-scale scenarios' call load: scaleInFlight callers in
// fsc, each calling random actors of the hosts but one, a deadline of
// scaleCallTime per call and no retry by the bench.
type callLoad struct {
	hosts []string
	quit  chan struct{}
	wg    sync.WaitGroup

	mu        sync.Mutex
	markedAt  time.Time // the kill; zero before
	before    latency
	after     latency
	calls     int64
	failed    int64
	failedOn  map[string]int64
	firstErr  error
	worstPost time.Duration
}

// startLoad starts the load on every host but hosts[skip].
func (sc *scale) startLoad(ctx context.Context, skip int) *callLoad {
	l := &callLoad{quit: make(chan struct{}), failedOn: map[string]int64{}}
	var refs [][]troupe.Ref
	for h := range sc.hosts {
		if h != skip {
			refs, l.hosts = append(refs, sc.refs[h]), append(l.hosts, sc.hosts[h])
		}
	}
	for w := range scaleInFlight {
		l.wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 0x5ca1e))
			for range maxOps {
				select {
				case <-l.quit:
					return
				default:
				}
				h := rng.IntN(len(refs))
				ref := refs[h][rng.IntN(len(refs[h]))]
				cctx, cancel := context.WithTimeout(ctx, scaleCallTime)
				t0 := time.Now()
				_, err := troupe.Call[[]byte](cctx, ref, "Echo", arg).Await(cctx)
				cancel()
				l.record(h, ref, t0, time.Now(), err)
			}
		})
	}
	return l
}

func (l *callLoad) record(h int, ref troupe.Ref, t0, end time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	switch {
	case err != nil:
		l.failed++
		l.failedOn[l.hosts[h]]++
		if l.firstErr == nil {
			l.firstErr = fmt.Errorf("call to %s on %s: %w", ref, l.hosts[h], err)
		}
	case l.markedAt.IsZero() || end.Before(l.markedAt):
		l.before.add(end.Sub(t0))
	default:
		l.after.add(end.Sub(t0))
		l.worstPost = max(l.worstPost, end.Sub(t0))
	}
}

// mark splits the load at now (the kill) and returns now.
func (l *callLoad) mark() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.markedAt = time.Now()
	return l.markedAt
}

// stop ends the load and waits for its callers; it may be called again.
func (l *callLoad) stop() {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	l.wg.Wait()
}

// check reports a load with no completed call on either side of the mark.
func (l *callLoad) check() error {
	if len(l.before.samples) == 0 || len(l.after.samples) == 0 {
		return fmt.Errorf("no call completed before (%d) or after (%d) the kill; %d failed, first: %v",
			len(l.before.samples), len(l.after.samples), l.failed, l.firstErr)
	}
	return nil
}

// about describes the load's outcome.
func (l *callLoad) about() string {
	s := fmt.Sprintf("calls (no retry by the bench, %s deadline each) from fsc to random actors on %s: p99 %.1f ms before, %.1f ms after, max after %.1f ms; %d failed",
		scaleCallTime, strings.Join(l.hosts, " and "), percentile(&l.before, "p99"), percentile(&l.after, "p99"), ms(l.worstPost), l.failed)
	if l.firstErr != nil {
		s += fmt.Sprintf(" (per host %v), first failure: %v", l.failedOn, l.firstErr)
		var te *troupe.Error
		if errors.As(l.firstErr, &te) {
			s += fmt.Sprintf(" (code %v)", te.Code)
		}
	}
	return s
}

// percentile returns l's figure name (p50, p99) in ms, or 0.
func percentile(l *latency, name string) float64 {
	for _, f := range l.figures() {
		if f.Name == name {
			return f.Value / 1000
		}
	}
	return 0
}

// sweep calls each of refs once (Idempotent, retrying through
// awaitElsewhere when a call fails or answers from dead), and counts where
// they answered and how many never did.
func sweep(ctx context.Context, refs []troupe.Ref, hosts []string, dead string) ([]atomic.Int64, int64, error) {
	var lost atomic.Int64
	where := make([]atomic.Int64, len(hosts))
	err := parallel(ctx, scaleSweepers, len(refs), func(ctx context.Context, i int) error {
		ref := refs[i].With(troupe.Idempotent())
		cctx, cancel := context.WithTimeout(ctx, scaleCallTime)
		at, err := troupe.Call[string](cctx, ref, "Where").Await(cctx)
		cancel()
		if err != nil || (dead != "" && at == dead) {
			if at, err = awaitElsewhere(ctx, ref, dead); err != nil {
				lost.Add(1)
				return nil
			}
		}
		if h := slices.Index(hosts, at); h >= 0 {
			where[h].Add(1)
		}
		return nil
	})
	if err == nil {
		err = ctx.Err()
	}
	return where, lost.Load(), err
}

// pollAnswer calls every ref in rounds (all pending ones at once, a second
// each at most, 10 ms between rounds) until each has answered from a node
// that ok accepts, and returns for each how long after since it answered
// and how many answered from each node. A call is timed when it
// completes, so the figures do not depend on how many are in flight.
func pollAnswer(ctx context.Context, refs []troupe.Ref, since time.Time, ok func(where string) bool) (*latency, map[string]int, error) {
	var lat latency
	from := map[string]int{}
	pending := make([]int, len(refs))
	for i := range pending {
		pending[i] = i
	}
	var last error
	for len(pending) > 0 {
		if !sleepCtx(ctx, 10*time.Millisecond) {
			return nil, nil, fmt.Errorf("%d of %d sampled actors did not answer (last error: %v): %w", len(pending), len(refs), last, ctx.Err())
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		// Per round: a call of an earlier round may still complete (its
		// retry ran past the round) and time itself into its own round's
		// slot, which nobody reads any more.
		futs := make([]*troupe.Future[string], len(pending))
		timed := make([]chan struct{}, len(pending))
		at := make([]time.Time, len(pending))
		for j, i := range pending {
			futs[j] = troupe.Call[string](rctx, refs[i].With(troupe.Idempotent()), "Where")
			timed[j] = make(chan struct{})
			futs[j].OnDone(func() { at[j] = time.Now(); close(timed[j]) })
		}
		next := pending[:0]
		for j, i := range pending {
			where, err := futs[j].Await(rctx)
			if err != nil || !ok(where) {
				last = err
				next = append(next, i)
				continue
			}
			<-timed[j]
			lat.add(at[j].Sub(since))
			from[where]++
		}
		cancel()
		pending = next
	}
	return &lat, from, nil
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
