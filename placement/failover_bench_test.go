package placement_test

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
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
	const spawners = 256
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, spawners)
	for range spawners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if _, err := lead.Spawn(ctx, placement.SpawnRequest{ID: fmt.Sprintf("f%07d", i), Type: "T",
					Strategy: placement.OnNode, Node: "n3", Policy: placement.RestartPolicy{MaxRestarts: -1}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	lastID := fmt.Sprintf("f%07d", n-1)
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
	if f := os.Getenv("FAILOVER_PROFILE"); f != "" {
		pf, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
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
