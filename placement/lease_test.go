package placement

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"
)

// The lease arithmetic on synctest's fake clock: no Raft, no wall time.
func TestLeaseGrants(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &Registry{fsm: newFSM(), base: time.Now(), cfg: Config{LeaseTimeout: 300 * time.Millisecond}}
		applied := func(i uint64) { r.fsm.m.applied.Store(i) }
		now := func() time.Duration { return time.Since(r.base) }
		if r.HasLease() {
			t.Fatal("lease before any grant")
		}
		// A pong for a ping sent now, leader at index 10, replica at 10.
		applied(10)
		r.grantLease(now()+300*time.Millisecond, 10)
		if !r.HasLease() {
			t.Fatal("no lease after a satisfied grant")
		}
		time.Sleep(200 * time.Millisecond)
		// A newer grant the replica has not caught up with yet: the older
		// one still counts until it ends.
		r.grantLease(now()+300*time.Millisecond, 20)
		if !r.HasLease() {
			t.Fatal("an unsatisfied grant cut a valid lease")
		}
		time.Sleep(101 * time.Millisecond) // the first grant has ended
		if r.HasLease() {
			t.Fatal("lease from a grant the replica has not caught up with")
		}
		applied(20)
		if !r.HasLease() {
			t.Fatal("no lease once the replica caught up")
		}
		// A late pong of an older ping does not shorten or weaken the lease.
		r.grantLease(now()-50*time.Millisecond, 15)
		time.Sleep(150 * time.Millisecond)
		if !r.HasLease() {
			t.Fatal("a late pong shortened the lease")
		}
		time.Sleep(50 * time.Millisecond) // 300ms after the second grant
		if r.HasLease() {
			t.Fatal("lease outlived LeaseTimeout")
		}
	})
}

// WaitLease and WaitApplied block until the event, then return at once:
// synctest.Wait shows them durably blocked (no timer or polling loop can
// wake them), and the grant or apply alone releases them.
func TestWaitLeaseAndApplied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &Registry{fsm: newFSM(), base: time.Now(), done: make(chan struct{}), cfg: Config{LeaseTimeout: 300 * time.Millisecond}}
		leased := make(chan error, 1)
		go func() { leased <- r.WaitLease(t.Context()) }()
		applied := make(chan error, 1)
		go func() { applied <- r.WaitApplied(t.Context(), 2) }()
		synctest.Wait()
		select {
		case err := <-leased:
			t.Fatalf("WaitLease returned %v without a lease", err)
		case err := <-applied:
			t.Fatalf("WaitApplied returned %v before index 2", err)
		default:
		}

		// A grant that needs index 2: still no lease.
		r.grantLease(time.Since(r.base)+300*time.Millisecond, 2)
		synctest.Wait()
		if len(leased) != 0 {
			t.Fatal("WaitLease returned on a grant the replica has not caught up with")
		}
		join, err := encodeCommand(command{Type: cmdJoin, Node: "n1", Addr: "mem:n1"})
		if err != nil {
			t.Fatal(err)
		}
		r.fsm.Apply(&raft.Log{Index: 1, Data: join})
		synctest.Wait()
		if len(applied) != 0 || len(leased) != 0 {
			t.Fatal("returned at index 1")
		}
		r.fsm.Apply(&raft.Log{Index: 2, Data: join})
		if err := <-applied; err != nil {
			t.Fatalf("WaitApplied: %v", err)
		}
		if err := <-leased; err != nil {
			t.Fatalf("WaitLease: %v", err)
		}
		// Already satisfied: immediate.
		if err := r.WaitApplied(t.Context(), 1); err != nil {
			t.Fatal(err)
		}

		// Lease lapses; WaitLease waits for the next grant.
		time.Sleep(300 * time.Millisecond)
		go func() { leased <- r.WaitLease(t.Context()) }()
		synctest.Wait()
		if len(leased) != 0 {
			t.Fatal("WaitLease returned after the lease lapsed")
		}
		r.grantLease(time.Since(r.base)+300*time.Millisecond, 0)
		if err := <-leased; err != nil {
			t.Fatalf("WaitLease: %v", err)
		}

		// ctx and Close end a wait.
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := r.WaitApplied(ctx, 10); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitApplied past its ctx: %v", err)
		}
		go func() { applied <- r.WaitApplied(t.Context(), 10) }()
		synctest.Wait()
		close(r.done)
		if err := <-applied; !errors.Is(err, ErrClosed) {
			t.Fatalf("WaitApplied after Close: %v", err)
		}
	})
}
