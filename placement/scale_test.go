package placement_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/placement/placementtest"
)

// TestFollowerCatchesUpBySnapshot: a follower cut off while the leader
// writes past its trailing logs and snapshots catches up through the
// in-memory snapshot store (InstallSnapshot, then restore).
func TestFollowerCatchesUpBySnapshot(t *testing.T) {
	c := placementtest.New(t, placementtest.Config{Registry: placement.Config{SnapshotThreshold: 256}})
	l := c.WaitLeader()
	v := (l + 1) % 3
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c.Isolate(v)
	const n = 1200 // one entry each: more than TrailingLogs (1024)
	for i := range n {
		if _, err := c.Reg(l).Spawn(ctx, placement.SpawnRequest{ID: fmt.Sprint("s", i), Type: "T", Policy: placement.RestartPolicy{MaxRestarts: -1}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Reg(l).Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	sub := c.Reg(v).Subscribe()
	defer sub.Close()
	c.HealAll()
	for {
		e, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("no reset from a snapshot install: %v", err)
		}
		if e.Kind == placement.Reset {
			break
		}
	}
	// The snapshot holds every spawn, and restore publishes before the
	// Reset event. The leader may write meanwhile (it may have seen the
	// isolated follower fail and be re-placing its actors): compare once
	// the follower has applied what the leader had, and again if the leader
	// wrote during the comparison.
	for attempt := 0; ; attempt++ {
		at := c.Reg(l).AppliedIndex()
		if err := c.Reg(v).WaitApplied(ctx, at); err != nil {
			t.Fatal(err)
		}
		var diff string
		for i := range n {
			want, _ := c.Reg(l).Lookup(fmt.Sprint("s", i))
			if got, ok := c.Reg(v).Lookup(want.ID); !ok || got != want {
				diff = fmt.Sprintf("%s: follower %+v, leader %+v", want.ID, got, want)
				break
			}
		}
		switch {
		case diff == "":
			return
		case c.Reg(l).AppliedIndex() == at || attempt == 20:
			t.Fatal(diff) // the leader did not write since: a real difference
		}
	}
}
