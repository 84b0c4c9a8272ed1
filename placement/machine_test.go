package placement

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"testing"
)

// sm drives a machine directly, without Raft, numbering entries itself.
type sm struct {
	t      *testing.T
	m      *machine
	index  uint64
	events []Event
}

func newSM(t *testing.T) *sm { return &sm{t: t, m: newMachine()} }

func (s *sm) do(c command) result {
	s.t.Helper()
	b, err := encodeCommand(c)
	if err != nil {
		s.t.Fatalf("encode: %v", err)
	}
	s.index++
	res, evs := s.m.apply(s.index, b)
	s.events = append(s.events, evs...)
	return res
}

func (s *sm) join(id string, types ...string) {
	s.t.Helper()
	if r := s.do(command{Type: cmdJoin, Node: id, Addr: "mem:" + id, Types: types}); r.Err != nil {
		s.t.Fatalf("join %s: %v", id, r.Err)
	}
}

func (s *sm) spawn(caller string, req SpawnRequest) result {
	return s.do(command{Type: cmdSpawn, Node: caller, Spawn: req})
}

func TestSpawnErrors(t *testing.T) {
	s := newSM(t)
	s.join("n1", "A")
	s.join("n2", "A", "B")
	s.join("n3", "C")
	s.do(command{Type: cmdFailed, Node: "n3"})
	tests := []struct {
		name string
		req  SpawnRequest
		want error
	}{
		{"unknown type", SpawnRequest{Type: "Z"}, ErrUnknownType},
		{"node without the type", SpawnRequest{Type: "B", Strategy: OnNode, Node: "n1"}, ErrTypeNotHosted},
		{"local without the type", SpawnRequest{Type: "B", Strategy: Local}, ErrTypeNotHosted},
		{"unknown node", SpawnRequest{Type: "A", Strategy: OnNode, Node: "n9"}, ErrNodeNotAlive},
		{"only host failed", SpawnRequest{Type: "C"}, ErrNoCandidate},
		{"failed node", SpawnRequest{Type: "C", Strategy: OnNode, Node: "n3"}, ErrNodeNotAlive},
		{"negative restarts", SpawnRequest{Type: "A", Policy: RestartPolicy{MaxRestarts: -2}}, ErrInvalidPolicy},
		{"negative backoff", SpawnRequest{Type: "A", Policy: RestartPolicy{Backoff: -1}}, ErrInvalidPolicy},
		{"reserved id", SpawnRequest{ID: "~1", Type: "A"}, ErrInvalidRequest},
		{"empty type", SpawnRequest{ID: "x"}, ErrInvalidRequest},
		{"bad strategy", SpawnRequest{Type: "A", Strategy: 99}, ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.m.count.Load()
			r := s.spawn("n1", tt.req)
			var se *SpawnError
			if !errors.Is(r.Err, tt.want) || !errors.As(r.Err, &se) {
				t.Fatalf("err = %v, want *SpawnError wrapping %v", r.Err, tt.want)
			}
			if se.Type != tt.req.Type {
				t.Fatalf("SpawnError.Type = %q, want %q", se.Type, tt.req.Type)
			}
			if s.m.count.Load() != before {
				t.Fatal("a refused spawn changed the directory")
			}
		})
	}
}

func TestStrategies(t *testing.T) {
	s := newSM(t)
	s.join("n1", "A")
	s.join("n2", "A")
	s.join("n3", "A")
	s.join("n4", "B")
	t.Run("least-loaded spreads evenly", func(t *testing.T) {
		for i := range 9 {
			if r := s.spawn("n1", SpawnRequest{ID: fmt.Sprint("ll", i), Type: "A"}); r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		for _, n := range []string{"n1", "n2", "n3"} {
			if mb, _ := s.m.member(n); mb.Load != 3 {
				t.Fatalf("%s load = %d, want 3", n, mb.Load)
			}
		}
	})
	t.Run("on-node and local", func(t *testing.T) {
		if r := s.spawn("n1", SpawnRequest{ID: "given", Type: "A", Strategy: OnNode, Node: "n3"}); r.Placement.Node != "n3" {
			t.Fatalf("on-node placed on %q (%v)", r.Placement.Node, r.Err)
		}
		if r := s.spawn("n2", SpawnRequest{ID: "local", Type: "A", Strategy: Local}); r.Placement.Node != "n2" {
			t.Fatalf("local placed on %q (%v)", r.Placement.Node, r.Err)
		}
	})
	t.Run("hash is stable and only picks hosts", func(t *testing.T) {
		a := newSM(t)
		for _, n := range []string{"n1", "n2", "n3"} {
			a.join(n, "A")
		}
		a.join("n4", "B")
		for i := range 20 {
			id := fmt.Sprint("h", i)
			r1 := s.spawn("n1", SpawnRequest{ID: id, Type: "A", Strategy: HashID})
			r2 := a.spawn("n2", SpawnRequest{ID: id, Type: "A", Strategy: HashID})
			if r1.Err != nil || r1.Placement.Node != r2.Placement.Node || r1.Placement.Node == "n4" {
				t.Fatalf("hash placements differ or wrong: %+v vs %+v (%v)", r1.Placement, r2.Placement, r1.Err)
			}
		}
	})
	t.Run("random is deterministic per index and id", func(t *testing.T) {
		a, b := newSM(t), newSM(t)
		seen := map[string]bool{}
		for _, x := range []*sm{a, b} {
			for _, n := range []string{"n1", "n2", "n3"} {
				x.join(n, "A")
			}
		}
		for i := range 30 {
			ra := a.spawn("n1", SpawnRequest{Type: "A", Strategy: Random})
			rb := b.spawn("n1", SpawnRequest{Type: "A", Strategy: Random})
			if ra.Placement != rb.Placement {
				t.Fatalf("spawn %d: replicas disagree: %+v vs %+v", i, ra.Placement, rb.Placement)
			}
			seen[ra.Placement.Node] = true
		}
		if len(seen) < 2 {
			t.Fatalf("random used only %v", seen)
		}
	})
}

func TestNamedSpawnIsCompareAndSet(t *testing.T) {
	s := newSM(t)
	s.join("n1", "A")
	s.join("n2", "A")
	first := s.spawn("n1", SpawnRequest{ID: "svc", Type: "A", Strategy: Local})
	second := s.spawn("n2", SpawnRequest{ID: "svc", Type: "A", Strategy: Local})
	if first.Err != nil || second.Err != nil || !second.Existed || second.Placement != first.Placement {
		t.Fatalf("racing spawns: %+v / %+v", first, second)
	}
	if r := s.spawn("n2", SpawnRequest{ID: "svc", Type: "B"}); !errors.Is(r.Err, ErrInvalidRequest) {
		t.Fatalf("same id, other type: %v", r.Err)
	}
	// Once stopped, the name can be spawned anew with a new epoch.
	if r := s.do(command{Type: cmdStop, ID: "svc", Reason: "done"}); r.Err != nil || r.Placement.State != Stopped {
		t.Fatalf("stop: %+v", r)
	}
	again := s.spawn("n2", SpawnRequest{ID: "svc", Type: "A", Strategy: Local})
	if again.Err != nil || again.Existed || again.Placement.Epoch <= first.Placement.Epoch || again.Placement.Node != "n2" {
		t.Fatalf("respawn: %+v", again)
	}
	if n := s.m.count.Load(); n != 1 {
		t.Fatalf("directory holds %d entries, want 1", n)
	}
}

func TestFailureReplacesByPolicy(t *testing.T) {
	s := newSM(t)
	s.join("n1", "A")
	s.join("n2", "A")
	s.join("n3", "A")
	pols := map[string]RestartPolicy{
		"never":     {MaxRestarts: 0},
		"once":      {MaxRestarts: 1},
		"unlimited": {MaxRestarts: -1},
	}
	for id, pol := range pols {
		if r := s.spawn("n1", SpawnRequest{ID: id, Type: "A", Strategy: OnNode, Node: "n1", Policy: pol}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	s.events = nil
	s.do(command{Type: cmdFailed, Node: "n1"})
	failIndex := s.index
	check := func(id string, st ActorState, restarts int) Placement {
		t.Helper()
		p, _ := s.m.lookup(id)
		if p.State != st || p.Restarts != restarts {
			t.Fatalf("%s = %+v, want state %v restarts %d", id, p, st, restarts)
		}
		if st == Active && (p.Node == "n1" || p.Epoch != s.index*maxBatch) {
			t.Fatalf("%s not re-placed with a new epoch: %+v", id, p)
		}
		return p
	}
	check("never", Stopped, 0)
	check("once", Active, 1)
	check("unlimited", Active, 1)
	if mb, _ := s.m.member("n1"); mb.Status != Failed || mb.Load != 0 {
		t.Fatalf("n1 = %+v", mb)
	}
	kinds := map[EventKind]int{}
	for _, e := range s.events {
		kinds[e.Kind]++
		if e.Index != failIndex {
			t.Fatalf("event %v at index %d, want %d", e.Kind, e.Index, failIndex)
		}
	}
	if kinds[MemberFailed] != 1 || kinds[ActorReplaced] != 2 || kinds[ActorStopped] != 1 {
		t.Fatalf("events = %v", kinds)
	}
	// The second failure exhausts "once" but not "unlimited".
	p, _ := s.m.lookup("once")
	s.do(command{Type: cmdFailed, Node: p.Node})
	check("once", Stopped, 1)
	// A crash report with a stale epoch changes nothing.
	u, _ := s.m.lookup("unlimited")
	if r := s.do(command{Type: cmdRestart, ID: "unlimited", Epoch: u.Epoch - 1}); !errors.Is(r.Err, ErrStaleEpoch) {
		t.Fatalf("stale restart: %v", r.Err)
	}
	if r := s.do(command{Type: cmdRestart, ID: "unlimited", Epoch: u.Epoch, Reason: "panic"}); r.Err != nil || r.Placement.Restarts != u.Restarts+1 || r.Placement.Epoch != s.index*maxBatch {
		t.Fatalf("restart: %+v", r)
	}
	// Alive again: a candidate once more, but its old actors stay moved.
	s.do(command{Type: cmdAlive, Node: "n1"})
	if mb, _ := s.m.member("n1"); mb.Status != Alive {
		t.Fatalf("n1 = %+v", mb)
	}
	// Leaving does not use the restart budget.
	s.spawn("n2", SpawnRequest{ID: "keep", Type: "A", Strategy: OnNode, Node: "n2"})
	s.do(command{Type: cmdLeave, Node: "n2"})
	if p, _ := s.m.lookup("keep"); p.State != Active || p.Node == "n2" || p.Restarts != 0 {
		t.Fatalf("after leave: %+v", p)
	}
}

func TestCommandDecodeErrors(t *testing.T) {
	good, _ := encodeCommand(command{Type: cmdStop, ID: "x"})
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrBadCommand},
		{"one byte", []byte{6}, ErrBadCommand},
		{"type zero", []byte{0, 1, 0x80}, ErrBadCommand},
		{"unknown type", []byte{200, 1, 0x80}, ErrBadCommand},
		{"unknown version", append([]byte{good[0], 2}, good[2:]...), ErrUnknownVersion},
		{"garbage body", []byte{6, 1, 0xc1, 0xff}, ErrBadCommand},
		{"truncated", good[:len(good)-1], ErrBadCommand},
		{"trailing", append(append([]byte{}, good...), 0), ErrBadCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeCommand(tt.b); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			m := newMachine()
			if r, _ := m.apply(1, tt.b); !errors.Is(r.Err, tt.want) {
				t.Fatalf("apply err = %v, want %v", r.Err, tt.want)
			}
		})
	}
}

func populated(t *testing.T) *sm {
	s := newSM(t)
	s.join("n1", "A", "B")
	s.join("n2", "A")
	for i := range 50 {
		s.spawn("n1", SpawnRequest{ID: fmt.Sprint("a", i), Type: "A", Policy: RestartPolicy{MaxRestarts: i%3 - 1}})
	}
	s.do(command{Type: cmdStop, ID: "a7", Reason: "bye"})
	s.do(command{Type: cmdFailed, Node: "n2"})
	return s
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := populated(t)
	b, err := encodeSnapshot(s.m.capture())
	if err != nil {
		t.Fatal(err)
	}
	body, err := decodeSnapshot(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	m := newMachine()
	m.restore(body)
	if m.applied.Load() != s.index || m.count.Load() != s.m.count.Load() {
		t.Fatalf("restored index %d count %d, want %d %d", m.applied.Load(), m.count.Load(), s.index, s.m.count.Load())
	}
	walk(s.m.dir.root.Load(), func(e *entry) bool {
		if p, _ := m.lookup(e.id); p != e.placement() {
			t.Fatalf("%s: restored %+v, want %+v", e.id, p, e.placement())
		}
		return true
	})
	for _, mb := range s.m.memberList() {
		got, _ := m.member(mb.ID)
		if fmt.Sprint(got) != fmt.Sprint(mb) {
			t.Fatalf("member %s: restored %+v, want %+v", mb.ID, got, mb)
		}
	}
	// The restored machine keeps deciding like the original.
	b1, _ := encodeCommand(command{Type: cmdSpawn, Node: "n1", Spawn: SpawnRequest{Type: "A"}})
	r1, _ := s.m.apply(s.index+1, b1)
	r2, _ := m.apply(s.index+1, b1)
	if r1.Placement != r2.Placement {
		t.Fatalf("after restore: %+v vs %+v", r1.Placement, r2.Placement)
	}
}

func TestCorruptSnapshotRefused(t *testing.T) {
	s := populated(t)
	good, _ := encodeSnapshot(s.m.capture())
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"truncated header", good[:10]},
		{"truncated body", good[:len(good)-5]},
		{"header only", good[:snapHeaderSize]},
		{"bad magic", flip(0)},
		{"bad version", flip(4)},
		{"bad length", flip(15)},
		{"bad checksum", flip(17)},
		{"flipped body byte", flip(len(good) / 2)},
		{"trailing bytes", append(bytes.Clone(good), 1, 2, 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fsm{m: s.m, subs: map[*Subscription]struct{}{}}
			before := s.m.count.Load()
			err := f.Restore(nopCloser{bytes.NewReader(tt.b)})
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("err = %v, want ErrBadSnapshot", err)
			}
			if s.m.count.Load() != before {
				t.Fatal("a refused snapshot changed the state")
			}
		})
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func TestWireErrors(t *testing.T) {
	for _, e := range []error{
		&SpawnError{ID: "a", Type: "T", Node: "n", Err: ErrTypeNotHosted},
		ErrNotLeader,
		fmt.Errorf("%w: raft said no", ErrUnknownOutcome),
	} {
		c := &ctrl{Type: msgResult, Req: 7, Res: &result{Err: e, Index: 3}}
		b, err := encodeCtrl(c)
		if err != nil {
			t.Fatal(err)
		}
		d, err := decodeCtrl(b)
		if err != nil {
			t.Fatal(err)
		}
		if d.Req != 7 || d.Res.Index != 3 || d.Res.Err == nil || d.Res.Err.Error() == "" {
			t.Fatalf("decoded %+v", d.Res)
		}
		var want *SpawnError
		if errors.As(e, &want) {
			var got *SpawnError
			if !errors.As(d.Res.Err, &got) || *got != *want {
				t.Fatalf("got %#v, want %#v", d.Res.Err, want)
			}
		}
		if errors.Is(e, ErrNotLeader) && !errors.Is(d.Res.Err, ErrNotLeader) {
			t.Fatalf("lost identity: %v", d.Res.Err)
		}
	}
}

func TestRetriedRequestAppliesOnce(t *testing.T) {
	s := newSM(t)
	s.join("n1", "A")
	s.join("n2", "A")
	spawn := command{Type: cmdSpawn, Node: "n1", Spawn: SpawnRequest{Type: "A"}, Origin: "n1", Inc: 1, Seq: 5}
	first := s.do(spawn)
	stop := command{Type: cmdStop, ID: first.Placement.ID, Origin: "n2", Inc: 2, Seq: 1}
	if r := s.do(stop); r.Err != nil {
		t.Fatal(r.Err)
	}
	// The retry of the unnamed spawn returns the first outcome: no second actor.
	again := s.do(spawn)
	if again.Placement != first.Placement || again.Index != first.Index || s.m.count.Load() != 1 {
		t.Fatalf("retry = %+v, first = %+v, %d actors", again, first, s.m.count.Load())
	}
	// A retried refusal keeps its typed error.
	bad := command{Type: cmdSpawn, Node: "n1", Spawn: SpawnRequest{Type: "Z"}, Origin: "n1", Inc: 1, Seq: 6}
	r1, r2 := s.do(bad), s.do(bad)
	if !errors.Is(r1.Err, ErrUnknownType) || !errors.Is(r2.Err, ErrUnknownType) {
		t.Fatalf("refusal then retry: %v / %v", r1.Err, r2.Err)
	}
	// A new incarnation starts a new window; the old one is refused.
	if r := s.do(command{Type: cmdRead, ID: "x", Origin: "n1", Inc: 9, Seq: 1}); !errors.Is(r.Err, ErrNotFound) {
		t.Fatal(r.Err)
	}
	if r := s.do(spawn); !errors.Is(r.Err, ErrStaleRequest) {
		t.Fatalf("old incarnation: %v", r.Err)
	}
	// The window survives a snapshot.
	b, _ := encodeSnapshot(s.m.capture())
	body, err := decodeSnapshot(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	m := newMachine()
	m.restore(body)
	enc, _ := encodeCommand(stop)
	if r, _ := m.apply(s.index+1, enc); r.Index != 2+2 || r.Err != nil {
		t.Fatalf("retry after restore = %+v", r)
	}
	// Requests older than the window are refused, never re-applied.
	for i := range sessionWindow + 1 {
		s.do(command{Type: cmdRead, ID: "x", Origin: "n3", Inc: 1, Seq: uint64(i + 1)})
	}
	if r := s.do(command{Type: cmdSpawn, Node: "n1", Spawn: SpawnRequest{Type: "A"}, Origin: "n3", Inc: 1, Seq: 1}); !errors.Is(r.Err, ErrStaleRequest) {
		t.Fatalf("evicted seq: %+v", r)
	}
}

func TestBatchEntry(t *testing.T) {
	s := newSM(t)
	s.join("n1", "A")
	s.join("n2", "A")
	var cmds [][]byte
	for _, c := range []command{
		{Type: cmdSpawn, Node: "n1", Spawn: SpawnRequest{ID: "x", Type: "A"}},
		{Type: cmdSpawn, Node: "n2", Spawn: SpawnRequest{ID: "x", Type: "A"}}, // same name: a get
		{Type: cmdSpawn, Node: "n1", Spawn: SpawnRequest{Type: "Z"}},          // refused alone
		{Type: cmdSpawn, Node: "n1", Spawn: SpawnRequest{Type: "A"}},
		{Type: cmdRestart, ID: "x", Reason: "crash"},
	} {
		b, _ := encodeCommand(c)
		cmds = append(cmds, b)
	}
	cmds = append(cmds, []byte{1, 9}) // a malformed command fails alone
	b, err := encodeBatch(cmds)
	if err != nil {
		t.Fatal(err)
	}
	out, evs := s.m.applyEntry(7, b)
	res, ok := out.([]result)
	if !ok || len(res) != len(cmds) {
		t.Fatalf("batch result %T %v", out, out)
	}
	x := res[0].Placement
	if x.Epoch != 7*maxBatch || !res[1].Existed || res[1].Placement != x {
		t.Fatalf("first two: %+v / %+v", res[0], res[1])
	}
	if !errors.Is(res[2].Err, ErrUnknownType) || res[3].Err != nil || res[3].Placement.Epoch != 7*maxBatch+3 || res[3].Placement.ID != fmt.Sprint("~", 7*maxBatch+3) {
		t.Fatalf("third and fourth: %+v / %+v", res[2], res[3])
	}
	if p := res[4].Placement; p.State != Stopped || p.Epoch != x.Epoch { // MaxRestarts 0: stopped
		t.Fatalf("restart in the same entry: %+v", res[4])
	}
	if !errors.Is(res[5].Err, ErrUnknownVersion) {
		t.Fatalf("malformed member: %v", res[5].Err)
	}
	for _, e := range evs {
		if e.Index != 7 {
			t.Fatalf("event %+v not at index 7", e)
		}
	}
	for name, bad := range map[string][]byte{
		"garbage":  {byte(cmdBatch), cmdVersion, 0xc1},
		"version":  {byte(cmdBatch), 9, 0x90},
		"trailing": append(append([]byte{}, b...), 0),
	} {
		if out, _ := s.m.applyEntry(8, bad); out.(result).Err == nil {
			t.Fatalf("%s batch accepted", name)
		}
	}
	// A batch inside a batch is refused.
	nested, _ := encodeBatch([][]byte{b})
	out, _ = s.m.applyEntry(9, nested)
	if r := out.([]result); !errors.Is(r[0].Err, ErrBadCommand) {
		t.Fatalf("nested batch: %v", r[0].Err)
	}
}

func TestBatchedResultsOnTheWire(t *testing.T) {
	c := &ctrl{Type: msgResult, Req: 9, Rs: []result{
		{Placement: Placement{ID: "a", Epoch: 5}, Index: 1},
		{Err: &SpawnError{ID: "b", Type: "T", Err: ErrNoCandidate}},
		{Err: ErrNotLeader},
	}}
	b, err := encodeCtrl(c)
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeCtrl(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Rs) != 3 || d.Rs[0].Placement.Epoch != 5 || d.Rs[0].Err != nil ||
		!errors.Is(d.Rs[1].Err, ErrNoCandidate) || !errors.Is(d.Rs[2].Err, ErrNotLeader) {
		t.Fatalf("decoded %+v", d.Rs)
	}
	var se *SpawnError
	if !errors.As(d.Rs[1].Err, &se) || se.ID != "b" || se.Type != "T" {
		t.Fatalf("typed error lost: %#v", d.Rs[1].Err)
	}
}

// TestActorsAwaitAHost: when the last member hosting a type goes down
// (the whole cluster stops, or the last host fails), its actors stay
// placed with a reason instead of being stopped, and move to the first
// member hosting the type that is alive again — by a join, a types
// registration or a return from failure — without using their budget.
func TestActorsAwaitAHost(t *testing.T) {
	s := newSM(t)
	s.join("n1", "A")
	s.join("n2", "B")
	for _, id := range []string{"a1", "a2"} {
		if r := s.spawn("n1", SpawnRequest{ID: id, Type: "A", Policy: RestartPolicy{MaxRestarts: 1}}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if r := s.spawn("n2", SpawnRequest{ID: "b", Type: "B", Policy: RestartPolicy{MaxRestarts: 0}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	s.do(command{Type: cmdLeave, Node: "n1"})
	s.do(command{Type: cmdFailed, Node: "n2"})
	for id, node := range map[string]string{"a1": "n1", "a2": "n1"} {
		p, _ := s.m.lookup(id)
		if p.State != Active || p.Node != node || p.Reason != "awaiting a host: node n1 left" || p.Restarts != 0 {
			t.Fatalf("%s after its only host left = %+v", id, p)
		}
	}
	// A failure with the budget spent still stops: the budget decides first.
	if p, _ := s.m.lookup("b"); p.State != Stopped {
		t.Fatalf("b (MaxRestarts 0) after its host failed = %+v", p)
	}
	// A member that does not host A changes nothing.
	s.join("n3", "B")
	if p, _ := s.m.lookup("a1"); p.Node != "n1" {
		t.Fatalf("a1 moved to a member not hosting A: %+v", p)
	}
	// n3 registers A: both move to it, with new epochs and no reason.
	s.events = nil
	if r := s.do(command{Type: cmdTypes, Node: "n3", Types: []string{"A"}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	for _, id := range []string{"a1", "a2"} {
		p, _ := s.m.lookup(id)
		if p.State != Active || p.Node != "n3" || p.Reason != "" || p.Restarts != 0 || p.Epoch != s.index*maxBatch {
			t.Fatalf("%s after a host of A registered = %+v", id, p)
		}
	}
	moved := 0
	for _, e := range s.events {
		if e.Kind == ActorReplaced {
			moved++
		}
	}
	if moved != 2 {
		t.Fatalf("%d ActorReplaced events, want 2", moved)
	}
	if mb, _ := s.m.member("n1"); mb.Load != 0 {
		t.Fatalf("n1 load after its actors moved = %d", mb.Load)
	}
	// A failed last host coming back keeps its waiting actors.
	if r := s.spawn("n3", SpawnRequest{ID: "c", Type: "A", Policy: RestartPolicy{MaxRestarts: -1}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	c0, _ := s.m.lookup("c")
	s.do(command{Type: cmdFailed, Node: "n3"})
	if p, _ := s.m.lookup("c"); p.Node != "n3" || p.Epoch != c0.Epoch || p.Restarts != 0 {
		t.Fatalf("c after its only host failed = %+v", p)
	}
	// The count that lets a rejoin skip the walk of its actors.
	if got := s.m.awaiting["n3"]; got != 3 { // a1, a2 and c
		t.Fatalf("n3 has %d actors awaiting a host, want 3", got)
	}
	restored := restoredCopy(t, s.m)
	if !maps.Equal(restored.awaiting, s.m.awaiting) {
		t.Fatalf("restored awaiting counts %v, want %v", restored.awaiting, s.m.awaiting)
	}
	s.do(command{Type: cmdAlive, Node: "n3"})
	if len(s.m.awaiting) != 0 {
		t.Fatalf("actors still awaiting a host after n3 came back: %v", s.m.awaiting)
	}
	if p, _ := s.m.lookup("c"); p.Node != "n3" || p.Epoch != c0.Epoch || p.Reason != "" {
		t.Fatalf("c after its host came back = %+v", p)
	}
}

// restoredCopy returns a new machine restored from a snapshot of m.
func restoredCopy(t *testing.T, m *machine) *machine {
	t.Helper()
	b, err := encodeSnapshot(m.capture())
	if err != nil {
		t.Fatal(err)
	}
	body, err := decodeSnapshot(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	r := newMachine()
	r.restore(body)
	return r
}
