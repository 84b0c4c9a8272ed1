package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestCrawlWithKill crawls a small site while one node is closed midway:
// every page is counted exactly once, and the pages are spread over nodes.
func TestCrawlWithKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	const pages = 90
	sum, err := run(ctx, &out, options{pages: pages, latency: time.Millisecond, inflight: 12, kill: true})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Killed != "n3" || sum.AtKill == 0 {
		t.Errorf("killed %q with %d fetches in flight, want n3 mid-crawl", sum.Killed, sum.AtKill)
	}
	if sum.Pages != pages || sum.Sum != pages || sum.Seen != pages {
		t.Errorf("pages %d, per-node sum %d, seen %d; want %d each", sum.Pages, sum.Sum, sum.Seen, pages)
	}
	if len(sum.PerNode) < 2 {
		t.Errorf("pages per node %v: want at least two nodes", sum.PerNode)
	}
	for id, n := range sum.PerNode {
		if n <= 0 {
			t.Errorf("node %s has %d pages", id, n)
		}
	}
}

func TestFrontier(t *testing.T) {
	f := &Frontier{seen: map[string]bool{}, counted: map[string]string{}}
	if got := f.Offer([]string{"a", "b", "a"}); len(got) != 2 {
		t.Fatalf("Offer = %v, want [a b]", got)
	}
	c := f.Complete(Page{URL: "a", Links: []string{"b", "c"}, Node: "n1"})
	if !c.First || len(c.New) != 1 || c.New[0] != "c" {
		t.Errorf("first completion = %+v", c)
	}
	if c := f.Complete(Page{URL: "a", Node: "n2"}); c.First {
		t.Errorf("second completion of a counted again")
	}
	st := f.Stats()
	if st.Pages != 1 || st.PerNode["n1"] != 1 || st.PerNode["n2"] != 0 || st.Twice != 1 || st.Seen != 3 {
		t.Errorf("stats = %+v", st)
	}
}
