package remote

import (
	"testing"
	"time"
)

func TestBucketOf(t *testing.T) {
	bounds := LatencyBounds()
	if len(bounds) != LatencyBuckets || bounds[0] != 50*time.Microsecond || bounds[LatencyBuckets-1] != 1638400*time.Microsecond {
		t.Fatalf("bounds %v", bounds)
	}
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{-1, 0}, {0, 0}, {1, 0}, {50 * time.Microsecond, 0}, {50*time.Microsecond + 1, 1},
		{100 * time.Microsecond, 1}, {100*time.Microsecond + 1, 2}, {time.Millisecond, 5},
		{bounds[15], 15}, {bounds[15] + 1, 16}, {time.Hour, 16}, {1<<63 - 1, 16},
	} {
		if got := bucketOf(tc.d); got != tc.want {
			t.Errorf("bucketOf(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
	// Every bucket holds exactly the durations up to its bound and over
	// the one before.
	for i, b := range bounds {
		if bucketOf(b) != i || bucketOf(b+1) != i+1 {
			t.Errorf("bound %v: buckets %d, %d", b, bucketOf(b), bucketOf(b+1))
		}
	}
	var h histogram
	for _, d := range []time.Duration{time.Microsecond, time.Millisecond, time.Millisecond, time.Minute} {
		h.observe(d)
	}
	s := h.snapshot()
	if s.Count() != 4 || s.Counts[0] != 1 || s.Counts[5] != 2 || s.Counts[16] != 1 || s.Sum != time.Minute+2*time.Millisecond+time.Microsecond {
		t.Fatalf("snapshot %+v", s)
	}
}

func TestObserveAllocatesNothing(t *testing.T) {
	e := &Endpoint{}
	e.observeCall("T", "M", CodeOK, time.Millisecond) // first use makes the histogram; AllocsPerRun runs 101 more
	if n := testing.AllocsPerRun(100, func() { e.observeCall("T", "M", CodeOK, time.Millisecond) }); n != 0 {
		t.Fatalf("observeCall allocates %v times", n)
	}
	st := e.ClientStats()
	if len(st) != 1 || st[0].Latency.Count() != 102 || st[0].Type != "T" || st[0].Method != "M" {
		t.Fatalf("stats %+v", st)
	}
}
