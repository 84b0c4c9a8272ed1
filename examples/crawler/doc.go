// Command crawler is the distributed crawler of distributed-Python fame
// (Pool(processes=3).map(scrape_page, urls), spread over machines) on troupe:
// a site of a few hundred linked pages is served by a local httptest server;
// fetcher actors run on three nodes; a frontier actor dedups URLs and counts
// each page once; the driver keeps a window of Call futures in flight and
// gathers them with WaitAny. Midway one node is closed abruptly: its fetchers
// are re-placed on the surviving nodes, the fetches it had in flight are
// retried, and still no page is lost and none is counted twice. It prints
// pages/s and pages per node, and exits 0.
//
//	go run ./examples/crawler
//	go run ./examples/crawler -pages 1000 -kill=false
package main
