package placement

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
	"github.com/troupe-dev/troupe/transport"
)

// A node restarted from its DataDir loads its latest snapshot inside
// raft.NewRaft before it can ping; at a million actors that takes seconds,
// longer than FailTimeout. So before it loads, it tells the servers of the
// snapshot's Raft configuration that it is back (msgBack, no reply): the
// leader then waits RestartGrace more before it marks the node failed, and
// its actors stay where they are instead of moving away while it loads.
// Only the process at the member's recorded address earns the grace; a
// node that does not come back within it is failed as usual.

// backTimeout bounds each send of the announcement.
const backTimeout = time.Second

// announceRestart sends msgBack, in the background, to the other servers
// of the latest snapshot's configuration and to the Join addresses. A
// replica without a snapshot has little to load and announces nothing.
func (r *Registry) announceRestart(snaps raft.SnapshotStore) {
	metas, err := snaps.List()
	if err != nil || len(metas) == 0 {
		return
	}
	var peers []transport.Peer
	known := map[string]bool{r.addr: true}
	for _, s := range metas[0].Configuration.Servers {
		if string(s.ID) != r.id && !known[string(s.Address)] {
			known[string(s.Address)] = true
			peers = append(peers, transport.Peer{ID: string(s.ID), Addr: string(s.Address)})
		}
	}
	for _, j := range r.cfg.Join {
		if !known[j] {
			known[j] = true
			peers = append(peers, transport.Peer{Addr: j})
		}
	}
	frame, err := encodeCtrl(&ctrl{Type: msgBack, Addr: r.addr})
	if err != nil {
		return
	}
	for _, p := range peers {
		r.goFunc(func() {
			ctx, cancel := context.WithTimeout(r.ctx, backTimeout)
			defer cancel()
			if err := r.tr.Send(ctx, p, transport.KindControl, frame); err != nil {
				r.log.Debug("restart announcement not sent", "peer", p.ID, "addr", p.Addr, "err", err)
			}
		})
	}
}

// handleBack runs when a member says it restarted and is loading (see
// allowFrame): every server counts it heard until RestartGrace from now,
// so a leader elected while it loads keeps the grace (monitorLoop keeps a
// later time than its own start). It grants no lease, so a member
// repeating it gains nothing a ping would not; the leader counts and logs
// it once per grace.
func (r *Registry) handleBack(from string) {
	if r.cfg.RestartGrace < 0 {
		return
	}
	now := time.Now()
	r.hbMu.Lock()
	inGrace := r.lastHeard[from].After(now)
	r.hbMu.Unlock()
	r.heardUntil(from, now.Add(r.cfg.RestartGrace))
	if inGrace || !r.IsLeader() {
		return
	}
	r.stats.graces.Add(1)
	r.log.Info("member restarting: failure detection waits", "peer", from, "grace", r.cfg.RestartGrace)
}
