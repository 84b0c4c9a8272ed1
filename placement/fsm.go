package placement

import (
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// fsm adapts machine to raft.FSM and fans its events out to subscribers.
type fsm struct {
	m *machine

	subMu sync.Mutex
	subs  map[*Subscription]struct{}

	// closing, once closed (the registry's done), makes a snapshot being
	// persisted give up.
	closing <-chan struct{}

	// restoring, if set, is called before a snapshot replaces the state.
	restoring func()

	// snapCmds is machine.cmds as of the latest snapshot persisted or
	// restored (replay.go).
	snapCmds atomic.Uint64

	waiters   atomic.Int64 // WaitNewer, WaitApplied and WaitLease calls in progress
	changedMu sync.Mutex
	changed   chan struct{} // closed and replaced after an apply while waiters > 0
}

// changes returns a channel closed at the next apply, restore or lease
// grant.
func (f *fsm) changes() <-chan struct{} {
	f.changedMu.Lock()
	defer f.changedMu.Unlock()
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	return f.changed
}

func (f *fsm) wake() {
	if f.waiters.Load() == 0 {
		return
	}
	f.changedMu.Lock()
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
	f.changedMu.Unlock()
}

var _ raft.FSM = (*fsm)(nil)

func newFSM() *fsm {
	return &fsm{m: newMachine(), subs: make(map[*Subscription]struct{})}
}

// Apply applies one committed entry and returns its outcome, an
// *applied.
func (f *fsm) Apply(l *raft.Log) any {
	res, evs := f.m.applyEntry(l.Index, l.Data)
	if len(evs) > 0 {
		f.publish(evs)
	}
	f.wake()
	return &applied{res: res}
}

// applied holds an entry's result ([]result for a batch, a result
// otherwise) for the leader's batcher, which takes it (take) when it hands
// the results out. The indirection is for the heap: Raft's log stores keep
// the *raft.Log they were given (InmemStore, and the LogCache in front of
// raft-boltdb), which on the leader lies inside the entry's future, and
// the future holds the response: a []result kept by value stayed in the
// heap for every entry of the trailing log (140 MB at 1 M spawns).
type applied struct{ res any }

// take returns the result and lets go of it.
func (a *applied) take() any {
	res := a.res
	a.res = nil
	return res
}

func (f *fsm) publish(evs []Event) {
	f.subMu.Lock()
	for s := range f.subs {
		s.push(evs)
	}
	f.subMu.Unlock()
}

// Snapshot captures the state; Raft calls it on the FSM goroutine, so it
// only takes a point-in-time view (the directory's published root, a copy
// of the members and sessions); Persist encodes it on Raft's snapshot
// goroutine while applies go on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	v := f.m.view()
	v.abort = f.closing
	return &fsmSnapshot{v: v, f: f, cmds: f.m.cmds.Load()}, nil
}

// Restore replaces the state with a snapshot, or refuses it with an error
// (ErrBadSnapshot) and keeps the state it had.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := decodeSnapshot(rc)
	if err != nil {
		return err
	}
	if f.restoring != nil {
		f.restoring()
	}
	f.m.restore(b)
	f.snapCmds.Store(f.m.cmds.Load())
	f.publish([]Event{{Kind: Reset, Index: b.Index}})
	f.wake()
	return nil
}

type fsmSnapshot struct {
	v    *snapView
	f    *fsm
	cmds uint64 // machine.cmds at the view
}

// Persist encodes the view and writes it to sink, off the FSM goroutine.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.v.writeTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	if err := sink.Close(); err != nil {
		return err
	}
	for s.f != nil { // snapshots persist one at a time; still, never go back
		cur := s.f.snapCmds.Load()
		if cur >= s.cmds || s.f.snapCmds.CompareAndSwap(cur, s.cmds) {
			break
		}
	}
	return nil
}

func (s *fsmSnapshot) Release() {}
