package placement

import (
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

// A node restarted from its DataDir restores its latest snapshot and then
// applies, once it hears the leader's commit index, every log entry after
// it: the actors spawned since the snapshot are unknown to it, and calls
// to them wait, until then. hashicorp/raft snapshots by entries
// (SnapshotThreshold, checked every 2–4 minutes), and an entry is a batch
// of up to maxBatch commands, so the tail a restart replays was unbounded
// in commands: a node killed a minute after a million spawns replayed all
// of them (17 s across processes, each spawn ~3.5 µs of apply plus its
// decode). The snapshot loop bounds it: a durable registry snapshots
// once replayBudget commands were applied since its last snapshot, so a
// restart replays about that many — and, since snapshots cost CPU in
// proportion to the directory (~0.7 s to persist 1 M entries), no sooner
// than snapshotRest times the last one's duration after it, which keeps
// snapshotting under a fifth of one core.

// replayBudget is how many commands a durable registry lets accumulate
// after its latest snapshot before it takes one (~0.06 s of replay at
// 1 M entries). A variable for tests.
var replayBudget uint64 = 1 << 14

// snapshotRest is how many times its duration a snapshot loop waits after
// a snapshot before the next.
const snapshotRest = 4

// snapshotEvery is how often the snapshot loop looks at the count.
const snapshotEvery = 250 * time.Millisecond

// afterReplaySnapshot, when set (tests), is called after each snapshot the
// loop took.
var afterReplaySnapshot func(*Registry)

// snapshotLoop runs on every durable registry until Close (see above).
func (r *Registry) snapshotLoop() {
	t := time.NewTicker(snapshotEvery)
	defer t.Stop()
	var next time.Time // no snapshot before
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		if r.fsm.m.cmds.Load()-r.fsm.snapCmds.Load() < replayBudget || time.Now().Before(next) {
			continue
		}
		start := time.Now()
		err := r.raft.Snapshot().Error()
		took := time.Since(start)
		next = time.Now().Add(snapshotRest * took)
		switch {
		case err == nil:
			r.stats.replaySnaps.Add(1)
			r.log.Debug("placement: snapshot to bound a restart's replay", "took", took)
			if afterReplaySnapshot != nil {
				afterReplaySnapshot(r)
			}
		case errors.Is(err, raft.ErrNothingNewToSnapshot), errors.Is(err, raft.ErrRaftShutdown),
			errors.Is(err, errSnapshotAborted), r.closed.Load():
		default:
			r.log.Warn("placement: snapshot failed", "err", err)
		}
	}
}
