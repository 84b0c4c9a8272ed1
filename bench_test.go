package troupe

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/internal/quicecho"
	"github.com/troupe-dev/troupe/transport"
)

// Sink is the actor of the benchmarks.
type Sink struct{ n int }

// Take counts one 32-byte payload.
func (s *Sink) Take(_ []byte) int { s.n++; return s.n }

// Count returns how many payloads were taken.
func (s *Sink) Count() int { return s.n }

// benchNodes starts n nodes over QUIC on loopback with Sink registered and
// returns them with a Ref to a Sink on the last one, bound to the first.
func benchNodes(b *testing.B, n int) ([]*Node, Ref) {
	b.Helper()
	return benchNodesIn(b, n, "")
}

// benchMailbox is the mailbox of the benchmarks' nodes but where one says
// otherwise: room for the fan-outs of BenchmarkPoolMap and the like.
const benchMailbox = 8 << 10

// benchNodesIn is benchNodes with each node's DataDir under dir (raft-boltdb
// logs on disk), or in memory for "".
func benchNodesIn(b *testing.B, n int, dir string) ([]*Node, Ref) {
	b.Helper()
	return benchNodesWith(b, n, dir, benchMailbox)
}

// benchNodesWith is benchNodesIn with the nodes' MailboxSize (0: the
// default).
func benchNodesWith(b *testing.B, n int, dir string, mailbox int) ([]*Node, Ref) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var nodes []*Node
	b.Cleanup(func() {
		for _, nd := range nodes {
			nd.Close()
		}
	})
	for i := range n {
		// A long FailTimeout (lease 1.9s): the benchmarks saturate a shared
		// 2-core machine, and they measure calls, not failure detection.
		cfg := Config{Name: fmt.Sprintf("b%d", i+1), MailboxSize: mailbox, FailTimeout: 5 * time.Second}
		if dir != "" {
			cfg.DataDir = filepath.Join(dir, cfg.Name)
		}
		if i > 0 {
			cfg.Join = []string{nodes[0].Addr()}
		}
		nd, err := Start(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, nd)
		if err := Register(nd, "Sink", func() *Sink { return &Sink{} }); err != nil {
			b.Fatal(err)
		}
	}
	r, err := nodes[0].Spawn(ctx, "Sink", OnNode(nodes[n-1].ID()))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := Call[int](ctx, r, "Count").Await(ctx); err != nil { // activate, connect
		b.Fatal(err)
	}
	return nodes, r
}

var payload = make([]byte, 32)

// BenchmarkRemoteCall: round trips from one node to an actor on another,
// over QUIC on loopback, with 1 or 64 calls in flight; the deadline/
// variants share one ctx with a deadline between the callers, as the bench
// suite's scenarios (and most real callers) do.
func BenchmarkRemoteCall(b *testing.B) {
	for _, deadline := range []bool{false, true} {
		for _, inflight := range []int{1, 64} {
			name := fmt.Sprintf("inflight=%d", inflight)
			if deadline {
				name = "deadline/" + name
			}
			b.Run(name, func(b *testing.B) {
				nodes, r := benchNodes(b, 2)
				defer reportPackets(b, nodes)()
				ctx := context.Background()
				if deadline {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, time.Hour)
					defer cancel()
				}
				roundTrips(b, inflight, func(int) error {
					_, err := Call[int](ctx, r, "Take", payload).Await(ctx)
					return err
				})
			})
		}
	}
}

// BenchmarkClientCall compares, in one run, calls from a member to an
// actor on another member (as BenchmarkRemoteCall) with calls from a
// client (Config.Client) to an actor on a member, over QUIC.
func BenchmarkClientCall(b *testing.B) {
	for _, inflight := range []int{1, 64} {
		for _, from := range []string{"member", "client"} {
			b.Run(fmt.Sprintf("inflight=%d/from=%s", inflight, from), func(b *testing.B) {
				var r Ref
				if from == "member" {
					_, r = benchNodes(b, 2)
				} else {
					nodes, host := benchNodes(b, 1)
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					cl, err := Start(ctx, Config{Name: "bc", Client: true, Join: []string{nodes[0].Addr()}})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { cl.Close() })
					r = cl.Ref(host)
					if _, err := Call[int](ctx, r, "Count").Await(ctx); err != nil { // connect
						b.Fatal(err)
					}
				}
				ctx := context.Background()
				roundTrips(b, inflight, func(int) error {
					_, err := Call[int](ctx, r, "Take", payload).Await(ctx)
					return err
				})
			})
		}
	}
}

// roundTrips runs b.N round trips of call from inflight goroutines (call
// gets the goroutine's index) and reports rt/s, p50-µs and p99-µs.
func roundTrips(b *testing.B, inflight int, call func(worker int) error) {
	lat := make([]time.Duration, 0, b.N)
	var mu sync.Mutex
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	var wg sync.WaitGroup
	per := (b.N + inflight - 1) / inflight
	for w := range inflight {
		calls := min(per, b.N-w*per)
		wg.Go(func() {
			local := make([]time.Duration, 0, max(calls, 0))
			for range calls {
				t0 := time.Now()
				if err := call(w); err != nil {
					b.Error(err)
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rt/s")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
	}
}

// reportCPU reads the process's CPU time (user and system, every
// goroutine of both nodes) and returns a func that reports it per op as
// cpu-µs/op: on a shared machine it moves less than the throughput does,
// so changes to the per-call path are compared by it.
func reportCPU(b *testing.B) func() {
	t0 := processCPU()
	return func() {
		b.ReportMetric(float64((processCPU()-t0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportPackets reads the QUIC packets the first node (the caller) sent
// to the last (the host) and back, and returns a func that reports them
// per op as caller-pkts/op and host-pkts/op: how well the wire coalesces.
func reportPackets(b *testing.B, nodes []*Node) func() {
	caller, host := nodes[0], nodes[len(nodes)-1]
	sent := func(from, to *Node) uint64 {
		for _, s := range from.tr.Stats() {
			if s.Peer == to.ID() {
				return s.PacketsSent
			}
		}
		return 0
	}
	c0, h0 := sent(caller, host), sent(host, caller)
	return func() {
		b.ReportMetric(float64(sent(caller, host)-c0)/float64(b.N), "caller-pkts/op")
		b.ReportMetric(float64(sent(host, caller)-h0)/float64(b.N), "host-pkts/op")
	}
}

// BenchmarkRemoteTell: one-way sends from one node to an actor on another
// over QUIC, as fast as the sender can make them, with the default mailbox
// (1024): the runtime's flow control paces the sender (the host stops
// reading the one-way stream while the mailbox is full), and the clock
// stops once the actor has taken every message — a lost one fails the
// benchmark. ctx=deadline sends with a ctx that has a deadline, as real
// callers do; ctx=background with one that never ends.
func BenchmarkRemoteTell(b *testing.B) {
	for _, deadline := range []bool{false, true} {
		name := "ctx=background"
		if deadline {
			name = "ctx=deadline"
		}
		b.Run(name, func(b *testing.B) {
			nodes, r := benchNodesWith(b, 2, "", 0)
			ctx := context.Background()
			if deadline {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Hour)
				defer cancel()
			}
			before, err := Call[int](ctx, r, "Count").Await(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer reportPackets(b, nodes)()
			b.ReportAllocs()
			b.ResetTimer()
			defer reportCPU(b)()
			for range b.N {
				if err := Tell(ctx, r, "Take", payload); err != nil {
					b.Fatal(err)
				}
			}
			got, err := Call[int](ctx, r, "Count").Await(ctx) // ordered after every Tell
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if got-before != b.N {
				b.Fatalf("actor took %d of %d messages", got-before, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkLocalCall: round trips through a Ref to an actor on the same
// node, one caller; arguments and results still pass through the codec.
func BenchmarkLocalCall(b *testing.B) {
	nodes, _ := benchNodes(b, 1)
	ctx := context.Background()
	r, err := nodes[0].Spawn(ctx, "Sink", Local())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for range b.N {
		if _, err := Call[int](ctx, r, "Take", payload).Await(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rt/s")
}

// BenchmarkQUICEcho is the floor of BenchmarkRemoteCall, measured the same
// way: round trips of 32-byte frames over one stream of a bare quic-go
// connection with mutual TLS on loopback, with 1 or 64 in flight.
func BenchmarkQUICEcho(b *testing.B) {
	for _, inflight := range []int{1, 64} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			ca, err := transport.NewDevCA()
			if err != nil {
				b.Fatal(err)
			}
			sid, _ := ca.Issue("server", 0)
			cid, _ := ca.Issue("client", 0)
			srv, err := quicecho.Listen("127.0.0.1:0", sid)
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			ctx := context.Background()
			cl, err := quicecho.Dial(ctx, srv.Addr(), cid, inflight)
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			if err := cl.Call(ctx, 0, make([]byte, 32)); err != nil { // warm up
				b.Fatal(err)
			}
			p := make([][]byte, inflight)
			for w := range p {
				p[w] = make([]byte, 32)
			}
			roundTrips(b, inflight, func(w int) error { return cl.Call(ctx, w, p[w]) })
		})
	}
}

// BenchmarkPoolMap maps a method over 10 000 small inputs with a pool of
// one worker per node on 3 nodes over QUIC (loopback, one process), and
// reports items/s and the share of the busiest worker.
func BenchmarkPoolMap(b *testing.B) {
	nodes, _ := benchNodes(b, 3)
	for _, nd := range nodes {
		id := nd.ID()
		if err := Register(nd, "Calc", func() *Calc { return &Calc{node: id} }); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	p, err := nodes[0].NewPool(ctx, "Calc")
	if err != nil {
		b.Fatal(err)
	}
	in := make([]int, 10_000)
	for i := range in {
		in[i] = 7*i + 1
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Map[int](ctx, p, "Double", in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(in))/b.Elapsed().Seconds(), "items/s")
	var total, most uint64
	for _, s := range nodes {
		for _, st := range s.types.Stats() {
			if st.Type == "Calc" && st.Method == "Double" {
				n := uint64(0)
				for _, v := range st.Outcomes {
					n += v
				}
				total += n
				most = max(most, n)
			}
		}
	}
	if total > 0 {
		b.ReportMetric(float64(most)/float64(total), "busiest-share")
	}
}

// BenchmarkVirtualFirstCall: each op is the first call to a new virtual
// actor (a named-spawn Raft write, then its activation) from 64 callers
// spread over 3 QUIC nodes in one process.
func BenchmarkVirtualFirstCall(b *testing.B) {
	nodes, _ := benchNodes(b, 3)
	for _, nd := range nodes {
		if err := Register(nd, "Sess", func() *benchSess { return &benchSess{} }); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	var next atomic.Int64
	roundTrips(b, 64, func(w int) error {
		key := strconv.FormatInt(next.Add(1), 10)
		_, err := Call[int](ctx, nodes[w%3].Virtual("Sess", key), "Touch").Await(ctx)
		return err
	})
}

// BenchmarkVirtualMemory activates 100 000 virtual actors (-vmem.keys)
// over 3 QUIC nodes in one process (64 callers), reports the heap per
// activation (registry replicas of all 3 nodes included), then waits until
// all are passivated (PassivateAfter 20 s, longer than the activations
// take) and their entries forgotten on every replica, and reports the heap
// left: per actor, as a share of the activated heap, and against the
// baseline — the heap after a warm-up of a tenth as many actors of another
// type went through the same cycle, so the nodes' bounded caches are full
// in both readings (MiB-over-cold compares with the freshly started
// nodes instead). store=mem keeps Raft's log in the heap until a snapshot
// compacts it; store=bolt is a node with a DataDir.
func BenchmarkVirtualMemory(b *testing.B) {
	b.Run("store=mem", func(b *testing.B) { benchVirtualMemory(b, false) })
	b.Run("store=bolt", func(b *testing.B) { benchVirtualMemory(b, true) })
}

// vmemKeys is BenchmarkVirtualMemory's number of virtual actors: what is
// left after passivation should not grow with it.
var vmemKeys = flag.Int("vmem.keys", 100_000, "BenchmarkVirtualMemory: virtual actors to activate")

func benchVirtualMemory(b *testing.B, durable bool) {
	keys := *vmemKeys
	for i := 0; i < b.N; i++ { // b.Loop refuses a stopped timer at its end
		b.StopTimer()
		dir := ""
		if durable {
			dir = b.TempDir()
		}
		nodes, _ := benchNodesIn(b, 3, dir)
		gone := make(chan struct{}, keys)
		warmGone := make(chan struct{}, keys/10)
		for _, nd := range nodes {
			if err := Register(nd, "Sess", func() *benchSess { return &benchSess{gone: gone} }, PassivateAfter(20*time.Second)); err != nil {
				b.Fatal(err)
			}
			if err := Register(nd, "Warm", func() *benchSess { return &benchSess{gone: warmGone} }, PassivateAfter(time.Second)); err != nil {
				b.Fatal(err)
			}
		}
		ctx := context.Background()
		heap := func() float64 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return float64(ms.HeapAlloc)
		}
		activate := func(typ string, n int) {
			var next atomic.Int64
			var wg sync.WaitGroup
			for w := range 64 {
				wg.Go(func() {
					for {
						k := next.Add(1)
						if k > int64(n) {
							return
						}
						if _, err := Call[int](ctx, nodes[w%3].Virtual(typ, strconv.FormatInt(k, 10)), "Touch").Await(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		}
		// passivated waits for n deactivations, then until every replica
		// has forgotten their entries.
		passivated := func(ch chan struct{}, n int) {
			for range n {
				<-ch
			}
			for _, nd := range nodes {
				sub := nd.reg.Subscribe()
				for nd.reg.Counters().Active > 1 { // the benchNodes Sink stays
					if _, err := sub.Next(ctx); err != nil {
						b.Fatal(err)
					}
				}
				sub.Close()
			}
		}
		cold := heap()
		// A tenth as many actors of another type first, passivated and
		// forgotten: what is left then is the nodes' bounded caches (Raft's
		// log cache, dedup windows, buffers), filled, as in any cluster
		// that has served traffic. That is the baseline.
		activate("Warm", keys/10)
		passivated(warmGone, keys/10)
		base := heap()
		if f := os.Getenv("TROUPE_HEAPPROFILE"); f != "" {
			out, _ := os.Create(f + ".base")
			_ = pprof.WriteHeapProfile(out)
			out.Close()
		}
		b.StartTimer()
		activate("Sess", keys)
		b.StopTimer()
		el := b.Elapsed()
		active := heap()
		passivated(gone, keys)
		idle := heap()
		if f := os.Getenv("TROUPE_HEAPPROFILE"); f != "" {
			out, _ := os.Create(f)
			_ = pprof.WriteHeapProfile(out)
			out.Close()
		}
		b.ReportMetric(float64(keys)/el.Seconds(), "activations/s")
		b.ReportMetric((active-base)/float64(keys), "heap-B/active")
		b.ReportMetric((idle-base)/float64(keys), "heap-B/passivated")
		b.ReportMetric((idle-base)/(active-base), "heap-left-ratio")
		b.ReportMetric((idle-cold)/(1<<20), "MiB-over-cold")
		b.ReportMetric((idle-base)/base, "over-baseline")
	}
}

// benchSess is a virtual actor with a little state.
type benchSess struct {
	n    int
	buf  [8]int64
	gone chan<- struct{}
}

func (s *benchSess) Touch() int { s.n++; s.buf[s.n%8]++; return s.n }

func (s *benchSess) OnDeactivate(context.Context) error {
	if s.gone != nil {
		s.gone <- struct{}{}
	}
	return nil
}
