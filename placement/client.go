package placement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupe-dev/troupe/transport"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// Transport carries the client's control frames. It should hold a
	// client certificate (transport.IssueOptions.Client): members refuse
	// its joins and Raft streams, and accept its lookups, spawns and
	// stops. Required.
	Transport transport.Transport
	// Join lists member addresses to ask. Required.
	Join []string
	// Timeout bounds one request to one member. Zero means 2s.
	Timeout time.Duration
	// Logger receives the client's debug lines. Nil means silent.
	Logger *slog.Logger
}

// Client reads and writes the registry of a cluster without being a
// member: no replica, no vote, nothing hosted. It asks members for
// placements (msgLookup, answered by any member) and caches them; a
// caller whose cached placement went stale asks again with WaitNewer,
// which a member holds until a newer placement is applied. Spawns and
// stops go to the leader (msgPropose), which authorizes them by the
// client's certificate (authorizeClient).
type Client struct {
	cfg ClientConfig
	tr  transport.Transport
	id  string
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	closed atomic.Bool

	reqID   atomic.Uint64
	pendMu  sync.Mutex
	pending map[uint64]pendingCall

	mu     sync.Mutex
	cache  map[string]Placement // actor id -> latest placement seen
	addrs  map[string]string    // member id -> address, from replies
	leader transport.Peer       // the leader the latest reply named
	next   int                  // round robin over Join
	member []Member             // the members, as the latest Members gave them
}

// maxClientCache bounds the cached placements; past it the cache starts
// again empty (lookups refill it).
const maxClientCache = 1 << 20

// NewClient returns a client once a member has answered it (within ctx).
func NewClient(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if cfg.Transport == nil {
		return nil, fmt.Errorf("%w: ClientConfig.Transport is nil", ErrInvalidRequest)
	}
	if len(cfg.Join) == 0 {
		return nil, fmt.Errorf("%w: a client needs Join addresses", ErrInvalidRequest)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	c := &Client{cfg: cfg, tr: cfg.Transport, id: cfg.Transport.ID(), log: cfg.Logger,
		pending: make(map[uint64]pendingCall), cache: make(map[string]Placement), addrs: make(map[string]string)}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("client", c.id)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.reqID.Store(rand.Uint64() >> 1)
	c.tr.Handle(transport.KindControl, transport.HandlerFunc(c.handleFrame))
	if _, err := c.Members(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("placement: client %s: no member answered: %w", c.id, err)
	}
	return c, nil
}

// Members asks a member for the members, as its replica has them.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	ms, _, err := c.members(ctx, &ctrl{Type: msgLookup})
	return ms, err
}

// WatchMembers waits, bounded by a member (about 2 s), until the members
// changed after revision rev, and returns them with their revision; it
// returns the current ones at once if they are newer than rev, and when
// the wait ends with no change. KnownMembers and HostDown follow. A member
// of a version without the watch answers at once with revision 0: the
// caller then paces itself.
func (c *Client) WatchMembers(ctx context.Context, rev uint64) ([]Member, uint64, error) {
	return c.members(ctx, &ctrl{Type: msgLookup, Wait: true, After: rev})
}

func (c *Client) members(ctx context.Context, msg *ctrl) ([]Member, uint64, error) {
	for {
		to := c.target()
		res, err := c.ask(ctx, to, msg)
		if err == nil && res.Err == nil {
			c.learn(res)
			c.mu.Lock()
			c.member = res.Members
			for _, m := range res.Members {
				c.addrs[m.ID] = m.Addr
			}
			c.mu.Unlock()
			return res.Members, res.MemberRev, nil
		}
		if err == nil {
			err = res.Err
		}
		c.failed(to)
		if cerr := c.retryable(ctx, err); cerr != nil {
			return nil, 0, cerr
		}
	}
}

// KnownMembers returns the members the latest Members call returned.
func (c *Client) KnownMembers() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.member
}

// HostDown reports whether the latest member list names node as failed,
// left or expelled.
func (c *Client) HostDown(node string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.member {
		if m.ID == node {
			return m.Status != Alive
		}
	}
	return false
}

// ID is the client's id, from its certificate.
func (c *Client) ID() string { return c.id }

// Close stops the client; requests waiting end with ErrClosed. It does
// not close the transport.
func (c *Client) Close() {
	if c.closed.Swap(true) {
		return
	}
	c.cancel()
	c.tr.Handle(transport.KindControl, nil)
}

// Lookup returns the cached placement of id: no network.
func (c *Client) Lookup(id string) (Placement, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.cache[id]
	return p, ok
}

// Addr returns the address of member node, as the latest reply naming it
// as a host gave it, or "".
func (c *Client) Addr(node string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs[node]
}

// Leader returns the id of the leader the latest reply named, or "".
func (c *Client) Leader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader.ID
}

// Resolve asks a member where id is now. A stopped or unknown actor is
// ErrNotFound (a *SpawnError).
func (c *Client) Resolve(ctx context.Context, id string) (Placement, error) {
	return c.lookup(ctx, &ctrl{Type: msgLookup, ID: id})
}

// WaitNewer waits until a member places id at an epoch above epoch and
// returns that entry, for a caller whose location went stale. A stopped
// actor is ErrNotFound with its entry; one forgotten after its passivation
// is ErrForgotten (matching ErrNotFound), and leaves the cache.
func (c *Client) WaitNewer(ctx context.Context, id string, epoch uint64) (Placement, error) {
	if p, ok := c.Lookup(id); ok && p.Epoch > epoch {
		return p, nil
	}
	for {
		p, err := c.lookup(ctx, &ctrl{Type: msgLookup, ID: id, After: epoch, Wait: true})
		switch {
		case errors.Is(err, ErrForgotten):
			c.mu.Lock()
			if q, ok := c.cache[id]; ok && q.Epoch <= epoch {
				delete(c.cache, id)
			}
			c.mu.Unlock()
			return p, err
		case err != nil && !errors.Is(err, ErrNotFound):
			return p, err
		case err != nil && p.ID != "": // stopped
			return p, err
		case err == nil && p.Epoch > epoch:
			return p, nil
		}
		// The member's wait ended with nothing newer (or the id is not
		// known yet): ask again, within ctx.
		if err := c.pause(ctx, 10*time.Millisecond); err != nil {
			return p, err
		}
	}
}

// Spawn places an actor on behalf of the client. req.Strategy Local is
// refused: a client hosts nothing. An unnamed actor gets a random name
// here, so that a retry (the reply lost, the leader changed) finds the
// actor the first attempt placed instead of placing another.
func (c *Client) Spawn(ctx context.Context, req SpawnRequest) (Placement, error) {
	if req.ID == "" {
		req.ID = fmt.Sprintf("client:%s:%016x", c.id, rand.Uint64()) // "~" is the registry's
	}
	res, err := c.propose(ctx, command{Type: cmdSpawn, Node: c.id, Spawn: req})
	if err != nil {
		return res.Placement, err
	}
	c.remember(res.Placement, "")
	return res.Placement, nil
}

// Release stops every actor this client owns (SpawnRequest.Owner), as a
// client does when it closes.
func (c *Client) Release(ctx context.Context) error {
	_, err := c.propose(ctx, command{Type: cmdRelease, Node: c.id, Reason: "owner " + c.id + " closed"})
	return err
}

// Stop stops actor id for reason.
func (c *Client) Stop(ctx context.Context, id, reason string) error {
	res, err := c.propose(ctx, command{Type: cmdStop, ID: id, Reason: reason})
	if err == nil {
		c.remember(res.Placement, "") // stopped: calls through it fail at once
	}
	return err
}

// lookup sends a lookup to a member (the leader when known, else the Join
// addresses in turn) and caches the answer.
func (c *Client) lookup(ctx context.Context, msg *ctrl) (Placement, error) {
	for {
		to := c.target()
		res, err := c.ask(ctx, to, msg)
		if err == nil && errors.Is(res.Err, ErrNotFound) && res.Placement.ID == "" && res.Leader != "" && res.Leader != to.ID {
			// A follower may not have applied a spawn the leader
			// answered: an unknown id is asked of the leader too.
			lead := transport.Peer{ID: res.Leader, Addr: res.LeaderAddr}
			if lres, lerr := c.ask(ctx, lead, msg); lerr == nil {
				to, res = lead, lres
			}
		}
		if err == nil {
			c.learn(res)
			if res.Err == nil || res.Placement.ID != "" {
				c.remember(res.Placement, res.HostAddr)
			}
			return res.Placement, res.Err
		}
		c.failed(to)
		if cerr := c.retryable(ctx, err); cerr != nil {
			return Placement{}, cerr
		}
	}
}

// propose sends one command to the leader, following its redirects, and
// retries while no leader answers.
func (c *Client) propose(ctx context.Context, cmd command) (result, error) {
	data, err := encodeCommand(cmd)
	if err != nil {
		return result{}, err
	}
	msg := &ctrl{Type: msgPropose, Cmd: data}
	for {
		to := c.target()
		rep, err := c.call(ctx, to, msg)
		if err != nil {
			c.failed(to)
		} else {
			var res result
			switch {
			case len(rep.Rs) == 1:
				res = rep.Rs[0]
			case rep.Res != nil:
				res = *rep.Res
				c.learn(&res)
			default:
				return result{}, fmt.Errorf("%w: propose reply without result", ErrBadCommand)
			}
			// Every client command may be retried: spawns are named (see
			// Spawn), stops and reads idempotent.
			if !errors.Is(res.Err, ErrNotLeader) && !errors.Is(res.Err, ErrNoLeader) && !errors.Is(res.Err, ErrUnknownOutcome) {
				return res, res.Err
			}
			err = res.Err
		}
		if cerr := c.retryable(ctx, err); cerr != nil {
			return result{}, cerr
		}
	}
}

// retryable returns nil if err is worth another attempt (after a pause),
// else the error to return.
func (c *Client) retryable(ctx context.Context, err error) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if errors.Is(err, transport.ErrRefused) || errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrExpelled) {
		return err
	}
	c.log.Debug("registry request retry", "err", err)
	if perr := c.pause(ctx, 20*time.Millisecond); perr != nil {
		return fmt.Errorf("placement: client: %w (last error: %v)", perr, err)
	}
	return nil
}

func (c *Client) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return ErrClosed
	}
}

// target picks whom to ask: the known leader, else in turn the Join
// addresses and the alive members the latest Members named (so a client
// whose Join nodes are all gone still finds the others).
func (c *Client) target() transport.Peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader.ID != "" {
		return c.leader
	}
	c.next++
	var alive []Member
	for _, m := range c.member {
		if m.Status == Alive && m.Addr != "" {
			alive = append(alive, m)
		}
	}
	k := c.next % (len(c.cfg.Join) + len(alive))
	if k < len(c.cfg.Join) {
		return transport.Peer{Addr: c.cfg.Join[k]}
	}
	m := alive[k-len(c.cfg.Join)]
	return transport.Peer{ID: m.ID, Addr: m.Addr}
}

// failed forgets the leader if it was to, which did not answer.
func (c *Client) failed(to transport.Peer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if to.ID != "" && c.leader.ID == to.ID {
		c.leader = transport.Peer{}
	}
}

// learn records the leader and host addresses a reply names.
func (c *Client) learn(res *result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if res.Leader != "" && res.LeaderAddr != "" {
		c.leader = transport.Peer{ID: res.Leader, Addr: res.LeaderAddr}
		c.addrs[res.Leader] = res.LeaderAddr
	}
}

// remember caches p, keeping the newest epoch, and its host's address.
func (c *Client) remember(p Placement, hostAddr string) {
	if p.ID == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if hostAddr != "" {
		c.addrs[p.Node] = hostAddr
	}
	if old, ok := c.cache[p.ID]; ok && old.Epoch > p.Epoch {
		return
	}
	if len(c.cache) >= maxClientCache {
		clear(c.cache)
	}
	c.cache[p.ID] = p
}

// ask sends a request and returns the reply's result.
func (c *Client) ask(ctx context.Context, to transport.Peer, msg *ctrl) (*result, error) {
	rep, err := c.call(ctx, to, msg)
	if err != nil {
		return nil, err
	}
	if rep.Res == nil {
		return nil, fmt.Errorf("%w: reply without result", ErrBadCommand)
	}
	return rep.Res, nil
}

// call sends msg with a fresh request id to one member and waits, at most
// Timeout, for its reply.
func (c *Client) call(ctx context.Context, to transport.Peer, msg *ctrl) (*ctrl, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	id := c.reqID.Add(1)
	m := *msg
	m.Req = id
	b, err := encodeCtrl(&m)
	if err != nil {
		return nil, err
	}
	ch := make(chan *ctrl, 1)
	c.pendMu.Lock()
	c.pending[id] = pendingCall{ch: ch, peer: to.ID}
	c.pendMu.Unlock()
	defer func() {
		c.pendMu.Lock()
		delete(c.pending, id)
		c.pendMu.Unlock()
	}()
	timeout := c.cfg.Timeout
	if msg.Wait {
		timeout += lookupWait // the member holds the request that long
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.tr.Send(actx, to, transport.KindControl, b); err != nil {
		return nil, err
	}
	select {
	case rep := <-ch:
		return rep, nil
	case <-actx.Done():
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("placement: client: no reply from %s%s within %v", to.ID, to.Addr, timeout)
	case <-c.ctx.Done():
		return nil, ErrClosed
	}
}

// handleFrame takes replies: from the peer asked when its id was known.
func (c *Client) handleFrame(from string, frame []byte) {
	rep, err := decodeCtrl(frame)
	if err != nil || rep.Type != msgResult {
		c.log.Debug("control frame dropped", "peer", from, "err", err)
		return
	}
	c.pendMu.Lock()
	pc, ok := c.pending[rep.Req]
	c.pendMu.Unlock()
	if !ok || (pc.peer != "" && pc.peer != from) {
		return
	}
	select {
	case pc.ch <- rep:
	default:
	}
}
