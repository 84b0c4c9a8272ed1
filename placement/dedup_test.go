package placement

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
)

// TestDedupToleratesReorder applies one node's requests out of seq order,
// as the batcher may: seq 1 waits in a queue while the sessionWindow-1
// later ones apply. Seq 1 is then applied, not refused as too old (with a
// window evicting in apply order it was), and every retry returns its
// first outcome.
func TestDedupToleratesReorder(t *testing.T) {
	s := newSM(t)
	s.join("n1", "A")
	spawn := func(seq, floor uint64) result {
		return s.do(command{Type: cmdSpawn, Node: "n1", Spawn: SpawnRequest{Type: "A"}, Origin: "n1", Inc: 1, Seq: seq, Floor: floor})
	}
	first := make(map[uint64]Placement)
	for seq := uint64(2); seq <= sessionWindow; seq++ {
		r := spawn(seq, 1) // seq 1 is still in flight: the floor stays at 1
		if r.Err != nil {
			t.Fatalf("seq %d: %v", seq, r.Err)
		}
		first[seq] = r.Placement
	}
	r := spawn(1, 1)
	if r.Err != nil {
		t.Fatalf("seq 1, queued behind %d later seqs: %v", sessionWindow-1, r.Err)
	}
	first[1] = r.Placement
	for seq, p := range first {
		if again := spawn(seq, 1); again.Err != nil || again.Placement != p {
			t.Fatalf("retry of seq %d = %+v, %v; first %+v", seq, again.Placement, again.Err, p)
		}
	}
	if n := s.m.count.Load(); n != sessionWindow {
		t.Fatalf("%d actors, want %d", n, sessionWindow)
	}
	// Once the node's floor passes them, their results are forgotten and
	// a late duplicate is refused, never applied again.
	next := spawn(sessionWindow+1, sessionWindow+1)
	if next.Err != nil {
		t.Fatal(next.Err)
	}
	if sess := s.m.sessions["n1"]; len(sess.Results) != 1 || len(sess.Order) != 1 {
		t.Fatalf("session keeps %d results (%d seqs) below its floor", len(sess.Results), len(sess.Order))
	}
	if r := spawn(7, 1); !errors.Is(r.Err, ErrStaleRequest) {
		t.Fatalf("duplicate below the floor: %+v", r)
	}
	if n := s.m.count.Load(); n != sessionWindow+1 {
		t.Fatalf("%d actors, want %d", n, sessionWindow+1)
	}
}

// TestSeqWindowBoundsInFlight: a node never has requests in flight spanning
// sessionWindow seqs or more; the next one waits until the oldest returns,
// and carries the raised floor.
func TestSeqWindowBoundsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var w seqWindow
		closed := make(chan struct{})
		ctx := context.Background()
		for want := uint64(1); want <= sessionWindow; want++ {
			seq, floor, err := w.acquire(ctx, closed)
			if err != nil || seq != want || floor != 1 {
				t.Fatalf("acquire = %d, %d, %v; want %d, 1", seq, floor, err, want)
			}
		}
		w.release(3) // out of order: the floor stays at 1
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if _, _, err := w.acquire(cancelled, closed); !errors.Is(err, context.Canceled) {
			t.Fatalf("acquire with a full window = %v, want it to wait", err)
		}
		w.release(2) // still out of order
		got := make(chan [2]uint64, 1)
		go func() {
			seq, floor, _ := w.acquire(ctx, closed)
			got <- [2]uint64{seq, floor}
		}()
		synctest.Wait()
		select {
		case g := <-got:
			t.Fatalf("acquire returned %v with seq 1 still in flight", g)
		default:
		}
		w.release(1) // the floor passes 1, 2 and 3 at once
		if g := <-got; g != [2]uint64{sessionWindow + 1, 4} {
			t.Fatalf("after releasing 1: seq, floor = %v, want %d, 4", g, sessionWindow+1)
		}
		close(closed)
		for seq := uint64(4); seq <= sessionWindow+1; seq++ {
			w.release(seq)
		}
		if w.floor != sessionWindow+2 || len(w.done) != 0 {
			t.Fatalf("floor %d, %d released above it", w.floor, len(w.done))
		}
	})
}
