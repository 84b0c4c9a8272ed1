package placement

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// memSnapshots is the snapshot store without a DataDir: it keeps the
// latest snapshot in memory, in chunks. Raft's InmemSnapshotStore keeps it
// in one bytes.Buffer, which doubles as Persist writes: at 1 M entries
// copies of 32 and 64 MiB whose sudden growth of the heap made the
// collector's assists stall the FSM goroutine for 80–250 ms. Chunks grow
// the heap by 1 MiB at a time, and a snapshot becomes the latest only
// when its sink is closed (a cancelled one never does).
type memSnapshots struct {
	mu     sync.Mutex
	latest *memSnapshot
}

type memSnapshot struct {
	meta   raft.SnapshotMeta
	chunks [][]byte
}

const memChunk = 1 << 20

var _ raft.SnapshotStore = (*memSnapshots)(nil)

// Create starts a snapshot; it replaces the latest when its sink closes.
func (s *memSnapshots) Create(version raft.SnapshotVersion, index, term uint64, c raft.Configuration, ci uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("placement: unsupported snapshot version %d", version)
	}
	return &memSnapSink{s: s, snap: &memSnapshot{meta: raft.SnapshotMeta{
		Version: version, ID: fmt.Sprintf("%d-%d-%d", term, index, time.Now().UnixMilli()),
		Index: index, Term: term, Configuration: c, ConfigurationIndex: ci,
	}}}, nil
}

// List returns the latest snapshot, if any.
func (s *memSnapshots) List() ([]*raft.SnapshotMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latest == nil {
		return []*raft.SnapshotMeta{}, nil
	}
	m := s.latest.meta
	return []*raft.SnapshotMeta{&m}, nil
}

// Open reads the latest snapshot, which must be id.
func (s *memSnapshots) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latest == nil || s.latest.meta.ID != id {
		return nil, nil, fmt.Errorf("placement: no snapshot %s", id)
	}
	rs := make([]io.Reader, len(s.latest.chunks))
	for i, c := range s.latest.chunks {
		rs[i] = bytes.NewReader(c)
	}
	m := s.latest.meta
	return &m, io.NopCloser(io.MultiReader(rs...)), nil
}

type memSnapSink struct {
	s    *memSnapshots
	snap *memSnapshot
	done bool
}

func (k *memSnapSink) ID() string { return k.snap.meta.ID }

func (k *memSnapSink) Write(p []byte) (int, error) {
	if k.done {
		return 0, fmt.Errorf("placement: snapshot sink closed")
	}
	n := len(p)
	for len(p) > 0 {
		cs := k.snap.chunks
		if len(cs) == 0 || len(cs[len(cs)-1]) == cap(cs[len(cs)-1]) {
			// Chunks double from 64 KiB to memChunk: small snapshots stay small.
			size := min(memChunk, max(64<<10, int(k.snap.meta.Size)))
			k.snap.chunks = append(cs, make([]byte, 0, size))
			cs = k.snap.chunks
		}
		last := &cs[len(cs)-1]
		m := min(len(p), cap(*last)-len(*last))
		*last = append(*last, p[:m]...)
		p = p[m:]
		k.snap.meta.Size += int64(m)
	}
	return n, nil
}

// Close makes the snapshot the latest.
func (k *memSnapSink) Close() error {
	if k.done {
		return nil
	}
	k.done = true
	k.s.mu.Lock()
	k.s.latest = k.snap
	k.s.mu.Unlock()
	return nil
}

// Cancel drops the snapshot.
func (k *memSnapSink) Cancel() error {
	k.done = true
	k.snap.chunks = nil
	return nil
}
