package placement

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/troupe-dev/troupe/internal/wirecheck"
)

// TestDirectoryPersistent checks the trie against a map through inserts
// and updates, with hashes that collide in their low bits, in all 64 bits
// (collision lists) or not at all, and that a published root is never
// changed by later writes (what a snapshot relies on).
// testHashes are the directory's hash functions under test: its own
// (SipHash), one whose low bits collide, and one under which every id collides.
var testHashes = map[string]func(string) uint64{
	"siphash": nil,
	"low bits collide": func(id string) uint64 {
		var h uint64
		for _, c := range []byte(id) {
			h = h*31 + uint64(c)
		}
		return h << 40 // the first 8 levels see only zeros
	},
	"all collide": func(string) uint64 { return 42 },
}

func TestDirectoryPersistent(t *testing.T) {
	for name, hf := range testHashes {
		t.Run(name, func(t *testing.T) {
			d := &directory{hashOf: hf}
			w := newDirWriter(d)
			rng := rand.New(rand.NewPCG(1, 2))
			want := map[string]Placement{}
			type frozen struct {
				root *hnode
				want map[string]Placement
			}
			var roots []frozen
			n := 3000
			if hf != nil && hf("a") == 42 {
				n = 300
			}
			for step := range 20 {
				for range n / 10 {
					id := fmt.Sprint("id", rng.IntN(n))
					p := Placement{ID: id, Type: fmt.Sprint("T", rng.IntN(3)), Node: fmt.Sprint("n", rng.IntN(4)),
						Epoch: rng.Uint64(), Restarts: rng.IntN(5), State: ActorState(rng.IntN(2))}
					old, existed := w.put(p)
					if prev, ok := want[id]; ok != existed || old != prev {
						t.Fatalf("put %s: replaced %+v (%v), want %+v (%v)", id, old, existed, prev, ok)
					}
					want[id] = p
				}
				w.publish()
				roots = append(roots, frozen{d.root.Load(), clonePlacements(want)})
				if step%5 == 4 {
					w.reset()
					clear(want)
				}
			}
			for i, f := range roots {
				got := map[string]Placement{}
				walk(f.root, func(e *entry) bool {
					if _, dup := got[e.id]; dup {
						t.Fatalf("root %d: %s twice", i, e.id)
					}
					got[e.id] = e.placement()
					return true
				})
				if len(got) != len(f.want) {
					t.Fatalf("root %d: %d entries, want %d", i, len(got), len(f.want))
				}
				for id, p := range f.want {
					if got[id] != p {
						t.Fatalf("root %d: %s = %+v, want %+v", i, id, got[id], p)
					}
					if e := d.get(f.root, id); e == nil || e.placement() != p {
						t.Fatalf("root %d: get %s = %v", i, id, e)
					}
				}
				if d.get(f.root, "absent") != nil {
					t.Fatalf("root %d: found an absent id", i)
				}
			}
		})
	}
}

func clonePlacements(m map[string]Placement) map[string]Placement {
	c := make(map[string]Placement, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// TestSnapshotIsAView: fsm.Snapshot, on the FSM goroutine, copies nothing
// per actor (it allocated the whole encoded directory before), and the
// snapshot it returns holds the state of that moment however many applies
// follow before Persist runs.
func TestSnapshotIsAView(t *testing.T) {
	f := &fsm{m: bigMachine(t, 20000), subs: map[*Subscription]struct{}{}}
	want, err := encodeSnapshot(f.m.capture())
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	snap, err := f.Snapshot()
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Fatalf("Snapshot allocated %d bytes for 20000 actors on the FSM goroutine", n)
	}
	// Later applies: re-place everything, spawn more.
	idx := f.m.applied.Load()
	for i, c := range []command{{Type: cmdFailed, Node: "n1"}, {Type: cmdSpawn, Node: "n2", Spawn: SpawnRequest{Type: "T"}}} {
		b, _ := encodeCommand(c)
		f.Apply(&raft.Log{Index: idx + uint64(i) + 1, Data: b})
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	got, err := decodeSnapshot(bytes.NewReader(sink.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	w, _ := decodeSnapshot(bytes.NewReader(want))
	m1, m2 := newMachine(), newMachine()
	m1.restore(got)
	m2.restore(w)
	g1, _ := encodeSnapshot(m1.capture())
	g2, _ := encodeSnapshot(m2.capture())
	if !bytes.Equal(g1, g2) {
		t.Fatal("the persisted snapshot differs from the state when Snapshot was called")
	}
	if mb, _ := m1.member("n1"); mb.Status != Alive || mb.Load != 10000 {
		t.Fatalf("persisted n1 = %+v, want alive with its 10000 actors", mb)
	}
}

// blockingStore makes every snapshot sink block in Write until release is
// closed; persisting is closed when the first Write starts.
type blockingStore struct {
	raft.SnapshotStore
	release, persisting chan struct{}
}

func (s *blockingStore) Create(v raft.SnapshotVersion, index, term uint64, c raft.Configuration, ci uint64, tr raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.SnapshotStore.Create(v, index, term, c, ci, tr)
	if err != nil {
		return nil, err
	}
	return &blockedSink{SnapshotSink: sink, s: s}, nil
}

type blockedSink struct {
	raft.SnapshotSink
	s    *blockingStore
	once bool
}

func (b *blockedSink) Write(p []byte) (int, error) {
	if !b.once {
		b.once = true
		close(b.s.persisting)
		<-b.s.release
	}
	return b.SnapshotSink.Write(p)
}

// TestFollowerServesWhileSnapshotPersists: a follower whose snapshot is
// being persisted (its sink blocked) keeps applying the leader's entries
// and serving its actors: the work of a snapshot is off the FSM goroutine.
func TestFollowerServesWhileSnapshotPersists(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store := &blockingStore{release: make(chan struct{}), persisting: make(chan struct{})}
	released := false
	defer func() {
		if !released {
			close(store.release)
		}
	}()
	regs := startMem(t, 3, func(i int, cfg *Config) {
		cfg.SnapshotThreshold = 1 << 40
		if i == 2 {
			cfg.wrapSnapshots = func(s raft.SnapshotStore) raft.SnapshotStore { store.SnapshotStore = s; return store }
		}
	})
	f := regs[2]
	if f.IsLeader() {
		t.Skip("n3 leads") // bootstrapped by n1; n3 joined last
	}
	spawn := func(id string) Placement {
		p, err := regs[0].Spawn(ctx, SpawnRequest{ID: id, Type: "T", Strategy: OnNode, Node: f.ID()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WaitOwns(ctx, id, p.Epoch); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		return p
	}
	a := spawn("a")
	snapDone := make(chan error, 1)
	go func() { snapDone <- f.Snapshot(ctx) }()
	select {
	case <-store.persisting:
	case err := <-snapDone:
		t.Fatalf("snapshot ended before its sink was written: %v", err)
	}
	for i := range 50 {
		spawn(fmt.Sprint("b", i)) // applied and served by the follower
		if _, err := f.Owns("a", a.Epoch); err != nil {
			t.Fatalf("while persisting, after %d spawns: Owns(a) = %v", i, err)
		}
	}
	released = true
	close(store.release)
	if err := <-snapDone; err != nil {
		t.Fatal(err)
	}
}

// TestAppendEntry: the hand-written encoding of an entry decodes to its
// Placement, at every size boundary of msgpack's ints and strings.
func TestAppendEntry(t *testing.T) {
	long := func(n int) string { return string(bytes.Repeat([]byte{'x'}, n)) }
	ints := []int64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
		-1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	strs := []string{"", "a", long(31), long(32), long(255), long(256), long(65535), long(65536)}
	var ps []Placement
	for i, v := range ints {
		ps = append(ps, Placement{ID: strs[i%len(strs)], Type: strs[(i+1)%len(strs)], Node: strs[(i+2)%len(strs)],
			Epoch: uint64(v), Strategy: HashID, Policy: RestartPolicy{MaxRestarts: int(v), Backoff: time.Duration(v)},
			Restarts: int(uint32(v)), State: ActorState(i % 2), Reason: strs[(i+3)%len(strs)]})
	}
	for _, p := range ps {
		w := newDirWriter(&directory{})
		e := entry{id: p.ID, epoch: p.Epoch, cls: w.classOf(&p), restarts: uint32(p.Restarts)}
		b := appendEntry(nil, &e)
		if n, err := wirecheck.Value(b, wirecheck.MaxDepth); err != nil || n != len(b) {
			t.Fatalf("%+v: wirecheck %d of %d bytes: %v", p, n, len(b), err)
		}
		var got Placement
		if err := msgpack.Unmarshal(b, &got); err != nil || got != p {
			t.Fatalf("decoded %+v (%v), want %+v", got, err, p)
		}
	}
}

// TestDecodeBodyFast: the hand decoder gives exactly what msgpack gives,
// on bodies from writeTo and from the reflecting encoder (older
// snapshots), and gives up (to msgpack) on anything else.
func TestDecodeBodyFast(t *testing.T) {
	s := populated(t)
	s.do(command{Type: cmdSpawn, Node: "n1", Spawn: SpawnRequest{Type: "A", Policy: RestartPolicy{MaxRestarts: 1 << 40, Backoff: -1}}, Origin: "n1", Inc: 1, Seq: 3, Floor: 2})
	var streamed memSink
	if err := (&fsmSnapshot{v: s.m.view()}).Persist(&streamed); err != nil {
		t.Fatal(err)
	}
	reflected, err := encodeSnapshot(s.m.capture())
	if err != nil {
		t.Fatal(err)
	}
	for name, snap := range map[string][]byte{"streamed": streamed.Bytes(), "reflected": reflected} {
		body := snap[snapHeaderSize:]
		fast, ok := decodeBodyFast(body)
		fast = fast.withActors()
		if !ok {
			t.Fatalf("%s: the fast decoder gave up", name)
		}
		var want snapshotBody
		if err := msgpack.Unmarshal(body, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, want) || len(fast.Actors) != int(s.m.count.Load()) || len(fast.Sessions) != 1 {
			t.Fatalf("%s: fast decode differs:\n%+v\n%+v", name, fast, want)
		}
	}
	odd := []any{
		map[string]any{"a": []any{map[string]any{"i": "x", "z": 1}}},     // unknown field
		map[string]any{"a": []any{map[string]any{"i": "x", "s": 300}}},   // strategy out of range
		map[string]any{"a": []any{map[string]any{"i": []byte("x")}}},     // bin, not str
		map[string]any{"a": []any{map[string]any{"i": nil}}},             // nil
		map[string]any{"a": []any{1}},                                    // not a map
		map[string]any{"a": []any{map[string]any{"r": uint64(1) << 63}}}, // overflows int
		map[string]any{"a": []any{map[string]any{"p": map[string]any{"q": 1}}}},
		[]any{1, 2},
	}
	for i, v := range odd {
		body, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := decodeBodyFast(body); ok {
			t.Fatalf("odd body %d decoded by the fast path", i)
		}
	}
}

// FuzzDecodeBodyFast: whatever the hand decoder accepts, msgpack decodes
// to the same value; nothing panics.
func FuzzDecodeBodyFast(f *testing.F) {
	for _, s := range seedSnapshots() {
		f.Add(s[snapHeaderSize:])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if n, err := wirecheck.Value(body, wirecheck.MaxDepth); err != nil || n != len(body) {
			return // decodeSnapshot refuses it first
		}
		fast, ok := decodeBodyFast(body)
		fast = fast.withActors()
		if !ok {
			return
		}
		var want snapshotBody
		if err := msgpack.Unmarshal(body, &want); err != nil {
			t.Fatalf("fast decoded what msgpack refuses (%v)", err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("fast %+v\nmsgpack %+v", fast, want)
		}
	})
}

// TestBuildMatchesPuts: a trie built in one pass (restore) holds what one
// put per entry would — the last of a duplicated id winning — whatever
// the hash does, and takes puts afterwards like any other.
func TestBuildMatchesPuts(t *testing.T) {
	t.Run("sequential", testBuildMatchesPuts)
	t.Run("parallel", func(t *testing.T) {
		defer func(n int) { parallelBuild = n }(parallelBuild)
		parallelBuild = 0 // the root's kids on every core, as in a large restore
		testBuildMatchesPuts(t)
	})
}

func testBuildMatchesPuts(t *testing.T) {
	for name, hf := range testHashes {
		t.Run(name, func(t *testing.T) {
			d := &directory{hashOf: hf}
			rng := rand.New(rand.NewPCG(3, 4))
			n := 5000
			if hf != nil && hf("a") == 42 {
				n = 200
			}
			var ps []Placement
			for i := range n {
				id := fmt.Sprint("id", rng.IntN(n)) // duplicates included
				ps = append(ps, Placement{ID: id, Type: fmt.Sprint("T", i%3), Node: fmt.Sprint("n", rng.IntN(4)), Epoch: uint64(i), State: ActorState(rng.IntN(2))})
			}
			want := newDirWriter(&directory{hashOf: hf})
			for _, p := range ps {
				want.put(p)
			}
			w := newDirWriter(d)
			es, hs := make([]entry, len(ps)), make([]uint64, len(ps))
			for i := range ps {
				es[i], hs[i] = w.entryOf(&ps[i]), d.hash(ps[i].ID)
			}
			w.build(es, hs)
			count := 0
			walk(w.root, func(e *entry) bool {
				count++
				if p, ok := want.get(e.id); !ok || p != e.placement() {
					t.Fatalf("%s: built %+v, put %+v (%v)", e.id, e.placement(), p, ok)
				}
				return true
			})
			wantCount := 0
			walk(want.root, func(e *entry) bool {
				wantCount++
				if p, ok := w.get(e.id); !ok || p != e.placement() {
					t.Fatalf("%s: put %+v, built %+v (%v)", e.id, e.placement(), p, ok)
				}
				return true
			})
			if count != wantCount {
				t.Fatalf("built %d entries, puts made %d", count, wantCount)
			}
			w.publish()
			p := Placement{ID: "id1", Type: "T9", Node: "n9", Epoch: 1 << 40}
			w.put(p)
			if got, _ := w.get("id1"); got != p {
				t.Fatalf("put after build: %+v", got)
			}
		})
	}
}

// TestDecodeIDsAcrossBlocks: ids cut from shared blocks come out whole
// and in their entries' order, across block boundaries, with an id longer
// than a block and empty ones among them.
func TestDecodeIDsAcrossBlocks(t *testing.T) {
	var b snapshotBody
	for i := range 5000 {
		id := fmt.Sprintf("actor-%d-%s", i, strings.Repeat("x", i%97))
		switch i {
		case 10, 4000:
			id = ""
		case 2500:
			id = strings.Repeat("long", idBlock/2) // two blocks' worth
		}
		b.Actors = append(b.Actors, Placement{ID: id, Type: fmt.Sprint("T", i%3), Node: fmt.Sprint("n", i%5), Epoch: uint64(i), Restarts: i % 7})
	}
	snap, err := encodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeSnapshot(bytes.NewReader(snap))
	if err != nil {
		t.Fatal(err)
	}
	if got.dir == nil {
		t.Fatal("the fast decoder gave up")
	}
	if got = got.withActors(); !reflect.DeepEqual(got.Actors, b.Actors) {
		for i := range b.Actors {
			if got.Actors[i] != b.Actors[i] {
				t.Fatalf("actor %d: decoded %+v, want %+v", i, got.Actors[i], b.Actors[i])
			}
		}
		t.Fatalf("decoded %d actors, want %d", len(got.Actors), len(b.Actors))
	}
}
