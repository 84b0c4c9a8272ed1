package placement

import (
	"context"
	"fmt"
)

// Expel removes member id from the cluster for good: its actors are
// re-placed as on a failure (the moves are fenced, since the expelled node
// may still be up), it is removed from the Raft configuration, and its id
// enters the deny list of the replicated state (in snapshots too), so it can
// neither join again (ErrExpelled) nor connect (the transport Gate refuses
// it). Unlike a member that left, an expelled id never comes back; an id
// that never joined may be expelled too, e.g. when its certificate leaked.
//
// Any alive member may call it; the leader may not be expelled (transfer
// leadership first), nor the calling node itself. It returns once the
// expel is applied and this replica's Raft configuration no longer holds
// id, or with ctx's error.
func (r *Registry) Expel(ctx context.Context, id string) error {
	if id == "" || id == r.id {
		return fmt.Errorf("%w: cannot expel %q from itself", ErrInvalidRequest, id)
	}
	if _, err := r.propose(ctx, command{Type: cmdExpel, Node: id}, true); err != nil {
		return err
	}
	if r.IsLeader() {
		r.removeExpelled()
	}
	return r.waitFor(ctx, func() bool { return !r.inRaftConfig(id) })
}

// removeExpelled runs on the leader (monitorLoop, Expel): it removes every
// expelled member still in the Raft configuration. A failure is logged and
// retried on the next tick.
func (r *Registry) removeExpelled() {
	cf := r.raft.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	for _, s := range cf.Configuration().Servers {
		id := string(s.ID)
		if id == r.id || !r.fsm.m.isDenied(id) {
			continue
		}
		r.log.Warn("removing expelled member from raft", "peer", id)
		if err := r.removeServer(id); err != nil {
			r.log.Warn("remove expelled member", "peer", id, "err", err)
			continue
		}
		r.refreshRaftPeers()
		r.tr.Drop(id)
	}
}
