package troupe

import (
	"context"
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
// call places it anew. Its id is typeName + "/" + key; do not give other
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
	got, err := n.Spawn(ctx, r.Type, WithName(r.ID))
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
