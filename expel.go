package troupe

import (
	"context"
	"fmt"
)

// Expel removes the member id from the cluster for good: its registered
// actors are restarted elsewhere by their restart policies, it is removed
// from Raft, and its id is denied from then on (no connection, no join:
// placement.ErrExpelled), which survives restarts. Use it for a member whose
// certificate leaked or that must never come back; a member that only
// leaves (Stop) may join again. id may not be the leader (transfer
// leadership first) nor this node. It returns once the expel is applied and
// this node's Raft configuration no longer holds id.
func (n *Node) Expel(ctx context.Context, id string) error {
	if n.reg == nil {
		return fmt.Errorf("troupe: expel %s: %w", id, ErrClient)
	}
	if err := n.reg.Expel(ctx, id); err != nil {
		return fmt.Errorf("troupe: expel %s: %w", id, err)
	}
	return nil
}
