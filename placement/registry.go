package placement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/troupe-dev/troupe/transport"
)

// Config configures a Registry. The zero value is not enough: Transport is
// required; every other field has a default.
type Config struct {
	// Transport carries Raft (its StreamLayer) and the registry's control
	// frames (KindControl). Required. The Registry does not close it.
	Transport transport.Transport
	// DataDir holds the Raft log (raft-boltdb, fsync on) and snapshots. Empty
	// means in-memory stores: nothing survives Close.
	DataDir string
	// Join lists addresses of existing members. Empty means this node
	// bootstraps a new cluster, unless DataDir already holds one.
	Join []string
	// Voter is this node's voter policy: VoterAuto (the zero value),
	// VoterNever or VoterPrefer.
	Voter VoterPolicy
	// Voters is how many members vote in Raft; later members are non-voters
	// that still hold a full replica. Zero means 3.
	Voters int
	// Types are the actor types this node hosts from the start; HostTypes
	// adds more later.
	Types []string
	// HeartbeatTimeout is Raft's heartbeat and election timeout. Zero means
	// 200ms, fit for a LAN.
	HeartbeatTimeout time.Duration
	// FailTimeout is how long the leader waits without hearing a node before
	// it marks it failed and re-places its actors. Zero means 800ms.
	FailTimeout time.Duration
	// LeaseTimeout is how long a node may serve its actors after it last
	// heard the leader; it must be below FailTimeout. Zero means 3/8 of
	// FailTimeout.
	LeaseTimeout time.Duration
	// ClientTimeout is how long the leader waits without hearing a client
	// before it stops the actors the client owns. Zero means 10 s, or 4 ×
	// FailTimeout if longer.
	ClientTimeout time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot. Zero
	// means 8192.
	SnapshotThreshold uint64
	// RestartGrace is how long the leader waits, besides FailTimeout, for
	// a member that said it restarted from its DataDir at its recorded
	// address and is loading its snapshot, before it marks it failed and
	// re-places its actors. Zero means 10s; negative means none.
	RestartGrace time.Duration
	// Logger receives the registry's and Raft's warnings. Nil means silent.
	Logger *slog.Logger

	// wrapSnapshots, if set, wraps the snapshot store (tests).
	wrapSnapshots func(raft.SnapshotStore) raft.SnapshotStore
	// applyGate, if set, runs before each entry is applied (tests: a
	// replica whose FSM falls behind).
	applyGate func()
	// commitTimeout, if set, replaces commitTimeout (benchmarks).
	commitTimeout time.Duration
}

// Registry is one node's replica of the placement registry and its client.
type Registry struct {
	cfg   Config
	tr    transport.Transport
	id    string
	addr  string
	fsm   *fsm
	raft  *raft.Raft
	nt    *raft.NetworkTransport
	bolt  *raftboltdb.BoltStore
	log   *slog.Logger
	base  time.Time // monotonic origin of lease times
	grace time.Duration
	lease atomic.Pointer[grant]

	// restarted is set when Raft found state in DataDir: the node rejoins
	// in the background (see New), and joined is closed once that ends,
	// with joinErr its outcome.
	stats struct {
		leaderChanges, renewals, lapses, graces, replaySnaps atomic.Uint64
	}

	rehomeKick chan struct{} // wakes rehomeLoop
	lookups    lookupWaits   // waiting lookups per peer (lookup.go)

	restarted bool
	joined    chan struct{}
	joinErr   error
	// typesMu guards joinTypes and joinOver: types that HostTypes adds
	// while a background rejoin runs go with the join (see HostTypes).
	typesMu   sync.Mutex
	joinTypes []string
	joinOver  bool
	sentTypes int          // types the join that succeeded carried
	lw        leaseWork    // lease.go: pings a new leader answers once it has a lease
	vf        verifyRounds // verify.go: the leader's rounds to the voters
	az        authz        // authz.go: who may send what; the transport Gate's caches

	// Fences of actors moved here from a live node (see fence.go).
	fences     sync.Map      // actor id -> *fence
	nfences    atomic.Int64  // entries in fences: Owns skips the map at 0
	restoredAt atomic.Int64  // ns since base + 1 of the last snapshot restore; 0 if none
	reqID      atomic.Uint64 // control request ids
	inc        atomic.Uint64 // incarnation: log index of this node's latest join
	seqs       seqWindow     // exactly-once sequence of this node's writes (seqwindow.go)
	closed     atomic.Bool
	quiet      atomic.Bool // Raft's log lines drop to Debug: set by Leave and Close
	leaving    atomic.Bool // set by Leave: Owns refuses every actor

	applyQ chan applyReq // leader: commands for batchLoop
	fwdQ   chan fwdReq   // others: commands for fwdLoop

	pendMu   sync.Mutex
	pending  map[uint64]pendingCall
	pingSent map[uint64]time.Duration

	cfgMu  sync.Mutex // leader: one voter-set change decision at a time
	joinMu sync.Mutex // leader: one join decision at a time

	hbMu      sync.Mutex
	lastHeard map[string]time.Time // leader: last ping from each member
	// clientHeard: leader, last control frame of each client owning
	// actors; releasing: owners whose release is being applied (owners.go).
	clientHeard map[string]time.Time
	releasing   map[string]bool

	goMu      sync.Mutex
	goClosed  bool
	wg        sync.WaitGroup
	done      chan struct{}   // closed by Close
	leaseDone chan struct{}   // closed when leaseLoop returns
	monDone   chan struct{}   // closed when monitorLoop returns
	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
}

// grant is a lease: valid until `until` (ns since base) once the replica
// has applied index. Grants form a short immutable chain (see grantLease),
// so a new grant waiting for the replica to catch up does not cut a lease
// an older, satisfied grant still gives.
type grant struct {
	until int64
	index uint64
	prev  *grant
}

func (c Config) withDefaults() Config {
	if c.Voters <= 0 {
		c.Voters = 3
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = 200 * time.Millisecond
	}
	if c.FailTimeout <= 0 {
		c.FailTimeout = 800 * time.Millisecond
	}
	if c.LeaseTimeout <= 0 {
		c.LeaseTimeout = c.FailTimeout * 3 / 8
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.RestartGrace == 0 {
		c.RestartGrace = 10 * time.Second
	}
	return c
}

// New starts this node's replica and blocks until the node is a recorded
// member: it bootstraps a cluster (no Join, no state in DataDir), or
// restarts from DataDir, or joins through Join, then registers its address
// and types with the leader.
func New(ctx context.Context, cfg Config) (*Registry, error) {
	if cfg.Transport == nil {
		return nil, fmt.Errorf("%w: Config.Transport is nil", ErrInvalidRequest)
	}
	cfg = cfg.withDefaults()
	if cfg.LeaseTimeout >= cfg.FailTimeout {
		return nil, fmt.Errorf("%w: LeaseTimeout %v must be below FailTimeout %v", ErrInvalidRequest, cfg.LeaseTimeout, cfg.FailTimeout)
	}
	r := &Registry{
		cfg:         cfg,
		tr:          cfg.Transport,
		id:          cfg.Transport.ID(),
		addr:        cfg.Transport.Addr(),
		fsm:         newFSM(),
		log:         cfg.Logger,
		base:        time.Now(),
		pending:     make(map[uint64]pendingCall),
		pingSent:    make(map[uint64]time.Duration),
		lastHeard:   make(map[string]time.Time),
		clientHeard: make(map[string]time.Time),
		releasing:   make(map[string]bool),
		done:        make(chan struct{}),
		applyQ:      make(chan applyReq, 1024),
		fwdQ:        make(chan fwdReq, 1024),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	// Request ids start at random: a reply can only be forged by a peer
	// that guesses a pending one (see authz.go).
	r.reqID.Store(rand.Uint64() >> 1)
	// Leases granted by earlier leaders end at most LeaseTimeout after a new
	// leader's election; grace waits that plus a quarter of the slack to
	// FailTimeout as the margin for clock drift and scheduling.
	r.grace = cfg.LeaseTimeout + (cfg.FailTimeout-cfg.LeaseTimeout)/4
	r.fsm.m.moving, r.fsm.restoring = r.fence, r.fenceAll
	r.fsm.closing = r.done
	r.az.kick = make(chan struct{}, 1)
	r.rehomeKick = make(chan struct{}, 1)
	r.fsm.m.onExpel = r.kickAuthz
	r.az.joining.Store(true)
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("node", r.id)
	// The Gate is in place before Raft can take a stream: until startRaft
	// seeds the configuration cache, it allows Raft from nobody.
	r.tr.SetGate(r)
	if err := r.startRaft(); err != nil {
		r.tr.SetGate(nil)
		r.cancel()
		r.wg.Wait() // a restart announcement
		r.shutdownStores()
		return nil, err
	}
	r.tr.Handle(transport.KindControl, transport.HandlerFunc(r.handleFrame))
	r.goFunc(r.dropLoop)
	r.kickAuthz() // a snapshot restored at start may deny ids
	r.goFunc(r.batchLoop)
	r.goFunc(r.fwdLoop)
	r.leaseDone = make(chan struct{})
	r.goFunc(func() { defer close(r.leaseDone); r.leaseLoop() })
	r.monDone = make(chan struct{})
	if !r.goFunc(func() { defer close(r.monDone); r.monitorLoop() }) {
		close(r.monDone) // closing already: Close must not wait for it
	}
	r.goFunc(r.rehomeLoop)
	if r.cfg.DataDir != "" {
		r.goFunc(r.snapshotLoop)
	}
	r.joined = make(chan struct{})
	if r.restarted {
		// A node restarted from its DataDir may be one of a whole cluster
		// that starts again one node at a time: its peers, and so a
		// quorum, may not be back yet. New returns with Raft running; the
		// rejoin (which records a new address or types) goes on until it
		// succeeds, fails for good, or Close; WaitJoined waits for it.
		r.goFunc(func() {
			defer close(r.joined)
			err := r.register(r.ctx)
			if err == nil {
				if late := r.endTypes(r.sentTypes); len(late) > 0 {
					// Registered after the join message was built.
					_, err = r.propose(r.ctx, command{Type: cmdTypes, Node: r.id, Types: late}, true)
				}
			} else {
				r.endTypes(0)
			}
			switch {
			case err == nil:
				r.log.Info("placement: rejoined", "addr", r.addr)
			case r.closed.Load():
				err = fmt.Errorf("%w before the rejoin ended (last error: %v)", ErrClosed, err)
			default:
				r.log.Error("placement: rejoin failed", "err", err)
			}
			r.joinErr = err
		})
		return r, nil
	}
	defer close(r.joined)
	if err := r.register(ctx); err != nil {
		r.joinErr = err
		r.Close()
		return nil, err
	}
	return r, nil
}

// Restarted reports whether the registry started from Raft state found in
// DataDir; its rejoin then runs in the background (WaitJoined).
func (r *Registry) Restarted() bool { return r.restarted }

// Joined reports, without waiting, whether this node's join has ended,
// and its error if it failed.
func (r *Registry) Joined() (bool, error) {
	select {
	case <-r.joined:
		return true, r.joinErr
	default:
		return false, nil
	}
}

// WaitJoined waits until this node's join has been applied by its local
// replica, and returns the join's error if it failed for good (expelled,
// the id in use elsewhere, Close). A registry that did not restart from
// DataDir has joined when New returns.
func (r *Registry) WaitJoined(ctx context.Context) error {
	select {
	case <-r.joined:
		return r.joinErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// hclogger is Raft's logger: the node's slog logger with Raft's own
// levels, quiet once the node leaves or closes (see raftLogger).
func (r *Registry) hclogger() hclog.Logger {
	if r.cfg.Logger == nil {
		return hclog.NewNullLogger()
	}
	return newRaftLogger(r.log, &r.quiet)
}

func (r *Registry) startRaft() error {
	hl := r.hclogger()
	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if r.cfg.DataDir == "" {
		s := raft.NewInmemStore()
		logs, stable, snaps = s, s, &memSnapshots{}
	} else {
		if err := os.MkdirAll(r.cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("placement: data dir: %w", err)
		}
		b, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(r.cfg.DataDir, "raft.db")})
		if err != nil {
			return fmt.Errorf("placement: raft log: %w", err)
		}
		r.bolt = b
		cache, err := raft.NewLogCache(1024, b)
		if err != nil {
			return err
		}
		logs, stable = cache, b
		fs, err := raft.NewFileSnapshotStoreWithLogger(r.cfg.DataDir, 2, hl)
		if err != nil {
			return fmt.Errorf("placement: snapshot store: %w", err)
		}
		snaps = fs
	}
	if r.cfg.wrapSnapshots != nil {
		snaps = r.cfg.wrapSnapshots(snaps)
	}
	has, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fmt.Errorf("placement: raft state: %w", err)
	}
	r.restarted = has
	if has {
		r.announceRestart(snaps)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(r.id)
	rc.HeartbeatTimeout = r.cfg.HeartbeatTimeout
	rc.ElectionTimeout = r.cfg.HeartbeatTimeout
	// Raft's leader lease only decides when a leader that cannot reach a
	// quorum steps down; single activation rests on this package's leases
	// (verify rounds to the voters, pings), not on it. At HeartbeatTimeout/2 a 100ms stall
	// of a busy 2-core host deposed the leader and voided every lease;
	// the longest value Raft accepts (HeartbeatTimeout) rides that out.
	rc.LeaderLeaseTimeout = r.cfg.HeartbeatTimeout
	rc.CommitTimeout = max(commitTimeout, r.cfg.HeartbeatTimeout/4)
	if r.cfg.commitTimeout > 0 {
		rc.CommitTimeout = r.cfg.commitTimeout
	}
	rc.MaxAppendEntries = 1024
	rc.BatchApplyCh = true
	rc.SnapshotThreshold = r.cfg.SnapshotThreshold
	rc.TrailingLogs = max(1024, r.cfg.SnapshotThreshold/2)
	rc.Logger = hl
	r.nt = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  r.tr.StreamLayer(),
		MaxPool: 4,
		Timeout: raftRPCTimeout,
		Logger:  hl,
	})
	ra, err := raft.NewRaft(rc, raftFSM{r.fsm, r}, logs, stable, snaps, r.nt)
	if err != nil {
		r.nt.Close()
		return fmt.Errorf("placement: start raft: %w", err)
	}
	r.raft = ra
	r.az.raft.Store(ra)
	r.refreshRaftPeers()
	if !has && len(r.cfg.Join) == 0 {
		err := ra.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: raft.ServerID(r.id), Address: raft.ServerAddress(r.addr),
		}}}).Error()
		if err != nil {
			ra.Shutdown()
			r.nt.Close()
			return fmt.Errorf("placement: bootstrap: %w", err)
		}
	}
	return nil
}

func (r *Registry) shutdownStores() {
	if r.bolt != nil {
		r.bolt.Close()
	}
}

// commitTimeout is Raft's CommitTimeout: with no new entries, the leader
// still sends every follower an AppendEntries every 1-2 x commitTimeout,
// and hashicorp/raft tells a follower the commit index only that way. The
// leader pushes the commit index of a burst's last write itself
// (pushCommit), so this no longer bounds how long a follower lags after a
// write; it sets the idle cost, one RPC per follower per 1.5 x
// CommitTimeout. Raft's default, or HeartbeatTimeout/4 when that is longer
// (a cluster whose timeouts were raised to cut its idle traffic). See
// docs/performance.md, "Registry at scale (issue 14)".
const commitTimeout = 50 * time.Millisecond

// raftRPCTimeout bounds one Raft RPC, dial included. A leader whose
// heartbeat to a member's old address is stuck in a dial learns its new
// address only after it: see handleJoin.
const raftRPCTimeout = 2 * time.Second

// goFunc runs f on a goroutine that Close waits for; after Close it does
// nothing.
func (r *Registry) goFunc(f func()) bool {
	r.goMu.Lock()
	defer r.goMu.Unlock()
	if r.goClosed {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
	return true
}

// Close stops this replica abruptly (no leave: the cluster will see it fail)
// and waits for every goroutine it started. It does not close the
// transport, but Raft closes the transport's StreamLayer, so a transport
// serves one Registry in its life.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		r.quiet.Store(true)
		r.closed.Store(true)
		close(r.done)
		r.cancel()
		r.tr.Handle(transport.KindControl, transport.HandlerFunc(func(string, []byte) {}))
		r.goMu.Lock()
		r.goClosed = true
		r.goMu.Unlock()
		if r.leaseDone != nil {
			// The lease loop may be in a Raft Barrier or GetConfiguration;
			// it leaves them before Raft shuts down (a barrier ends when it
			// commits, times out, or the leader steps down), so no future
			// is left waiting on a Raft that no longer answers.
			<-r.leaseDone
		}
		if r.monDone != nil {
			// Likewise the monitor may wait for a configuration change
			// to commit: a live Raft answers it (committed, or leadership
			// lost), while one shut down meanwhile may drop it unanswered
			// (a committed entry still queued for the FSM), and the
			// monitor would wait forever.
			<-r.monDone
		}
		if r.raft != nil {
			// A replication goroutine dialing a down peer would hold
			// Shutdown up to its timeout.
			if a, ok := r.tr.StreamLayer().(transport.DialAborter); ok {
				a.AbortDials()
			}
			r.closeErr = r.raft.Shutdown().Error()
		}
		r.nt.Close()
		r.wg.Wait()
		r.tr.SetGate(nil)
		r.shutdownStores()
		r.fsm.subMu.Lock()
		subs := make([]*Subscription, 0, len(r.fsm.subs))
		for s := range r.fsm.subs {
			subs = append(subs, s)
		}
		r.fsm.subMu.Unlock()
		for _, s := range subs {
			s.Close()
		}
	})
	return r.closeErr
}

// ID is this node's id (its transport identity).
func (r *Registry) ID() string { return r.id }

// Leader returns the id of the leader this replica knows, or "".
func (r *Registry) Leader() string {
	_, id := r.raft.LeaderWithID()
	return string(id)
}

// IsLeader reports whether this node is the Raft leader.
func (r *Registry) IsLeader() bool { return r.raft.State() == raft.Leader }

// Lookup returns the directory entry of id from the local replica: a map
// read, no network, no lock.
func (r *Registry) Lookup(id string) (Placement, bool) { return r.fsm.m.lookup(id) }

// RaftStats returns hashicorp/raft's figures of this replica (state, term,
// last_log_index, commit_index, applied_index, num_peers, ...), as strings.
func (r *Registry) RaftStats() map[string]string { return r.raft.Stats() }

// Counters are this registry's running totals since New, for metrics.
type Counters struct {
	LeaderChanges uint64 // leaders this replica has seen elected (a new leader id)
	LeaseRenewals uint64 // lease grants taken (own, as leader, or a leader's pong)
	LeaseLapses   uint64 // times this node's lease ended without a renewal
	RestartGraces uint64 // as leader: restarting members given RestartGrace
	// ReplaySnapshots counts the snapshots a durable registry took to bound
	// a restart's replay (replay.go), beside Raft's own.
	ReplaySnapshots uint64
	Active          int64 // actors active in the local replica
	Stopped         int64 // actors stopped for good in the local replica
}

// Counters returns the running totals.
func (r *Registry) Counters() Counters {
	total, stopped := r.fsm.m.count.Load(), r.fsm.m.stopped.Load()
	return Counters{
		LeaderChanges:   r.stats.leaderChanges.Load(),
		LeaseRenewals:   r.stats.renewals.Load(),
		LeaseLapses:     r.stats.lapses.Load(),
		RestartGraces:   r.stats.graces.Load(),
		ReplaySnapshots: r.stats.replaySnaps.Load(),
		Active:          total - stopped,
		Stopped:         stopped,
	}
}

// Members returns the members, sorted by id, from the local replica.
func (r *Registry) Members() []Member { return r.fsm.m.memberList() }

// Member returns one member from the local replica.
func (r *Registry) Member(id string) (Member, bool) { return r.fsm.m.member(id) }

// MemberStatus returns member id's status in the local replica, copying
// nothing (a call's hot path asks it).
func (r *Registry) MemberStatus(id string) (MemberStatus, bool) { return r.fsm.m.memberStatus(id) }

// ActorsOn returns the active actors placed on node, sorted by id.
func (r *Registry) ActorsOn(node string) []Placement { return r.fsm.m.actorsOn(node) }

// AppliedIndex is the log index of the last entry this replica applied.
func (r *Registry) AppliedIndex() uint64 { return r.fsm.m.applied.Load() }

// Subscribe streams every change this replica applies from now on. Read
// the current state first (ActorsOn, Members), then follow the events; a
// Reset event means the replica was replaced by a snapshot.
func (r *Registry) Subscribe() *Subscription {
	s := r.fsm.subscribe()
	if r.closed.Load() {
		s.Close()
	}
	return s
}

// Spawn places a registered actor (or returns the active one of that id).
// Refusals are *SpawnError wrapping ErrUnknownType, ErrTypeNotHosted,
// ErrNodeNotAlive, ErrNoCandidate, ErrInvalidPolicy or ErrInvalidRequest.
func (r *Registry) Spawn(ctx context.Context, req SpawnRequest) (Placement, error) {
	res, err := r.propose(ctx, command{Type: cmdSpawn, Node: r.id, Spawn: req}, req.ID != "")
	return res.Placement, err
}

// Stop stops actor id for reason. Stopping a stopped actor is a no-op.
func (r *Registry) Stop(ctx context.Context, id, reason string) error {
	_, err := r.propose(ctx, command{Type: cmdStop, ID: id, Reason: reason}, true)
	return err
}

// Forget drops the entry of actor id, placed on this node at epoch, after
// this node passivated it: the directory keeps no trace of it, and the
// next spawn of its name places it anew (a virtual actor's next call). The
// registry refuses (ErrNotOwner, ErrStaleEpoch) unless the entry is still
// active here at epoch, so a move or restart meanwhile wins. Forget
// returns once the local replica has applied the drop; until then the
// caller must not activate the actor again.
func (r *Registry) Forget(ctx context.Context, id string, epoch uint64) error {
	res, err := r.propose(ctx, command{Type: cmdForget, Node: r.id, ID: id, Epoch: epoch}, true)
	if err != nil {
		return err
	}
	// Applied here too before it returns: the caller activates the actor
	// again only once its own replica says where it is.
	return r.WaitApplied(ctx, res.Index)
}

// ReportFailure tells the registry that actor id, placed at epoch, crashed
// past its local budget. The registry restarts it by its policy (new epoch,
// maybe another node; the host waits Policy.Backoff before activating) or
// stops it when the budget is spent, and returns the new entry. ErrStaleEpoch
// means it was already re-placed; the returned Placement is current.
func (r *Registry) ReportFailure(ctx context.Context, id string, epoch uint64, reason string) (Placement, error) {
	res, err := r.propose(ctx, command{Type: cmdRestart, ID: id, Epoch: epoch, Reason: reason}, true)
	return res.Placement, err
}

// Resolve reads the entry of id through the leader's log: linearizable,
// unlike Lookup, at the cost of a Raft round. ErrNotFound if absent.
func (r *Registry) Resolve(ctx context.Context, id string) (Placement, error) {
	res, err := r.propose(ctx, command{Type: cmdRead, ID: id}, true)
	return res.Placement, err
}

// WaitNewer waits until the local replica places id at an epoch above
// epoch and returns that entry, for a caller whose location went stale
// (ErrNotOwner from the old node). A stopped actor gives ErrNotFound with
// its entry; an id the replica does not know yet is waited for.
func (r *Registry) WaitNewer(ctx context.Context, id string, epoch uint64) (Placement, error) {
	r.fsm.waiters.Add(1)
	defer r.fsm.waiters.Add(-1)
	for {
		ch := r.fsm.changes()
		applied := r.fsm.m.applied.Load()
		p, ok := r.fsm.m.lookup(id)
		switch {
		case !ok && forgottenAt(epoch, applied):
			return p, errForgotten(id)
		case ok && p.State == Stopped:
			return p, &SpawnError{ID: id, Type: p.Type, Err: fmt.Errorf("%w: stopped: %s", ErrNotFound, p.Reason)}
		case ok && p.Epoch > epoch:
			return p, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return p, ctx.Err()
		case <-r.done:
			return p, ErrClosed
		}
	}
}

// WaitApplied waits until the local replica has applied the entry at Raft
// log index index (or a later one). A Placement's Epoch is not a log index
// (it is index × 1024 + position in a batch entry; divide by 1024 to get the
// index). It wakes on the replica's applies, without polling, and
// returns ctx's error or ErrClosed if they come first. Raft's own entries
// (configuration changes, a new leader's no-op) are not applied to the
// replica: for such an index it returns at the next applied entry.
func (r *Registry) WaitApplied(ctx context.Context, index uint64) error {
	return r.waitFor(ctx, func() bool { return r.fsm.m.applied.Load() >= index })
}

// WaitLease waits until this node holds a lease (HasLease is true), waking
// when a lease is granted or the replica applies an entry a pending grant
// waits for. It returns ctx's error, or ErrClosed, if they come first. A
// lease can lapse again right after WaitLease returns; Owns judges it at
// each call.
func (r *Registry) WaitLease(ctx context.Context) error {
	return r.waitFor(ctx, r.HasLease)
}

// waitFor waits until cond holds, checking it after every apply, restore
// and lease grant (fsm.wake).
func (r *Registry) waitFor(ctx context.Context, cond func() bool) error {
	r.fsm.waiters.Add(1)
	defer r.fsm.waiters.Add(-1)
	for {
		// Take the channel before testing: a wake between the test and
		// the select then closes the channel already held.
		ch := r.fsm.changes()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-r.done:
			return ErrClosed
		}
	}
}

// HostTypes adds actor types this node can host, e.g. registered after
// start.
//
// While a node restarted from DataDir is still rejoining (peers not back
// yet), the types are recorded locally and sent with the join, and
// HostTypes returns at once: the join that admits the node records them.
func (r *Registry) HostTypes(ctx context.Context, types ...string) error {
	r.typesMu.Lock()
	if !r.joinOver && r.restarted {
		r.joinTypes = append(r.joinTypes, types...)
		r.typesMu.Unlock()
		return nil
	}
	r.typesMu.Unlock()
	_, err := r.propose(ctx, command{Type: cmdTypes, Node: r.id, Types: types}, true)
	return err
}

// typesToJoin returns the types a join sends now: the configured ones and
// those HostTypes recorded while joining.
func (r *Registry) typesToJoin() []string {
	r.typesMu.Lock()
	defer r.typesMu.Unlock()
	return append(slices.Clip(r.cfg.Types), r.joinTypes...)
}

// endTypes ends the recording of HostTypes for the join, whose message
// carried sent types, and returns those recorded after it was built.
func (r *Registry) endTypes(sent int) []string {
	r.typesMu.Lock()
	defer r.typesMu.Unlock()
	r.joinOver = true
	if n := sent - len(r.cfg.Types); n < len(r.joinTypes) {
		return slices.Clone(r.joinTypes[max(n, 0):])
	}
	return nil
}

// Snapshot forces a Raft snapshot of the registry now.
func (r *Registry) Snapshot(ctx context.Context) error {
	f := r.raft.Snapshot()
	return r.wait(ctx, f)
}

func (r *Registry) wait(ctx context.Context, f raft.Future) error {
	ch := make(chan error, 1)
	if !r.goFunc(func() { ch <- f.Error() }) {
		return ErrClosed
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pause waits d, or returns early with ctx's error or ErrClosed.
func (r *Registry) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-r.done:
		return ErrClosed
	}
}

func (r *Registry) callResult(ctx context.Context, to transport.Peer, msg *ctrl) (*result, error) {
	rep, err := r.call(ctx, to, msg)
	if err != nil {
		return nil, err
	}
	if rep.Res == nil {
		return nil, fmt.Errorf("%w: reply without result", ErrBadCommand)
	}
	return rep.Res, nil
}

// attemptTimeout bounds one forwarded request; a leader silent that long is
// presumed lost.
func (r *Registry) attemptTimeout() time.Duration {
	return 2*r.cfg.HeartbeatTimeout + r.cfg.FailTimeout
}

// pendingCall is a request waiting for its reply: only peer (when known)
// may answer it.
type pendingCall struct {
	ch   chan *ctrl
	peer string
}

// call sends msg with a fresh request id and waits for the reply.
func (r *Registry) call(ctx context.Context, to transport.Peer, msg *ctrl) (*ctrl, error) {
	id := r.reqID.Add(1)
	m := *msg
	m.Req = id
	b, err := encodeCtrl(&m)
	if err != nil {
		return nil, err
	}
	ch := make(chan *ctrl, 1)
	r.pendMu.Lock()
	r.pending[id] = pendingCall{ch: ch, peer: to.ID}
	r.pendMu.Unlock()
	defer func() {
		r.pendMu.Lock()
		delete(r.pending, id)
		r.pendMu.Unlock()
	}()
	if err := r.tr.Send(ctx, to, transport.KindControl, b); err != nil {
		return nil, err
	}
	t := time.NewTimer(r.attemptTimeout())
	defer t.Stop()
	select {
	case rep := <-ch:
		return rep, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.done:
		return nil, ErrClosed
	case <-t.C:
		return nil, errAttemptTimeout
	}
}

var errAttemptTimeout = errors.New("placement: no reply from the leader")

func (r *Registry) reply(to string, req uint64, res *result) {
	r.replyCtrl(to, &ctrl{Type: msgResult, Req: req, Res: res})
}

func (r *Registry) replyCtrl(to string, c *ctrl) {
	b, err := encodeCtrl(c)
	if err != nil {
		r.log.Warn("encode reply", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.attemptTimeout())
	defer cancel()
	if err := r.tr.Send(ctx, transport.Peer{ID: to}, transport.KindControl, b); err != nil {
		r.log.Debug("send reply", "peer", to, "err", err)
	}
}

// propose applies c through the leader, forwarding it if this node does not
// lead, and retries while no leader is known or the one asked has stepped
// down. Once this node is registered every write carries (origin,
// incarnation, seq) and the state machine applies it at most once, so a
// retry after an unknown outcome is safe; before that only writes marked
// idempotent are retried.
func (r *Registry) propose(ctx context.Context, c command, idempotent bool) (result, error) {
	if inc := r.inc.Load(); inc != 0 {
		seq, floor, err := r.seqs.acquire(ctx, r.done)
		if err != nil {
			return result{}, err
		}
		defer r.seqs.release(seq)
		c.Origin, c.Inc, c.Seq, c.Floor = r.id, inc, seq, floor
		idempotent = true
	}
	data, err := encodeCommand(c)
	if err != nil {
		return result{}, err
	}
	for {
		if r.closed.Load() {
			return result{}, ErrClosed
		}
		var res *result
		var err error
		addr, lid := r.raft.LeaderWithID()
		switch {
		case r.IsLeader():
			res, err = r.applyLocal(data)
		case lid != "":
			res, err = r.forward(ctx, transport.Peer{ID: string(lid), Addr: string(addr)}, data)
		default:
			err = ErrNoLeader
		}
		if err == nil {
			err = res.Err
			if !errors.Is(err, ErrNotLeader) && !(idempotent && errors.Is(err, ErrUnknownOutcome)) {
				return *res, err
			}
		}
		if ctx.Err() != nil {
			return result{}, fmt.Errorf("placement: %w (last error: %v)", ctx.Err(), err)
		}
		if errors.Is(err, ErrClosed) || (errors.Is(err, ErrUnknownOutcome) && !idempotent) {
			return result{}, err
		}
		if err := r.pause(ctx, r.cfg.HeartbeatTimeout/10); err != nil {
			return result{}, err
		}
	}
}

// handleFrame receives control frames. Replies and pings are handled
// inline; requests that block run on their own goroutine.
func (r *Registry) handleFrame(from string, frame []byte) {
	c, err := decodeCtrl(frame)
	if err != nil {
		_ = r.refuse(from, "control frame", RefusalMalformed, err)
		return
	}
	if r.IsLeader() && r.isClient(from) { // only the leader judges clients (owners.go)
		r.heardClient(from)
	}
	if err := r.allowFrame(from, c); err != nil {
		switch c.Type {
		case msgPropose, msgJoin, msgRemove, msgLookup:
			r.goFunc(func() { r.reply(from, c.Req, &result{Err: err}) })
		}
		return
	}
	switch c.Type {
	case msgResult:
		r.pendMu.Lock()
		pc, ok := r.pending[c.Req]
		r.pendMu.Unlock()
		switch {
		case !ok:
		case pc.peer != "" && pc.peer != from:
			r.refuse(from, "result", RefusalWrongReplier, nil)
		default:
			r.addJoinPeer(from) // while joining: the peer that answered our join
			select {
			case pc.ch <- c:
			default:
			}
		}
	case msgPong:
		r.handlePong(c)
	case msgPing:
		r.handlePing(from, c)
	case msgBack:
		r.handleBack(from)
	case msgLookup:
		r.handleLookup(from, c)
	case msgVerify:
		r.handleVerify(from, c)
	case msgVouch:
		r.handleVouch(from, c)
	case msgPropose:
		r.goFunc(func() { r.replyCtrl(from, r.handlePropose(from, c)) })
	case msgJoin, msgRemove:
		r.goFunc(func() { r.reply(from, c.Req, r.handleRequest(from, c)) })
	}
}

func (r *Registry) handleRequest(from string, c *ctrl) *result {
	ctx, cancel := context.WithTimeout(r.ctx, r.attemptTimeout())
	defer cancel()
	switch c.Type {
	case msgJoin:
		res, err := r.joinFrom(ctx, from, c)
		if err != nil {
			return &result{Err: err}
		}
		return res
	case msgRemove:
		if !r.IsLeader() {
			return &result{Err: ErrNotLeader}
		}
		if err := r.removeServer(from); err != nil {
			return &result{Err: err}
		}
		return &result{}
	}
	return &result{Err: ErrBadCommand}
}
