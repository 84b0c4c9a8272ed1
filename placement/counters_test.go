package placement_test

import (
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/placement/placementtest"
)

// TestCounters: leader elections, lease renewals and lapses, and actors
// by state are counted as they happen.
func TestCounters(t *testing.T) {
	c := placementtest.New(t, placementtest.Config{Nodes: 3})
	ctx := ctxT(t, 30*time.Second)
	l := c.WaitLeader()
	for i := range 3 {
		if err := c.Reg(i).WaitLease(ctx); err != nil {
			t.Fatal(err)
		}
		k := c.Reg(i).Counters()
		if k.LeaderChanges < 1 || k.LeaseRenewals < 1 || k.LeaseLapses != 0 {
			t.Fatalf("node %d counters after start: %+v", i, k)
		}
	}
	for _, id := range []string{"a", "b", "c"} {
		if _, err := c.Reg(l).Spawn(ctx, placement.SpawnRequest{ID: id, Type: "T"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Reg(l).Stop(ctx, "b", "test"); err != nil {
		t.Fatal(err)
	}
	if k := c.Reg(l).Counters(); k.Active != 2 || k.Stopped != 1 {
		t.Fatalf("leader's actors by state: %+v, want 2 active, 1 stopped", k)
	}
	// A follower cut off loses its lease: one lapse, counted once.
	f := (l + 1) % 3
	before := c.Reg(f).Counters()
	c.Isolate(f)
	c.Eventually(10*time.Second, "the isolated follower's lease to lapse", func() bool {
		return c.Reg(f).Counters().LeaseLapses == before.LeaseLapses+1
	})
	c.HealAll()
	if err := c.Reg(f).WaitLease(ctx); err != nil {
		t.Fatal(err)
	}
	if k := c.Reg(f).Counters(); k.LeaseLapses != before.LeaseLapses+1 || k.LeaseRenewals <= before.LeaseRenewals {
		t.Fatalf("after the heal: %+v (before %+v)", k, before)
	}
}
