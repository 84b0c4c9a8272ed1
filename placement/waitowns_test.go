package placement

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"
)

// waitReg is a replica without Raft on synctest's fake clock: node n1, a
// member hosting T, lease 300ms, grace 425ms (the defaults' proportions).
type waitReg struct {
	t     *testing.T
	r     *Registry
	index uint64
}

func newWaitReg(t *testing.T) *waitReg {
	r := &Registry{id: "n1", fsm: newFSM(), base: time.Now(), done: make(chan struct{}),
		cfg: Config{LeaseTimeout: 300 * time.Millisecond, FailTimeout: 800 * time.Millisecond}, grace: 425 * time.Millisecond}
	r.fsm.m.moving, r.fsm.restoring = r.fence, r.fenceAll
	w := &waitReg{t: t, r: r}
	w.apply(command{Type: cmdJoin, Node: "n1", Addr: "mem:n1", Types: []string{"T"}})
	w.apply(command{Type: cmdJoin, Node: "n2", Addr: "mem:n2", Types: []string{"T"}})
	return w
}

func (w *waitReg) apply(c command) result {
	w.t.Helper()
	b, err := encodeCommand(c)
	if err != nil {
		w.t.Fatal(err)
	}
	w.index++
	res, _ := w.r.fsm.Apply(&raft.Log{Index: w.index, Data: b}).(*applied).take().(result)
	if res.Err != nil {
		w.t.Fatalf("apply %v: %v", c.Type, res.Err)
	}
	return res
}

func (w *waitReg) spawn(id, node string) Placement {
	w.t.Helper()
	return w.apply(command{Type: cmdSpawn, Node: node, Spawn: SpawnRequest{ID: id, Type: "T", Strategy: OnNode, Node: node, Policy: RestartPolicy{MaxRestarts: -1}}}).Placement
}

func (w *waitReg) lease() {
	w.r.grantLease(time.Since(w.r.base)+w.r.cfg.LeaseTimeout, 0)
}

type ownsResult struct {
	p   Placement
	err error
	at  time.Duration // since the call
}

// start calls WaitOwns on a goroutine and shows it durably blocked.
func (w *waitReg) start(ctx context.Context, id string, epoch uint64) <-chan ownsResult {
	w.t.Helper()
	ch := make(chan ownsResult, 1)
	t0 := time.Now()
	go func() {
		p, err := w.r.WaitOwns(ctx, id, epoch)
		ch <- ownsResult{p, err, time.Since(t0)}
	}()
	synctest.Wait()
	select {
	case res := <-ch:
		w.t.Fatalf("WaitOwns(%s, %d) returned %+v without waiting", id, epoch, res)
	default:
	}
	return ch
}

// Each condition that means "not yet" blocks WaitOwns (durably: no timer
// or polling loop wakes it) until the event that ends it, while Owns keeps
// refusing at once; the event alone releases it.
func TestWaitOwnsWaits(t *testing.T) {
	t.Run("no lease", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWaitReg(t)
			p := w.spawn("x", "n1")
			if _, err := w.r.Owns("x", p.Epoch); !errors.Is(err, ErrNoLease) {
				t.Fatalf("Owns without a lease: %v", err)
			}
			ch := w.start(t.Context(), "x", p.Epoch)
			// A grant the replica has not caught up with does not release it.
			w.r.grantLease(time.Since(w.r.base)+300*time.Millisecond, w.index+1)
			synctest.Wait()
			if len(ch) != 0 {
				t.Fatal("released by a grant the replica has not applied")
			}
			w.spawn("other", "n2") // the grant's index
			res := <-ch
			if res.err != nil || res.p.Epoch != p.Epoch || res.at != 0 {
				t.Fatalf("after the grant: %+v", res)
			}
			// The lease lapses (starved process, leader lost): wait again.
			time.Sleep(301 * time.Millisecond)
			ch = w.start(t.Context(), "x", 0)
			time.Sleep(150 * time.Millisecond) // an election
			w.lease()
			if res := <-ch; res.err != nil || res.at != 150*time.Millisecond {
				t.Fatalf("after the new leader's grant: %+v", res)
			}
		})
	})
	t.Run("replica behind", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWaitReg(t)
			w.lease()
			// The caller resolved x before this replica applied its spawn
			// (the second entry from now: an unrelated one comes first).
			next := (w.index + 2) * 1024
			if _, err := w.r.Owns("x", next); !errors.Is(err, ErrNotOwner) {
				t.Fatalf("Owns of an unknown actor: %v", err)
			}
			ch := w.start(t.Context(), "x", next)
			w.spawn("y", "n1") // an unrelated apply: still waiting
			synctest.Wait()
			if len(ch) != 0 {
				t.Fatal("released by an unrelated apply")
			}
			p := w.spawn("x", "n1")
			if res := <-ch; res.err != nil || res.p.Epoch != p.Epoch {
				t.Fatalf("after the spawn applied: %+v (placed %+v)", res, p)
			}
			// Placed at an older epoch than the caller's, elsewhere: the
			// replica is behind a move here.
			z := w.spawn("z", "n2")
			ch = w.start(t.Context(), "z", (w.index+1)*1024) // the move's entry
			w.lease()
			synctest.Wait()
			if len(ch) != 0 {
				t.Fatal("released by a lease grant while behind")
			}
			w.apply(command{Type: cmdFailed, Node: "n2"}) // z re-placed on n1
			res := <-ch
			if res.err != nil || res.p.Node != "n1" || res.p.Epoch <= z.Epoch {
				t.Fatalf("after the move applied: %+v", res)
			}
		})
	})
	t.Run("fence", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWaitReg(t)
			w.lease()
			p := w.spawn("x", "n1")
			// x just moved here from n2, alive.
			w.r.fence(&Event{Kind: ActorReplaced, Actor: p, Prev: Placement{ID: "x", Node: "n2", Epoch: 1}}, false)
			if _, err := w.r.Owns("x", p.Epoch); !errors.Is(err, ErrFenced) {
				t.Fatalf("Owns while fenced: %v", err)
			}
			renew := make(chan struct{})
			go func() { // the lease is renewed meanwhile, as the lease loop would
				for range 5 {
					time.Sleep(100 * time.Millisecond)
					w.lease()
				}
				close(renew)
			}()
			ch := make(chan ownsResult, 1)
			t0 := time.Now()
			go func() {
				q, err := w.r.WaitOwns(t.Context(), "x", p.Epoch)
				ch <- ownsResult{q, err, time.Since(t0)}
			}()
			res := <-ch
			if res.err != nil || res.at != w.r.grace {
				t.Fatalf("after the fence: %+v, want admitted at %v", res, w.r.grace)
			}
			if _, err := w.r.Owns("x", p.Epoch); err != nil {
				t.Fatalf("Owns after the fence: %v", err)
			}
			<-renew
		})
	})
	t.Run("restore", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWaitReg(t)
			p := w.spawn("x", "n1")
			w.r.fenceAll()
			w.r.grantLease(time.Since(w.r.base)+time.Second, 0) // one long grant, for the test
			t0 := time.Now()
			q, err := w.r.WaitOwns(t.Context(), "x", p.Epoch)
			if err != nil || time.Since(t0) != w.r.grace || q.Epoch != p.Epoch {
				t.Fatalf("after a restore: %+v %v after %v, want admitted at %v", q, err, time.Since(t0), w.r.grace)
			}
		})
	})
}

// Final refusals return at once, and a wait past ctx says which condition
// was unmet and that ctx ended it; Close ends a wait with ErrClosed.
func TestWaitOwnsGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWaitReg(t)
		w.lease()
		x := w.spawn("x", "n2")
		s := w.spawn("s", "n1")
		w.apply(command{Type: cmdStop, ID: "s", Reason: "done"})
		t0 := time.Now()
		if _, err := w.r.WaitOwns(t.Context(), "x", x.Epoch); !errors.Is(err, ErrNotOwner) {
			t.Errorf("placed elsewhere: %v, want ErrNotOwner", err)
		}
		if _, err := w.r.WaitOwns(t.Context(), "x", 0); !errors.Is(err, ErrNotOwner) {
			t.Errorf("placed elsewhere, any epoch: %v, want ErrNotOwner", err)
		}
		if _, err := w.r.WaitOwns(t.Context(), "s", s.Epoch); !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrNotOwner) {
			t.Errorf("stopped: %v, want ErrNotOwner and ErrNotFound", err)
		}
		if _, err := w.r.WaitOwns(t.Context(), "nobody", 0); !errors.Is(err, ErrNotOwner) {
			t.Errorf("unknown, no epoch: %v, want ErrNotOwner", err)
		}
		if time.Since(t0) != 0 {
			t.Errorf("final refusals took %v", time.Since(t0))
		}

		y := w.spawn("y", "n1")
		if a := testing.AllocsPerRun(100, func() { _, _ = w.r.WaitOwns(t.Context(), "y", y.Epoch) }); a != 0 {
			t.Errorf("WaitOwns of a servable actor: %v allocations", a)
		}
		time.Sleep(301 * time.Millisecond) // lease lapsed
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		_, err := w.r.WaitOwns(ctx, "y", y.Epoch)
		cancel()
		if !errors.Is(err, ErrNoLease) || !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) != 2301*time.Millisecond {
			t.Errorf("past ctx: %v at %v, want ErrNoLease and DeadlineExceeded at 2.301s", err, time.Since(t0))
		}

		// Leaving ends a wait for a lease at the next wake.
		ch := w.start(t.Context(), "y", y.Epoch)
		w.r.leaving.Store(true)
		w.lease()
		if res := <-ch; !errors.Is(res.err, ErrNotOwner) {
			t.Errorf("leaving: %+v, want ErrNotOwner", res)
		}
		w.r.leaving.Store(false)

		time.Sleep(301 * time.Millisecond)
		ch = w.start(t.Context(), "y", y.Epoch)
		w.r.closed.Store(true)
		close(w.r.done)
		if res := <-ch; !errors.Is(res.err, ErrClosed) {
			t.Errorf("closed: %+v, want ErrClosed", res)
		}
	})
}
