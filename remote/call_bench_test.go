package remote

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func (a *benchActor) Len(ctx context.Context, p []byte) (int, error) { return len(p), nil }

// BenchmarkCall measures round trips through two Endpoints (or one, for
// "local") with one 32-byte argument: rt/s, and p50-µs with one caller.
func BenchmarkCall(b *testing.B) {
	for _, tr := range []string{"local", "mem", "quic"} {
		for _, inflight := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/inflight=%d", tr, inflight), func(b *testing.B) {
				benchCall(b, tr, inflight)
			})
		}
	}
}

func benchCall(b *testing.B, tr string, inflight int) { benchCallCfg(b, tr, inflight, nil) }

func benchCallCfg(b *testing.B, tr string, inflight int, tweak func(*Config)) {
	c := newBenchCluster(b, tr == "quic", tweak)
	ref := c.reg.place("bench", "Bench", "n2", 1)
	caller := c.nodes[0]
	if tr == "local" {
		caller = c.nodes[1]
	}
	ctx := context.Background()
	call := func() time.Duration {
		start := time.Now()
		var n int
		if err := caller.Call(ctx, ref, "Len", CallOptions{}, benchArg).Decode(ctx, &n); err != nil || n != 32 {
			b.Fatalf("Len = %d, %v", n, err)
		}
		return time.Since(start)
	}
	call() // connect and activate
	b.ReportAllocs()
	b.ResetTimer()
	if inflight == 1 {
		lat := make([]time.Duration, 0, b.N)
		for range b.N {
			lat = append(lat, call())
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	} else {
		var left atomic.Int64
		left.Store(int64(b.N))
		var wg sync.WaitGroup
		for range inflight {
			wg.Go(func() {
				for left.Add(-1) >= 0 {
					call()
				}
			})
		}
		wg.Wait()
		b.StopTimer()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rt/s")
}

// newBenchCluster starts two nodes registering "Bench"; it works for
// benchmarks, which newClusterOn's *testing.T signature does not.
func newBenchCluster(b *testing.B, quic bool, tweak func(*Config)) *cluster {
	b.Helper()
	return newClusterTB(b, quic, 2, func(ts *Types, i int) {
		if _, err := Register(ts, "Bench", func() *benchActor { return &benchActor{} }); err != nil {
			b.Fatal(err)
		}
	}, tweak)
}

// Total returns the bytes Put so far.
func (a *benchActor) Total() int { return a.n }

// BenchmarkTell measures one-way sends of one 32-byte argument through two
// Endpoints (or one, for "local"): msgs/s. Every tellWindow sends the sender
// waits for one round trip (mailboxes are bounded); the clock stops when a
// call ordered after every send returns, and the benchmark fails unless the
// actor took every message.
func BenchmarkTell(b *testing.B) {
	for _, tr := range []string{"local", "mem", "quic"} {
		b.Run(tr, func(b *testing.B) { benchTell(b, tr) })
	}
}

const tellWindow = 2048

func benchTell(b *testing.B, tr string) {
	c := newClusterTB(b, tr == "quic", 2, func(ts *Types, i int) {
		if _, err := Register(ts, "Bench", func() *benchActor { return &benchActor{} }); err != nil {
			b.Fatal(err)
		}
	}, func(cfg *Config) { cfg.MailboxSize = 2 * tellWindow })
	ref := c.reg.place("bench", "Bench", "n2", 1)
	caller := c.nodes[0]
	if tr == "local" {
		caller = c.nodes[1]
	}
	ctx := context.Background()
	total := func() int {
		var n int
		if err := caller.Call(ctx, ref, "Total", CallOptions{}).Decode(ctx, &n); err != nil {
			b.Fatal(err)
		}
		return n
	}
	before := total() // connect and activate
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := caller.Tell(ctx, ref, "Put", benchArg); err != nil {
			b.Fatal(err)
		}
		if i%tellWindow == tellWindow-1 {
			total()
		}
	}
	got := total()
	b.StopTimer()
	if want := before + b.N*len(benchArg); got != want {
		b.Fatalf("actor took %d bytes, want %d", got, want)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkTracedCall is BenchmarkCall with inflight=1 and a
// TracerProvider on both Endpoints: one sampling nothing (spans made, not
// recorded), one sampling everything into a synchronous processor whose
// exporter drops them.
func BenchmarkTracedCall(b *testing.B) {
	for _, sampler := range []string{"never", "always"} {
		for _, tr := range []string{"local", "mem", "quic"} {
			b.Run(sampler+"/"+tr, func(b *testing.B) {
				var tp *sdktrace.TracerProvider
				if sampler == "never" {
					tp = sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
				} else {
					tp = sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
						sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(tracetest.NewNoopExporter())))
				}
				defer func() { _ = tp.Shutdown(context.Background()) }()
				benchCallCfg(b, tr, 1, func(cfg *Config) { cfg.TracerProvider = tp })
			})
		}
	}
}
