package placementtest

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/transport"
)

// Config shapes a test cluster. The zero value is valid.
type Config struct {
	// Nodes is the number of nodes, named n1, n2, ... Zero means 3.
	Nodes int
	// Types are hosted by every node. Nil means []string{"T"}.
	Types []string
	// Durable gives each node a DataDir under t.TempDir(). False means
	// in-memory Raft stores.
	Durable bool
	// Registry is the template for every node's placement.Config; its
	// Transport, DataDir, Join and Types are set per node.
	Registry placement.Config
}

// Cluster is a running test cluster.
type Cluster struct {
	t     testing.TB
	cfg   Config
	Net   *transport.MemNetwork
	dir   string
	mu    sync.Mutex
	nodes []*Node
}

// Node is one member of a Cluster. Reg is nil while the node is killed.
type Node struct {
	ID      string
	Reg     *placement.Registry
	Tr      *transport.Mem
	DataDir string
}

// NewCluster starts n nodes hosting type "T" with in-memory stores; n1
// bootstraps and the others join it. The cluster is closed by t.Cleanup.
func NewCluster(t testing.TB, n int) *Cluster {
	return New(t, Config{Nodes: n})
}

// New starts a cluster shaped by cfg.
func New(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	if cfg.Nodes <= 0 {
		cfg.Nodes = 3
	}
	if cfg.Types == nil {
		cfg.Types = []string{"T"}
	}
	c := &Cluster{t: t, cfg: cfg, Net: transport.NewMemNetwork()}
	if cfg.Durable {
		c.dir = t.TempDir()
	}
	t.Cleanup(c.Close)
	for i := range cfg.Nodes {
		nd := &Node{ID: fmt.Sprintf("n%d", i+1)}
		if c.dir != "" {
			nd.DataDir = filepath.Join(c.dir, nd.ID)
		}
		c.nodes = append(c.nodes, nd)
		if err := c.start(nd, i > 0); err != nil {
			t.Fatalf("placementtest: start %s: %v", nd.ID, err)
		}
	}
	c.Settle()
	return c
}

// Settle waits until every live replica has applied what the most
// advanced one has. New settles the cluster it starts: a join is
// committed once the leader and the joiner have it, and a leader cut off
// before a third voter received the entry adding the joiner leaves two
// voters that cannot elect each other (docs/placement.md, "Losing the
// leader during a join"); a test of failover must not start in that
// window unless it means to.
func (c *Cluster) Settle() {
	c.t.Helper()
	var regs []*placement.Registry
	var target uint64
	c.mu.Lock()
	for _, nd := range c.nodes {
		if nd.Reg != nil {
			regs = append(regs, nd.Reg)
			target = max(target, nd.Reg.AppliedIndex())
		}
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, r := range regs {
		if err := r.WaitApplied(ctx, target); err != nil {
			c.t.Fatalf("placementtest: %s never applied the cluster's formation (index %d): %v", r.ID(), target, err)
		}
	}
}

func (c *Cluster) start(nd *Node, join bool) error {
	tr, err := c.Net.Join(nd.ID)
	if err != nil {
		return err
	}
	rc := c.cfg.Registry
	rc.Transport = tr
	rc.DataDir = nd.DataDir
	rc.Types = c.cfg.Types
	rc.Join = nil
	if join {
		for _, o := range c.nodes {
			if o != nd {
				rc.Join = append(rc.Join, transport.MemAddrPrefix+o.ID)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg, err := placement.New(ctx, rc)
	if err != nil {
		tr.Close()
		return err
	}
	c.mu.Lock()
	nd.Reg, nd.Tr = reg, tr
	c.mu.Unlock()
	return nil
}

// Len is the number of nodes, alive or killed.
func (c *Cluster) Len() int { return len(c.nodes) }

// Node returns node i (0-based). Its Reg and Tr change on Kill and
// Restart; read them through Reg while other goroutines may do that.
func (c *Cluster) Node(i int) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// Reg returns node i's registry (nil while killed).
func (c *Cluster) Reg(i int) *placement.Registry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].Reg
}

// Index returns the index of the node with id, or -1.
func (c *Cluster) Index(id string) int {
	for i, nd := range c.nodes {
		if nd.ID == id {
			return i
		}
	}
	return -1
}

// Leader returns the index of a running node that believes it leads, or -1.
func (c *Cluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, nd := range c.nodes {
		if nd.Reg != nil && nd.Reg.IsLeader() {
			return i
		}
	}
	return -1
}

// WaitLeader waits until some running node in want (all if empty) leads
// and returns its index.
func (c *Cluster) WaitLeader(want ...int) int {
	c.t.Helper()
	l := -1
	c.Eventually(10*time.Second, "a leader", func() bool {
		if len(want) == 0 {
			l = c.Leader()
			return l >= 0
		}
		for _, i := range want {
			if r := c.Reg(i); r != nil && r.IsLeader() {
				l = i
				return true
			}
		}
		return false
	})
	return l
}

// Isolate cuts node i off from every other node.
func (c *Cluster) Isolate(i int) { c.Net.Isolate(c.nodes[i].ID) }

// Partition cuts every link between the nodes of side and the others.
func (c *Cluster) Partition(side ...int) {
	in := make(map[int]bool)
	for _, i := range side {
		in[i] = true
	}
	for i := range c.nodes {
		for j := range c.nodes {
			if in[i] && !in[j] {
				c.Net.Partition(c.nodes[i].ID, c.nodes[j].ID)
			}
		}
	}
}

// HealAll removes every fault.
func (c *Cluster) HealAll() { c.Net.HealAll() }

// Kill closes node i abruptly: its registry and its transport.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	nd := c.nodes[i]
	reg, tr := nd.Reg, nd.Tr
	nd.Reg, nd.Tr = nil, nil
	c.mu.Unlock()
	if reg != nil {
		reg.Close()
	}
	if tr != nil {
		tr.Close()
	}
}

// Restart starts a killed node i again with the same id and DataDir,
// joining through the other nodes, and returns once it has rejoined (a
// durable node's placement.New returns before that: see Launch).
func (c *Cluster) Restart(i int) error {
	nd := c.Node(i)
	if nd.Reg != nil {
		return fmt.Errorf("placementtest: %s is running", nd.ID)
	}
	if err := c.start(nd, true); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Reg(i).WaitJoined(ctx); err != nil {
		c.Kill(i)
		return fmt.Errorf("placementtest: %s rejoin: %w", nd.ID, err)
	}
	return nil
}

// Launch starts a killed node i again like Restart, but returns as soon as
// placement.New does: a node restarted from its DataDir runs before its
// peers are back (WaitJoined waits for its rejoin).
func (c *Cluster) Launch(i int) error {
	nd := c.Node(i)
	if nd.Reg != nil {
		return fmt.Errorf("placementtest: %s is running", nd.ID)
	}
	return c.start(nd, true)
}

// Close kills every node.
func (c *Cluster) Close() {
	for i := range c.nodes {
		c.Kill(i)
	}
}

// Eventually polls cond every 5ms until it holds, failing the test after
// timeout. It is the bounded wait for conditions that have no event to
// wait on (Raft runs on real timers).
func (c *Cluster) Eventually(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	if err := Wait(timeout, cond); err != nil {
		c.t.Fatalf("placementtest: waiting for %s: %v", what, err)
	}
}

// Wait polls cond every 5ms until it holds or timeout passes.
func Wait(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", timeout)
		}
		<-t.C
	}
	return nil
}
