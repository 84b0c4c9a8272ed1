package placement_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/placement/placementtest"
)

// TestConcurrentSpawnsNeverStale: 2048 spawners on one node (a follower,
// so every spawn is forwarded and batched twice) never get "request too
// old to deduplicate" for a first attempt. Seqs are taken before the
// commands queue, so they reach the log out of order.
func TestConcurrentSpawnsNeverStale(t *testing.T) {
	if testing.Short() {
		t.Skip("2048 spawners")
	}
	c := placementtest.NewCluster(t, 3)
	l := c.WaitLeader()
	f := c.Reg((l + 1) % 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const spawners, each = 2048, 8
	var stale, other atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range spawners {
		wg.Go(func() {
			for range each {
				_, err := f.Spawn(ctx, placement.SpawnRequest{Type: "T"})
				switch {
				case errors.Is(err, placement.ErrStaleRequest):
					stale.Add(1)
				case err != nil:
					other.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	if n := stale.Load(); n > 0 {
		t.Errorf("%d of %d first-attempt spawns refused as too old", n, spawners*each)
	}
	if n := other.Load(); n > 0 {
		t.Errorf("%d spawns failed otherwise, first: %v", n, firstErr.Load())
	}
}
