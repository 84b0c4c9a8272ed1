package placement

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/transport"
)

// TestSnapshotBoundsReplay: a durable registry snapshots by itself once
// replayBudget commands were applied after its last snapshot, so a restart
// replays about that many commands, not every one since the last snapshot
// Raft took by entry count (none here: 4 000 spawns in batches are far
// fewer entries than SnapshotThreshold). Without the snapshot loop the
// restart replays all 4 000.
func TestSnapshotBoundsReplay(t *testing.T) {
	saved := replayBudget
	replayBudget = 500
	snapped := make(chan struct{}, 1)
	afterReplaySnapshot = func(*Registry) {
		select {
		case snapped <- struct{}{}:
		default:
		}
	}
	t.Cleanup(func() { replayBudget, afterReplaySnapshot = saved, nil })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	net := transport.NewMemNetwork()
	dir := t.TempDir()
	start := func() (*Registry, *transport.Mem) {
		tr, err := net.Join("n1")
		if err != nil {
			t.Fatal(err)
		}
		r, err := New(ctx, Config{Transport: tr, Types: []string{"T"}, DataDir: dir})
		if err != nil {
			tr.Close()
			t.Fatal(err)
		}
		return r, tr
	}
	r, tr := start()
	const spawns, spawners = 4000, 64
	var last atomic.Uint64
	var wg sync.WaitGroup
	var next atomic.Int64
	for range spawners {
		wg.Go(func() {
			for next.Add(1) <= spawns {
				p, err := r.Spawn(ctx, SpawnRequest{Type: "T"})
				if err != nil {
					t.Error(err)
					return
				}
				for {
					cur := last.Load()
					if p.Epoch <= cur || last.CompareAndSwap(cur, p.Epoch) {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		r.Close()
		tr.Close()
		return
	}
	entries := r.raft.LastIndex()
	if entries >= r.cfg.SnapshotThreshold {
		t.Fatalf("%d entries: Raft would snapshot by itself; the test needs fewer", entries)
	}
	// The loop's snapshot of the whole state (it may have taken earlier
	// ones while the spawns ran).
	for r.fsm.m.cmds.Load()-r.fsm.snapCmds.Load() >= replayBudget {
		select {
		case <-snapped:
		case <-ctx.Done():
			t.Fatalf("no snapshot after %d commands (budget %d)", r.fsm.m.cmds.Load()-r.fsm.snapCmds.Load(), replayBudget)
		}
	}
	if n := r.Counters().ReplaySnapshots; n == 0 {
		t.Fatal("ReplaySnapshots = 0")
	}
	r.Close()
	tr.Close()

	r, tr = start()
	defer func() { r.Close(); tr.Close() }()
	if err := r.WaitApplied(ctx, last.Load()/maxBatch); err != nil {
		t.Fatal(err)
	}
	if got := r.fsm.m.count.Load(); got != spawns {
		t.Fatalf("%d actors after the restart, want %d", got, spawns)
	}
	if replayed := r.fsm.m.cmds.Load() - r.fsm.snapCmds.Load(); replayed >= replayBudget {
		t.Fatalf("the restart replayed %d commands after its snapshot, want fewer than %d", replayed, replayBudget)
	}
}

// TestSnapshotPersistAbortsOnClose: a snapshot being persisted gives up
// once its registry closes (Raft's Shutdown waits for it), and cancels its
// sink; a snapshot of an open registry persists whole.
func TestSnapshotPersistAbortsOnClose(t *testing.T) {
	closing := make(chan struct{})
	f := &fsm{m: bigMachine(t, 1<<12), subs: map[*Subscription]struct{}{}, closing: closing}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	whole := &memSink{}
	if err := snap.Persist(whole); err != nil {
		t.Fatalf("persist while open: %v", err)
	}
	close(closing)
	snap, err = f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	cut := &memSink{}
	if err := snap.Persist(cut); !errors.Is(err, errSnapshotAborted) {
		t.Fatalf("persist after close: %v, want errSnapshotAborted", err)
	}
	if !cut.canceled || cut.Len() != 0 {
		t.Fatalf("aborted sink: canceled %v, %d bytes written", cut.canceled, cut.Len())
	}
	if whole.Len() == 0 {
		t.Fatal("nothing persisted while open")
	}
}
