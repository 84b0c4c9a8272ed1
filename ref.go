package troupe

import (
	"context"
	"strconv"
	"strings"

	"github.com/troupe-dev/troupe/remote"
)

// Ref names an actor anywhere in the cluster: its id, its type and a
// location hint (node and epoch). It is plain data as far as msgpack is
// concerned: it encodes as [id, type, node|nil, epoch], so it can be passed
// as an argument and returned as a result. A Ref from Spawn, Lookup or
// Node.Ref is bound to the node that made it and calls go through that
// node; a decoded Ref is unbound and calls go through the node carried by
// ctx (every method's ctx carries its hosting node; elsewhere use
// NewContext or Node.Ref), else fail with *NoNodeError.
type Ref struct {
	remote.Ref
	node *Node
	opts remote.CallOptions
}

// Bound reports whether r is bound to a node.
func (r Ref) Bound() bool { return r.node != nil }

// CallOption qualifies the calls made through a Ref; see Ref.With.
type CallOption func(*remote.CallOptions)

// Idempotent declares the method safe to run twice: a call whose host
// failed after the request left is retried once at the new host. Without
// it calls are at-most-once and such a call fails with ErrUnavailable.
func Idempotent() CallOption {
	return func(o *remote.CallOptions) { o.Idempotent = true }
}

// With returns a copy of r whose calls use opts. Options are local to the
// copy: they are not encoded with the Ref.
func (r Ref) With(opts ...CallOption) Ref {
	for _, o := range opts {
		o(&r.opts)
	}
	return r
}

// Ref binds r (typically decoded from a message) to n, so calls through it
// go through n.
func (n *Node) Ref(r Ref) Ref {
	r.node = n
	return r
}

type nodeKey struct{}

// NewContext returns a ctx carrying n: calls through unbound Refs with that
// ctx go through n. The ctx handed to methods of hosted actors carries
// their hosting node already, so a method can call the Refs it receives.
func NewContext(ctx context.Context, n *Node) context.Context {
	return context.WithValue(ctx, nodeKey{}, n)
}

// FromContext returns the node ctx carries.
func FromContext(ctx context.Context) (*Node, bool) {
	n, ok := ctx.Value(nodeKey{}).(*Node)
	return n, ok && n != nil
}

// nodeFor picks the node a call to r goes through: the node r is bound to,
// else the node ctx carries (a method's ctx carries its hosting node, set
// through remote.Config.BaseContext). There is no process-wide fallback: a
// process may hold nodes of several clusters, and only the caller knows
// which one it means; without a node the call fails with *NoNodeError.
func nodeFor(ctx context.Context, r Ref, method string) (*Node, error) {
	if r.node != nil {
		return r.node, nil
	}
	if ctx != nil {
		if n, ok := FromContext(ctx); ok {
			return n, nil
		}
	}
	return nil, &NoNodeError{Ref: r, Method: method}
}

// localPrefix starts the id of every ephemeral actor. Ids starting with "~"
// are reserved by the registry, so none of its actors can collide.
const localPrefix = "~L."

func isLocalID(id string) bool { return strings.HasPrefix(id, localPrefix) }

// localNode returns the node of an ephemeral actor id: localPrefix + node +
// "." + counter.
func localNode(id string) (string, bool) {
	rest, ok := strings.CutPrefix(id, localPrefix)
	if i := strings.LastIndexByte(rest, '.'); ok && i > 0 {
		return rest[:i], true
	}
	return "", false
}

func (n *Node) newLocalID() string {
	return localPrefix + n.id + "." + strconv.FormatUint(n.localN.Add(1), 10)
}
