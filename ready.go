package troupe

import (
	"context"
	"errors"
	"fmt"
)

// errNotReady is what a readiness check says of a node that runs but
// cannot serve yet.
var errNotReady = errors.New("not ready")

// Ready waits until the node is a member of its cluster holding the lease
// that lets it serve its actors: at once for a node that Start bootstrapped
// or joined, and for a node restarted from DataDir, once enough of its
// peers are back for a quorum and its rejoin is applied. It fails if the
// rejoin failed for good (the node was expelled, or its id is live at
// another address) or the node closed, and with ctx's error when ctx ends
// first. A lease can lapse again right after Ready returns (a partition);
// calls wait for it on their own, so Ready is for start-up scripts and
// health checks, not a precondition of every call.
func (n *Node) Ready(ctx context.Context) error {
	if n.cl != nil {
		return nil // a member answered before Start returned
	}
	if err := n.reg.WaitJoined(ctx); err != nil {
		return fmt.Errorf("troupe: %s not ready: %w", n.id, err)
	}
	if err := n.reg.WaitLease(ctx); err != nil {
		return fmt.Errorf("troupe: %s not ready: %w", n.id, err)
	}
	return nil
}

// waitLeaseUnlessRestarted is Start's wait: for the lease, unless the node
// restarted from DataDir (see Start).
func (n *Node) waitLeaseUnlessRestarted(ctx context.Context) error {
	if n.reg.Restarted() {
		return nil
	}
	return n.reg.WaitLease(ctx)
}

// readyNow is Ready without waiting: nil when the node is ready, else why
// not.
func (n *Node) readyNow() error {
	if n.cl != nil {
		return nil
	}
	done, err := n.reg.Joined()
	switch {
	case err != nil:
		return fmt.Errorf("troupe: %s not ready: %w", n.id, err)
	case !done:
		return fmt.Errorf("troupe: %s %w: rejoining its cluster (waiting for a quorum of its peers)", n.id, errNotReady)
	case !n.reg.HasLease():
		return fmt.Errorf("troupe: %s %w: no lease (no leader reachable)", n.id, errNotReady)
	}
	return nil
}
