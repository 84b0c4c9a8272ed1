package placement

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"
)

// TestDirectoryDelete checks deletes against a map, interleaved with puts,
// under every test hash (collision lists included): every entry left is
// found, no deleted one is, published roots never change, and a trie
// emptied by deletes is nil again.
func TestDirectoryDelete(t *testing.T) {
	for name, hf := range testHashes {
		t.Run(name, func(t *testing.T) {
			d := &directory{hashOf: hf}
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
		{9 * maxBatch, 10, true},
		{9*maxBatch + maxBatch - 1, 10, true},
		{10 * maxBatch, 10, false},  // placed by entry 10: a forget would be a later entry
		{10*maxBatch - 1, 11, true}, // one less than entry 10's first epoch (a Refresh of a hint): entry 10 is applied
		{10*maxBatch - 1, 9, false}, // the same, on a replica one entry behind it
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

// TestOwnedActors checks client ownership in the state machine: only the
// spawning client owns (its Origin), release stops its active actors and
// nothing else, the owned counts follow, and a snapshot keeps the owner.
func TestOwnedActors(t *testing.T) {
	s := newSM(t)
	s.join("n1", "T")
	own := func(id, owner, origin string) result {
		return s.do(command{Type: cmdSpawn, Node: origin, Origin: origin, Spawn: SpawnRequest{ID: id, Type: "T", Owner: owner}})
	}
	if res := own("a", "c1", "c1"); res.Err != nil || res.Placement.Owner != "c1" {
		t.Fatalf("owned spawn: %+v", res)
	}
	if res := own("b", "c1", "c1"); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := own("x", "c1", "c2"); !errors.Is(res.Err, ErrInvalidRequest) {
		t.Fatalf("spawn owned by another client: %v", res.Err)
	}
	if res := own("m", "n1", "n1"); !errors.Is(res.Err, ErrInvalidRequest) {
		t.Fatalf("spawn owned by a member: %v", res.Err)
	}
	if res := own("d", "", "c1"); res.Err != nil || res.Placement.Owner != "" {
		t.Fatalf("detached spawn: %+v", res)
	}
	if res := own("e", "c2", "c2"); res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := s.m.owners(); len(got) != 2 || got[0] != "c1" || got[1] != "c2" {
		t.Fatalf("owners %v", got)
	}
	r := restoredCopy(t, s.m)
	if p, _ := r.lookup("a"); p.Owner != "c1" {
		t.Fatalf("restored owner %+v", p)
	}
	if r.owned["c1"] != 2 || r.owned["c2"] != 1 {
		t.Fatalf("restored owned counts %v", r.owned)
	}
	s.do(command{Type: cmdStop, ID: "b"})
	if s.m.owned["c1"] != 1 {
		t.Fatalf("owned after a stop: %v", s.m.owned)
	}
	s.events = nil
	if res := s.do(command{Type: cmdRelease, Node: "c1"}); res.Err != nil {
		t.Fatal(res.Err)
	}
	for id, want := range map[string]ActorState{"a": Stopped, "b": Stopped, "d": Active, "e": Active} {
		if p, _ := s.m.lookup(id); p.State != want {
			t.Errorf("%s after c1's release: %+v", id, p)
		}
	}
	if len(s.events) != 1 || s.events[0].Kind != ActorStopped || s.events[0].Actor.ID != "a" {
		t.Fatalf("release events %+v", s.events)
	}
	if _, ok := s.m.owned["c1"]; ok || s.m.owned["c2"] != 1 {
		t.Fatalf("owned after release %v", s.m.owned)
	}
}

// TestSilentOwners checks the leader's judgement of clients owning
// actors, on a clock of its own: an owner is released only once silent
// past the client timeout, hearing from it restarts its clock, a new term
// gives every owner a full timeout from the election, and one release is
// under way per owner at a time.
func TestSilentOwners(t *testing.T) {
	r := &Registry{cfg: Config{ClientTimeout: 6 * time.Second}, clientHeard: map[string]time.Time{}, releasing: map[string]bool{},
		log: slog.New(slog.DiscardHandler)}
	to := r.clientTimeout()
	t0 := time.Unix(1000, 0)
	owners := []string{"c1", "c2"}
	if got := r.silentOwners(owners, t0, false); len(got) != 0 {
		t.Fatalf("first sight released %v", got)
	}
	r.clientHeard["c2"] = t0.Add(to / 2) // c2 was heard since
	if got := r.silentOwners(owners, t0.Add(to), false); len(got) != 0 {
		t.Fatalf("released %v at exactly the timeout", got)
	}
	// A leader elected just before c1's timeout: a full timeout from now.
	t1 := t0.Add(to - time.Second)
	if got := r.silentOwners(owners, t1, true); len(got) != 0 {
		t.Fatalf("released %v at a new term", got)
	}
	if got := r.silentOwners(owners, t0.Add(to+time.Second), false); len(got) != 0 {
		t.Fatalf("released %v within the new leader's grace", got)
	}
	got := r.silentOwners(owners, t1.Add(to+time.Millisecond), false)
	if len(got) != 2 || got[0] != "c1" || got[1] != "c2" {
		t.Fatalf("past the grace: released %v, want [c1 c2]", got)
	}
	if again := r.silentOwners(owners, t1.Add(2*to), false); len(again) != 0 {
		t.Fatalf("released twice: %v", again)
	}
	// Released and owning nothing any more: forgotten.
	delete(r.releasing, "c1")
	delete(r.releasing, "c2")
	r.silentOwners(nil, t1.Add(3*to), false)
	if len(r.clientHeard) != 0 {
		t.Fatalf("clients owning nothing still watched: %v", r.clientHeard)
	}
	if minClientTimeout > 5*time.Second {
		t.Fatalf("minClientTimeout %v: ClientTimeout's doc says 5 s", minClientTimeout)
	}
	r.cfg.ClientTimeout = time.Second
	if r.clientTimeout() != minClientTimeout {
		t.Fatalf("a 1 s ClientTimeout gives %v, want the floor %v", r.clientTimeout(), minClientTimeout)
	}
}
