package troupe

import (
	"slices"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement/placementtest"
)

// With two voters wanted: a VoterNever node never votes, and a VoterPrefer
// node that joins once the voters are full takes an auto voter's place.
func TestVoterPolicy(t *testing.T) {
	policies := map[string]VoterPolicy{"n1": VoterAuto, "n2": VoterNever, "n3": VoterAuto, "n4": VoterPrefer}
	c := newTestCluster(t, false, 4, func(cfg *Config) {
		cfg.Voters = 2
		cfg.Voter = policies[cfg.Name]
	})
	n1 := c.nodes[0]
	want := []string{"n1", "n4"}
	// Raft configuration changes raise no registry event: the leader
	// reconciles voters on its monitor tick, so wait for the condition.
	sawNever := false
	err := placementtest.Wait(20*time.Second, func() bool {
		got := n1.reg.Voters()
		sawNever = sawNever || slices.Contains(got, "n2")
		return slices.Equal(got, want)
	})
	if sawNever {
		t.Fatal("the VoterNever node voted")
	}
	if err != nil {
		t.Fatalf("voters %v, want %v: %v", n1.reg.Voters(), want, err)
	}
	st, err := n1.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.Voter != slices.Contains(want, m.ID) {
			t.Errorf("status: %s voter %v", m.ID, m.Voter)
		}
	}
}
