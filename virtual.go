package troupe

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/remote"
)

// Virtual returns a Ref to the virtual actor of typeName with key, as
// Orleans grains and Dapr actors are addressed: it needs no Spawn. The
// first call through it (from any node) places the actor, by the
// registry's default strategy, on a node hosting the type — one Raft
// write, decided by the registry, so first calls racing from several
// nodes make one actor — and the host activates it; later calls find it
// in the local replica and cost no write. It is a registered actor
// restarted without limit: after a node failure or a move it is active
// again where the registry placed it, and after a stop for good the next
// call places it anew. Once passivated (Config.IdleTimeout, PassivateAfter)
// its host drops its registry entry, and the next call places it anew too
// (one write again). Its id is typeName + "/" + key; do not give other
// actors names of that form.
//
// The first call blocks in Call (or Tell) for that write, within ctx.
func (n *Node) Virtual(typeName, key string) Ref {
	return Ref{Ref: remote.Ref{ID: virtualID(typeName, key), Type: typeName}, node: n}
}

func virtualID(typeName, key string) string { return typeName + "/" + key }

// isVirtual reports whether r names a virtual actor (its id is its type,
// "/", a key), so a virtual Ref keeps working once decoded elsewhere.
func isVirtual(r Ref) bool {
	return len(r.ID) > len(r.Type) && r.ID[len(r.Type)] == '/' && strings.HasPrefix(r.ID, r.Type)
}

// ensureVirtual places the virtual actor r names if the local replica has
// no active placement of it, and returns r with the placement's hint.
func (n *Node) ensureVirtual(ctx context.Context, r Ref) (Ref, error) {
	if p, ok := n.dir.Lookup(r.ID); ok && p.State == placement.Active {
		if r.Node == "" {
			r.Node, r.Epoch = p.Node, p.Epoch
		}
		return r, nil
	}
	got, err := n.Spawn(ctx, r.Type, WithName(r.ID), Detached()) // cluster-scoped, whoever calls first
	if err != nil {
		return r, fmt.Errorf("troupe: virtual actor %s: %w", r.ID, err)
	}
	got.opts = r.opts
	return got, nil
}

// Self returns the actor whose OnActivate or OnDeactivate hook got ctx
// (bound to the hosting node, which ctx carries too): a virtual actor's
// key is Key(Self(ctx)).
func Self(ctx context.Context) (Ref, bool) {
	r, ok := remote.SelfFromContext(ctx)
	if !ok {
		return Ref{}, false
	}
	n, _ := FromContext(ctx)
	return Ref{Ref: r, node: n}, true
}

// Key returns the key of a virtual actor's Ref, and false for other
// actors.
func Key(r Ref) (string, bool) {
	if !isVirtual(r) {
		return "", false
	}
	return r.ID[len(r.Type)+1:], true
}

// forget drops the registry entry of virtual actor r after this node
// passivated it (remote.Config.Forget): nil once the entry is gone or
// certainly kept (moved, restarted or stopped meanwhile), an error when
// the outcome is not known yet (the endpoint asks again).
func (n *Node) forget(ctx context.Context, r remote.Ref) error {
	err := n.reg.Forget(ctx, r.ID, r.Epoch)
	switch {
	case err == nil:
		n.log("virtual actor forgotten after passivation", "actor", r.ID, "epoch", r.Epoch)
		return nil
	case errors.Is(err, placement.ErrNotFound), errors.Is(err, placement.ErrNotOwner), errors.Is(err, placement.ErrStaleEpoch):
		return nil
	}
	return err
}

// Recreatable reports whether a call to r that found no entry may place
// it again (remote.Recreator): r is a virtual actor.
func (r *resolver) Recreatable(ref remote.Ref) bool {
	_, ok := (*Node)(r).virtualRef(ref)
	return ok
}

// virtualRef returns ref as a virtual actor's Ref, if it is one. A Ref
// with no type (a host forwarding a one-way request) takes the type its id
// names among this node's registered types.
func (n *Node) virtualRef(ref remote.Ref) (Ref, bool) {
	if ref.Type == "" {
		for _, t := range n.types.Names() {
			if strings.HasPrefix(ref.ID, t+"/") && len(ref.ID) > len(t)+1 {
				ref.Type = t
				break
			}
		}
	}
	vr := Ref{Ref: remote.Ref{ID: ref.ID, Type: ref.Type}, node: n}
	return vr, isVirtual(vr)
}

// Recreate places virtual actor ref again, after its entry was forgotten
// (or it stopped), and returns where; for an actor that moved meanwhile,
// where it is now.
func (r *resolver) Recreate(ctx context.Context, ref remote.Ref) (remote.Location, bool, error) {
	n := (*Node)(r)
	vr, ok := n.virtualRef(ref)
	if !ok {
		return remote.Location{}, false, nil
	}
	got, err := n.ensureVirtual(ctx, vr)
	if err != nil {
		return remote.Location{}, true, err
	}
	if p, ok := n.dir.Lookup(got.ID); ok && p.State == placement.Active {
		return r.location(p), true, nil
	}
	return r.location(placement.Placement{Node: got.Node, Epoch: got.Epoch}), true, nil
}
