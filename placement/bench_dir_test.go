package placement

// Directory benchmarks at size, on the state machine alone (no Raft): they
// build the directory through applyEntry, as Raft's FSM goroutine does.

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// bigMachine is a machine with n actors, least-loaded on n1 and n2.
func bigMachine(tb testing.TB, n int) *machine {
	m := newMachine()
	index := uint64(0)
	applyCmd(tb, m, &index, command{Type: cmdJoin, Node: "n1", Addr: "mem:n1", Types: []string{"T"}})
	applyCmd(tb, m, &index, command{Type: cmdJoin, Node: "n2", Addr: "mem:n2", Types: []string{"T"}})
	spawnBatches(tb, m, &index, n, func(int) SpawnRequest {
		return SpawnRequest{Type: "T", Policy: RestartPolicy{MaxRestarts: -1}}
	})
	if got := m.count.Load(); got != int64(n) {
		tb.Fatalf("%d actors, want %d", got, n)
	}
	return m
}

// applyCmd applies c to m as the next entry after *index, and fails tb if
// it is refused.
func applyCmd(tb testing.TB, m *machine, index *uint64, c command) result {
	tb.Helper()
	*index++
	b, err := encodeCommand(c)
	if err != nil {
		tb.Fatal(err)
	}
	r, _ := m.applyEntry(*index, b)
	if r.(result).Err != nil {
		tb.Fatal(r.(result).Err)
	}
	return r.(result)
}

// spawnBatches applies n spawns from n1 to m, req(i) the i-th, in batch
// entries of maxBatch after *index.
func spawnBatches(tb testing.TB, m *machine, index *uint64, n int, req func(i int) SpawnRequest) {
	tb.Helper()
	for lo := 0; lo < n; lo += maxBatch {
		cmds := make([][]byte, 0, maxBatch)
		for i := lo; i < min(n, lo+maxBatch); i++ {
			b, _ := encodeCommand(command{Type: cmdSpawn, Node: "n1", Spawn: req(i)})
			cmds = append(cmds, b)
		}
		b, err := encodeBatch(cmds)
		if err != nil {
			tb.Fatal(err)
		}
		*index++
		m.applyEntry(*index, b)
	}
}

type memSink struct {
	bytes.Buffer
	block    chan struct{} // if set, Write waits for it to close
	entered  chan struct{} // if set, closed when Write starts
	canceled bool
	discard  bool // count, do not keep
	n        int
}

func (s *memSink) Write(p []byte) (int, error) {
	if s.entered != nil {
		close(s.entered)
		s.entered = nil
	}
	if s.block != nil {
		<-s.block
	}
	if s.discard {
		s.n += len(p)
		return len(p), nil
	}
	return s.Buffer.Write(p)
}
func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.canceled = true; return nil }
func (s *memSink) Close() error  { return nil }

var benchSizes = []int{1 << 10, 1 << 20}

// BenchmarkDirectoryMemory reports the live heap per directory entry
// (structures, ids and the members' bookkeeping; no Raft log) after
// building n actors through applyEntry.
func BenchmarkDirectoryMemory(b *testing.B) {
	for _, n := range []int{1 << 20} {
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			for range b.N {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				m := bigMachine(b, n)
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "B/entry")
				runtime.KeepAlive(m)
			}
		})
	}
}

// BenchmarkMachineLookup measures lookups of the published directory from
// parallel readers (Registry.Lookup and Owns do this).
func BenchmarkMachineLookup(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			m := bigMachine(b, n)
			ids := make([]string, 0, 1024)
			for i := uint64(0); len(ids) < cap(ids); i++ {
				// the unnamed ids "~<epoch>" of the first batch entries
				id := fmt.Sprint("~", (3+i/maxBatch)*maxBatch+i%maxBatch)
				if _, ok := m.lookup(id); !ok {
					b.Fatalf("no %s", id)
				}
				ids = append(ids, id)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, ok := m.lookup(ids[i&1023]); !ok {
						panic("miss")
					}
					i += 7
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "M-lookups/s")
		})
	}
}

// BenchmarkSnapshotStall measures how long a snapshot of a 1 M-entry
// directory stops the FSM goroutine: a goroutine applies one-command
// entries back to back (as Raft's FSM goroutine would under load), takes
// fsm.Snapshot in line as Raft does, and keeps applying while Persist
// encodes on another goroutine. stall-ms is the longest gap between two
// applies from the Snapshot call to the end of Persist, snapshot-ms the
// Snapshot call itself, persist-ms the encoding and write.
//
// sink=discard counts the bytes (a file store writes them through a small
// buffer); sink=chunks is the registry's in-memory store (memSnapshots);
// sink=raftmem is Raft's InmemSnapshotStore, one growing buffer.
func BenchmarkSnapshotStall(b *testing.B) {
	const n = 1 << 20
	f := &fsm{m: bigMachine(b, n), subs: map[*Subscription]struct{}{}}
	for _, kind := range []string{"discard", "chunks", "raftmem"} {
		b.Run("sink="+kind, func(b *testing.B) {
			snapshotStall(b, f, func() raft.SnapshotSink {
				switch kind {
				case "chunks":
					sink, _ := (&memSnapshots{}).Create(1, 1, 1, raft.Configuration{}, 1, nil)
					return sink
				case "raftmem":
					sink, _ := raft.NewInmemSnapshotStore().Create(1, 1, 1, raft.Configuration{}, 1, nil)
					return sink
				}
				return &memSink{discard: true}
			})
		})
	}
}

func snapshotStall(b *testing.B, f *fsm, newSink func() raft.SnapshotSink) {
	cmd, _ := encodeCommand(command{Type: cmdRead, ID: "~3072"})
	idx := f.m.applied.Load()
	b.ResetTimer()
	for range b.N {
		var persisted atomic.Bool
		var stall, snapTime, persistTime time.Duration
		done := make(chan struct{})
		last := time.Now()
		apply := func() {
			idx++
			f.Apply(&raft.Log{Index: idx, Data: cmd})
			now := time.Now()
			stall = max(stall, now.Sub(last))
			last = now
		}
		for range 100 {
			apply()
		}
		start := time.Now()
		snap, err := f.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		snapTime = time.Since(start)
		stall = 0
		go func() {
			defer close(done)
			t := time.Now()
			if err := snap.Persist(newSink()); err != nil {
				b.Error(err)
			}
			persistTime = time.Since(t)
			persisted.Store(true)
		}()
		stall = max(stall, time.Since(last))
		last = time.Now()
		for !persisted.Load() {
			apply()
		}
		<-done
		snap.Release()
		b.ReportMetric(float64(stall.Microseconds())/1000, "stall-ms")
		b.ReportMetric(float64(snapTime.Microseconds())/1000, "snapshot-ms")
		b.ReportMetric(float64(persistTime.Microseconds())/1000, "persist-ms")
	}
}

// BenchmarkApplySpawns measures the FSM's apply of batch entries of 256
// unnamed spawns on a directory of 64 k or 1 M actors (the directory's
// write path: path copying, once per batch for the top of the trie).
func BenchmarkApplySpawns(b *testing.B) {
	for _, n := range []int{1 << 16, 1 << 20} {
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			m := bigMachine(b, n)
			cmds := make([][]byte, 256)
			for i := range cmds {
				cmds[i], _ = encodeCommand(command{Type: cmdSpawn, Node: "n1", Spawn: SpawnRequest{Type: "T", Policy: RestartPolicy{MaxRestarts: -1}}})
			}
			entry, err := encodeBatch(cmds)
			if err != nil {
				b.Fatal(err)
			}
			idx := m.applied.Load()
			b.ResetTimer()
			for range b.N {
				idx++
				m.applyEntry(idx, entry)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(cmds)), "ns/spawn")
		})
	}
}

var lookupSets = map[int]*lookupSet{}

// lookupSet holds n placements in the directory and, for comparison, in a
// sync.Map of *Placement, the directory's structure before issue 14.
type lookupSet struct {
	m   *machine
	old sync.Map
	ids []string
}

func lookupSetOf(b *testing.B, n int) *lookupSet {
	if s := lookupSets[n]; s != nil {
		return s
	}
	s := &lookupSet{m: bigMachine(b, n)}
	walk(s.m.dir.root.Load(), func(e *entry) bool {
		p := e.placement()
		s.old.Store(p.ID, &p)
		return true
	})
	for i := range 1024 { // spread over the directory: ids by spawn order
		k := i * (n / 1024)
		s.ids = append(s.ids, fmt.Sprint("~", (3+k/maxBatch)*maxBatch+k%maxBatch))
	}
	lookupSets[n] = s
	return s
}

// BenchmarkLookupVsSyncMap compares, in one binary and interleaved (run it
// with -count), the directory's lookup with the sync.Map it replaced, from
// parallel readers over 1024 ids spread across the directory.
func BenchmarkLookupVsSyncMap(b *testing.B) {
	for _, n := range benchSizes {
		for _, impl := range []string{"syncmap", "hamt"} {
			b.Run(fmt.Sprintf("n=%d/impl=%s", n, impl), func(b *testing.B) {
				s := lookupSetOf(b, n)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					var epochs uint64
					for pb.Next() {
						id := s.ids[i&1023]
						var ok bool
						var p Placement
						if impl == "hamt" {
							p, ok = s.m.lookup(id)
						} else {
							var v any
							if v, ok = s.old.Load(id); ok {
								p = *v.(*Placement)
							}
						}
						if !ok {
							panic("miss " + id)
						}
						epochs += p.Epoch
						i += 7
					}
					sink.Add(epochs)
				})
			})
		}
	}
}

var sink atomic.Uint64

// BenchmarkRestore measures decoding and installing a snapshot of 1 M
// entries (what a restart from DataDir or an InstallSnapshot costs the FSM
// goroutine before the node serves).
func BenchmarkRestore(b *testing.B) {
	m := bigMachine(b, 1<<20)
	snap, err := (&fsm{m: m, subs: map[*Subscription]struct{}{}}).Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		b.Fatal(err)
	}
	data := sink.Bytes()
	b.ResetTimer()
	for range b.N {
		f := &fsm{m: newMachine(), subs: map[*Subscription]struct{}{}}
		if err := f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/restore")
}

// BenchmarkApplyRehome measures the FSM's side of a failover, without
// Raft: n3, hosting actors=N, fails; the failure entry and the cmdRehome
// entries after it are applied until none is left, on one replica.
// Reported: ns per moved actor (from the failure entry to the last
// chunk), the failure entry's apply (first-ms), the time until the queue
// was built (queued-ms, from the failure entry's start) and the longest
// chunk's apply (max-chunk-ms). Run with -benchtime=1x.
func BenchmarkApplyRehome(b *testing.B) {
	for _, n := range []int{333_000} {
		b.Run(fmt.Sprint("actors=", n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				m := newMachine()
				index := uint64(0)
				do := func(c command) result { return applyCmd(b, m, &index, c) }
				for _, id := range []string{"n1", "n2", "n3"} {
					do(command{Type: cmdJoin, Node: id, Addr: "mem:" + id, Types: []string{"T"}})
				}
				spawnBatches(b, m, &index, n, func(i int) SpawnRequest {
					return SpawnRequest{ID: fmt.Sprintf("f%07d", i), Type: "T", Strategy: OnNode, Node: "n3", Policy: RestartPolicy{MaxRestarts: -1}}
				})
				b.StartTimer()
				t0 := time.Now()
				do(command{Type: cmdFailed, Node: "n3"})
				first := time.Since(t0)
				if _, ready := m.nextRehome(); ready != nil {
					<-ready // as the leader does before it proposes a chunk
				}
				queued := time.Since(t0)
				var worst time.Duration
				for {
					t := time.Now()
					r := do(command{Type: cmdRehome, Node: "n3", Epoch: rehomeChunk})
					worst = max(worst, time.Since(t))
					if !r.More {
						break
					}
				}
				b.StopTimer()
				if mb, _ := m.member("n3"); mb.Load != 0 {
					b.Fatalf("%d actors left on n3", mb.Load)
				}
				b.ReportMetric(float64(time.Since(t0).Nanoseconds())/float64(n), "ns/move")
				b.ReportMetric(float64(first.Microseconds())/1000, "first-ms")
				b.ReportMetric(float64(queued.Microseconds())/1000, "queued-ms")
				b.ReportMetric(float64(worst.Microseconds())/1000, "max-chunk-ms")
			}
		})
	}
}
