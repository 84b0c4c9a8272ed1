package placement_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/placement/placementtest"
)

// spawnOnEach places per actors on every node, pinned, restartable without
// limit, and returns their ids.
func spawnOnEach(t *testing.T, c *placementtest.Cluster, per int) []string {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	var ids []string
	for i := range c.Len() {
		for k := range per {
			id := fmt.Sprintf("%s-a%d", c.Node(i).ID, k)
			_, err := c.Reg(0).Spawn(ctx, placement.SpawnRequest{ID: id, Type: "T", Strategy: placement.OnNode, Node: c.Node(i).ID, Policy: placement.RestartPolicy{MaxRestarts: -1}})
			if err != nil {
				t.Fatalf("spawn %s: %v", id, err)
			}
			ids = append(ids, id)
		}
	}
	return ids
}

// monitor samples Owns on every running node for every id, as fast as it
// can, and counts instants at which two nodes would serve one actor.
type monitor struct {
	violations atomic.Int64
	samples    atomic.Int64
	served     sync.Map // node id -> true once it served something
	stop       chan struct{}
	done       chan struct{}
	last       atomic.Value
	once       sync.Once
}

func startMonitor(t *testing.T, c *placementtest.Cluster, ids []string) *monitor {
	m := &monitor{stop: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(m.halt) // also when the test fails before finish
	go func() {
		defer close(m.done)
		for {
			select {
			case <-m.stop:
				return
			default:
			}
			for _, id := range ids {
				var owner placement.Placement
				var ownerReg *placement.Registry
				for i := range c.Len() {
					r := c.Reg(i)
					if r == nil {
						continue
					}
					if p, err := r.Owns(id, 0); err == nil {
						m.served.Store(r.ID(), true)
						if ownerReg != nil {
							m.violations.Add(1)
							m.last.Store(fmt.Sprintf("%s served by %s (%+v, applied %d, leader %q) and %s (%+v, applied %d, leader %q)",
								id, ownerReg.ID(), owner, ownerReg.AppliedIndex(), ownerReg.Leader(), r.ID(), p, r.AppliedIndex(), r.Leader()))
						}
						owner, ownerReg = p, r
					}
				}
			}
			m.samples.Add(1)
		}
	}()
	return m
}

func (m *monitor) halt() {
	m.once.Do(func() { close(m.stop) })
	<-m.done
}

func (m *monitor) finish(t *testing.T) {
	t.Helper()
	m.halt()
	if v := m.violations.Load(); v > 0 {
		t.Fatalf("single activation violated %d times, e.g. %v", v, m.last.Load())
	}
	t.Logf("monitor: %d sweeps, no double activation", m.samples.Load())
}

func TestLeaderLoss(t *testing.T) {
	c := placementtest.NewCluster(t, 3)
	ids := spawnOnEach(t, c, 2)
	old := c.WaitLeader()
	oldID := c.Node(old).ID
	c.Kill(old)
	var alive []int
	for i := range 3 {
		if i != old {
			alive = append(alive, i)
		}
	}
	nl := c.WaitLeader(alive...)
	for _, id := range ids {
		p := waitLookup(t, c, alive[0], id, func(p placement.Placement) bool { return p.Node != oldID })
		if p.State != placement.Active || p.Restarts != map[bool]int{true: 1, false: 0}[id[:2] == oldID] {
			t.Fatalf("%s after leader loss: %+v", id, p)
		}
	}
	if mb, _ := c.Reg(nl).Member(oldID); mb.Status != placement.Failed {
		t.Fatalf("old leader %s = %+v, want failed", oldID, mb)
	}
	ctx := ctxT(t, 10*time.Second)
	if _, err := c.Reg(alive[0]).Spawn(ctx, placement.SpawnRequest{Type: "T"}); err != nil {
		t.Fatalf("spawn after failover: %v", err)
	}
}

func TestMinorityPartitionAndHeal(t *testing.T) {
	for _, who := range []string{"follower", "leader"} {
		t.Run(who, func(t *testing.T) {
			c := placementtest.NewCluster(t, 3)
			ids := spawnOnEach(t, c, 2)
			l := c.WaitLeader()
			cut := (l + 1) % 3
			if who == "leader" {
				cut = l
			}
			cutID := c.Node(cut).ID
			var maj []int
			for i := range 3 {
				if i != cut {
					maj = append(maj, i)
				}
			}
			cutReg := c.Reg(cut)
			c.Eventually(5*time.Second, "leases everywhere", func() bool {
				return c.Reg(0).HasLease() && c.Reg(1).HasLease() && c.Reg(2).HasLease()
			})
			m := startMonitor(t, c, ids)
			c.Eventually(5*time.Second, "the monitor to see "+cutID+" serve", func() bool {
				_, ok := m.served.Load(cutID)
				return ok
			})

			c.Isolate(cut)
			// The majority re-places the cut node's actors; by then the cut
			// node must have stopped serving.
			mine := cutID + "-a0"
			var leaseLost atomic.Bool
			c.Eventually(10*time.Second, "majority to re-place "+mine, func() bool {
				if !cutReg.HasLease() {
					leaseLost.Store(true)
				}
				p, _ := c.Reg(maj[0]).Lookup(mine)
				return p.Node != cutID && p.Node != ""
			})
			if !leaseLost.Load() || cutReg.HasLease() {
				t.Fatalf("%s still held its lease when its actors were re-placed", cutID)
			}
			if _, err := cutReg.Owns(mine, 0); err == nil {
				t.Fatalf("cut node still serves %s", mine)
			}
			p, _ := c.Reg(maj[0]).Lookup(mine)
			c.Eventually(5*time.Second, "new owner to serve "+mine, func() bool {
				_, err := c.Reg(c.Index(p.Node)).Owns(mine, p.Epoch)
				return err == nil
			})

			c.HealAll()
			// hashicorp/raft backs off replication to a peer that failed for
			// long (up to ~10s), so catching up may take a while.
			err := placementtest.Wait(20*time.Second, func() bool {
				q, _ := cutReg.Lookup(mine)
				mb, _ := c.Reg(maj[0]).Member(cutID)
				return q.Epoch == p.Epoch && mb.Status == placement.Alive && cutReg.HasLease()
			})
			if err != nil {
				q, _ := cutReg.Lookup(mine)
				mb, _ := c.Reg(maj[0]).Member(cutID)
				t.Fatalf("%s after heal: %v; sees %+v (want epoch %d), applied %d vs %d, leader %q, member %+v, lease %v",
					cutID, err, q, p.Epoch, cutReg.AppliedIndex(), c.Reg(maj[0]).AppliedIndex(), cutReg.Leader(), mb, cutReg.HasLease())
			}
			if _, err := cutReg.Owns(mine, 0); err == nil {
				t.Fatalf("healed node serves %s, which moved away", mine)
			}
			m.finish(t)
		})
	}
}

// After a leader change in a quiet cluster (the new term's last entry is a
// no-op the FSM never sees), every node must hold a lease again.
func TestLeasesAfterQuietLeaderChange(t *testing.T) {
	c := placementtest.NewCluster(t, 3)
	old := c.WaitLeader()
	c.Isolate(old)
	var others []int
	for i := range 3 {
		if i != old {
			others = append(others, i)
		}
	}
	c.WaitLeader(others...)
	c.HealAll()
	c.Eventually(10*time.Second, "every node to hold a lease", func() bool {
		return c.Reg(0).HasLease() && c.Reg(1).HasLease() && c.Reg(2).HasLease()
	})
}
