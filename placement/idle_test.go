package placement

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/transport"
)

// startMem starts n registries on one in-memory network, n1 bootstrapping
// and the others joining it; mod adjusts each Config.
func startMem(tb testing.TB, n int, mod func(i int, cfg *Config)) []*Registry {
	tb.Helper()
	return startMemOn(tb, transport.NewMemNetwork(), n, mod)
}

// startMemOn is startMem on a given network (to inject faults).
func startMemOn(tb testing.TB, net *transport.MemNetwork, n int, mod func(i int, cfg *Config)) []*Registry {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var regs []*Registry
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		tr, err := net.Join(id)
		if err != nil {
			tb.Fatal(err)
		}
		cfg := Config{Transport: tr, Types: []string{"T"}}
		if i > 0 {
			cfg.Join = []string{transport.MemAddrPrefix + "n1"}
		}
		if mod != nil {
			mod(i, &cfg)
		}
		r, err := New(ctx, cfg)
		if err != nil {
			tr.Close()
			tb.Fatal(err)
		}
		tb.Cleanup(func() { r.Close(); tr.Close() })
		regs = append(regs, r)
	}
	settle(tb, ctx, regs)
	return regs
}

// settle waits until every replica has applied what the most advanced one
// has (see placementtest.Cluster.Settle: a test that cuts the leader off
// right after start must not begin in the window of the last join).
func settle(tb testing.TB, ctx context.Context, regs []*Registry) {
	tb.Helper()
	var target uint64
	for _, r := range regs {
		target = max(target, r.AppliedIndex())
	}
	for _, r := range regs {
		if err := r.WaitApplied(ctx, target); err != nil {
			tb.Fatalf("%s never applied the cluster's formation (index %d): %v", r.id, target, err)
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIdle measures the process CPU of an idle in-memory cluster
// (Raft's heartbeats every HeartbeatTimeout/10 and AppendEntries every 1-2
// x CommitTimeout to every follower, the registry's lease pings and the
// leader's verify rounds) per node per second, then the latency of
// sequential spawns from a follower through to its own replica (what
// Node.Spawn waits for). Sub-benchmarks are the timeout profiles of
// docs/operations.md: "default" (the zero Config) and "large" (the one
// documented for clusters of ~100 nodes). -idle.nodes sets the size
// (20; the issue-14 target is at 100).
var (
	idleNodes   = flag.Int("idle.nodes", 20, "nodes in BenchmarkIdle")
	idleWindow  = flag.Duration("idle.window", 3*time.Second, "how long BenchmarkIdle measures the idle cluster")
	idleProfile = flag.String("idle.cpuprofile", "", "BenchmarkIdle writes a CPU profile of the idle window here")
)

func BenchmarkIdle(b *testing.B) {
	profiles := []struct {
		name      string
		heartbeat time.Duration
		fail      time.Duration
	}{
		{"default", 0, 0},
		{"large", time.Second, 4 * time.Second},
		{"xl", 2 * time.Second, 6 * time.Second},
	}
	for _, pr := range profiles {
		b.Run(fmt.Sprintf("timeouts=%s/nodes=%d", pr.name, *idleNodes), func(b *testing.B) {
			n := *idleNodes
			regs := startMem(b, n, func(_ int, c *Config) { c.HeartbeatTimeout, c.FailTimeout = pr.heartbeat, pr.fail })
			ctx := context.Background()
			for range b.N {
				stop := startIdleProfile(b)
				start, c0 := time.Now(), cpuTime()
				<-time.After(*idleWindow) // measuring idle: nothing to wait for
				used := cpuTime() - c0
				stop()
				b.ReportMetric(float64(used.Microseconds())/1000/float64(n)/time.Since(start).Seconds(), "cpu-ms/node/s")
				var f *Registry
				for _, r := range regs {
					if !r.IsLeader() {
						f = r
						break
					}
				}
				const spawns = 20
				t0 := time.Now()
				for range spawns {
					p, err := f.Spawn(ctx, SpawnRequest{Type: "T"})
					if err != nil {
						b.Fatal(err)
					}
					if err := f.WaitApplied(ctx, p.Epoch/maxBatch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(time.Since(t0).Microseconds())/1000/spawns, "follower-spawn-ms")
			}
		})
	}
}

func startIdleProfile(b *testing.B) func() {
	if *idleProfile == "" {
		return func() {}
	}
	f, err := os.Create(*idleProfile)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
