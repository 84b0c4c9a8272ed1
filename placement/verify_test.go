package placement

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/transport"
)

// TestLeaderLeaseNeedsVoters: a leader cut off from the other voters but
// not from the non-voters must not renew its lease after the cut. With
// hashicorp/raft's VerifyLeader, whose round counts non-voters' heartbeat
// acks, it kept renewing until Raft stepped it down (2-4 renewals past the
// cut), while the voters elected a new leader that may fail it and move its
// actors before the old lease ends.
func TestLeaderLeaseNeedsVoters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	net := transport.NewMemNetwork()
	regs := startMemOn(t, net, 5, nil)
	l := regs[0]
	wait := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if err := l.pause(ctx, l.cfg.LeaseTimeout/8); err != nil {
				t.Fatalf("waiting for %s: %v", what, err)
			}
		}
	}
	wait("n1 to lead with voters n1-n3 and leases everywhere", func() bool {
		if !l.IsLeader() || !slices.Equal(l.Voters(), []string{"n1", "n2", "n3"}) {
			return false
		}
		for _, r := range regs {
			if !r.HasLease() {
				return false
			}
		}
		return true
	})
	renewals := l.Counters().LeaseRenewals
	wait("n1 to renew its lease", func() bool { return l.Counters().LeaseRenewals > renewals+2 })

	net.Partition("n1", "n2")
	net.Partition("n1", "n3")
	cut := time.Since(l.base)
	wait("n1 to step down", func() bool { return !l.IsLeader() })
	wait("a new leader among n2, n3", func() bool { return regs[1].IsLeader() || regs[2].IsLeader() })
	if until := time.Duration(l.leaseUntil(^uint64(0))); until > cut+l.cfg.LeaseTimeout {
		t.Fatalf("n1's lease runs to %v after the cut, past LeaseTimeout (%v): renewed without a quorum of voters",
			until-cut, l.cfg.LeaseTimeout)
	}
}
