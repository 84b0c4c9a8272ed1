package placement_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/placement/placementtest"
	"github.com/troupe-dev/troupe/transport"
)

// rogue is a certificate holder that never joined: it sends raw control
// frames and reads the replies.
type rogue struct {
	tr      transport.Transport
	replies chan []byte
	req     uint64
}

func newRogue(tr transport.Transport) *rogue {
	rg := &rogue{tr: tr, replies: make(chan []byte, 16)}
	tr.Handle(transport.KindControl, transport.HandlerFunc(func(_ string, f []byte) {
		select {
		case rg.replies <- f:
		default:
		}
	}))
	return rg
}

// command encodes a registry command: type byte, version 1, msgpack body.
func command(t *testing.T, typ byte, body map[string]any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{typ, 1}, b...)
}

type wireReply struct {
	Req uint64 `msgpack:"q"`
	R   *struct {
		E struct {
			Msg string `msgpack:"m"`
		} `msgpack:"e"`
	} `msgpack:"r"`
	Rs []struct {
		E struct {
			Msg string `msgpack:"m"`
		} `msgpack:"e"`
	} `msgpack:"rs"`
}

// send sends a control frame of type typ with body (plus a fresh request
// id) to peer and returns the error text of each result of the reply.
func (rg *rogue) send(t *testing.T, ctx context.Context, to transport.Peer, typ byte, body map[string]any) []string {
	t.Helper()
	rg.req++
	body["q"] = rg.req
	b, err := msgpack.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	if err := rg.tr.Send(ctx, to, transport.KindControl, append([]byte{typ, 1}, b...)); err != nil {
		t.Fatal(err)
	}
	for {
		var f []byte
		select {
		case f = <-rg.replies:
		case <-ctx.Done():
			t.Fatalf("no reply to request %d", rg.req)
		}
		var m wireReply
		if f[0] != 5 || msgpack.Unmarshal(f[2:], &m) != nil {
			t.Fatalf("reply % x", f)
		}
		if m.Req != rg.req {
			continue
		}
		if m.R != nil {
			return []string{m.R.E.Msg}
		}
		var out []string
		for _, r := range m.Rs {
			out = append(out, r.E.Msg)
		}
		return out
	}
}

// attack is one forged registry write a non-member tries.
type attack struct {
	name string
	typ  byte // control frame type
	body func(victim, actor string) map[string]any
}

func attacks(t *testing.T) []attack {
	propose := func(cmd []byte) map[string]any { return map[string]any{"cs": [][]byte{cmd}} }
	return []attack{
		{"stop any actor", 1, func(_, a string) map[string]any {
			return propose(command(t, 7, map[string]any{"i": a, "r": "forged"}))
		}},
		{"declare a live node failed", 1, func(v, _ string) map[string]any {
			return propose(command(t, 3, map[string]any{"n": v}))
		}},
		{"rewrite a member's address", 1, func(v, _ string) map[string]any {
			return propose(command(t, 1, map[string]any{"n": v, "a": "evil:1"}))
		}},
		{"make a member leave", 1, func(v, _ string) map[string]any {
			return propose(command(t, 5, map[string]any{"n": v}))
		}},
		{"forge a session", 1, func(v, _ string) map[string]any {
			// Origin = victim, an incarnation far ahead: on the old code the
			// victim's every later write failed with ErrStaleRequest.
			return propose(command(t, 9, map[string]any{"i": "x", "o": v, "u": uint64(1) << 60, "q": uint64(1)}))
		}},
		{"expel a member", 1, func(v, _ string) map[string]any {
			return propose(command(t, 11, map[string]any{"n": v}))
		}},
		{"remove itself from raft", 4, func(string, string) map[string]any { return map[string]any{} }},
	}
}

// checkUntouched asserts every replica still has victim alive at addr and
// actor active at epoch on victim, and that victim can still write (its
// session is not poisoned) and the others see its write.
func checkUntouched(t *testing.T, ctx context.Context, regs []*placement.Registry, vi int, addr string, actor placement.Placement, check string) {
	t.Helper()
	victim := regs[vi].ID()
	for i, r := range regs {
		if mb, ok := r.Member(victim); !ok || mb.Status != placement.Alive || mb.Addr != addr {
			t.Fatalf("node %d: %s = %+v", i, victim, mb)
		}
		if p, ok := r.Lookup(actor.ID); !ok || p.State != placement.Active || p.Epoch != actor.Epoch || p.Node != victim {
			t.Fatalf("node %d: %s = %+v, want %+v", i, actor.ID, p, actor)
		}
	}
	p, err := regs[vi].Spawn(ctx, placement.SpawnRequest{ID: check, Type: "T"})
	if err != nil {
		t.Fatalf("victim's spawn after the attacks: %v", err)
	}
	for i, r := range regs {
		if err := r.WaitApplied(ctx, p.Epoch/1024); err != nil {
			t.Fatal(err)
		}
		if got, ok := r.Lookup(check); !ok || got.Epoch != p.Epoch {
			t.Fatalf("node %d: %s = %+v", i, check, got)
		}
	}
}

func runAttacks(t *testing.T, ctx context.Context, rg *rogue, regs []*placement.Registry, leader int, leaderAddr string) {
	vi := (leader + 1) % len(regs)
	victim := regs[vi].ID()
	mb, _ := regs[vi].Member(victim)
	actor, err := regs[leader].Spawn(ctx, placement.SpawnRequest{ID: "a1", Type: "T", Strategy: placement.OnNode, Node: victim, Policy: placement.RestartPolicy{MaxRestarts: -1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range regs {
		if err := r.WaitApplied(ctx, actor.Epoch/1024); err != nil {
			t.Fatal(err)
		}
	}
	if err := regs[leader].WaitLease(ctx); err != nil {
		t.Fatal(err)
	}
	to := transport.Peer{ID: regs[leader].ID(), Addr: leaderAddr}
	for _, a := range attacks(t) {
		t.Run(a.name, func(t *testing.T) {
			before := regs[leader].Refused()
			errs := rg.send(t, ctx, to, a.typ, a.body(victim, actor.ID))
			if len(errs) != 1 || !strings.Contains(errs[0], placement.ErrUnauthorized.Error()) {
				t.Fatalf("reply errors %q, want %q", errs, placement.ErrUnauthorized)
			}
			if got := regs[leader].Refused(); got != before+1 {
				t.Fatalf("refusals %d -> %d, want one more", before, got)
			}
		})
	}
	if n := regs[leader].Refusals()[placement.RefusalNotMember]; n < uint64(len(attacks(t))) {
		t.Fatalf("refusals by reason %v", regs[leader].Refusals())
	}
	checkUntouched(t, ctx, regs, vi, mb.Addr, actor, "after-attacks")
}

// TestNonMemberWritesRefused: a certificate holder that never joined sends
// every registry write of issue 9 to the leader; each is refused and
// counted, nothing changes, and the members go on placing actors.
func TestNonMemberWritesRefused(t *testing.T) {
	c := placementtest.NewCluster(t, 3)
	l := c.WaitLeader()
	tr, err := c.Net.Join("n9")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	regs := []*placement.Registry{c.Reg(0), c.Reg(1), c.Reg(2)}
	runAttacks(t, ctxT(t, 20*time.Second), newRogue(tr), regs, l, "")
	for i, r := range regs {
		if _, ok := r.Member("n9"); ok {
			t.Fatalf("node %d: n9 became a member", i)
		}
	}
}

// TestNonMemberWritesRefusedQUIC runs the same attacks over real QUIC with
// mutual TLS, from a node holding a certificate of the cluster's CA.
func TestNonMemberWritesRefusedQUIC(t *testing.T) {
	regs, trs, ca := quicClusterCA(t, 3)
	l := waitLeaderOf(t, regs)
	ident, err := ca.Issue("q9", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	q, err := transport.NewQUIC(transport.Config{Identity: ident})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	runAttacks(t, ctxT(t, 30*time.Second), newRogue(q), regs, l, trs[l].Addr())
}

// TestSecondProcessWithLiveIDRefused: a process holding a live member's
// certificate, at another address, cannot join in its place; the member
// keeps its address, its actors and its writes.
func TestSecondProcessWithLiveIDRefused(t *testing.T) {
	regs, trs, ca := quicClusterCA(t, 3)
	l := waitLeaderOf(t, regs)
	vi := (l + 1) % 3
	victim := regs[vi].ID()
	ctx := ctxT(t, 30*time.Second)
	actor, err := regs[l].Spawn(ctx, placement.SpawnRequest{ID: "a1", Type: "T", Strategy: placement.OnNode, Node: victim, Policy: placement.RestartPolicy{MaxRestarts: -1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range regs {
		if err := r.WaitApplied(ctx, actor.Epoch/1024); err != nil {
			t.Fatal(err)
		}
	}
	ident, err := ca.Issue(victim, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	q, err := transport.NewQUIC(transport.Config{Identity: ident})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	twin, err := placement.New(jctx, placement.Config{Transport: q, Join: []string{trs[l].Addr()}, Types: []string{"T"}})
	if err == nil {
		twin.Close()
		t.Fatal("a second process joined under a live member's id")
	}
	if !errors.Is(err, placement.ErrIDInUse) || !strings.Contains(err.Error(), trs[vi].Addr()) {
		t.Fatalf("join error %v, want ErrIDInUse naming %s", err, trs[vi].Addr())
	}
	// The leader refuses it in the registry, or its transport refuses the
	// connection (the victim is connected to the leader from its own
	// address): either way the refusal is counted.
	tq, _ := trs[l].(*transport.QUIC)
	if n := regs[l].Refusals()[placement.RefusalIDInUse]; n == 0 && (tq == nil || tq.Refusals()[transport.RefusalIDInUse] == 0) {
		t.Fatalf("refusals %v", regs[l].Refusals())
	}
	checkUntouched(t, ctx, regs, vi, trs[vi].Addr(), actor, "after-twin")
}

// TestMembersCannotActForOthers: a member's own transport sends writes in
// another member's name: a failure, a join forwarded for a new id, and a
// session of another node. The leader refuses or re-stamps each, and the
// other member's writes still work.
func TestMembersCannotActForOthers(t *testing.T) {
	c := placementtest.NewCluster(t, 3)
	l := c.WaitLeader()
	m, v := (l+1)%3, (l+2)%3
	ctx := ctxT(t, 20*time.Second)
	lead := transport.Peer{ID: c.Node(l).ID}
	send := func(typ byte, body map[string]any) {
		b, err := msgpack.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Node(m).Tr.Send(ctx, lead, transport.KindControl, append([]byte{typ, 1}, b...)); err != nil {
			t.Fatal(err)
		}
	}
	victim := c.Node(v).ID
	send(1, map[string]any{"q": 1 << 40, "cs": [][]byte{command(t, 3, map[string]any{"n": victim})}})
	send(1, map[string]any{"q": 1<<40 + 1, "cs": [][]byte{command(t, 6, map[string]any{"n": victim, "s": map[string]any{"t": "T"}})}})
	send(2, map[string]any{"q": 1<<40 + 2, "n": "n7", "a": "mem:n7", "o": "n7"})
	send(1, map[string]any{"q": 1<<40 + 3, "cs": [][]byte{command(t, 9, map[string]any{"i": "x", "o": victim, "u": uint64(1) << 60, "q": uint64(1)})}})
	r := c.Reg(l)
	c.Eventually(10*time.Second, "refusals", func() bool {
		rf := r.Refusals()
		return rf[placement.RefusalLeaderOnly] >= 1 && rf[placement.RefusalWrongNode] >= 1 && rf[placement.RefusalForwardedJoin] >= 1
	})
	if _, ok := r.Member("n7"); ok {
		t.Fatal("a forwarded join made n7 a member")
	}
	// The forged session went to the sender's own id (Origin is stamped
	// from the certificate), so the victim's writes still apply.
	p, err := c.Reg(v).Spawn(ctx, placement.SpawnRequest{ID: "victim-write", Type: "T"})
	if err != nil {
		t.Fatalf("victim's write: %v", err)
	}
	for i := range 3 {
		if err := c.Reg(i).WaitApplied(ctx, p.Epoch/1024); err != nil {
			t.Fatal(err)
		}
		if mb, _ := c.Reg(i).Member(victim); mb.Status != placement.Alive {
			t.Fatalf("node %d: %s = %+v", i, victim, mb)
		}
	}
}

// TestExpel: an expelled member's actors move, it leaves the Raft
// configuration, its id is denied (connection, join), and the deny list
// survives a snapshot and the restart of another member from its DataDir.
func TestExpel(t *testing.T) {
	c := placementtest.New(t, placementtest.Config{Nodes: 4, Durable: true})
	l := c.WaitLeader()
	ti := 3
	if ti == l {
		ti = 2
	}
	target := c.Node(ti).ID
	ctx := ctxT(t, 60*time.Second)
	var ids []string
	for _, id := range []string{"e1", "e2", "e3"} {
		if _, err := c.Reg(l).Spawn(ctx, placement.SpawnRequest{ID: id, Type: "T", Strategy: placement.OnNode, Node: target, Policy: placement.RestartPolicy{MaxRestarts: -1}}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	caller := (l + 1) % 4
	if caller == ti {
		caller = (caller + 1) % 4
	}
	if err := c.Reg(caller).Expel(ctx, c.Node(l).ID); !errors.Is(err, placement.ErrInvalidRequest) {
		t.Fatalf("expel of the leader: %v, want ErrInvalidRequest", err)
	}
	if err := c.Reg(caller).Expel(ctx, target); err != nil {
		t.Fatal(err)
	}
	others := []int{}
	for i := range 4 {
		if i != ti {
			others = append(others, i)
		}
	}
	c.Eventually(20*time.Second, "expel applied everywhere", func() bool {
		for _, i := range others {
			r := c.Reg(i)
			if mb, _ := r.Member(target); mb.Status != placement.Expelled || len(r.ActorsOn(target)) != 0 || r.AllowRaft(target) || r.RaftPeerID(transport.MemAddrPrefix+target) != "" {
				return false
			}
		}
		return true
	})
	for _, i := range others {
		r := c.Reg(i)
		for _, id := range ids {
			if p, _ := r.Lookup(id); p.State != placement.Active || p.Node == target {
				t.Fatalf("node %d: %s = %+v", i, id, p)
			}
		}
		if err := r.AllowPeer(target); !errors.Is(err, placement.ErrExpelled) {
			t.Fatalf("node %d: AllowPeer(%s) = %v", i, target, err)
		}
		if r.RaftPeerID(transport.MemAddrPrefix+target) != "" {
			t.Fatalf("node %d: %s still a raft server", i, target)
		}
	}

	// The expelled node serves nothing: it applied its own expel
	// (ErrNotOwner), or it was cut off first and its lease lapsed, since
	// the leader no longer answers its pings (ErrNoLease).
	c.Eventually(10*time.Second, "the expelled node refusing its actors", func() bool {
		for _, id := range ids {
			if _, err := c.Reg(ti).Owns(id, 0); !errors.Is(err, placement.ErrNotOwner) && !errors.Is(err, placement.ErrNoLease) {
				return false
			}
		}
		return true
	})
	// It cannot come back: its connections are refused by the Gate...
	c.Kill(ti)
	rejoin := func(d time.Duration) error {
		tr, err := c.Net.Join(target)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		jctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		r, err := placement.New(jctx, placement.Config{Transport: tr, Join: []string{transport.MemAddrPrefix + c.Node(l).ID}, Types: []string{"T"}, DataDir: t.TempDir()})
		if err == nil {
			r.Close()
			t.Fatal("an expelled node joined again")
		}
		return err
	}
	if err := rejoin(time.Second); !strings.Contains(err.Error(), placement.ErrExpelled.Error()) {
		t.Fatalf("rejoin through the gate: %v", err)
	}
	// ...and, were the transport not to enforce it, the registry refuses
	// its join with ErrExpelled.
	for _, i := range others {
		c.Node(i).Tr.SetGate(nil)
	}
	if err := rejoin(10 * time.Second); !errors.Is(err, placement.ErrExpelled) {
		t.Fatalf("rejoin: %v, want ErrExpelled", err)
	}
	for _, i := range others {
		c.Node(i).Tr.SetGate(c.Reg(i))
	}

	// The deny list is in snapshots and the log: a member restarted from
	// its DataDir still denies the id.
	k := others[0]
	if k == l {
		k = others[1]
	}
	if err := c.Reg(k).Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	c.Kill(k)
	if err := c.Restart(k); err != nil {
		t.Fatal(err)
	}
	if mb, _ := c.Reg(k).Member(target); mb.Status != placement.Expelled {
		t.Fatalf("after restart: %s = %+v", target, mb)
	}
	if err := c.Reg(k).AllowPeer(target); !errors.Is(err, placement.ErrExpelled) {
		t.Fatalf("after restart: AllowPeer = %v", err)
	}
	// The members still place and look up actors.
	p, err := c.Reg(k).Spawn(ctx, placement.SpawnRequest{ID: "after-expel", Type: "T"})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range others {
		if err := c.Reg(i).WaitApplied(ctx, p.Epoch/1024); err != nil {
			t.Fatal(err)
		}
		if got, ok := c.Reg(i).Lookup("after-expel"); !ok || got.Node == target {
			t.Fatalf("node %d: %+v", i, got)
		}
	}
}

// TestLeftMemberMayRejoin: leaving is not expelling; the id joins again.
func TestLeftMemberMayRejoin(t *testing.T) {
	c := placementtest.NewCluster(t, 3)
	l := c.WaitLeader()
	f := (l + 1) % 3
	ctx := ctxT(t, 30*time.Second)
	if err := c.Reg(f).Leave(ctx); err != nil {
		t.Fatal(err)
	}
	c.Kill(f)
	if err := c.Restart(f); err != nil {
		t.Fatalf("rejoin after leave: %v", err)
	}
	if mb, _ := c.Reg(l).Member(c.Node(f).ID); mb.Status != placement.Alive {
		t.Fatalf("%+v", mb)
	}
}

func waitLeaderOf(t *testing.T, regs []*placement.Registry) int {
	t.Helper()
	l := -1
	if err := placementtest.Wait(10*time.Second, func() bool {
		for i, r := range regs {
			if r.IsLeader() && r.HasLease() {
				l = i
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal("no leader")
	}
	return l
}

// quicClusterCA is quicClusterTr that also returns the CA.
func quicClusterCA(t *testing.T, n int) ([]*placement.Registry, []transport.Transport, *transport.CA) {
	t.Helper()
	ca, err := transport.NewDevCA()
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 30*time.Second)
	var regs []*placement.Registry
	var trs []transport.Transport
	var join []string
	for i := range n {
		id := "q" + string(rune('1'+i))
		ident, err := ca.Issue(id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		q, err := transport.NewQUIC(transport.Config{Identity: ident})
		if err != nil {
			t.Fatal(err)
		}
		r, err := placement.New(ctx, placement.Config{Transport: q, Join: join, Types: []string{"T"}})
		if err != nil {
			q.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); q.Close() })
		regs = append(regs, r)
		trs = append(trs, q)
		join = append(join, q.Addr())
	}
	return regs, trs, ca
}

// TestNonMemberRaftRefused: a certificate holder outside the Raft
// configuration cannot open Raft streams to any member (the Registry is the
// transport's Gate), so it cannot send AppendEntries in a member's name;
// the cluster keeps its leader and goes on committing.
func TestNonMemberRaftRefused(t *testing.T) {
	c := placementtest.NewCluster(t, 3)
	l := c.WaitLeader()
	tr, err := c.Net.Join("n9")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	sl := tr.StreamLayer()
	// A follower stores a configuration once it learns that it committed,
	// a replication round after the leader: wait for every replica.
	c.Eventually(5*time.Second, "every replica to know every raft server", func() bool {
		for i := range 3 {
			for j := range 3 {
				id := c.Node(j).ID
				if !c.Reg(i).AllowRaft(id) || c.Reg(i).RaftPeerID(transport.MemAddrPrefix+id) != id {
					return false
				}
			}
		}
		return true
	})
	for i := range 3 {
		r := c.Reg(i)
		if r.AllowRaft("n9") {
			t.Fatalf("node %d allows raft from n9", i)
		}
		conn, err := sl.Dial(raft.ServerAddress(transport.MemAddrPrefix+c.Node(i).ID), time.Second)
		if err == nil {
			conn.Close()
			t.Fatalf("node %d accepted a raft stream from n9", i)
		}
	}
	ctx := ctxT(t, 20*time.Second)
	p, err := c.Reg((l+1)%3).Spawn(ctx, placement.SpawnRequest{ID: "after-raft-attack", Type: "T"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Leader() != l {
		t.Fatalf("leader changed from %d to %d", l, c.Leader())
	}
	for i := range 3 {
		if err := c.Reg(i).WaitApplied(ctx, p.Epoch/1024); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExpelVoter: expelling a voter removes it from the voters; the two
// left keep committing and its actors move to them.
func TestExpelVoter(t *testing.T) {
	c := placementtest.NewCluster(t, 3)
	l := c.WaitLeader()
	ti := (l + 1) % 3
	target := c.Node(ti).ID
	ctx := ctxT(t, 30*time.Second)
	a, err := c.Reg(l).Spawn(ctx, placement.SpawnRequest{ID: "v1", Type: "T", Strategy: placement.OnNode, Node: target, Policy: placement.RestartPolicy{MaxRestarts: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Reg(l).Expel(ctx, target); err != nil {
		t.Fatal(err)
	}
	for _, v := range c.Reg(l).Voters() {
		if v == target {
			t.Fatalf("voters %v still hold %s", c.Reg(l).Voters(), target)
		}
	}
	o := (l + 2) % 3
	p, err := c.Reg(o).Spawn(ctx, placement.SpawnRequest{ID: "v2", Type: "T"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Reg(o).WaitApplied(ctx, p.Epoch/1024); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{l, o} {
		if got, _ := c.Reg(i).Lookup("v1"); got.State != placement.Active || got.Node == target || got.Epoch <= a.Epoch {
			t.Fatalf("node %d: v1 = %+v", i, got)
		}
		if got, _ := c.Reg(i).Lookup("v2"); got.Node == target {
			t.Fatalf("node %d: v2 placed on the expelled node", i)
		}
	}
}

// TestRestartAtNewAddress: one process per id does not stop a node whose
// process died from coming back at a new address once the leader has
// marked the old process failed.
func TestRestartAtNewAddress(t *testing.T) {
	regs, trs, ca := quicClusterCA(t, 3)
	l := waitLeaderOf(t, regs)
	vi := (l + 1) % 3
	victim, oldAddr := regs[vi].ID(), trs[vi].Addr()
	regs[vi].Close()
	trs[vi].Close()
	// Until the leader marks it failed, the id is in use (ErrIDInUse): a
	// restarted process retries after FailTimeout.
	if err := placementtest.Wait(10*time.Second, func() bool {
		mb, _ := regs[l].Member(victim)
		return mb.Status == placement.Failed
	}); err != nil {
		t.Fatal("the dead process was not marked failed")
	}
	ident, err := ca.Issue(victim, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	q, err := transport.NewQUIC(transport.Config{Identity: ident})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := ctxT(t, 30*time.Second)
	r, err := placement.New(ctx, placement.Config{Transport: q, Join: []string{trs[l].Addr()}, Types: []string{"T"}})
	if err != nil {
		t.Fatalf("restart of %s at a new address: %v", victim, err)
	}
	defer r.Close()
	// Raft's replication to the id backs off while the old process is
	// dead, so the leader may mark the new one failed once more before it
	// hears it: wait for it to be alive at its new address.
	if err := placementtest.Wait(10*time.Second, func() bool {
		mb, _ := regs[l].Member(victim)
		return mb.Status == placement.Alive && mb.Addr == q.Addr() && mb.Addr != oldAddr
	}); err != nil {
		mb, _ := regs[l].Member(victim)
		t.Fatalf("%s = %+v, want alive at %s", victim, mb, q.Addr())
	}
	if _, err := r.Spawn(ctx, placement.SpawnRequest{ID: "restarted", Type: "T", Strategy: placement.Local}); err != nil {
		t.Fatal(err)
	}
}
