package placement_test

import (
	"context"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/placement/placementtest"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitLookup waits until node i's replica shows id matching cond.
func waitLookup(t *testing.T, c *placementtest.Cluster, i int, id string, cond func(placement.Placement) bool) placement.Placement {
	t.Helper()
	var p placement.Placement
	c.Eventually(10*time.Second, "replica "+c.Node(i).ID+" to show "+id, func() bool {
		var ok bool
		p, ok = c.Reg(i).Lookup(id)
		return ok && cond(p)
	})
	return p
}

func TestSpawnFromFollowerVisibleEverywhere(t *testing.T) {
	c := placementtest.NewCluster(t, 3)
	ctx := ctxT(t, 20*time.Second)
	l := c.WaitLeader()
	f := (l + 1) % 3
	p, err := c.Reg(f).Spawn(ctx, placement.SpawnRequest{ID: "counter", Type: "T", Strategy: placement.Local})
	if err != nil {
		t.Fatalf("spawn: %v", err)
	}
	if p.Node != c.Node(f).ID || p.Epoch == 0 || p.State != placement.Active {
		t.Fatalf("placement = %+v, want active on %s", p, c.Node(f).ID)
	}
	for i := range 3 {
		got := waitLookup(t, c, i, "counter", func(q placement.Placement) bool { return q.Epoch == p.Epoch })
		if got != p {
			t.Fatalf("node %d sees %+v, want %+v", i, got, p)
		}
	}
	// Get-if-exists from another node returns the same actor.
	q, err := c.Reg(l).Spawn(ctx, placement.SpawnRequest{ID: "counter", Type: "T"})
	if err != nil || q != p {
		t.Fatalf("second spawn = %+v, %v; want %+v", q, err, p)
	}
	if ms := c.Reg(f).Members(); len(ms) != 3 {
		t.Fatalf("members = %+v", ms)
	}
}
