package troupe

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/remote"
)

// Register makes the type T callable on node under name: the exported
// methods of *T shaped func(x *T) M([ctx context.Context,] args...) ([R,]
// [error]) become callable (see remote.NewType), and the registry learns
// that node hosts name, so actors of that type may be placed on it.
// Register fails, with an error matching ErrBadType that names each one and
// why, if *T has an exported method of another shape: it could never be
// called, and a misspelled signature is better caught here than at the
// first call. Register every type on every node that may host it; nothing is ever
// instantiated from a name that was not registered. Register waits for one
// registry write (bounded by 30s and by Close).
func Register[T any](node *Node, name string, newFn func() *T, opts ...RegisterOption) error {
	if node == nil {
		return errors.New("troupe: Register on a nil node")
	}
	if node.closing.Load() {
		return ErrClosed
	}
	if node.cl != nil {
		return fmt.Errorf("troupe: register %q: %w", name, ErrClient)
	}
	t, err := remote.NewType(name, newFn)
	if err != nil {
		return fmt.Errorf("troupe: register %q: %w", name, err)
	}
	if skipped := t.Skipped(); len(skipped) > 0 {
		// A method of the wrong shape would only fail at its first call:
		// say which ones, and why, now.
		names := make([]string, 0, len(skipped))
		for m := range skipped {
			names = append(names, m)
		}
		slices.Sort(names)
		why := make([]string, len(names))
		for i, m := range names {
			why[i] = name + "." + m + ": " + skipped[m]
		}
		return fmt.Errorf("troupe: register %q: %w: exported methods that cannot be called: %s", name, ErrBadType, strings.Join(why, "; "))
	}
	var o registerOptions
	for _, f := range opts {
		f(&o)
	}
	t.SetIdleTimeout(o.idle)
	if err := node.types.Add(t); err != nil {
		if errors.Is(err, remote.ErrDuplicateType) {
			return fmt.Errorf("troupe: register %q: %w: %w", name, ErrTypeMismatch, err)
		}
		return fmt.Errorf("troupe: register %q: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(node.ctx, registerTimeout)
	defer cancel()
	if err := node.reg.HostTypes(ctx, name); err != nil {
		return fmt.Errorf("troupe: register %q with the registry: %w", name, err)
	}
	return nil
}

// RegisterOption qualifies a Register.
type RegisterOption func(*registerOptions)

type registerOptions struct{ idle time.Duration }

// PassivateAfter overrides Config.IdleTimeout for the type: its actors
// are passivated after d without a call; negative means never.
func PassivateAfter(d time.Duration) RegisterOption {
	return func(o *registerOptions) {
		o.idle = d
		if d == 0 {
			o.idle = -1 // zero would mean "the node's": say never explicitly
		}
	}
}

// RestartPolicy is how the cluster restarts a registered actor whose node
// failed or which crashed past its node's local restart budget
// (Config.Restart).
type RestartPolicy struct {
	// MaxRestarts: 0 never restarts (the actor stops), N > 0 restarts at
	// most N times, -1 without limit.
	MaxRestarts int
	// Backoff is how long the new host refuses calls (ErrUnavailable) after a
	// restart; then it activates the actor by itself, before any call. Zero
	// means none (activated at once).
	Backoff time.Duration
}

// spawnOptions collect the SpawnOptions of one Spawn.
type spawnOptions struct {
	name     string
	strategy placement.Strategy
	node     string
	policy   RestartPolicy
	detached bool
}

// SpawnOption qualifies a Spawn.
type SpawnOption func(*spawnOptions)

// WithName names the actor: if an active actor of that name exists, Spawn
// returns it (get-if-exists, decided by the registry, so racing spawns of
// one name yield one actor). Without it the registry generates an id.
func WithName(name string) SpawnOption { return func(o *spawnOptions) { o.name = name } }

// OnNode places the actor on node id.
func OnNode(id string) SpawnOption {
	return func(o *spawnOptions) { o.strategy, o.node = placement.OnNode, id }
}

// Local places the actor on the spawning node.
func Local() SpawnOption { return func(o *spawnOptions) { o.strategy = placement.Local } }

// Random places the actor on a pseudo-random node that hosts its type.
func Random() SpawnOption { return func(o *spawnOptions) { o.strategy = placement.Random } }

// LeastLoaded places the actor on the node hosting its type with the fewest
// actors. It is the default.
func LeastLoaded() SpawnOption { return func(o *spawnOptions) { o.strategy = placement.LeastLoaded } }

// ByHash places the actor by rendezvous hashing of its id over the nodes
// hosting its type (stable while they are).
func ByHash() SpawnOption { return func(o *spawnOptions) { o.strategy = placement.HashID } }

// WithRestart sets the cluster restart policy. Without it a registered actor
// is restarted without limit and without backoff, so refs keep working
// across node failures.
func WithRestart(p RestartPolicy) SpawnOption { return func(o *spawnOptions) { o.policy = p } }

// Detached makes an actor spawned by a client outlive it. Without it a
// client owns what it spawns, as a Ray driver owns its non-detached
// actors: the registry stops those actors when the client closes, or when
// it has not heard from the client for its client timeout (10 s, or 4 ×
// FailTimeout if longer) — a client killed without a word. Members' spawns
// and virtual actors are always detached; on a member Detached changes
// nothing.
func Detached() SpawnOption { return func(o *spawnOptions) { o.detached = true } }

// Spawn places a registered actor of typeName somewhere in the cluster (by
// default on the least-loaded node hosting the type) and returns a Ref bound
// to n. The actor is activated on its host by the first call (after a
// re-placement, the new host activates it without waiting for one).
func (n *Node) Spawn(ctx context.Context, typeName string, opts ...SpawnOption) (Ref, error) {
	o := spawnOptions{policy: RestartPolicy{MaxRestarts: -1}}
	for _, f := range opts {
		f(&o)
	}
	if n.closing.Load() {
		return Ref{}, ErrClosed
	}
	req := placement.SpawnRequest{ID: o.name, Type: typeName, Strategy: o.strategy,
		Node: o.node, Policy: placement.RestartPolicy{MaxRestarts: o.policy.MaxRestarts, Backoff: o.policy.Backoff}}
	if n.cl != nil && !o.detached {
		req.Owner = n.id
		n.owns.Store(true)
	}
	p, err := n.dir.Spawn(ctx, req)
	if err != nil {
		return Ref{}, fmt.Errorf("troupe: spawn %s: %w", typeName, err)
	}
	if p.Type != typeName {
		return Ref{}, fmt.Errorf("troupe: spawn %s: %w: %q is a %s", typeName, ErrTypeMismatch, p.ID, p.Type)
	}
	n.catchUp(ctx, p)
	return n.refOf(p), nil
}

// catchUp waits until the local replica has applied placement p (or a newer
// one), so that calls through the Ref resolve locally at once; the wait is
// the replication lag of a follower (milliseconds) and is bounded by ctx.
// Should ctx end first, calls still work through the Ref's hint.
func (n *Node) catchUp(ctx context.Context, p placement.Placement) {
	if n.reg == nil {
		return // a client: the spawn's answer is its cache
	}
	if q, ok := n.reg.Lookup(p.ID); ok && q.Epoch >= p.Epoch {
		return
	}
	_, _ = n.reg.WaitNewer(ctx, p.ID, p.Epoch-1)
}

// Lookup returns a Ref to the active registered actor called name: from the
// local replica when it knows the name, else through the leader (a
// linearizable read). A missing or stopped actor gives ErrNotFound.
func (n *Node) Lookup(ctx context.Context, name string) (Ref, error) {
	if n.closing.Load() {
		return Ref{}, ErrClosed
	}
	p, ok := n.dir.Lookup(name)
	if !ok {
		var err error
		if p, err = n.dir.Resolve(ctx, name); err != nil {
			if errors.Is(err, placement.ErrNotFound) {
				return Ref{}, fmt.Errorf("troupe: lookup %q: %w", name, ErrNotFound)
			}
			return Ref{}, fmt.Errorf("troupe: lookup %q: %w", name, err)
		}
		n.catchUp(ctx, p)
	}
	if p.State != placement.Active {
		return Ref{}, fmt.Errorf("troupe: lookup %q: %w (stopped: %s)", name, ErrNotFound, p.Reason)
	}
	return n.refOf(p), nil
}

// SpawnLocal starts an ephemeral actor of typeName (registered on n) on n
// only: no registry entry and no consensus, so it is cheap (fan-out,
// per-request workers), but it dies with n and is not restarted elsewhere.
// It is called like any actor, from any node, its arguments still passing
// through the codec; the local supervisor restarts it per Config.Restart,
// and past that budget it is gone (ErrNotFound). ctx is unused but kept for
// symmetry with Spawn.
func (n *Node) SpawnLocal(_ context.Context, typeName string) (Ref, error) {
	if n.closing.Load() {
		return Ref{}, ErrClosed
	}
	if _, ok := n.types.Lookup(typeName); !ok {
		return Ref{}, fmt.Errorf("troupe: spawn local %s: type not registered on %s: %w", typeName, n.id, ErrUnknownType)
	}
	id := n.newLocalID()
	n.locals.Store(id, typeName)
	return Ref{Ref: remote.Ref{ID: id, Type: typeName, Node: n.id}, node: n}, nil
}

// StopActor stops the actor r names: a registered actor is stopped in the
// registry (final: it is not restarted, watchers get Stopped); an ephemeral
// actor of this node is dropped.
func (n *Node) StopActor(ctx context.Context, r Ref) error {
	if n.closing.Load() {
		return ErrClosed
	}
	if isLocalID(r.ID) {
		if r.Node != n.id {
			return fmt.Errorf("troupe: ephemeral actor %s lives on %s, stop it there: %w", r.ID, r.Node, ErrNotOwner)
		}
		if _, ok := n.locals.LoadAndDelete(r.ID); !ok {
			return fmt.Errorf("troupe: stop %s: %w", r.ID, ErrNotFound)
		}
		n.ep.Deactivate(r.ID)
		n.notify(r.ID, ActorEvent{Kind: Stopped, Ref: r, Reason: "stopped"})
		return nil
	}
	if err := n.dir.Stop(ctx, r.ID, "stopped by "+n.id); err != nil {
		return fmt.Errorf("troupe: stop %s: %w", r.ID, err)
	}
	return nil
}
