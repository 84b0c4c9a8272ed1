package placement

import (
	"context"
	"fmt"
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
	return regs
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIdle measures the process CPU of an idle in-memory cluster of
// 20 nodes (Raft's AppendEntries every 1–2 × CommitTimeout and heartbeats,
// the registry's lease pings) over 3 s, per node per second, and the
// latency of sequential spawns from a follower through to its own replica
// (what Node.Spawn waits for), by CommitTimeout.
func BenchmarkIdle(b *testing.B) {
	for _, ct := range []time.Duration{5 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond} {
		b.Run(fmt.Sprint("commit=", ct), func(b *testing.B) {
			const n = 20
			regs := startMem(b, n, func(_ int, c *Config) { c.commitTimeout = ct })
			ctx := context.Background()
			for range b.N {
				start, c0 := time.Now(), cpuTime()
				<-time.After(3 * time.Second) // measuring idle: nothing to wait for
				used := cpuTime() - c0
				b.ReportMetric(float64(used.Microseconds())/1000/n/time.Since(start).Seconds(), "cpu-ms/node/s")
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
