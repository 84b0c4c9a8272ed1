package placementtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/placement/placementtest"
)

func TestClusterFaults(t *testing.T) {
	c := placementtest.NewCluster(t, 3)
	l := c.WaitLeader()
	if c.Len() != 3 || c.Index(c.Node(l).ID) != l {
		t.Fatalf("len %d, index of leader %d", c.Len(), c.Index(c.Node(l).ID))
	}
	f := (l + 1) % 3
	c.Eventually(5*time.Second, "a lease on the follower", c.Reg(f).HasLease)
	c.Partition(f)
	c.Eventually(5*time.Second, "the cut follower to lose its lease", func() bool { return !c.Reg(f).HasLease() })
	c.HealAll()
	c.Eventually(5*time.Second, "the lease back", c.Reg(f).HasLease)

	c.Kill(f)
	if c.Reg(f) != nil {
		t.Fatal("killed node still has a registry")
	}
	if err := c.Restart(f); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if err := c.Restart(f); err == nil {
		t.Fatal("restarting a running node succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := c.Reg(f).Spawn(ctx, placement.SpawnRequest{ID: "a", Type: "T", Strategy: placement.Local})
	if err != nil || p.Node != c.Node(f).ID {
		t.Fatalf("spawn on the restarted node = %+v, %v", p, err)
	}
	if err := placementtest.Wait(10*time.Millisecond, func() bool { return false }); err == nil {
		t.Fatal("Wait of a false condition returned nil")
	}
}
