package placement

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"testing"
)

// TestDirectoryDelete checks deletes against a map, interleaved with puts,
// under every test hash (collision lists included): every entry left is
// found, no deleted one is, published roots never change, and a trie
// emptied by deletes is nil again.
func TestDirectoryDelete(t *testing.T) {
	for name, hf := range testHashes {
		t.Run(name, func(t *testing.T) {
			d := &directory{seed: maphash.MakeSeed(), hashOf: hf}
			w := newDirWriter(d)
			rng := rand.New(rand.NewPCG(3, 4))
			n := 2000
			if hf != nil && hf("a") == 42 {
				n = 200
			}
			want := map[string]Placement{}
			type frozen struct {
				root *hnode
				want map[string]Placement
			}
			var roots []frozen
			check := func(root *hnode, want map[string]Placement, what string) {
				t.Helper()
				count := 0
				walk(root, func(e *entry) bool { count++; return true })
				if count != len(want) {
					t.Fatalf("%s: %d entries, want %d", what, count, len(want))
				}
				for i := range n {
					id := fmt.Sprint("id", i)
					e := d.get(root, id)
					p, ok := want[id]
					if (e != nil) != ok || (ok && e.placement() != p) {
						t.Fatalf("%s: get %s = %v, want %+v (%v)", what, id, e, p, ok)
					}
				}
			}
			for step := range 12 {
				for range n / 4 {
					id := fmt.Sprint("id", rng.IntN(n))
					if rng.IntN(2) == 0 {
						p := Placement{ID: id, Type: "T", Node: fmt.Sprint("n", rng.IntN(3)), Epoch: rng.Uint64()}
						w.put(p)
						want[id] = p
						continue
					}
					old, existed := w.del(id)
					if prev, ok := want[id]; ok != existed || old != prev {
						t.Fatalf("del %s: removed %+v (%v), want %+v (%v)", id, old, existed, prev, ok)
					}
					delete(want, id)
				}
				w.publish()
				check(d.root.Load(), want, fmt.Sprint("step ", step))
				roots = append(roots, frozen{d.root.Load(), clonePlacements(want)})
			}
			for i, f := range roots {
				check(f.root, f.want, fmt.Sprint("frozen root ", i))
			}
			for id := range want {
				w.del(id)
			}
			if w.root != nil {
				t.Fatalf("a trie emptied by deletes is not nil: %+v", w.root)
			}
		})
	}
}

// TestForget checks the forget command: only the host's own command for
// the active placement at its epoch drops the entry; the counts, loads and
// revocations follow; Owns and WaitNewer tell a forgotten entry from one
// the replica has not applied yet; a snapshot keeps no trace of it.
func TestForget(t *testing.T) {
	s := newSM(t)
	s.join("n1", "T")
	s.join("n2", "T")
	a := s.spawn("n1", SpawnRequest{ID: "T/a", Type: "T", Strategy: OnNode, Node: "n1"}).Placement
	b := s.spawn("n1", SpawnRequest{ID: "T/b", Type: "T", Strategy: OnNode, Node: "n1"}).Placement
	if a.Node != "n1" || b.Node != "n1" {
		t.Fatalf("placed %+v %+v", a, b)
	}
	count := s.m.count.Load()
	refuse := []struct {
		name string
		c    command
		want error
	}{
		{"another node's command", command{Type: cmdForget, Node: "n2", Origin: "n2", ID: a.ID, Epoch: a.Epoch}, ErrNotOwner},
		{"origin not the host", command{Type: cmdForget, Node: "n1", Origin: "n2", ID: a.ID, Epoch: a.Epoch}, ErrNotOwner},
		{"no origin", command{Type: cmdForget, Node: "n1", ID: a.ID, Epoch: a.Epoch}, ErrNotOwner},
		{"stale epoch", command{Type: cmdForget, Node: "n1", Origin: "n1", ID: a.ID, Epoch: a.Epoch - 1}, ErrStaleEpoch},
		{"unknown id", command{Type: cmdForget, Node: "n1", Origin: "n1", ID: "T/x", Epoch: a.Epoch}, ErrNotFound},
	}
	for _, tc := range refuse {
		if res := s.do(tc.c); !errors.Is(res.Err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, res.Err, tc.want)
		}
		if _, ok := s.m.lookup(a.ID); !ok {
			t.Fatalf("%s: the entry went", tc.name)
		}
	}
	load := func(node string) int { mb, _ := s.m.member(node); return mb.Load }
	if load("n1") != 2 {
		t.Fatalf("n1 load %d before forgetting", load("n1"))
	}
	s.events = nil
	res := s.do(command{Type: cmdForget, Node: "n1", Origin: "n1", ID: a.ID, Epoch: a.Epoch})
	if res.Err != nil {
		t.Fatalf("forget by its host: %v", res.Err)
	}
	if _, ok := s.m.lookup(a.ID); ok {
		t.Fatal("entry kept after forget")
	}
	if len(s.events) != 1 || s.events[0].Kind != ActorForgotten || s.events[0].Prev.ID != a.ID {
		t.Fatalf("events %+v", s.events)
	}
	if got := s.m.count.Load(); got != count-1 {
		t.Fatalf("count %d, want %d", got, count-1)
	}
	if load("n1") != 1 {
		t.Fatalf("n1 load %d after forgetting", load("n1"))
	}
	if s.m.revokedAt("n1") != s.index {
		t.Fatalf("forget did not revoke on its host: %d, index %d", s.m.revokedAt("n1"), s.index)
	}
	// A stopped actor is not forgotten: its tombstone says why it stopped.
	s.do(command{Type: cmdStop, ID: b.ID})
	if res := s.do(command{Type: cmdForget, Node: "n1", Origin: "n1", ID: b.ID, Epoch: b.Epoch}); !errors.Is(res.Err, ErrNotOwner) {
		t.Fatalf("forget of a stopped actor: %v", res.Err)
	}
	// Named again, it is placed anew, at a later epoch.
	a2 := s.spawn("n2", SpawnRequest{ID: a.ID, Type: "T"}).Placement
	if a2.Epoch <= a.Epoch || a2.State != Active {
		t.Fatalf("placed again: %+v after %+v", a2, a)
	}
	r := restoredCopy(t, s.m)
	if p, ok := r.lookup(a.ID); !ok || p != a2 {
		t.Fatalf("restored %+v %v, want %+v", p, ok, a2)
	}
	if r.count.Load() != s.m.count.Load() {
		t.Fatalf("restored count %d, want %d", r.count.Load(), s.m.count.Load())
	}
	s.do(command{Type: cmdForget, Node: a2.Node, Origin: a2.Node, ID: a.ID, Epoch: a2.Epoch})
	r = restoredCopy(t, s.m)
	if _, ok := r.lookup(a.ID); ok {
		t.Fatal("a forgotten entry came back from a snapshot")
	}
}

// TestOwnsTellsForgottenFromLagging checks the rule Owns and WaitNewer use
// for an absent entry: a replica that applied the caller's epoch's index
// has forgotten it; one that did not may yet learn it.
func TestOwnsTellsForgottenFromLagging(t *testing.T) {
	for _, tc := range []struct {
		epoch, applied uint64
		forgotten      bool
	}{
		{0, 10, false}, // no epoch: nothing known
		{10 * maxBatch, 10, true},
		{10*maxBatch + maxBatch - 1, 10, true},
		{11 * maxBatch, 10, false},
	} {
		if got := forgottenAt(tc.epoch, tc.applied); got != tc.forgotten {
			t.Errorf("forgottenAt(%d, %d) = %v", tc.epoch, tc.applied, got)
		}
	}
	err := errForgotten("T/a")
	w := toWire(err)
	back := fromWire(w)
	for _, e := range []error{err, back} {
		if !errors.Is(e, ErrForgotten) || !errors.Is(e, ErrNotFound) {
			t.Fatalf("%v: does not match ErrForgotten and ErrNotFound", e)
		}
	}
	if errors.Is(fromWire(toWire(&SpawnError{ID: "x", Err: ErrNotFound})), ErrForgotten) {
		t.Fatal("a plain not-found crossed the wire as forgotten")
	}
}
