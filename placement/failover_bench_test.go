package placement_test

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/placement/placementtest"
)

// BenchmarkFailoverAtSize: a 3-node in-memory cluster (default timeouts),
// actors=N of them on n3, n3 killed. Reported: the time from the kill to
// the last actor placed elsewhere in the leader's replica (all-moved-ms;
// moving-ms of it after the leader marked n3 failed),
// the longest a write on the leader waited meanwhile (a probe spawning
// one actor after another: max-write-ms), and the lease lapses of the
// surviving follower (follower-lapses: it stopped serving). Run with
// -benchtime=1x.
func BenchmarkFailoverAtSize(b *testing.B) {
	for _, n := range []int{100_000, 333_000} {
		b.Run(fmt.Sprint("actors=", n), func(b *testing.B) {
			for range b.N {
				failoverAtSize(b, n)
			}
		})
	}
}

func failoverAtSize(b *testing.B, n int) {
	c := placementtest.NewCluster(b, 3)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := c.WaitLeader(0)
	lead, fol := c.Reg(l), c.Reg(1)
	spawnMany(ctx, b, lead, n, "f", placement.RestartPolicy{MaxRestarts: -1})
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("f%07d", i)
	}
	lastID := placement.RehomeLast(ids) // moved in the last chunk
	last, _ := lead.Lookup(lastID)
	lapses := fol.Counters().LeaseLapses

	b.ResetTimer()
	stop := make(chan struct{})
	var maxWrite atomic.Int64
	probe := make(chan struct{})
	go func() {
		defer close(probe)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			if _, err := lead.Spawn(ctx, placement.SpawnRequest{ID: fmt.Sprint("probe", i), Type: "T", Strategy: placement.OnNode, Node: "n1"}); err != nil {
				return
			}
			if d := int64(time.Since(t0)); d > maxWrite.Load() {
				maxWrite.Store(d)
			}
		}
	}()
	sub := lead.Subscribe()
	defer sub.Close()
	failed := make(chan time.Time, 1)
	go func() {
		for {
			e, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if e.Kind == placement.MemberFailed && e.Member.ID == "n3" {
				failed <- time.Now()
				return
			}
		}
	}()
	defer cpuProfile(b, "FAILOVER_PROFILE")()
	start := time.Now()
	c.Kill(2)
	if _, err := lead.WaitNewer(ctx, lastID, last.Epoch); err != nil {
		b.Fatal(err)
	}
	moved := time.Since(start)
	detected := (<-failed).Sub(start)
	close(stop)
	<-probe
	b.StopTimer()
	b.ReportMetric(float64(moved.Milliseconds()), "all-moved-ms")
	b.ReportMetric(float64((moved - detected).Milliseconds()), "moving-ms")
	b.ReportMetric(float64(time.Duration(maxWrite.Load()).Milliseconds()), "max-write-ms")
	b.ReportMetric(float64(fol.Counters().LeaseLapses-lapses), "follower-lapses")
}

// BenchmarkFailoverWide: 100 in-memory nodes (default timeouts), one
// actor on each, then one node killed (a follower, or the leader). For 3 s
// from the kill, every healthy node's Owns of its own actor is sampled
// every 10 ms. Reported: the healthy nodes that refused at least once
// (nodes-refusing: ErrNoLease makes their callers wait, so with a
// deadline a call may fail), how long they refused (first to last
// refusal seen: median and longest over the nodes; last-refusal-ms from
// the kill), and the lease lapses on the healthy nodes. Issue 14 measured 57 of 99 refusing after a follower's
// failure. Run with -benchtime=1x.
func BenchmarkFailoverWide(b *testing.B) {
	for _, who := range []string{"follower", "leader"} {
		b.Run("kill="+who, func(b *testing.B) {
			for range b.N {
				failoverWide(b, who == "leader")
			}
		})
	}
}

func failoverWide(b *testing.B, leader bool) {
	const n = 100
	c := placementtest.New(b, placementtest.Config{Nodes: n})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := c.WaitLeader()
	ids := make([]string, n)
	epochs := make([]uint64, n)
	for i := range n {
		p, err := c.Reg(l).Spawn(ctx, placement.SpawnRequest{ID: fmt.Sprint("w", i), Type: "T", Strategy: placement.OnNode, Node: c.Node(i).ID})
		if err != nil {
			b.Fatal(err)
		}
		ids[i], epochs[i] = p.ID, p.Epoch
	}
	for i := range n {
		if _, err := c.Reg(i).WaitOwns(ctx, ids[i], epochs[i]); err != nil {
			b.Fatal(err)
		}
	}
	kill := (l + 1) % n
	if leader {
		kill = l
	}
	var lapses uint64
	for i := range n {
		if i != kill {
			lapses -= c.Reg(i).Counters().LeaseLapses
		}
	}
	b.ResetTimer()
	c.Kill(kill)
	start := time.Now()
	first := make([]time.Duration, n) // per node: first and last refusal seen, from the kill
	last := make([]time.Duration, n)
	samples := 0
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for time.Since(start) < 3*time.Second {
		for i := range n {
			if i == kill {
				continue
			}
			if _, err := c.Reg(i).Owns(ids[i], epochs[i]); err != nil {
				at := time.Since(start)
				if first[i] == 0 {
					first[i] = at
				}
				last[i] = at
			}
		}
		samples++
		<-tick.C
	}
	b.StopTimer()
	nodes := 0
	var gaps []time.Duration
	for i := range n {
		if first[i] > 0 {
			nodes++
			gaps = append(gaps, last[i]-first[i])
		}
		if i != kill {
			lapses += c.Reg(i).Counters().LeaseLapses
		}
	}
	slices.Sort(gaps)
	b.ReportMetric(float64(nodes), "nodes-refusing")
	b.ReportMetric(float64(lapses), "lapses")
	b.ReportMetric(float64(samples), "sample-rounds")
	if len(gaps) > 0 {
		b.ReportMetric(float64(gaps[len(gaps)/2].Milliseconds()), "p50-refusing-ms")
		b.ReportMetric(float64(gaps[len(gaps)-1].Milliseconds()), "max-refusing-ms")
		b.ReportMetric(float64(slices.Max(last).Milliseconds()), "last-refusal-ms")
	}
}

// BenchmarkRestartServing: a 3-node durable cluster (raft-boltdb, default
// timeouts), actors=N on n3, a snapshot on n3, n3 killed and started
// again at once from its DataDir. Reported: the time from the start of
// the restart to New returning (new-ms: the snapshot restored), to n3
// rejoined (joined-ms), and to n3 serving its last actor again at the same
// epoch (serving-ms: lease and replica caught up). Issue 14's target is
// serving within 1 s at 1 M entries. Run with -benchtime=1x.
func BenchmarkRestartServing(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprint("actors=", n, "/"), func(b *testing.B) {
			for range b.N {
				restartServing(b, n)
			}
		})
	}
}

func restartServing(b *testing.B, n int) {
	c := placementtest.New(b, placementtest.Config{Durable: true})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	lead := c.Reg(c.WaitLeader())
	t0 := time.Now()
	spawnMany(ctx, b, lead, n, "r", placement.RestartPolicy{})
	b.Logf("%d spawns in %v", n, time.Since(t0))
	lastID := fmt.Sprintf("r%07d", n-1)
	last, _ := lead.Lookup(lastID)
	if _, err := c.Reg(2).WaitOwns(ctx, lastID, last.Epoch); err != nil {
		b.Fatal(err)
	}
	if err := c.Reg(2).Snapshot(ctx); err != nil {
		b.Fatal(err)
	}
	c.Kill(2)
	defer cpuProfile(b, "RESTART_PROFILE")()
	b.ResetTimer()
	start := time.Now()
	if err := c.Launch(2); err != nil {
		b.Fatal(err)
	}
	launched := time.Since(start)
	b.Logf("New returned after %v", launched)
	r := c.Reg(2)
	if err := r.WaitJoined(ctx); err != nil {
		b.Fatal(err)
	}
	joined := time.Since(start)
	p, err := r.WaitOwns(ctx, lastID, last.Epoch)
	if err != nil {
		b.Fatal(err)
	}
	serving := time.Since(start)
	b.StopTimer()
	if p.Epoch != last.Epoch {
		b.Fatalf("%s came back at epoch %d, was %d: moved while n3 restarted", lastID, p.Epoch, last.Epoch)
	}
	b.ReportMetric(float64(launched.Milliseconds()), "new-ms")
	b.ReportMetric(float64(joined.Milliseconds()), "joined-ms")
	b.ReportMetric(float64(serving.Milliseconds()), "serving-ms")
}

// spawnMany spawns n actors named prefix%07d on n3 through reg, from 256
// goroutines, and fails b on the first error.
func spawnMany(ctx context.Context, b *testing.B, reg *placement.Registry, n int, prefix string, policy placement.RestartPolicy) {
	spawnEach(ctx, b, reg, n, 256, func(i int) placement.SpawnRequest {
		return placement.SpawnRequest{ID: fmt.Sprintf("%s%07d", prefix, i), Type: "T", Strategy: placement.OnNode, Node: "n3", Policy: policy}
	})
}

// spawnEach spawns req(0) … req(n-1) through reg from the given number of
// goroutines, and fails b on the first error.
func spawnEach(ctx context.Context, b *testing.B, reg *placement.Registry, n, spawners int, req func(i int) placement.SpawnRequest) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, spawners)
	for range spawners {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if _, err := reg.Spawn(ctx, req(int(i))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// cpuProfile starts a CPU profile into the file named by environment
// variable env, if set, and returns what stops it.
func cpuProfile(b *testing.B, env string) (stop func()) {
	f := os.Getenv(env)
	if f == "" {
		return func() {}
	}
	pf, err := os.Create(f)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(pf); err != nil {
		pf.Close()
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		pf.Close()
	}
}
