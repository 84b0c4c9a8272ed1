package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupe-dev/troupe"
)

func main() {
	var o options
	flag.IntVar(&o.pages, "pages", 300, "pages of the site")
	flag.DurationVar(&o.latency, "latency", 2*time.Millisecond, "the site's response time per page")
	flag.IntVar(&o.inflight, "inflight", 24, "fetches in flight")
	flag.BoolVar(&o.kill, "kill", true, "close node n3 abruptly after a third of the pages")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := run(ctx, os.Stdout, o); err != nil {
		log.Fatal(err)
	}
}

type options struct {
	pages    int
	latency  time.Duration
	inflight int
	kill     bool
}

// site serves pages /page/0 .. /page/N-1; each links to the next one (so
// every page is reachable from /page/0) and to a few others.
func site(pages int, latency time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(r.URL.Path[len("/page/"):])
		if err != nil || i < 0 || i >= pages {
			http.NotFound(w, r)
			return
		}
		// The site's response time.
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "<html><body><h1>page %d</h1>\n", i)
		for _, j := range []int{i + 1, i * 7, i*13 + 5, i / 2} {
			fmt.Fprintf(w, "<a href=\"/page/%d\">page %d</a>\n", j%pages, j%pages)
		}
		fmt.Fprintln(w, "</body></html>")
	})
}

// Page is what a fetcher returns: the page's links and who fetched it.
type Page struct {
	URL   string
	Links []string
	Node  string
}

var linkRE = regexp.MustCompile(`href="([^"]+)"`)

// Fetcher fetches pages; instances run on every node.
type Fetcher struct {
	node   string
	client *http.Client
	count  *fetchCount
}

// fetchCount counts the fetches of the process's fetchers (the three
// nodes share this process), and signals when at of them have ended.
type fetchCount struct {
	started, ended atomic.Int64
	at             int64
	reached        chan struct{}
}

// Fetch gets url and returns its links as absolute URLs. It is safe to run
// twice for one url, so the driver maps it with MapIdempotent.
func (f *Fetcher) Fetch(ctx context.Context, url string) (Page, error) {
	f.count.started.Add(1)
	defer func() {
		if f.count.ended.Add(1) == f.count.at && f.count.reached != nil {
			close(f.count.reached)
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Page{}, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return Page{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Page{}, fmt.Errorf("%s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Page{}, err
	}
	p := Page{URL: url, Node: f.node}
	base := url[:len(url)-len(req.URL.Path)]
	for _, m := range linkRE.FindAllSubmatch(body, -1) {
		p.Links = append(p.Links, base+string(m[1]))
	}
	return p, nil
}

// Frontier is the crawl's memory: which URLs were seen (so each is fetched
// once unless a fetch must be retried) and which pages were counted, by
// which node.
type Frontier struct {
	seen    map[string]bool
	counted map[string]string // url -> node that fetched it
	twice   int               // completions of pages already counted
}

// Completion is the frontier's answer to Complete.
type Completion struct {
	New   []string // links not seen before: fetch them
	First bool     // this page was counted now (false: it had been)
}

// Offer marks urls as seen and returns those that were not.
func (f *Frontier) Offer(urls []string) []string {
	var fresh []string
	for _, u := range urls {
		if !f.seen[u] {
			f.seen[u] = true
			fresh = append(fresh, u)
		}
	}
	return fresh
}

// Complete counts a fetched page (once, however often it is reported) and
// offers its links.
func (f *Frontier) Complete(p Page) Completion {
	c := Completion{New: f.Offer(p.Links)}
	if _, ok := f.counted[p.URL]; ok {
		f.twice++
	} else {
		f.counted[p.URL] = p.Node
		c.First = true
	}
	return c
}

// Stats are the frontier's counts.
type Stats struct {
	Seen, Pages int
	PerNode     map[string]int
	Twice       int // pages reported again after they were counted
}

// Stats returns the counts so far.
func (f *Frontier) Stats() Stats {
	s := Stats{Seen: len(f.seen), Pages: len(f.counted), PerNode: map[string]int{}, Twice: f.twice}
	for _, node := range f.counted {
		s.PerNode[node]++
	}
	return s
}

// Summary is the outcome of one crawl, for the test.
type Summary struct {
	Stats
	Sum     int    // of PerNode
	Retried int    // fetches beyond one per page (retried by Map after the kill)
	Killed  string // the node closed mid-crawl
	AtKill  int    // fetches in flight when it was closed
}

func run(ctx context.Context, out io.Writer, o options) (*Summary, error) {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	srv := httptest.NewServer(site(o.pages, o.latency))
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	say("site: %d pages at %s (%s per page)", o.pages, srv.URL, o.latency)

	// Three nodes in this process, each on its own QUIC port on 127.0.0.1.
	var nodes []*troupe.Node
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	var fetches fetchCount
	for i := range 3 {
		cfg := troupe.Config{Name: fmt.Sprintf("n%d", i+1)}
		if i > 0 {
			cfg.Join = []string{nodes[0].Addr()}
		}
		n, err := troupe.Start(ctx, cfg)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
		id := n.ID()
		if err := troupe.Register(n, "Fetcher", func() *Fetcher { return &Fetcher{node: id, client: client, count: &fetches} }); err != nil {
			return nil, err
		}
	}
	// Only n1 hosts the frontier, and n1 is never killed: the frontier's
	// memory is the crawl.
	if err := troupe.Register(nodes[0], "Frontier", func() *Frontier {
		return &Frontier{seen: map[string]bool{}, counted: map[string]string{}}
	}); err != nil {
		return nil, err
	}
	say("cluster: %v", nodes[0].Members())

	frontier, err := nodes[0].Spawn(ctx, "Frontier", troupe.OnNode("n1"))
	if err != nil {
		return nil, err
	}
	// Pool(processes=6): two fetchers on each node.
	pool, err := nodes[0].NewPool(ctx, "Fetcher", troupe.PoolPerNode(2))
	if err != nil {
		return nil, err
	}
	say("spawned the frontier on n1 and a pool of %d fetchers, 2 per node", len(pool.Workers()))

	sum := &Summary{}
	crawled, killed := make(chan struct{}), make(chan struct{})
	if !o.kill {
		close(killed)
	} else {
		// Midway through the crawl, n3 is closed abruptly, fetches in
		// flight and all.
		fetches.at = int64(o.pages / 3)
		fetches.reached = make(chan struct{})
		go func() {
			defer close(killed)
			select {
			case <-fetches.reached:
			case <-crawled:
				return
			}
			sum.Killed, sum.AtKill = nodes[2].ID(), int(fetches.started.Load()-fetches.ended.Load())
			say("%d fetches done: closing node %s abruptly, with %d in flight", fetches.ended.Load(), sum.Killed, sum.AtKill)
			nodes[2].Close()
		}()
	}

	level, err := troupe.Call[[]string](ctx, frontier, "Offer", []string{srv.URL + "/page/0"}).Await(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	// finish stops the kill's watcher and waits for it: sum's kill fields
	// are written after it.
	finish := sync.OnceFunc(func() {
		close(crawled)
		<-killed
	})
	defer finish()
	for len(level) > 0 {
		// pool.map(fetch, urls): results in input order; a fetch whose
		// node died is retried on another fetcher (Fetch is idempotent).
		pages, err := troupe.Map[Page](ctx, pool, "Fetch", level, troupe.MapIdempotent(), troupe.MaxInFlight(o.inflight))
		if err != nil {
			return nil, err
		}
		var next []string
		for _, page := range pages {
			c, err := troupe.Call[Completion](ctx, frontier, "Complete", page).Await(ctx)
			if err != nil {
				return nil, err
			}
			next = append(next, c.New...)
		}
		level = next
	}
	finish()
	sum.Retried = int(fetches.started.Load()) - o.pages
	el := time.Since(start)

	st, err := troupe.Call[Stats](ctx, frontier, "Stats").Await(ctx)
	if err != nil {
		return nil, err
	}
	sum.Stats = st
	nodeIDs := make([]string, 0, len(st.PerNode))
	for id, n := range st.PerNode {
		nodeIDs = append(nodeIDs, id)
		sum.Sum += n
	}
	slices.Sort(nodeIDs)
	say("crawled %d pages (%d URLs seen) in %s: %.0f pages/s", st.Pages, st.Seen, el.Round(time.Millisecond), float64(st.Pages)/el.Seconds())
	for _, id := range nodeIDs {
		say("  %s fetched %d pages", id, st.PerNode[id])
	}
	say("fetches beyond one per page: %d; pages reported again after being counted: %d (counted once)", sum.Retried, st.Twice)
	if st.Pages != o.pages || sum.Sum != o.pages {
		return sum, fmt.Errorf("crawled %d pages (per-node sum %d), the site has %d", st.Pages, sum.Sum, o.pages)
	}
	say("no page lost, none counted twice")
	return sum, nil
}
