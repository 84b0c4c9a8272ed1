package placement_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/placement/placementtest"
)

// BenchmarkRegistryAtSize: a 3-node in-memory cluster (default timeouts,
// default SnapshotThreshold) registers N actors (REGISTRY_ACTORS, default
// 10 M; 1 024 concurrent spawners through the leader), every replica
// applies them and takes a snapshot, then the live heap is read after two
// collections. Reported: the heap per replica entry (the heap the cluster
// adds, over 3 × N: directory, Raft log and in-memory snapshots or
// raft-boltdb's buffers, sessions), the spawn rate, and the replicas'
// count check. store=mem keeps Raft's log and snapshots in memory;
// store=durable puts them in raft-boltdb and files under a DataDir. Issue
// 14's target: 10 M in one 24 GiB machine, ≤ 150 B per replica entry with
// either store. Run with -benchtime=1x (minutes at 10 M).
func BenchmarkRegistryAtSize(b *testing.B) {
	n := 10_000_000
	if s := os.Getenv("REGISTRY_ACTORS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("REGISTRY_ACTORS=%q", s)
		}
		n = v
	}
	for _, store := range []string{"mem", "durable"} {
		b.Run("store="+store, func(b *testing.B) {
			for range b.N {
				registryAtSize(b, n, store == "durable")
			}
		})
	}
}

func registryAtSize(b *testing.B, n int, durable bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := placementtest.New(b, placementtest.Config{Durable: durable})
	defer c.Close()
	lead := c.Reg(c.WaitLeader())
	b.ResetTimer()
	t0 := time.Now()
	spawnEach(ctx, b, lead, n, 1024, func(i int) placement.SpawnRequest {
		return placement.SpawnRequest{ID: fmt.Sprintf("z%08d", i), Type: "T", Policy: placement.RestartPolicy{MaxRestarts: -1}}
	})
	spawned := time.Since(t0)
	b.StopTimer()
	at := lead.AppliedIndex()
	for i := range c.Len() {
		r := c.Reg(i)
		if err := r.WaitApplied(ctx, at); err != nil {
			b.Fatal(err)
		}
		if got := r.Counters().Active; got != int64(n) {
			b.Fatalf("n%d holds %d actors, want %d", i+1, got, n)
		}
		if err := r.Snapshot(ctx); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if f := os.Getenv("REGISTRY_HEAP_PROFILE"); f != "" { // what the heap holds now
		pf, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(pf); err != nil {
			b.Fatal(err)
		}
		pf.Close()
	}
	perEntry := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(3*n)
	b.ReportMetric(perEntry, "B/replica-entry")
	b.ReportMetric(float64(n)/spawned.Seconds(), "spawns/s")
	b.ReportMetric(float64(after.HeapAlloc)/(1<<30), "heap-GiB")
	b.ReportMetric(float64(after.Sys)/(1<<30), "sys-GiB")
	runtime.KeepAlive(c)
}
