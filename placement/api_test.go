package placement_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/placement/placementtest"
	"github.com/troupe-dev/troupe/transport"
)

func TestJoinClaimingAnotherIDRefused(t *testing.T) {
	c := placementtest.NewCluster(t, 3)
	l := c.WaitLeader()
	rogue, err := c.Net.Join("n9")
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	replies := make(chan []byte, 4)
	rogue.Handle(transport.KindControl, transport.HandlerFunc(func(_ string, f []byte) { replies <- f }))
	tests := []struct {
		name string
		to   int
		body map[string]any
		want string
	}{
		{"to the leader", l, map[string]any{"q": 1, "n": "n2", "a": "mem:n9"}, "does not match"},
		{"to a follower", (l + 1) % 3, map[string]any{"q": 2, "n": "n2", "a": "mem:n9"}, "does not match"},
		{"forged forward", l, map[string]any{"q": 3, "n": "n2", "a": "mem:n9", "o": "n2"}, "not a member"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := msgpack.Marshal(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			ctx := ctxT(t, 10*time.Second)
			frame := append([]byte{2, 1}, body...) // msgJoin, version 1
			if err := rogue.Send(ctx, transport.Peer{ID: c.Node(tt.to).ID}, transport.KindControl, frame); err != nil {
				t.Fatal(err)
			}
			var rep []byte
			select {
			case rep = <-replies:
			case <-ctx.Done():
				t.Fatal("no reply")
			}
			var m map[string]any
			if rep[0] != 5 || msgpack.Unmarshal(rep[2:], &m) != nil {
				t.Fatalf("reply %x", rep)
			}
			res, _ := m["r"].(map[string]any)
			e, _ := res["e"].(map[string]any)
			if msg, _ := e["m"].(string); !strings.Contains(msg, tt.want) {
				t.Fatalf("reply error %q, want %q", msg, tt.want)
			}
		})
	}
	for i := range 3 {
		if mb, ok := c.Reg(i).Member("n9"); ok {
			t.Fatalf("n9 became a member: %+v", mb)
		}
		if mb, _ := c.Reg(i).Member("n2"); mb.Addr != "mem:n2" {
			t.Fatalf("n2's address was hijacked: %+v", mb)
		}
	}
}

func TestTypedErrorsFromFollower(t *testing.T) {
	c := placementtest.New(t, placementtest.Config{Nodes: 2, Types: []string{"A"}})
	ctx := ctxT(t, 20*time.Second)
	f := (c.WaitLeader() + 1) % 2
	if err := c.Reg(0).HostTypes(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  placement.SpawnRequest
		want error
	}{
		{"unknown type", placement.SpawnRequest{Type: "Nope"}, placement.ErrUnknownType},
		{"node without the type", placement.SpawnRequest{Type: "B", Strategy: placement.OnNode, Node: "n2"}, placement.ErrTypeNotHosted},
		{"invalid policy", placement.SpawnRequest{Type: "A", Policy: placement.RestartPolicy{MaxRestarts: -5}}, placement.ErrInvalidPolicy},
		{"dead node", placement.SpawnRequest{Type: "A", Strategy: placement.OnNode, Node: "n7"}, placement.ErrNodeNotAlive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Reg(f).Spawn(ctx, tt.req)
			var se *placement.SpawnError
			if !errors.Is(err, tt.want) || !errors.As(err, &se) || se.Type != tt.req.Type {
				t.Fatalf("err = %#v, want *SpawnError wrapping %v", err, tt.want)
			}
		})
	}
	// Types added after start make the node a candidate.
	p, err := c.Reg(f).Spawn(ctx, placement.SpawnRequest{ID: "b", Type: "B"})
	if err != nil || p.Node != "n1" {
		t.Fatalf("spawn of a late type = %+v, %v", p, err)
	}
}

func nextEvent(t *testing.T, s *placement.Subscription) placement.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("next event: %v", err)
	}
	return e
}

func TestSubscriptionAndReportFailure(t *testing.T) {
	c := placementtest.NewCluster(t, 3)
	ctx := ctxT(t, 20*time.Second)
	sub := c.Reg(2).Subscribe()
	defer sub.Close()
	p, err := c.Reg(1).Spawn(ctx, placement.SpawnRequest{ID: "w", Type: "T", Strategy: placement.OnNode, Node: "n3", Policy: placement.RestartPolicy{MaxRestarts: 1, Backoff: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, sub); e.Kind != placement.ActorPlaced || e.Actor != p || e.Index == 0 {
		t.Fatalf("event = %+v, want placed %+v", e, p)
	}
	// A crash past the local budget: restarted once (on n3 again: pinned).
	q, err := c.Reg(2).ReportFailure(ctx, "w", p.Epoch, "panic")
	if err != nil || q.Restarts != 1 || q.Epoch <= p.Epoch || q.Node != "n3" {
		t.Fatalf("restart = %+v, %v", q, err)
	}
	if e := nextEvent(t, sub); e.Kind != placement.ActorReplaced || e.Prev != p || e.Actor != q {
		t.Fatalf("event = %+v", e)
	}
	// A second report of the same crash is stale and changes nothing.
	if r, err := c.Reg(0).ReportFailure(ctx, "w", p.Epoch, "panic"); !errors.Is(err, placement.ErrStaleEpoch) || r != q {
		t.Fatalf("stale report = %+v, %v", r, err)
	}
	// The next crash spends the budget.
	r, err := c.Reg(0).ReportFailure(ctx, "w", q.Epoch, "panic")
	if err != nil || r.State != placement.Stopped || !strings.Contains(r.Reason, "budget") {
		t.Fatalf("final crash = %+v, %v", r, err)
	}
	if e := nextEvent(t, sub); e.Kind != placement.ActorStopped || e.Actor.State != placement.Stopped {
		t.Fatalf("event = %+v", e)
	}
	// A member change reaches subscribers too.
	c.Kill(0)
	for {
		e := nextEvent(t, sub)
		if e.Kind == placement.MemberFailed {
			if e.Member.ID != "n1" {
				t.Fatalf("failed member = %+v", e.Member)
			}
			break
		}
	}
}

func TestLeaveAndPromotion(t *testing.T) {
	c := placementtest.New(t, placementtest.Config{Nodes: 4, Registry: placement.Config{Voters: 3}})
	ctx := ctxT(t, 30*time.Second)
	ids := spawnOnEach(t, c, 2)
	l := c.WaitLeader()
	if got := c.Reg(l).Voters(); len(got) != 3 || contains(got, "n4") {
		t.Fatalf("voters = %v, want n1..n3", got)
	}
	// The leader leaves: actors move, leadership moves, it leaves the config.
	leaver := c.Node(l).ID
	if err := c.Reg(l).Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	c.Kill(l)
	other := (l + 1) % 4
	nl := c.WaitLeader(other, (l+2)%4, (l+3)%4)
	c.Eventually(10*time.Second, "the leave to reach "+c.Node(other).ID, func() bool {
		mb, _ := c.Reg(other).Member(leaver)
		return mb.Status == placement.Left
	})
	for _, id := range ids {
		p, _ := c.Reg(other).Lookup(id)
		if p.State != placement.Active || p.Node == leaver || p.Restarts != 0 {
			t.Fatalf("%s after leave: %+v", id, p)
		}
	}
	c.Eventually(10*time.Second, "the non-voter to be promoted", func() bool {
		v := c.Reg(nl).Voters()
		return len(v) == 3 && !contains(v, leaver) && contains(v, "n4")
	})
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func TestWaitNewer(t *testing.T) {
	c := placementtest.NewCluster(t, 3)
	ctx := ctxT(t, 20*time.Second)
	p, err := c.Reg(0).Spawn(ctx, placement.SpawnRequest{ID: "x", Type: "T", Policy: placement.RestartPolicy{MaxRestarts: -1}})
	if err != nil {
		t.Fatal(err)
	}
	waitLookup(t, c, 2, "x", func(q placement.Placement) bool { return q.Epoch == p.Epoch })
	got := make(chan placement.Placement, 1)
	errc := make(chan error, 1)
	go func() {
		q, err := c.Reg(2).WaitNewer(ctx, "x", p.Epoch)
		got <- q
		errc <- err
	}()
	q, err := c.Reg(1).ReportFailure(ctx, "x", p.Epoch, "crash")
	if err != nil {
		t.Fatal(err)
	}
	if w := <-got; <-errc != nil || w.Epoch != q.Epoch {
		t.Fatalf("WaitNewer = %+v, want epoch %d", w, q.Epoch)
	}
	if err := c.Reg(1).Stop(ctx, "x", "done"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Reg(2).WaitNewer(ctx, "x", q.Epoch); !errors.Is(err, placement.ErrNotFound) {
		t.Fatalf("WaitNewer on a stopped actor: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.Reg(2).WaitNewer(short, "never", 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitNewer on an unknown id: %v", err)
	}
}

func TestFailedVoterReplacedByNonVoter(t *testing.T) {
	c := placementtest.New(t, placementtest.Config{Nodes: 4})
	l := c.WaitLeader()
	if v := c.Reg(l).Voters(); len(v) != 3 || contains(v, "n4") {
		t.Fatalf("voters = %v", v)
	}
	victim := (l + 1) % 4
	if c.Node(victim).ID == "n4" {
		victim = (l + 2) % 4
	}
	vid := c.Node(victim).ID
	c.Kill(victim)
	c.Eventually(15*time.Second, "n4 promoted and "+vid+" demoted", func() bool {
		nl := c.Leader()
		if nl < 0 {
			return false
		}
		v := c.Reg(nl).Voters()
		return len(v) == 3 && contains(v, "n4") && !contains(v, vid)
	})
}

func TestLeaveOfTheLastNode(t *testing.T) {
	c := placementtest.NewCluster(t, 1)
	ctx := ctxT(t, 10*time.Second)
	if _, err := c.Reg(0).Spawn(ctx, placement.SpawnRequest{ID: "a", Type: "T", Policy: placement.RestartPolicy{MaxRestarts: -1}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Reg(0).Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	// No other node can host it: it stays placed, unserved, with the
	// reason, for a host of its type to take when one is alive again (a
	// whole cluster stopped for maintenance keeps its actors).
	if p, _ := c.Reg(0).Lookup("a"); p.State != placement.Active || p.Node != "n1" || !strings.Contains(p.Reason, "awaiting a host: node n1 left") {
		t.Fatalf("after the last node left: %+v", p)
	}
}

// Three voters, one failed and no spare: the leave of a second (leader or
// follower) demotes the failed voter first, so the removal commits and the
// last node goes on serving writes; the failed one is promoted back when it
// returns. (Removing the leaver first left {survivor, failed} as voters,
// whose quorum needed the failed one: "leadership lost while committing".)
func TestLeaveWithAFailedVoter(t *testing.T) {
	for _, leaderLeaves := range []bool{false, true} {
		t.Run(fmt.Sprintf("leaderLeaves=%v", leaderLeaves), func(t *testing.T) {
			c := placementtest.NewCluster(t, 3)
			ctx := ctxT(t, 30*time.Second)
			ids := spawnOnEach(t, c, 1)
			l := c.WaitLeader()
			dead := (l + 1) % 3
			leaver, stay := (l+2)%3, l
			if leaderLeaves {
				leaver, stay = l, (l+2)%3
			}
			c.Kill(dead)
			deadID := c.Node(dead).ID
			c.Eventually(10*time.Second, deadID+" marked failed", func() bool {
				mb, _ := c.Reg(stay).Member(deadID)
				return mb.Status == placement.Failed
			})
			if err := c.Reg(leaver).Leave(ctx); err != nil {
				t.Fatalf("leave with a failed voter: %v", err)
			}
			c.Kill(leaver)
			c.WaitLeader(stay)
			if v := c.Reg(stay).Voters(); len(v) != 1 || v[0] != c.Node(stay).ID {
				t.Fatalf("voters = %v, want only %s", v, c.Node(stay).ID)
			}
			if _, err := c.Reg(stay).Spawn(ctx, placement.SpawnRequest{Type: "T"}); err != nil {
				t.Fatalf("spawn after the leave: %v", err)
			}
			for _, id := range ids {
				if p, _ := c.Reg(stay).Lookup(id); p.State != placement.Active || p.Node != c.Node(stay).ID {
					t.Fatalf("%s after leave: %+v", id, p)
				}
			}
			// The failed voter returns and is promoted back.
			if err := c.Restart(dead); err != nil {
				t.Fatal(err)
			}
			c.Eventually(10*time.Second, deadID+" promoted back", func() bool {
				return contains(c.Reg(stay).Voters(), deadID)
			})
		})
	}
}
