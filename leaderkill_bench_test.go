package troupe

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkLeaderKill: three nodes in this process over QUIC on loopback
// with the default (LAN) timeouts; 16 calls in flight from one node to 4
// actors on another, neither of them the Raft leader; after 1s of load the
// leader is closed abruptly (Close, not Stop) and the load goes on for 1s.
// Each iteration is one such trial. It reports the calls that failed per
// trial (target 0; the benchmark never retries) and, for the worst trial,
// how much the p99 and the maximum latency of the calls that completed
// after the kill exceed those before it (target: within one election
// timeout, HeartbeatTimeout 200ms). In-process the peers see the closed
// QUIC connections at once, unlike the kill -9 of the bench suite's
// leader-kill scenario, where they find out by timeouts.
func BenchmarkLeaderKill(b *testing.B) {
	var trials, failed int
	var addedP99, addedMax float64
	for b.Loop() {
		r := leaderKillTrial(b, time.Second)
		trials++
		failed += r.failed
		if trials == 1 {
			addedP99, addedMax = r.addedP99, r.addedMax
		}
		addedP99 = max(addedP99, r.addedP99)
		addedMax = max(addedMax, r.addedMax)
		b.Logf("trial %d: leader %s killed; %d calls before, %d after, %d failed (first: %v); p99 %.1f -> %.1f ms, max %.1f -> %.1f ms",
			trials, r.leader, r.before, r.after, r.failed, r.firstErr, r.p99[0], r.p99[1], r.max[0], r.max[1])
	}
	b.ReportMetric(float64(failed)/float64(trials), "failed-calls")
	b.ReportMetric(addedP99, "added-p99-ms")
	b.ReportMetric(addedMax, "added-max-ms")
}

type leaderKillResult struct {
	leader        string
	before, after int // calls that succeeded before and after the kill
	failed        int
	firstErr      error
	p99, max      [2]float64 // ms, before and after
	addedP99      float64
	addedMax      float64
}

func leaderKillTrial(b *testing.B, window time.Duration) leaderKillResult {
	b.Helper()
	const inflight, actors = 16, 4
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var nodes []*Node
	defer func() {
		for _, nd := range nodes {
			nd.Close()
		}
	}()
	for i := range 3 {
		cfg := Config{Name: fmt.Sprintf("k%d", i+1)}
		if i > 0 {
			cfg.Join = []string{nodes[0].Addr()}
		}
		nd, err := Start(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, nd)
		if err := Register(nd, "Sink", func() *Sink { return &Sink{} }); err != nil {
			b.Fatal(err)
		}
	}
	li := slices.IndexFunc(nodes, func(n *Node) bool { return n.ID() == nodes[0].Leader() })
	if li < 0 {
		b.Fatalf("no leader among the nodes (leader %q)", nodes[0].Leader())
	}
	var others []*Node
	for i, n := range nodes {
		if i != li {
			others = append(others, n)
		}
	}
	caller, host := others[0], others[1]
	var refs []Ref
	for range actors {
		r, err := caller.Spawn(ctx, "Sink", OnNode(host.ID()))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Call[int](ctx, r, "Count").Await(ctx); err != nil {
			b.Fatal(err)
		}
		refs = append(refs, r)
	}

	var (
		mu            sync.Mutex
		killedAt      time.Time
		before, after []time.Duration
		res           = leaderKillResult{leader: nodes[li].ID()}
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range inflight {
		wg.Go(func() {
			for i := 0; i < 10_000_000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
				t0 := time.Now()
				_, err := Call[int](cctx, refs[(w+i)%len(refs)], "Take", payload).Await(cctx)
				ccancel()
				end := time.Now()
				mu.Lock()
				switch {
				case err != nil:
					res.failed++
					if res.firstErr == nil {
						res.firstErr = err
					}
				case killedAt.IsZero() || end.Before(killedAt):
					before = append(before, end.Sub(t0))
				default:
					after = append(after, end.Sub(t0))
				}
				mu.Unlock()
			}
		})
	}
	timer := time.NewTimer(window)
	<-timer.C
	mu.Lock()
	killedAt = time.Now()
	mu.Unlock()
	nodes[li].Close()
	timer.Reset(window)
	<-timer.C
	close(stop)
	wg.Wait()
	if len(before) == 0 || len(after) == 0 {
		b.Fatalf("calls completed: %d before the kill, %d after; %d failed (first: %v)", len(before), len(after), res.failed, res.firstErr)
	}
	res.before, res.after = len(before), len(after)
	for i, s := range [][]time.Duration{before, after} {
		slices.Sort(s)
		res.p99[i] = durMs(s[min(len(s)-1, len(s)*99/100)])
		res.max[i] = durMs(s[len(s)-1])
	}
	res.addedP99 = res.p99[1] - res.p99[0]
	res.addedMax = res.max[1] - res.max[0]
	return res
}

func durMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
