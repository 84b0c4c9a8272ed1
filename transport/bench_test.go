package transport

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchPair starts two QUIC nodes on loopback, connected.
func benchPair(b *testing.B) (a, c *QUIC) {
	b.Helper()
	ca, err := NewDevCA()
	if err != nil {
		b.Fatal(err)
	}
	start := func(id string) *QUIC {
		ident, err := ca.Issue(id, 0)
		if err != nil {
			b.Fatal(err)
		}
		q, err := NewQUIC(Config{Identity: ident})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { q.Close() })
		return q
	}
	return start("a"), start("b")
}

// BenchmarkRoundTrip measures request/reply round trips of 32-byte frames
// between two transports over real QUIC on loopback, with 1 or 64 callers
// each keeping one request in flight.
func BenchmarkRoundTrip(b *testing.B) {
	for _, inflight := range []int{1, 64} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			client, server := benchPair(b)
			server.Handle(KindCalls, HandlerFunc(func(from string, f []byte) {
				if err := server.Send(context.Background(), Peer{ID: from}, KindCalls, f); err != nil {
					b.Error(err)
				}
			}))
			replies := make([]chan struct{}, inflight)
			for i := range replies {
				replies[i] = make(chan struct{}, 1)
			}
			client.Handle(KindCalls, HandlerFunc(func(_ string, f []byte) {
				replies[binary.BigEndian.Uint32(f)] <- struct{}{}
			}))
			to := Peer{ID: "b", Addr: server.Addr()}
			ctx := context.Background()
			call := func(worker int, frame []byte) error {
				binary.BigEndian.PutUint32(frame, uint32(worker))
				if err := client.Send(ctx, to, KindCalls, frame); err != nil {
					return err
				}
				select {
				case <-replies[worker]:
					return nil
				case <-time.After(10 * time.Second):
					return fmt.Errorf("no reply within 10s")
				}
			}
			if err := call(0, make([]byte, 32)); err != nil { // connect
				b.Fatal(err)
			}

			var next atomic.Int64
			lat := make([][]time.Duration, inflight)
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range inflight {
				wg.Go(func() {
					frame := make([]byte, 32)
					for next.Add(1) <= int64(b.N) {
						t0 := time.Now()
						if err := call(w, frame); err != nil {
							b.Error(err)
							return
						}
						lat[w] = append(lat[w], time.Since(t0))
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rt/s")
			b.ReportMetric(float64(all[len(all)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(all[len(all)*99/100].Nanoseconds())/1e3, "p99-µs")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkOneWay measures one-way 32-byte frames from one transport to
// another over real QUIC on loopback, counted when the receiver's handler
// has them all.
func BenchmarkOneWay(b *testing.B) {
	client, server := benchPair(b)
	var got atomic.Int64
	done := make(chan struct{})
	target := int64(b.N) + 1
	server.Handle(KindCalls, HandlerFunc(func(string, []byte) {
		if got.Add(1) == target {
			close(done)
		}
	}))
	to := Peer{ID: "b", Addr: server.Addr()}
	ctx := context.Background()
	frame := make([]byte, 32)
	if err := client.Send(ctx, to, KindCalls, frame); err != nil { // connect
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := client.Send(ctx, to, KindCalls, frame); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.Fatalf("received %d of %d frames within 60s", got.Load(), target)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(0, "ns/op")
}
