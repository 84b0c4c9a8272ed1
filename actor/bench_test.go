package actor_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/troupe-dev/troupe/actor"
)

type payload [32]byte

// counter counts messages and signals when it has seen want of them.
type counter struct {
	n    int
	want int
	done chan struct{}
}

func (a *counter) Receive(c *actor.Context, msg any) {
	if _, ok := msg.(payload); ok {
		a.n++
		if a.n == a.want {
			close(a.done)
		}
	}
}

func newBenchSystem(b *testing.B) *actor.System {
	b.Helper()
	s, err := actor.New(actor.Config{MailboxSize: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// tellAll sends msg n times, yielding while the mailbox is full.
func tellAll(b *testing.B, s *actor.System, pid actor.PID, n int, msg func() any) {
	for range n {
		m := msg()
		for {
			err := s.Tell(pid, m)
			if err == nil {
				break
			}
			if err != actor.ErrMailboxFull {
				b.Error(err)
				return
			}
			runtime.Gosched()
		}
	}
}

// shared is one immutable 32-byte message sent over and over: the engine's
// cost alone. freshPayload boxes a new 32-byte value per message, adding
// the sender's allocation (and the GC work it causes) to the figure.
var shared any = payload{}

func sharedPayload() func() any { return func() any { return shared } }

func freshPayload() func() any {
	var n byte
	return func() any {
		n++
		return payload{0: n, 31: 1}
	}
}

// BenchmarkTell: one producer, one actor, 32-byte messages.
func BenchmarkTell(b *testing.B) { benchTell(b, sharedPayload) }

// BenchmarkTellAlloc is BenchmarkTell with a freshly allocated message each
// time.
func BenchmarkTellAlloc(b *testing.B) { benchTell(b, freshPayload) }

func benchTell(b *testing.B, newMsg func() func() any) {
	s := newBenchSystem(b)
	a := &counter{want: b.N, done: make(chan struct{})}
	pid, err := s.Spawn(func() actor.Actor { return a }, actor.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	tellAll(b, s, pid, b.N, newMsg())
	<-a.done
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkTellMany: two producers, each telling 100 actors round-robin,
// one message per actor per round.
func BenchmarkTellMany(b *testing.B) { benchTellMany(b, sharedPayload) }

// BenchmarkTellManyAlloc is BenchmarkTellMany with a freshly allocated
// message each time.
func BenchmarkTellManyAlloc(b *testing.B) { benchTellMany(b, freshPayload) }

func benchTellMany(b *testing.B, newMsg func() func() any) {
	const actors, producers = 100, 2
	s := newBenchSystem(b)
	per := max(b.N/(actors*producers), 1)
	pids := make([]actor.PID, actors)
	counters := make([]*counter, actors)
	for i := range pids {
		a := &counter{want: per * producers, done: make(chan struct{})}
		counters[i] = a
		pid, err := s.Spawn(func() actor.Actor { return a }, actor.Options{})
		if err != nil {
			b.Fatal(err)
		}
		pids[i] = pid
	}
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range producers {
		msg := newMsg()
		wg.Go(func() {
			for range per {
				for _, pid := range pids {
					m := msg()
					for s.Tell(pid, m) == actor.ErrMailboxFull {
						runtime.Gosched()
					}
				}
			}
		})
	}
	wg.Wait()
	for _, a := range counters {
		<-a.done
	}
	b.ReportMetric(float64(per*producers*actors)/b.Elapsed().Seconds(), "msgs/s")
}

type echo struct{}

func (echo) Receive(c *actor.Context, msg any) {
	if n, ok := msg.(int); ok {
		c.Respond(n)
	}
}

func BenchmarkAsk(b *testing.B) {
	s := newBenchSystem(b)
	pid, err := s.Spawn(func() actor.Actor { return echo{} }, actor.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := actor.Ask[int](ctx, pid, i).Await(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rt/s")
}

func BenchmarkAskParallel(b *testing.B) {
	const callers = 64
	s := newBenchSystem(b)
	pid, err := s.Spawn(func() actor.Actor { return echo{} }, actor.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if _, err := actor.Ask[int](ctx, pid, 1).Await(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rt/s")
}

type idle struct{}

func (idle) Receive(*actor.Context, any) {}

// BenchmarkSpawn spawns b.N idle actors and reports the rate; a separate
// measurement reports the heap held per idle actor over 100k actors.
func BenchmarkSpawn(b *testing.B) {
	s := newBenchSystem(b)
	prod := func() actor.Actor { return idle{} }
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := s.Spawn(prod, actor.Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "spawns/s")
	b.ReportMetric(bytesPerIdleActor(b, 100_000), "B/actor")
}

// bytesPerIdleActor reports the engine's heap per idle actor: n actors
// spawned and started, then the heap delta after a GC. All n share one
// zero-size actor value, so the figure excludes the actors' own state.
func bytesPerIdleActor(b *testing.B, n int) float64 {
	s, err := actor.New(actor.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var started sync.WaitGroup
	started.Add(n)
	shared := actor.ReceiveFunc(func(c *actor.Context, msg any) {
		if _, ok := msg.(actor.Started); ok {
			started.Done()
		}
	})
	prod := func() actor.Actor { return shared }
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		if _, err := s.Spawn(prod, actor.Options{}); err != nil {
			b.Fatal(err)
		}
	}
	started.Wait()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}
