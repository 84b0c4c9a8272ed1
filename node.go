package troupe

import (
	"github.com/prometheus/client_golang/prometheus"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/remote"
	"github.com/troupe-dev/troupe/transport"
)

// registerTimeout bounds the registry write of Register, which has no ctx
// of its own.
const registerTimeout = 30 * time.Second

// leftGrace is how long calls pending on a node that left gracefully may
// still be answered: it drained before leaving, so their replies were sent,
// but they travel on another stream than the registry's news of the leave
// and may come after it.
const leftGrace = time.Second

// Node is one member of a troupe cluster embedded in this process: its
// transport, its replica of the placement registry and its remote-object
// endpoint. All methods are safe for concurrent use.
type Node struct {
	cfg     Config
	id      string
	metrics *prometheus.Registry
	admin   *adminServer        // nil without Config.AdminAddr
	ident   *transport.Identity // the QUIC identity, when the node made its transport
	tr      transport.Transport
	ownTr   bool
	reg     *placement.Registry // nil on a client
	cl      *placement.Client   // set on a client (Config.Client) only
	dir     directory           // reg or cl: what calls and spawns read and write
	ep      *remote.Endpoint
	types   *remote.Types
	sub     *placement.Subscription
	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	closing atomic.Bool
	owns    atomic.Bool // a client that spawned an actor it owns (Detached)
	closed  chan struct{}

	lifeMu sync.Mutex // guards goroutine starts against Close
	wg     sync.WaitGroup
	down   bool

	addrs   sync.Map // node id -> transport address
	addrMu  sync.Mutex
	addrCh  chan struct{} // closed and replaced when an address in addrs changes
	locals  sync.Map      // ephemeral actor id -> type name
	localN  atomic.Uint64
	backoff sync.Map // actor id -> *backoffGate

	activator activator // activations of actors placed here by the registry

	watchMu  sync.Mutex
	watchers map[string]map[*watcher]struct{}
}

type backoffGate struct {
	epoch     uint64
	notBefore time.Time
}

var (
	_ remote.Resolver    = (*resolver)(nil)
	_ remote.HostWatcher = (*resolver)(nil)
	_ remote.OwnerWaiter = (*owner)(nil)
)

// Start starts a node per cfg and returns once it runs. A node that
// starts a new cluster (no Join, no state in DataDir) or joins one through
// Join is ready when Start returns: a member holding its lease. A node
// restarted from the Raft state in its DataDir returns as soon as it runs,
// without waiting for its peers, so that a whole cluster can be started
// again one node at a time; it rejoins in the background, and Ready waits
// for it to be able to serve. ctx bounds the start only.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if ctx == nil {
		return nil, errors.New("troupe: nil context")
	}
	n := &Node{cfg: cfg, closed: make(chan struct{}), watchers: make(map[string]map[*watcher]struct{})}
	n.activator.n = n
	tr := cfg.Transport
	if tr == nil {
		if cfg.Addr == "" {
			cfg.Addr = "127.0.0.1:0"
		}
		id, err := cfg.identity()
		if err != nil {
			return nil, err
		}
		n.ident = id
		if cfg.Name != "" && cfg.Name != id.NodeID {
			return nil, fmt.Errorf("troupe: Config.Name %q does not match the certificate's node id %q", cfg.Name, id.NodeID)
		}
		q, err := transport.NewQUIC(transport.Config{Addr: cfg.Addr, Identity: id, Logger: cfg.Logger, MaxFrameSize: cfg.MaxFrameSize})
		if err != nil {
			return nil, fmt.Errorf("troupe: %w", err)
		}
		tr, n.ownTr = q, true
	} else if cfg.Name != "" && cfg.Name != tr.ID() {
		return nil, fmt.Errorf("troupe: Config.Name %q does not match Transport.ID() %q", cfg.Name, tr.ID())
	}
	n.tr, n.id = tr, tr.ID()
	cfg.Name = n.id
	n.cfg = cfg
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if cfg.Client {
		return n.startClient(ctx)
	}

	reg, err := placement.New(ctx, placement.Config{
		Transport:        tr,
		DataDir:          cfg.DataDir,
		Join:             cfg.Join,
		Voters:           cfg.Voters,
		Voter:            cfg.Voter,
		HeartbeatTimeout: cfg.HeartbeatTimeout,
		FailTimeout:      cfg.FailTimeout,
		LeaseTimeout:     cfg.LeaseTimeout,
		ClientTimeout:    cfg.ClientTimeout,
		RestartGrace:     cfg.RestartGrace,
		Logger:           cfg.Logger,
	})
	if err != nil {
		n.cancel()
		if n.ownTr {
			tr.Close()
		}
		return nil, fmt.Errorf("troupe: start %s: %w", n.id, err)
	}
	n.reg, n.dir = reg, reg
	// A node restarted from DataDir does not wait for its peers: they may
	// be starting one at a time too (see Ready).
	if err := n.waitLeaseUnlessRestarted(ctx); err != nil {
		err = fmt.Errorf("waiting for a lease: %w", err)
		reg.Close()
		n.cancel()
		if n.ownTr {
			tr.Close()
		}
		return nil, fmt.Errorf("troupe: start %s: %w", n.id, err)
	}
	n.sub = reg.Subscribe()
	for _, m := range reg.Members() {
		n.addrs.Store(m.ID, m.Addr)
	}
	n.types = remote.NewTypes()
	ep, err := remote.New(remote.Config{
		Transport:    tr,
		Types:        n.types,
		Resolver:     (*resolver)(n),
		Owner:        (*owner)(n),
		MailboxSize:  cfg.MailboxSize,
		MailboxBytes: cfg.MailboxBytes,
		IdleTimeout:  idleTimeout(cfg.IdleTimeout),
		Forgets:      func(r remote.Ref) bool { return isVirtual(Ref{Ref: r}) },
		Forget:       n.forget,
		MaxFrameSize: cfg.MaxFrameSize,
		Restart:      cfg.Restart,
		OnPanic:      n.onPanic,
		OnStop:       n.onStop,
		Logger:       cfg.Logger,
		BaseContext:  func() context.Context { return NewContext(context.Background(), n) },

		TracerProvider: cfg.TracerProvider,
	})
	if err != nil {
		n.sub.Close()
		reg.Close()
		n.cancel()
		if n.ownTr {
			tr.Close()
		}
		return nil, fmt.Errorf("troupe: %w", err)
	}
	n.ep = ep
	n.metrics = newMetrics(n)
	if err := n.startAdmin(); err != nil {
		n.Close()
		return nil, err
	}
	n.goTracked(n.followRegistry)
	n.log("node started", "addr", tr.Addr())
	return n, nil
}

// ID returns the node id.
func (n *Node) ID() string { return n.id }

// Addr returns the address peers dial to reach this node (give it to Join).
func (n *Node) Addr() string { return n.tr.Addr() }

// Members returns the ids of the cluster's alive members, sorted, from this
// node's replica.
func (n *Node) Members() []string {
	var ids []string
	for _, m := range n.memberList() {
		if m.Status == placement.Alive {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// Close stops the node abruptly: pending calls fail, hosted actors stop,
// and the cluster sees the node fail (its registered actors are re-placed
// after FailTimeout). It waits for every goroutine the node started.
func (n *Node) Close() error {
	if !n.closing.CompareAndSwap(false, true) {
		<-n.closed
		return nil
	}
	defer close(n.closed)
	n.log("node closing")
	if n.admin != nil {
		n.admin.close()
	}
	if n.cl != nil && n.owns.Load() {
		// A client's own actors end with it (see Detached).
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		if err := n.cl.Release(ctx); err != nil {
			n.warn("actors owned by this client not released; the registry stops them once it finds the client silent", "err", err)
		}
		cancel()
	}
	err := n.ep.Close()
	n.lifeMu.Lock()
	n.down = true
	n.lifeMu.Unlock()
	n.cancel()
	if n.sub != nil {
		n.sub.Close()
	}
	n.activator.close()
	n.wg.Wait()
	n.closeWatchers()
	if n.cl != nil {
		n.cl.Close()
	} else {
		err = errors.Join(err, n.reg.Close())
	}
	if n.ownTr {
		err = errors.Join(err, n.tr.Close())
	}
	return err
}

// Stop stops the node gracefully, in three steps. Drain: the node stops
// taking calls (new ones are answered ErrNotOwner, so their callers wait
// for the actor's next host and retry there) and lets the calls it holds,
// running or queued, finish and answer. Leave: the registry re-places its
// registered actors on other nodes. Close. ctx bounds the drain and the
// leave: when it ends during the drain, running methods see their ctx
// cancelled; when it ends before the leave is done, the cluster sees the
// node fail instead (its actors are re-placed after FailTimeout). The node
// is closed whatever happens. The last member of a cluster has nobody to
// hand its actors to: it drains and closes.
func (n *Node) Stop(ctx context.Context) error {
	if n.closing.Load() {
		<-n.closed
		return nil
	}
	n.log("node draining")
	var err error
	if derr := n.ep.Drain(ctx); derr != nil && !errors.Is(derr, remote.ErrClosed) {
		err = fmt.Errorf("troupe: drain: %w", derr)
	}
	// A client holds nothing to hand over: drained, it closes.
	if others := slices.DeleteFunc(n.Members(), func(id string) bool { return id == n.id }); n.cl == nil && len(others) > 0 {
		if lerr := n.reg.Leave(ctx); lerr != nil {
			err = errors.Join(err, fmt.Errorf("troupe: leave: %w", lerr))
		} else {
			n.afterLeave(ctx)
		}
	}
	return errors.Join(err, n.Close())
}

// afterLeave keeps a node that has left answering ErrNotOwner (the endpoint
// drains) while the other replicas apply its leave: a caller whose replica
// still places an actor here gets an answer it retries on, not a closed
// connection. Replicas apply a committed entry within a heartbeat or two;
// ctx bounds the wait.
func (n *Node) afterLeave(ctx context.Context) {
	hb := n.cfg.HeartbeatTimeout
	if hb <= 0 {
		hb = 200 * time.Millisecond
	}
	t := time.NewTimer(2 * hb)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Leader returns the id of the registry's Raft leader as this node's
// replica knows it, or "" while there is none (during an election).
func (n *Node) Leader() string {
	if n.cl != nil {
		return n.cl.Leader()
	}
	return n.reg.Leader()
}

// goTracked runs f on a goroutine that Close waits for; false once closed.
func (n *Node) goTracked(f func()) bool {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	if n.down {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
	return true
}

func (n *Node) log(msg string, args ...any) {
	if l := n.cfg.Logger; l != nil {
		l.LogAttrs(context.Background(), slog.LevelDebug, "troupe: "+msg, slog.String("node", n.id), slog.Group("", args...))
	}
}

// info logs at Info: the cluster's events (membership, placements moved,
// actors stopped for good).
func (n *Node) info(msg string, args ...any) {
	if l := n.cfg.Logger; l != nil {
		l.LogAttrs(context.Background(), slog.LevelInfo, "troupe: "+msg, slog.String("node", n.id), slog.Group("", args...))
	}
}

// warn logs at Warn: what an operator should see.
func (n *Node) warn(msg string, args ...any) {
	if l := n.cfg.Logger; l != nil {
		l.LogAttrs(context.Background(), slog.LevelWarn, "troupe: "+msg, slog.String("node", n.id), slog.Group("", args...))
	}
}

// followRegistry applies the registry's changes to this node: actors that
// left it are deactivated, failed nodes fail their pending calls, and
// watchers hear of restarts and stops.
func (n *Node) followRegistry() {
	for {
		ev, err := n.sub.Next(n.ctx)
		if err != nil {
			return
		}
		switch ev.Kind {
		case placement.ActorReplaced:
			if ev.Prev.Node == n.id && ev.Actor.Node != n.id {
				n.ep.Deactivate(ev.Actor.ID)
			}
			if ev.Actor.Node == n.id {
				var wait time.Duration
				if ev.Actor.Restarts > 0 && ev.Actor.Policy.Backoff > 0 {
					wait = ev.Actor.Policy.Backoff
					n.backoff.Store(ev.Actor.ID, &backoffGate{epoch: ev.Actor.Epoch, notBefore: time.Now().Add(wait)})
				}
				n.activator.after(ev.Actor, wait)
			}
			kind, reason := Moved, ev.Actor.Reason
			if ev.Actor.Restarts > ev.Prev.Restarts {
				kind = Restarted
			}
			if m, ok := n.reg.Member(ev.Prev.Node); reason == "" && ok && m.Status != placement.Alive {
				reason = "node " + m.ID + " " + m.Status.String()
			}
			if ev.Actor.Node == n.id && ev.Prev.Node != n.id {
				n.info("actor placed here", "actor", ev.Actor.ID, "type", ev.Actor.Type, "from", ev.Prev.Node,
					"epoch", ev.Actor.Epoch, "restarts", ev.Actor.Restarts, "reason", reason)
			}
			n.notify(ev.Actor.ID, ActorEvent{Kind: kind, Ref: n.refOf(ev.Actor), Reason: reason})
		case placement.ActorForgotten:
			if ev.Prev.Node == n.id {
				// Proposed by this node after it passivated the actor;
				// an activation of that epoch made since (a forget
				// retried after an unknown outcome) goes too.
				n.ep.DeactivateEpoch(ev.Prev.ID, ev.Prev.Epoch)
			}
			n.backoff.Delete(ev.Prev.ID)
		case placement.ActorStopped:
			if ev.Prev.Node == n.id {
				n.ep.Deactivate(ev.Actor.ID)
			}
			// Logged once: by its node, or by the leader when that node
			// is down.
			if m, _ := n.reg.Member(ev.Prev.Node); ev.Prev.Node == n.id || (m.Status != placement.Alive && n.reg.IsLeader()) {
				n.info("actor stopped for good", "actor", ev.Actor.ID, "type", ev.Actor.Type, "on", ev.Prev.Node, "reason", ev.Actor.Reason)
			}
			n.backoff.Delete(ev.Actor.ID)
			n.notify(ev.Actor.ID, ActorEvent{Kind: Stopped, Ref: n.refOf(ev.Prev), Reason: ev.Actor.Reason})
		case placement.MemberJoined, placement.MemberAlive:
			old, known := n.addrs.Swap(ev.Member.ID, ev.Member.Addr)
			if known && old != ev.Member.Addr {
				n.addrsChanged()
			}
			switch {
			case ev.Kind == placement.MemberAlive:
				n.info("member alive again", "peer", ev.Member.ID, "addr", ev.Member.Addr)
			case !known || old != ev.Member.Addr:
				n.info("member joined", "peer", ev.Member.ID, "addr", ev.Member.Addr, "types", ev.Member.Types)
			default: // a host types registration, or a rejoin at the same address
				n.log("member hosts types", "peer", ev.Member.ID, "types", ev.Member.Types)
			}
		case placement.MemberFailed, placement.MemberExpelled:
			if ev.Kind == placement.MemberExpelled {
				n.warn("member expelled", "peer", ev.Member.ID, "addr", ev.Member.Addr)
			} else {
				n.info("member failed", "peer", ev.Member.ID, "addr", ev.Member.Addr)
			}
			if ev.Member.ID != n.id {
				n.ep.NodeFailed(ev.Member.ID)
			}
		case placement.MemberLeft:
			n.info("member left", "peer", ev.Member.ID, "addr", ev.Member.Addr)
			if ev.Member.ID != n.id {
				n.leftLater(ev.Member.ID)
			}
		case placement.Reset:
			for _, m := range n.reg.Members() {
				n.addrs.Store(m.ID, m.Addr)
			}
			n.addrsChanged()
		}
	}
}

// leftLater fails the calls still pending on node, which left the cluster,
// after leftGrace (see there), unless it has rejoined meanwhile.
func (n *Node) leftLater(node string) {
	n.goTracked(func() {
		t := time.NewTimer(leftGrace)
		defer t.Stop()
		select {
		case <-t.C:
		case <-n.ctx.Done():
			return
		}
		if !(*resolver)(n).HostDown(node) {
			return // rejoined meanwhile
		}
		n.ep.NodeFailed(node)
	})
}

// onPanic is the endpoint's hook after a method panicked (engine goroutine).
func (n *Node) onPanic(ref remote.Ref, method string, p *remote.PanicError) {
	if l := n.cfg.Logger; l != nil {
		l.LogAttrs(context.Background(), slog.LevelError, "troupe: actor crashed", slog.String("node", n.id),
			slog.String("actor", ref.ID), slog.String("type", ref.Type), slog.String("method", method),
			slog.Uint64("epoch", ref.Epoch), slog.String("err", p.Error()), slog.String("stack", string(p.Stack)))
	}
	n.notify(ref.ID, ActorEvent{Kind: Panicked, Ref: Ref{Ref: ref, node: n}, Reason: fmt.Sprintf("%s: %v", method, p.Value)})
}

// onStop is the endpoint's hook when an actor failed past the local budget:
// a registered actor is reported to the registry, which restarts it by its
// cluster policy; an ephemeral one is gone.
func (n *Node) onStop(ref remote.Ref, reason error) {
	n.warn("actor failed past its local restart budget", "actor", ref.ID, "type", ref.Type, "epoch", ref.Epoch, "err", reason)
	if isLocalID(ref.ID) {
		n.locals.Delete(ref.ID)
		n.ep.Deactivate(ref.ID)
		n.notify(ref.ID, ActorEvent{Kind: Stopped, Ref: Ref{Ref: ref, node: n}, Reason: reason.Error()})
		return
	}
	n.goTracked(func() {
		ctx, cancel := context.WithTimeout(n.ctx, registerTimeout)
		defer cancel()
		if _, err := n.reg.ReportFailure(ctx, ref.ID, ref.Epoch, reason.Error()); err != nil && !errors.Is(err, placement.ErrStaleEpoch) {
			n.log("report failure", "actor", ref.ID, "err", err)
		}
	})
}

// refOf makes a Ref of a directory entry, bound to n.
func (n *Node) refOf(p placement.Placement) Ref {
	return Ref{Ref: remote.Ref{ID: p.ID, Type: p.Type, Node: p.Node, Epoch: p.Epoch}, node: n}
}

// resolver is the caller's view of the registry for the endpoint.
type resolver Node

func (r *resolver) location(p placement.Placement) remote.Location {
	if r.cl != nil {
		return remote.Location{Node: p.Node, Addr: r.cl.Addr(p.Node), Epoch: p.Epoch}
	}
	addr, _ := r.addrs.Load(p.Node)
	s, _ := addr.(string)
	return remote.Location{Node: p.Node, Addr: s, Epoch: p.Epoch}
}

// HostDown reports whether the registry marked node failed, left or
// expelled (remote.HostWatcher): calls to its actors then wait for their
// new place instead of going to a process that may be dead but whose
// connection has not timed out yet. A member this replica does not know
// yet is not down. A client knows what its member watch last told it.
func (r *resolver) HostDown(node string) bool {
	if r.cl != nil {
		return r.cl.HostDown(node)
	}
	st, ok := r.reg.MemberStatus(node)
	return ok && st != placement.Alive
}

// Lookup reads the local replica. Ephemeral ids are not in it: their node
// is part of the id.
func (r *resolver) Lookup(id string) (remote.Location, bool) {
	p, ok := r.dir.Lookup(id)
	if !ok {
		if node, ok := localNode(id); ok {
			return r.location(placement.Placement{Node: node}), true
		}
		return remote.Location{}, false
	}
	return r.location(p), true
}

// addrChanges returns a channel closed at the next change of a member's
// address.
func (n *Node) addrChanges() <-chan struct{} {
	n.addrMu.Lock()
	defer n.addrMu.Unlock()
	if n.addrCh == nil {
		n.addrCh = make(chan struct{})
	}
	return n.addrCh
}

func (n *Node) addrsChanged() {
	n.addrMu.Lock()
	defer n.addrMu.Unlock()
	if n.addrCh != nil {
		close(n.addrCh)
		n.addrCh = nil
	}
}

// Refresh waits for a newer placement of id in the local replica, or for
// the host of the same placement to come back at another address (it
// restarted on a new port before it was failed). A stale location without
// an address came from a Ref's hint, ahead of this replica: then the same
// epoch, once the replica has it, is news too (it brings the host's
// address).
func (r *resolver) Refresh(ctx context.Context, id string, stale remote.Location) (remote.Location, error) {
	if isLocalID(id) {
		return remote.Location{}, fmt.Errorf("troupe: ephemeral actor %s is gone: %w", id, remote.ErrNotFound)
	}
	after := stale.Epoch
	if stale.Addr == "" && after > 0 {
		after--
	}
	n := (*Node)(r)
	for {
		changed := n.addrChanges()
		if stale.Addr != "" {
			if p, ok := r.dir.Lookup(id); ok && p.Epoch == stale.Epoch && p.State != placement.Stopped {
				if loc := r.location(p); loc.Addr != "" && loc.Addr != stale.Addr {
					return loc, nil
				}
			}
		}
		wctx, cancel := context.WithCancel(ctx)
		stop := make(chan struct{})
		go func() { // ends with the wait below
			select {
			case <-changed:
				cancel()
			case <-stop:
			}
		}()
		p, err := r.dir.WaitNewer(wctx, id, after)
		close(stop)
		cancel()
		switch {
		case err == nil:
			return r.location(p), nil
		case errors.Is(err, placement.ErrNotFound):
			return remote.Location{}, fmt.Errorf("troupe: %w: %w", remote.ErrNotFound, err)
		case ctx.Err() == nil && errors.Is(err, context.Canceled):
			continue // an address changed: look again
		default:
			return remote.Location{}, err
		}
	}
}

// releaseTimeout bounds a closing client's release of the actors it owns.
const releaseTimeout = 5 * time.Second

// owner is the callee's view of the registry for the endpoint.
type owner Node

// Owns admits a call to actor id resolved at epoch: an ephemeral actor of
// this node, or a registered actor the replica places here with a lease.
// It never waits (it runs on the transport's reader goroutine): when this
// node may serve the call once its replica catches up — the caller
// resolved a placement newer than this replica knows, the lease lapsed
// (an election, a starved process), a move's fence runs — it returns an
// error matching remote.ErrNotReady and the endpoint parks the call on
// WaitOwns.
func (o *owner) Owns(id string, epoch uint64) (string, error) {
	if isLocalID(id) {
		if t, ok := o.locals.Load(id); ok {
			return t.(string), nil
		}
		return "", fmt.Errorf("troupe: ephemeral actor %s: %w", id, remote.ErrNotFound)
	}
	if o.reg == nil {
		return "", fmt.Errorf("troupe: %s is a client and hosts nothing: %w", o.id, remote.ErrNotFound)
	}
	p, err := o.reg.Owns(id, epoch)
	return (*Node)(o).admit(id, epoch, p, err)
}

// WaitOwns waits, bounded by ctx, until Owns admits the call or refuses it
// for good (the registry's WaitOwns: lease, replica catch-up, fence).
func (o *owner) WaitOwns(ctx context.Context, id string, epoch uint64) (string, error) {
	if isLocalID(id) || o.reg == nil {
		return o.Owns(id, epoch)
	}
	p, err := o.reg.WaitOwns(ctx, id, epoch)
	return (*Node)(o).admit(id, epoch, p, err)
}

// admit classifies the registry's answer for (id, epoch).
func (n *Node) admit(id string, epoch uint64, p placement.Placement, err error) (string, error) {
	switch {
	case err == nil:
	case errors.Is(err, placement.ErrForgotten):
		return "", fmt.Errorf("troupe: %w: %w: %w", remote.ErrForgotten, remote.ErrNotFound, err)
	case errors.Is(err, placement.ErrNotFound):
		return "", fmt.Errorf("troupe: %w: %w", remote.ErrNotFound, err)
	case errors.Is(err, placement.ErrNotOwner) && epoch > 0 && (p.ID == "" || p.Epoch < epoch):
		// The caller knows a newer placement than this replica: it lags.
		return "", fmt.Errorf("troupe: %s at epoch %d, replica behind: %w: %w", id, epoch, remote.ErrNotReady, err)
	case errors.Is(err, placement.ErrNotOwner):
		return "", fmt.Errorf("troupe: %s at epoch %d: %w", id, epoch, remote.ErrNotOwner)
	case errors.Is(err, placement.ErrClosed):
		return "", fmt.Errorf("troupe: node %s is closing: %w", n.id, remote.ErrNotOwner)
	default: // no lease, fenced: servable here soon
		return "", fmt.Errorf("troupe: %w: %w", remote.ErrNotReady, err)
	}
	if p.Restarts > 0 && p.Policy.Backoff > 0 {
		if err := n.checkBackoff(p); err != nil {
			return "", err
		}
	}
	return p.Type, nil
}

// checkBackoff refuses calls to a restarted actor until its backoff passed.
func (n *Node) checkBackoff(p placement.Placement) error {
	now := time.Now()
	v, _ := n.backoff.LoadOrStore(p.ID, &backoffGate{epoch: p.Epoch, notBefore: now.Add(p.Policy.Backoff)})
	g := v.(*backoffGate)
	if g.epoch < p.Epoch {
		g = &backoffGate{epoch: p.Epoch, notBefore: now.Add(p.Policy.Backoff)}
		n.backoff.Store(p.ID, g)
	}
	if now.Before(g.notBefore) {
		return fmt.Errorf("troupe: actor %s restarting, backoff until %s: %w", p.ID, g.notBefore.Format(time.RFC3339Nano), errRestarting)
	}
	return nil
}
