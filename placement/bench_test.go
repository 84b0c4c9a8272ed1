package placement_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/placement/placementtest"
	"github.com/troupe-dev/troupe/transport"
)

// quicCluster starts n registries in this process, each on its own QUIC
// transport on 127.0.0.1 with certificates from one dev CA.
func quicCluster(b testing.TB, n int, durable bool) []*placement.Registry {
	b.Helper()
	regs, _ := quicClusterTr(b, n, durable)
	return regs
}

// quicClusterT is quicCluster in memory, also returning the transports.
func quicClusterT(b testing.TB, n int) ([]*placement.Registry, []transport.Transport) {
	b.Helper()
	return quicClusterTr(b, n, false)
}

func quicClusterTr(b testing.TB, n int, durable bool) ([]*placement.Registry, []transport.Transport) {
	b.Helper()
	ca, err := transport.NewDevCA()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var regs []*placement.Registry
	var trs []transport.Transport
	var join []string
	for i := range n {
		id := fmt.Sprintf("q%d", i+1)
		ident, err := ca.Issue(id, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		q, err := transport.NewQUIC(transport.Config{Identity: ident})
		if err != nil {
			b.Fatal(err)
		}
		cfg := placement.Config{Transport: q, Join: join, Types: []string{"T"}}
		if durable {
			cfg.DataDir = filepath.Join(dir, id)
		}
		r, err := placement.New(ctx, cfg)
		if err != nil {
			q.Close()
			b.Fatal(err)
		}
		b.Cleanup(func() { r.Close(); q.Close() })
		regs = append(regs, r)
		trs = append(trs, q)
		join = append(join, q.Addr())
	}
	return regs, trs
}

// BenchmarkPlace measures placements per second: 3 nodes over QUIC in one
// process, 64 concurrent unnamed spawns issued round-robin from all nodes
// (two thirds are forwarded to the leader).
func BenchmarkPlace(b *testing.B) {
	for _, tc := range []struct {
		store   string
		workers int
	}{{"mem", 64}, {"bolt", 64}, {"mem", 1}, {"bolt", 1}} {
		store, workers := tc.store, tc.workers
		name := "store=" + store
		if workers != 64 {
			// One spawner on the leader: each spawn waits for the last.
			name += fmt.Sprint("/workers=", workers)
		}
		b.Run(name, func(b *testing.B) {
			regs := quicCluster(b, 3, store == "bolt")
			var next atomic.Int64
			var failed atomic.Int64
			ctx := context.Background()
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					r := regs[w%len(regs)]
					for next.Add(1) <= int64(b.N) {
						if _, err := r.Spawn(ctx, placement.SpawnRequest{Type: "T"}); err != nil {
							failed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if f := failed.Load(); f > 0 {
				b.Fatalf("%d spawns failed", f)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "places/s")
		})
	}
}

// BenchmarkLookup measures local directory reads on a non-leader.
func BenchmarkLookup(b *testing.B) {
	c := placementtest.NewCluster(b, 3)
	l := c.WaitLeader()
	f := c.Reg((l + 1) % 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 1024
	ids := make([]string, n)
	for i := range ids {
		p, err := c.Reg(l).Spawn(ctx, placement.SpawnRequest{ID: fmt.Sprint("L", i), Type: "T"})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = p.ID
	}
	c.Eventually(10*time.Second, "the follower to catch up", func() bool {
		_, ok := f.Lookup(ids[n-1])
		return ok
	})
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := f.Lookup(ids[i&(n-1)]); !ok {
				panic("lookup miss")
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

const debugFailover = false

// BenchmarkFailover measures, over 20 trials per victim kind, the time from
// a node's death (abrupt Close) to the moment a survivor's replica shows all
// of its actors placed elsewhere. Default timeouts: heartbeat 200ms, fail
// 800ms, lease 300ms. Run with -benchtime=1x.
func BenchmarkFailover(b *testing.B) {
	for _, victim := range []string{"follower", "leader"} {
		b.Run("victim="+victim, func(b *testing.B) {
			const trials, actors = 20, 5
			var times []time.Duration
			for range b.N {
				c := placementtest.NewCluster(b, 3)
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				for trial := range trials {
					l := c.WaitLeader()
					v := (l + 1) % 3
					if victim == "leader" {
						v = l
					}
					vid := c.Node(v).ID
					watch := (v + 1) % 3
					for k := range actors {
						_, err := c.Reg(watch).Spawn(ctx, placement.SpawnRequest{ID: fmt.Sprintf("t%d-%d", trial, k), Type: "T", Strategy: placement.OnNode, Node: vid, Policy: placement.RestartPolicy{MaxRestarts: -1}})
						if err != nil {
							b.Fatal(err)
						}
					}
					sub := c.Reg(watch).Subscribe()
					start := time.Now()
					c.Kill(v)
					moved := 0
					var failedAt time.Duration
					for moved < actors {
						e, err := sub.Next(ctx)
						if err != nil {
							b.Fatal(err)
						}
						if e.Kind == placement.MemberFailed {
							failedAt = time.Since(start)
						}
						if e.Kind == placement.ActorReplaced && e.Prev.Node == vid {
							moved++
						}
					}
					times = append(times, time.Since(start))
					if debugFailover {
						b.Logf("trial %d: failed at %v, moved at %v, leader now %s", trial, failedAt, times[len(times)-1], c.Reg(watch).Leader())
					}
					sub.Close()
					if err := c.Restart(v); err != nil {
						b.Fatal(err)
					}
					c.Eventually(10*time.Second, vid+" alive again", func() bool {
						mb, _ := c.Reg(watch).Member(vid)
						return mb.Status == placement.Alive && c.Reg(v).HasLease()
					})
				}
				cancel()
				c.Close()
			}
			slices.Sort(times)
			q := func(p float64) float64 { // nearest rank: p99 of 20 is the largest
				k := int(math.Ceil(p*float64(len(times)))) - 1
				return float64(times[k].Microseconds()) / 1000
			}
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
		})
	}
}

// BenchmarkOwns measures Owns on the owner of 1024 actors, the check on the
// path of every incoming call (no fence set: see TestMoveIsFenced for the
// fenced path, also allocation-free).
func BenchmarkOwns(b *testing.B) {
	c := placementtest.NewCluster(b, 3)
	l := c.WaitLeader()
	f := c.Reg((l + 1) % 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 1024
	ids := make([]string, n)
	for i := range ids {
		p, err := c.Reg(l).Spawn(ctx, placement.SpawnRequest{ID: fmt.Sprint("O", i), Type: "T", Strategy: placement.OnNode, Node: f.ID()})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = p.ID
	}
	c.Eventually(10*time.Second, "the owner to serve", func() bool {
		_, err := f.Owns(ids[n-1], 0)
		return err == nil
	})
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_, _ = f.Owns(ids[i&(n-1)], 0)
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "owns/s")
}
