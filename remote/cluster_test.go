package remote

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/troupe-dev/troupe/transport"
)

// fakeRegistry stands in for the placement registry: the truth of where
// each actor lives, plus per-node stale views for retry tests.
type fakeRegistry struct {
	mu      sync.Mutex
	locs    map[string]Location
	types   map[string]string
	stale   map[string]map[string]Location // node -> id -> stale location
	refuse  map[string]bool                // nodes whose Owns always says not owner
	addrs   map[string]string              // node -> transport address
	changed chan struct{}
}

func newFakeRegistry() *fakeRegistry {
	return &fakeRegistry{locs: map[string]Location{}, types: map[string]string{},
		stale: map[string]map[string]Location{}, refuse: map[string]bool{}, addrs: map[string]string{}, changed: make(chan struct{})}
}

// place records actor id of type typ on node at epoch.
func (r *fakeRegistry) place(id, typ, node string, epoch uint64) Ref {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.locs[id] = Location{Node: node, Addr: r.addrs[node], Epoch: epoch}
	r.types[id] = typ
	close(r.changed)
	r.changed = make(chan struct{})
	return Ref{ID: id, Type: typ, Node: node, Epoch: epoch}
}

// setStale makes node's view of id return loc until a Refresh.
func (r *fakeRegistry) setStale(node, id string, loc Location) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stale[node] == nil {
		r.stale[node] = map[string]Location{}
	}
	r.stale[node][id] = loc
}

type fakeView struct {
	r    *fakeRegistry
	node string
}

func (v fakeView) Lookup(id string) (Location, bool) {
	v.r.mu.Lock()
	defer v.r.mu.Unlock()
	if loc, ok := v.r.stale[v.node][id]; ok {
		return loc, true
	}
	loc, ok := v.r.locs[id]
	return loc, ok
}

func (v fakeView) Refresh(ctx context.Context, id string, stale Location) (Location, error) {
	for {
		v.r.mu.Lock()
		delete(v.r.stale[v.node], id)
		loc, ok := v.r.locs[id]
		ch := v.r.changed
		v.r.mu.Unlock()
		if !ok {
			return Location{}, fmt.Errorf("refresh %s: %w", id, ErrNotFound)
		}
		if loc != stale {
			return loc, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Location{}, ctx.Err()
		}
	}
}

func (v fakeView) Owns(id string, epoch uint64) (string, error) {
	v.r.mu.Lock()
	defer v.r.mu.Unlock()
	loc, ok := v.r.locs[id]
	switch {
	case !ok:
		return "", ErrNotFound
	case v.r.refuse[v.node] || loc.Node != v.node || (epoch != 0 && epoch != loc.Epoch):
		return "", fmt.Errorf("%s is at %s#%d: %w", id, loc.Node, loc.Epoch, ErrNotOwner)
	}
	return v.r.types[id], nil
}

type cluster struct {
	net   *transport.MemNetwork // nil over QUIC
	reg   *fakeRegistry
	nodes []*Endpoint
	trs   []transport.Transport
}

// newClusterOn starts n endpoints n1..nN on one in-memory network, or over
// QUIC on loopback when quic is set; register adds the test's types to each
// node's registry; tweak may edit each Config.
func newClusterOn(t *testing.T, quic bool, n int, register func(ts *Types, node int), tweak func(cfg *Config)) *cluster {
	t.Helper()
	return newClusterTB(t, quic, n, register, tweak)
}

func newClusterTB(t testing.TB, quic bool, n int, register func(ts *Types, node int), tweak func(cfg *Config)) *cluster {
	t.Helper()
	c := &cluster{reg: newFakeRegistry()}
	t.Cleanup(c.close)
	var ca *transport.CA
	if quic {
		var err error
		if ca, err = transport.NewDevCA(); err != nil {
			t.Fatal(err)
		}
	} else {
		c.net = transport.NewMemNetwork()
	}
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		var tr transport.Transport
		if quic {
			ident, err := ca.Issue(id, 0)
			if err != nil {
				t.Fatal(err)
			}
			if tr, err = transport.NewQUIC(transport.Config{Identity: ident}); err != nil {
				t.Fatal(err)
			}
		} else {
			m, err := c.net.Join(id)
			if err != nil {
				t.Fatal(err)
			}
			tr = m
		}
		c.trs = append(c.trs, tr)
		c.reg.addrs[id] = tr.Addr()
		ts := NewTypes()
		register(ts, i)
		cfg := Config{Transport: tr, Types: ts, Resolver: fakeView{c.reg, id}, Owner: fakeView{c.reg, id}}
		if tweak != nil {
			tweak(&cfg)
		}
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, e)
	}
	return c
}

func (c *cluster) close() {
	for _, e := range c.nodes {
		e.Close()
	}
	for _, tr := range c.trs {
		tr.Close()
	}
	c.nodes, c.trs = nil, nil
}
