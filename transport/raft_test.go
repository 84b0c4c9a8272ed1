package transport

import (
	"fmt"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"
)

// raftCluster is a set of in-process hashicorp/raft nodes with in-memory
// stores, one per stream layer.
type raftCluster struct {
	t      *testing.T
	rafts  []*raft.Raft
	trans  []*raft.NetworkTransport
	events chan raft.Observation
	obs    []*raft.Observer
}

// startRaft bootstraps one voter per layer and returns once they run.
func startRaft(t *testing.T, ids []string, layers []raft.StreamLayer) *raftCluster {
	t.Helper()
	c := &raftCluster{t: t, events: make(chan raft.Observation, 1024)}
	var servers []raft.Server
	for i, l := range layers {
		servers = append(servers, raft.Server{
			Suffrage: raft.Voter,
			ID:       raft.ServerID(ids[i]),
			Address:  raft.ServerAddress(l.Addr().String()),
		})
	}
	for i, l := range layers {
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(ids[i])
		conf.HeartbeatTimeout = 300 * time.Millisecond
		conf.ElectionTimeout = 300 * time.Millisecond
		conf.LeaderLeaseTimeout = 150 * time.Millisecond
		conf.CommitTimeout = 10 * time.Millisecond
		conf.LogOutput = io.Discard
		store := raft.NewInmemStore()
		snaps := raft.NewInmemSnapshotStore()
		tr := raft.NewNetworkTransport(l, 3, 2*time.Second, io.Discard)
		if err := raft.BootstrapCluster(conf, store, store, snaps, tr, raft.Configuration{Servers: servers}); err != nil {
			t.Fatal(err)
		}
		r, err := raft.NewRaft(conf, &nopFSM{}, store, store, snaps, tr)
		if err != nil {
			t.Fatal(err)
		}
		ob := raft.NewObserver(c.events, false, func(o *raft.Observation) bool {
			_, ok := o.Data.(raft.LeaderObservation)
			return ok
		})
		r.RegisterObserver(ob)
		c.rafts = append(c.rafts, r)
		c.trans = append(c.trans, tr)
		c.obs = append(c.obs, ob)
	}
	return c
}

// leader waits until every node in among agrees on one leader that is
// itself in among, and returns its index. It waits on leader observations,
// checking the state at each.
func (c *raftCluster) leader(d time.Duration, among ...int) int {
	c.t.Helper()
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		if i, ok := c.agreedLeader(among); ok {
			return i
		}
		select {
		case <-c.events:
		case <-timeout.C:
			var states []string
			for _, r := range c.rafts {
				addr, id := r.LeaderWithID()
				states = append(states, fmt.Sprintf("%v(leader %s@%s)", r.State(), id, addr))
			}
			c.t.Fatalf("no agreed leader after %v: %v", d, states)
		}
	}
}

func (c *raftCluster) agreedLeader(among []int) (int, bool) {
	leader := -1
	var id raft.ServerID
	for _, i := range among {
		if c.rafts[i].State() == raft.Leader {
			if leader >= 0 {
				return 0, false
			}
			leader = i
			_, id = c.rafts[i].LeaderWithID()
		}
	}
	if leader < 0 {
		return 0, false
	}
	for _, i := range among {
		if _, lid := c.rafts[i].LeaderWithID(); lid != id {
			return 0, false
		}
	}
	return leader, true
}

// apply commits one entry through the leader, proving replication works.
func (c *raftCluster) apply(leader int) {
	c.t.Helper()
	if err := c.rafts[leader].Apply([]byte("x"), 5*time.Second).Error(); err != nil {
		c.t.Fatalf("apply: %v", err)
	}
}

func (c *raftCluster) shutdown() {
	for i, r := range c.rafts {
		r.DeregisterObserver(c.obs[i])
		if err := r.Shutdown().Error(); err != nil {
			c.t.Errorf("raft shutdown: %v", err)
		}
		c.trans[i].CloseStreams()
		c.trans[i].Close()
	}
}

type nopFSM struct{}

func (*nopFSM) Apply(*raft.Log) any                 { return nil }
func (*nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnapshot{}, nil }
func (*nopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type nopSnapshot struct{}

func (nopSnapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }
func (nopSnapshot) Release()                             {}

// TestRaftOverMem forms a three-node Raft cluster over Mem stream layers,
// isolates the leader and checks that the other two elect a new one, then
// heals and checks that the old leader rejoins as a follower.
func TestRaftOverMem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := NewMemNetwork()
		ids := []string{"n1", "n2", "n3"}
		ms := mustJoin(t, nw, ids...)
		layers := []raft.StreamLayer{ms[0].StreamLayer(), ms[1].StreamLayer(), ms[2].StreamLayer()}
		c := startRaft(t, ids, layers)
		defer func() {
			c.shutdown()
			for _, m := range ms {
				m.Close()
			}
		}()
		first := c.leader(10*time.Second, 0, 1, 2)
		c.apply(first)

		nw.Isolate(ids[first])
		var rest []int
		for i := range ids {
			if i != first {
				rest = append(rest, i)
			}
		}
		second := c.leader(10*time.Second, rest...)
		if second == first {
			t.Fatal("isolated leader still leads")
		}
		c.apply(second)

		nw.HealAll()
		third := c.leader(10*time.Second, 0, 1, 2)
		c.apply(third)
	})
}
