package placement

import (
	"testing"
	"testing/synctest"
	"time"
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
