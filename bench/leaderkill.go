package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/troupe-dev/troupe"
)

// leaderKillInFlight is how many calls the leader-kill load keeps in
// flight; leaderKillActors is how many actors it spreads them over.
const (
	leaderKillInFlight = 16
	leaderKillActors   = 4
	leaderKillCallTime = 5 * time.Second // each call's deadline
)

// leaderKill runs a call load from one node to actors on a second node,
// neither of them the Raft leader, and kills the leader's process (SIGKILL)
// halfway. It reports the calls that failed (no retry by the bench: what
// the runtime does is what is measured) and how much the p99 latency of
// the calls that completed after the kill exceeds the p99 before it.
//
// Its cluster is its own, three nodes in three processes: lk1, a worker
// process that bootstraps it (and so is the leader), lkc, the caller, in
// the suite's process, and lk2, the host, a worker process.
func leaderKill(ctx context.Context, e *env) (*Result, error) {
	cl, err := newCluster(e)
	if err != nil {
		return nil, err
	}
	defer cl.close()
	leader, err := cl.startWorkerJoin(ctx, "lk1", "")
	if err != nil {
		return nil, err
	}
	if err := cl.issue("lkc"); err != nil {
		return nil, err
	}
	e.logf("      leader-kill: starting node lkc in this process")
	if cl.main, err = troupe.Start(ctx, nodeConfig(cl.dir, "lkc", []string{leader.addr}, e.o.verbose, e.o.failTimeout)); err != nil {
		return nil, fmt.Errorf("start lkc: %w", err)
	}
	if err := register(cl.main); err != nil {
		return nil, err
	}
	if _, err := cl.startWorkerJoin(ctx, "lk2", leader.addr); err != nil {
		return nil, err
	}
	if l := cl.main.Leader(); l != "lk1" {
		return nil, fmt.Errorf("leader is %q, not the bootstrapping lk1", l)
	}
	var refs []troupe.Ref
	for range leaderKillActors {
		r, err := spawnOn(ctx, cl.main, "lk2")
		if err != nil {
			return nil, err
		}
		refs = append(refs, r)
	}

	window := max(e.o.duration, time.Second) // measured before, and after, the kill
	var (
		mu        sync.Mutex
		killedAt  time.Time // zero until the kill
		before    latency   // calls completed before the kill
		after     latency   // calls completed after it
		failed    int64
		firstErr  error
		worstPre  time.Duration
		worstPost time.Duration
	)
	record := func(t0 time.Time, err error) {
		end := time.Now()
		d := end.Sub(t0)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		if killedAt.IsZero() || end.Before(killedAt) {
			before.add(d)
			worstPre = max(worstPre, d)
			return
		}
		after.add(d)
		worstPost = max(worstPost, d)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range leaderKillInFlight {
		wg.Go(func() {
			for i := 0; i < maxOps; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cctx, cancel := context.WithTimeout(ctx, leaderKillCallTime)
				t0 := time.Now()
				_, err := troupe.Call[[]byte](cctx, refs[(w+i)%len(refs)], "Echo", arg).Await(cctx)
				cancel()
				record(t0, err)
			}
		})
	}
	timer := time.NewTimer(window)
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	mu.Lock()
	killedAt = time.Now()
	mu.Unlock()
	killErr := cl.kill(leader)
	e.logf("      leader-kill: lk1 (leader) killed")
	timer.Reset(window)
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	close(stop)
	wg.Wait()
	if killErr != nil {
		return nil, fmt.Errorf("kill lk1: %w", killErr)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	newLeader := cl.main.Leader()

	p99 := func(l *latency) float64 {
		for _, f := range l.figures() {
			if f.Name == "p99" {
				return f.Value / 1000
			}
		}
		return 0
	}
	pre, post := p99(&before), p99(&after)
	if len(before.samples) == 0 || len(after.samples) == 0 {
		return nil, fmt.Errorf("no call completed before (%d) or after (%d) the kill; %d failed, first: %v",
			len(before.samples), len(after.samples), failed, firstErr)
	}
	errNote := ""
	if firstErr != nil {
		errNote = "; first failure: " + firstErr.Error()
		var te *troupe.Error
		if errors.As(firstErr, &te) {
			errNote += fmt.Sprintf(" (code %v)", te.Code)
		}
	}
	return &Result{
		Setup: Setup{Nodes: 3, Processes: 3, InFlight: leaderKillInFlight, Payload: len(arg),
			Duration: (2 * window).Round(time.Millisecond).String(), Ops: int64(len(before.samples)+len(after.samples)) + failed,
			Notes: fmt.Sprintf("Calls (no retry by the bench, %s deadline each) from lkc (suite's process) to %d actors on lk2 (a worker), %s of load, SIGKILL of the leader lk1's process, %s more; new leader %q; p99 %.1f ms before, %.1f ms after; max %.1f ms before, %.1f ms after; %d calls failed; election timeout (HeartbeatTimeout) %s, FailTimeout %s%s",
				leaderKillCallTime, leaderKillActors, window, window, newLeader, pre, post, ms(worstPre), ms(worstPost), failed, heartbeatTimeout, e.o.failTimeout, errNote)},
		Figures: []Figure{
			{Name: "failed-calls", Value: float64(failed), Unit: "calls"},
			{Name: "added-p99", Value: post - pre, Unit: "ms"},
			{Name: "added-max", Value: ms(worstPost) - ms(worstPre), Unit: "ms"},
		},
	}, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
