package placement_test

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/transport"
)

// leaseWatch samples HasLease and Leader on every registry each
// millisecond and counts lease lapses (held, then lost) and leader changes.
// It is a measuring instrument: sampling, not waiting for an event.
type leaseWatch struct {
	lapses, changes atomic.Int64
	stop            chan struct{}
	done            chan struct{}
}

func watchLeases(regs []*placement.Registry) *leaseWatch {
	w := &leaseWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		held := make([]bool, len(regs))
		leader := make([]string, len(regs))
		for i, r := range regs {
			held[i], leader[i] = r.HasLease(), r.Leader()
		}
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
			for i, r := range regs {
				h := r.HasLease()
				if held[i] && !h {
					w.lapses.Add(1)
				}
				held[i] = h
				if l := r.Leader(); l != leader[i] {
					if l != "" {
						w.changes.Add(1)
					}
					leader[i] = l
				}
			}
		}
	}()
	return w
}

func (w *leaseWatch) halt() { close(w.stop); <-w.done }

// callLoad drives KindCalls traffic from a to b over their transports, the
// way the remote layer does: requests answered by a worker on b (the
// "actor"), inflight round trips at a time, or a flood of one-way frames.
type callLoad struct {
	a, b     transport.Transport
	inflight int
	oneway   bool
	replies  sync.Map // worker -> chan struct{}
	work     chan []byte
}

func (l *callLoad) start(b *testing.B, n int) (done func()) {
	l.work = make(chan []byte, 1024)
	var wg sync.WaitGroup
	ctx := context.Background()
	quit := make(chan struct{})
	l.b.Handle(transport.KindCalls, transport.HandlerFunc(func(from string, f []byte) {
		select {
		case l.work <- f:
		case <-quit:
		}
	}))
	l.a.Handle(transport.KindCalls, transport.HandlerFunc(func(from string, f []byte) {
		w := binary.LittleEndian.Uint32(f)
		if ch, ok := l.replies.Load(w); ok {
			ch.(chan struct{}) <- struct{}{}
		}
	}))
	wg.Go(func() { // the actor on b
		for {
			select {
			case f := <-l.work:
				if l.oneway {
					continue
				}
				if err := l.b.Send(ctx, transport.Peer{ID: l.a.ID()}, transport.KindCalls, f); err != nil {
					b.Error(err)
				}
			case <-quit:
				return
			}
		}
	})
	var next atomic.Int64
	workers := l.inflight
	if l.oneway {
		workers = 1
	}
	var cw sync.WaitGroup
	for w := range workers {
		ch := make(chan struct{}, 1)
		l.replies.Store(uint32(w), ch)
		cw.Go(func() {
			f := make([]byte, 32)
			binary.LittleEndian.PutUint32(f, uint32(w))
			for next.Add(1) <= int64(n) {
				if err := l.a.Send(ctx, transport.Peer{ID: l.b.ID(), Addr: l.b.Addr()}, transport.KindCalls, f); err != nil {
					b.Error(err)
					return
				}
				if !l.oneway {
					<-ch
				}
			}
		})
	}
	return func() { cw.Wait(); close(quit); wg.Wait() }
}

// BenchmarkLeaseUnderLoad measures lease lapses and leader changes of a
// 2-node cluster over QUIC (default timeouts) while call traffic saturates
// the link between the nodes.
func BenchmarkLeaseUnderLoad(b *testing.B) {
	for _, load := range []string{"inflight=64", "oneway"} {
		b.Run(load, func(b *testing.B) {
			regs, trs := quicClusterT(b, 2)
			l := &callLoad{a: trs[0], b: trs[1], inflight: 64, oneway: load == "oneway"}
			w := watchLeases(regs)
			b.ResetTimer()
			l.start(b, b.N)()
			b.StopTimer()
			w.halt()
			min := b.Elapsed().Minutes()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(w.lapses.Load())/min, "lapses/min")
			b.ReportMetric(float64(w.changes.Load())/min, "leaderchg/min")
		})
	}
}

// A stalled calls consumer fills the leader's calls queue to the peer; the
// lease pongs travel the same connection and must not wait behind it. The
// follower's lease is sampled every 5ms over four lease periods: it never
// lapses. (With one byte budget per peer for all kinds, the pongs waited
// for space that never came and the lease lapsed within LeaseTimeout.)
func TestLeaseSurvivesCallFlood(t *testing.T) {
	regs, trs := quicClusterT(t, 2)
	leader, follower := 0, 1
	if !regs[0].IsLeader() {
		leader, follower = 1, 0
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := regs[follower].WaitLease(ctx); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer close(release)
	trs[follower].Handle(transport.KindCalls, transport.HandlerFunc(func(string, []byte) { <-release }))
	to := transport.Peer{ID: trs[follower].ID(), Addr: trs[follower].Addr()}
	// Fill the queue with large frames, then top it off with empty ones,
	// so that not even a small control frame would fit in a shared budget.
	for _, size := range []int{64 << 10, 0} {
		frame := make([]byte, size)
		for i, full := 0, false; !full; i++ {
			if i == 1<<16 {
				t.Fatalf("the calls queue never filled (%d-byte frames)", size)
			}
			sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			err := trs[leader].Send(sctx, to, transport.KindCalls, frame)
			cancel()
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				full = true
			case err != nil:
				t.Fatal(err)
			}
		}
	}
	end := time.Now().Add(4 * 300 * time.Millisecond) // default LeaseTimeout
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) {
		if !regs[follower].HasLease() {
			t.Fatal("the follower's lease lapsed behind a full calls queue")
		}
		<-tick.C
	}
}
