// Command crawler is the distributed crawler of distributed-Python fame
// (Pool(processes=3).map(scrape_page, urls), spread over machines) on troupe:
// a site of a few hundred linked pages is served by a local httptest server;
// a pool of fetcher actors runs on three nodes (troupe.NewPool, two per
// node); a frontier actor dedups URLs and counts each page once; the driver
// crawls level by level with troupe.Map, which keeps a bounded window of
// calls in flight, each to the least-busy fetcher, and returns the pages in
// input order. Midway one node is closed abruptly: its fetchers are
// re-placed on the surviving nodes, Map retries the fetches it had in
// flight on other fetchers (Fetch is idempotent: MapIdempotent), and still
// no page is lost and none is counted twice. It prints pages/s and pages
// per node, and exits 0.
//
//	go run ./examples/crawler
//	go run ./examples/crawler -pages 1000 -kill=false
package main
