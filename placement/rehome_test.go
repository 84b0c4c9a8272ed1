package placement

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/transport"
)

// TestFailoverInChunks: a failed member's actors move off it at most
// rehomeChunk per entry, in rehome order: in a small directory the failure
// entry builds the queue and moves the first chunk; in a large one
// (async) a goroutine builds the queue from the directory as the failure
// left it while later entries change it, and the moves start in the next
// rehome entry. A replica restored from a snapshot taken mid-way moves
// exactly the same actors to the same nodes as one that kept its queue; a
// member alive again keeps, and serves, what had not moved yet.
func TestFailoverInChunks(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprint("async=", async), func(t *testing.T) { failoverInChunks(t, async) })
	}
}

func failoverInChunks(t *testing.T, async bool) {
	old := rehomeSyncMax
	rehomeSyncMax = math.MaxInt64
	if async {
		rehomeSyncMax = 0
	}
	defer func() { rehomeSyncMax = old }()
	const n = 2*rehomeChunk + 100
	s := newSM(t)
	s.join("n1", "A")
	s.join("n2", "A")
	s.join("n3", "A")
	for i := range n {
		if r := s.spawn("n3", SpawnRequest{ID: fmt.Sprintf("a%05d", i), Type: "A", Strategy: OnNode, Node: "n3",
			Policy: RestartPolicy{MaxRestarts: -1}}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	onN3 := func(m *machine) int {
		mb, _ := m.member("n3")
		return mb.Load
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("a%05d", i)
	}
	order := rehomeOrder(ids, nil)
	s.do(command{Type: cmdFailed, Node: "n3"})
	node, ready := s.m.nextRehome()
	if node != "n3" || ready == nil {
		t.Fatalf("nextRehome = %q, %v; want n3 and its queue's channel", node, ready)
	}
	// boundary: the queue's position the second chunk starts at.
	boundary := rehomeChunk
	if async {
		if got := onN3(s.m); got != n {
			t.Fatalf("after the failure entry %d actors left on n3, want all %d (they move in rehome entries)", got, n)
		}
		// While the queue is built, the directory changes (the race
		// detector watches the builder): an actor on n3 stops, one is
		// spawned elsewhere. The first chunk skips the stopped one.
		s.do(command{Type: cmdStop, ID: order[5], Reason: "done"})
		if r := s.spawn("n1", SpawnRequest{ID: "other", Type: "A", Strategy: OnNode, Node: "n1"}); r.Err != nil {
			t.Fatal(r.Err)
		}
		<-ready
		if r := s.do(command{Type: cmdRehome, Node: "n3", Epoch: rehomeChunk}); !r.More {
			t.Fatal("More = false after the first chunk")
		}
		boundary++
	}
	if got, want := onN3(s.m), n-boundary; got != want {
		t.Fatalf("after the first chunk %d actors left on n3, want %d", got, want)
	}
	for i, id := range order {
		if p, _ := s.m.lookup(id); !(async && i == 5) && (p.Node == "n3") != (i >= boundary) {
			t.Fatalf("%d. in rehome order after the first chunk: %+v", i, p)
		}
	}

	// A replica restored from a snapshot taken now.
	r := restoredCopy(t, s.m)
	// Meanwhile one actor still queued stops: both replicas skip it.
	step := func(c command) (result, result) {
		t.Helper()
		enc, err := encodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		s.index++
		r1, _ := s.m.apply(s.index, enc)
		r2, _ := r.apply(s.index, enc)
		return r1, r2
	}
	step(command{Type: cmdStop, ID: order[boundary+1], Reason: "done"})
	r1, r2 := step(command{Type: cmdRehome, Node: "n3", Epoch: rehomeChunk})
	if !r1.More || !r2.More {
		t.Fatalf("More = %v / %v after the second chunk, want true", r1.More, r2.More)
	}
	if got, want := onN3(s.m), n-boundary-rehomeChunk-1; got != want || onN3(r) != want {
		t.Fatalf("after the second chunk %d / %d left on n3, want %d", got, onN3(r), want)
	}
	walk(s.m.dir.root.Load(), func(e *entry) bool {
		if p, _ := r.lookup(e.id); p != e.placement() {
			t.Fatalf("%s: restored replica %+v, kept %+v", e.id, p, e.placement())
		}
		return true
	})

	// n3 is heard again: what is left stays on it, and nothing moves.
	step(command{Type: cmdAlive, Node: "n3"})
	if a, _ := s.m.nextRehome(); a != "" {
		t.Fatalf("nextRehome = %q for an alive member", a)
	}
	if b, _ := r.nextRehome(); b != "" {
		t.Fatalf("nextRehome = %q for an alive member (restored replica)", b)
	}
	left := onN3(s.m)
	if r1, _ := step(command{Type: cmdRehome, Node: "n3", Epoch: rehomeChunk}); r1.More || onN3(s.m) != left {
		t.Fatalf("a rehome of an alive member moved actors: %d left of %d", onN3(s.m), left)
	}
	if p, _ := s.m.lookup(order[n-1]); p.Node != "n3" || p.State != Active {
		t.Fatalf("the last actor = %+v, want still active on n3", p)
	}
}

// TestFailoverMovesEveryActorInChunks: a node holding more actors than
// one chunk fails; the leader moves them all off it, chunk after chunk,
// and each is owned by its new host: with the queue built by the failure
// entry, and by a goroutine (async; the leader proposes the first chunk
// once its own queue is built).
func TestFailoverMovesEveryActorInChunks(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprint("async=", async), func(t *testing.T) { failoverMovesEveryActor(t, async) })
	}
}

func failoverMovesEveryActor(t *testing.T, async bool) {
	if async {
		old := rehomeSyncMax
		rehomeSyncMax = 0
		t.Cleanup(func() { rehomeSyncMax = old }) // after the registries close
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	net := transport.NewMemNetwork()
	regs := startMemOn(t, net, 3, nil)
	const n = rehomeChunk + 500
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if _, err := regs[0].Spawn(ctx, SpawnRequest{ID: fmt.Sprintf("a%05d", i), Type: "T", Strategy: OnNode, Node: "n3",
					Policy: RestartPolicy{MaxRestarts: -1}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("a%05d", i)
	}
	last, _ := regs[0].Lookup(RehomeLast(ids))
	net.Isolate("n3")
	// The last id in rehome order moves in the last chunk.
	p, err := regs[0].WaitNewer(ctx, last.ID, last.Epoch)
	if err != nil || p.Node == "n3" {
		t.Fatalf("last actor after the failover = %+v, %v", p, err)
	}
	if mb, _ := regs[0].Member("n3"); mb.Status != Failed || mb.Load != 0 {
		t.Fatalf("n3 = %+v, want failed holding nothing", mb)
	}
	for i := range n {
		q, _ := regs[0].Lookup(fmt.Sprintf("a%05d", i))
		if q.Node == "n3" || q.State != Active {
			t.Fatalf("%s = %+v", q.ID, q)
		}
	}
	host := map[string]*Registry{"n1": regs[0], "n2": regs[1]}
	if _, err := host[p.Node].WaitOwns(ctx, p.ID, p.Epoch); err != nil {
		t.Fatalf("new host of %s: %v", p.ID, err)
	}
}

// rehomeOrder sorts ids as rehomeQueue must, by (rehomeKey of the
// directory's hash, id), with a comparison sort: a second implementation
// to check the trie walk by. hf is the directory's hash (nil: SipHash).
func rehomeOrder(ids []string, hf func(string) uint64) []string {
	d := &directory{hashOf: hf}
	out := slices.Clone(ids)
	slices.SortFunc(out, func(x, y string) int {
		return cmp.Or(cmp.Compare(rehomeKey(d.hash(x)), rehomeKey(d.hash(y))), cmp.Compare(x, y))
	})
	return out
}

// TestRehomeQueueOrder: the queue a failure builds holds exactly the
// down member's movable actors, in (rehomeKey, id) order, under the
// directory's hash and under hashes whose low bits, or all bits, collide
// (then the tie-break by id orders them).
func TestRehomeQueueOrder(t *testing.T) {
	for name, hf := range testHashes {
		for _, n := range []int{100, 20_000} {
			if hf != nil && n > 1000 {
				continue // collision lists: quadratic puts
			}
			t.Run(fmt.Sprint(name, "/n=", n), func(t *testing.T) {
				s := newSM(t)
				s.m.dir.hashOf = hf
				s.join("n1", "A")
				s.join("n2", "A")
				var want []string
				for i := range n {
					id, node := fmt.Sprintf("q%06d", i), "n1"
					if i%3 == 0 {
						node = "n2"
					}
					if r := s.spawn("n1", SpawnRequest{ID: id, Type: "A", Strategy: OnNode, Node: node}); r.Err != nil {
						t.Fatal(r.Err)
					}
					if node == "n1" {
						want = append(want, id)
					}
				}
				got := rehomeQueue(s.m.w.root, "n1", 0)
				if want = rehomeOrder(want, hf); !slices.Equal(got, want) {
					t.Fatalf("queue of %d ids differs from the reference order of %d (first %v, want %v)", len(got), len(want), got[:min(3, len(got))], want[:min(3, len(want))])
				}
			})
		}
	}
}

// rehomeKey reorders hash h's bits so that keys compare as the trie orders
// its slots: the root's 6 bits (the lowest) most significant, then the
// next level's, down to the last level's 4.
func rehomeKey(h uint64) uint64 {
	var k uint64
	for shift := uint(0); shift < 60; shift += hamtBits {
		k = k<<hamtBits | h>>shift&hamtMask
	}
	return k<<4 | h>>60
}

// TestExpelMovesInChunks: an expelled member's actors move off it like a
// failed one's, chunk by chunk past a small directory, spending a restart
// each; nothing is left on it.
func TestExpelMovesInChunks(t *testing.T) {
	old := rehomeSyncMax
	rehomeSyncMax = 0
	defer func() { rehomeSyncMax = old }()
	s := newSM(t)
	s.join("n1", "A")
	s.join("n2", "A")
	s.join("n3", "A")
	const n = 300
	for i := range n {
		if r := s.spawn("n3", SpawnRequest{ID: fmt.Sprint("e", i), Type: "A", Strategy: OnNode, Node: "n3",
			Policy: RestartPolicy{MaxRestarts: -1}}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	s.do(command{Type: cmdExpel, Node: "n3"})
	node, ready := s.m.nextRehome()
	if node != "n3" || ready == nil {
		t.Fatalf("nextRehome = %q after the expel, want n3", node)
	}
	<-ready
	if r := s.do(command{Type: cmdRehome, Node: "n3", Epoch: rehomeChunk}); r.More {
		t.Fatal("More after a chunk larger than the member's actors")
	}
	if mb, _ := s.m.member("n3"); mb.Load != 0 || mb.Status != Expelled {
		t.Fatalf("n3 = %+v, want expelled holding nothing", mb)
	}
	for i := range n {
		p, _ := s.m.lookup(fmt.Sprint("e", i))
		if p.Node == "n3" || p.State != Active || p.Restarts != 1 {
			t.Fatalf("%s = %+v, want active elsewhere after one restart", p.ID, p)
		}
	}
	if node, _ := s.m.nextRehome(); node != "" {
		t.Fatalf("nextRehome = %q once all moved", node)
	}
}
