package troupe

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/remote"
)

// A client (Config.Client) is a process that calls, spawns, looks up and
// stops actors in a cluster without being a member of it: no Raft replica,
// no vote, nothing hosted. It holds a client certificate
// (transport.IssueOptions.Client, `troupe cert issue --client`), which the
// members accept for calls, lookups, spawns and stops only: they refuse
// its joins and Raft streams, and it cannot take a node's place. It asks
// the members (Config.Join) where actors are and caches the answers; a
// call that finds its cached placement stale waits, through a member, for
// the newer one. What needs the registry's replica (Status, Actors, Watch
// of moves, Expel, Register, the admin endpoint) is a member's: a client
// answers ErrClient.

// ErrClient is returned by what only a member can do, asked of a client.
var ErrClient = errors.New("troupe: not available on a client (Config.Client): it has no replica and hosts nothing")

// directory is what calls and spawns read and write: a member's replica
// (placement.Registry) or a client's view through the members
// (placement.Client).
type directory interface {
	Lookup(id string) (placement.Placement, bool)
	WaitNewer(ctx context.Context, id string, epoch uint64) (placement.Placement, error)
	Spawn(ctx context.Context, req placement.SpawnRequest) (placement.Placement, error)
	Stop(ctx context.Context, id, reason string) error
	Resolve(ctx context.Context, id string) (placement.Placement, error)
}

var (
	_ directory = (*placement.Registry)(nil)
	_ directory = (*placement.Client)(nil)
)

// startClient finishes Start for a client: the placement client, then an
// endpoint that calls and hosts nothing.
func (n *Node) startClient(ctx context.Context) (*Node, error) {
	cfg, tr := n.cfg, n.tr
	fail := func(err error) (*Node, error) {
		n.cancel()
		if n.ownTr {
			tr.Close()
		}
		return nil, fmt.Errorf("troupe: start client %s: %w", n.id, err)
	}
	switch {
	case cfg.AdminAddr != "":
		return fail(fmt.Errorf("Config.AdminAddr: %w", ErrClient))
	case len(cfg.Join) == 0:
		return fail(errors.New("a client needs Config.Join: the address of a member"))
	case cfg.DataDir != "":
		return fail(fmt.Errorf("Config.DataDir: %w", ErrClient))
	}
	cl, err := placement.NewClient(ctx, placement.ClientConfig{Transport: tr, Join: cfg.Join, Logger: cfg.Logger})
	if err != nil {
		return fail(err)
	}
	n.cl, n.dir = cl, cl
	n.types = remote.NewTypes()
	ep, err := remote.New(remote.Config{
		Transport:      tr,
		Types:          n.types,
		Resolver:       (*resolver)(n),
		Owner:          (*owner)(n),
		MaxFrameSize:   cfg.MaxFrameSize,
		Logger:         cfg.Logger,
		BaseContext:    func() context.Context { return NewContext(context.Background(), n) },
		TracerProvider: cfg.TracerProvider,
	})
	if err != nil {
		cl.Close()
		return fail(err)
	}
	n.ep = ep
	n.metrics = newMetrics(n)
	n.goTracked(n.watchMembers)
	n.log("client started", "addr", tr.Addr(), "members", len(cl.KnownMembers()))
	return n, nil
}

// watchPace is the least time between two member watches that brought
// nothing new (a member of a version without the watch answers at once).
const watchPace = time.Second

// watchMembers runs on a client for its life: it keeps one member watch
// waiting at a member (placement.Client.WatchMembers) and acts on what
// changed, as a member does on its replica's events. A host marked failed
// or expelled fails the calls pending on it (idempotent ones are retried
// where the actor goes), and, through HostDown, calls to its actors wait
// for their new place instead of going to a process that may be dead
// with its connection not yet timed out; a host that left does the same
// after leftGrace.
func (n *Node) watchMembers() {
	status := make(map[string]placement.MemberStatus)
	addrs := make(map[string]string)
	for _, m := range n.cl.KnownMembers() {
		status[m.ID], addrs[m.ID] = m.Status, m.Addr
	}
	var rev uint64
	for n.ctx.Err() == nil {
		start := time.Now()
		ms, r, err := n.cl.WatchMembers(n.ctx, rev)
		if err != nil {
			if n.ctx.Err() != nil {
				return
			}
			n.log("member watch", "err", err)
			r = rev
		}
		moved := false
		for _, m := range ms {
			old, seen := status[m.ID]
			status[m.ID] = m.Status
			if a, ok := addrs[m.ID]; ok && a != m.Addr {
				moved = true
			}
			addrs[m.ID] = m.Addr
			if m.Status == placement.Alive || (seen && old == m.Status) {
				continue
			}
			switch m.Status {
			case placement.Failed, placement.Expelled:
				n.info("member failed", "peer", m.ID, "addr", m.Addr, "status", m.Status)
				n.ep.NodeFailed(m.ID)
			case placement.Left:
				n.info("member left", "peer", m.ID, "addr", m.Addr)
				n.leftLater(m.ID)
			}
		}
		if moved {
			n.addrsChanged()
		}
		if r == rev && time.Since(start) < watchPace/2 {
			t := time.NewTimer(watchPace)
			select {
			case <-t.C:
			case <-n.ctx.Done():
			}
			t.Stop()
		}
		rev = r
	}
}

// IsClient reports whether the node is a client (Config.Client).
func (n *Node) IsClient() bool { return n.cl != nil }

// memberList returns the members: from the replica, or on a client as the
// members gave them when it started (or at its latest NewPool).
func (n *Node) memberList() []placement.Member {
	if n.cl != nil {
		return n.cl.KnownMembers()
	}
	return n.reg.Members()
}
