package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupe-dev/troupe/actor"
)

// payload is the 32-byte message of the local scenarios, boxed once.
type payload [32]byte

var boxed any = payload{}

// countReq asks a counting actor for its count.
type countReq struct{}

// counter counts the payloads it receives.
type counter struct{ n int64 }

func (c *counter) Receive(ctx *actor.Context, msg any) {
	switch msg.(type) {
	case payload:
		c.n++
	case countReq:
		ctx.Respond(c.n)
	}
}

// localTell measures Tell throughput to n actors. Senders use Send, which
// waits for room in a full mailbox, so nothing is dropped; the figure is
// taken when every actor has handled every message.
func localTell(n int) func(ctx context.Context, e *env) (*Result, error) {
	return func(ctx context.Context, e *env) (*Result, error) {
		sys, err := actor.New(actor.Config{MailboxSize: 1 << 16})
		if err != nil {
			return nil, err
		}
		defer sys.Close()
		pids := make([]actor.PID, n)
		for i := range pids {
			if pids[i], err = sys.Spawn(func() actor.Actor { return &counter{} }, actor.Options{}); err != nil {
				return nil, err
			}
		}
		senders := 1
		if n > 1 {
			senders = runtime.GOMAXPROCS(0)
		}
		deadline := time.Now().Add(e.o.duration)
		var sent atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, senders)
		start := time.Now()
		for s := range senders {
			wg.Go(func() {
				var k int64
				for i := s; k < maxOps/int64(senders); i++ {
					if k%1024 == 0 && (time.Now().After(deadline) || ctx.Err() != nil) {
						break
					}
					if err := sys.Send(ctx, pids[i%n], boxed); err != nil {
						errs <- err
						break
					}
					k++
				}
				sent.Add(k)
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return nil, err
		}
		var got int64
		for _, pid := range pids {
			c, err := actor.Ask[int64](ctx, pid, countReq{}).Await(ctx)
			if err != nil {
				return nil, err
			}
			got += c
		}
		el := time.Since(start)
		if got != sent.Load() {
			return nil, fmt.Errorf("sent %d messages, actors handled %d", sent.Load(), got)
		}
		return &Result{
			Setup: Setup{Nodes: 1, Processes: 1, InFlight: senders, Payload: 32, Duration: el.Round(time.Millisecond).String(), Ops: got,
				Notes: fmt.Sprintf("%d actor(s), mailbox 65536, pre-boxed message", n)},
			Figures: []Figure{{Name: "throughput", Value: float64(got) / el.Seconds(), Unit: "msgs/s", Higher: true}},
		}, nil
	}
}

// echo replies with the message it gets.
type echo struct{}

func (echo) Receive(ctx *actor.Context, msg any) {
	if _, ok := msg.(payload); ok {
		ctx.Respond(msg)
	}
}

// localAsk measures Ask round trips from callers goroutines to one actor.
func localAsk(callers int) func(ctx context.Context, e *env) (*Result, error) {
	return func(ctx context.Context, e *env) (*Result, error) {
		sys, err := actor.New(actor.Config{})
		if err != nil {
			return nil, err
		}
		defer sys.Close()
		pid, err := sys.Spawn(func() actor.Actor { return echo{} }, actor.Options{})
		if err != nil {
			return nil, err
		}
		r, err := closedLoop(ctx, e.o.duration, callers, nil, func(ctx context.Context) error {
			_, err := actor.Ask[payload](ctx, pid, boxed).Await(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		return &Result{
			Setup: Setup{Nodes: 1, Processes: 1, InFlight: callers, Payload: 32, Duration: r.elapsed.Round(time.Millisecond).String(), Ops: r.ops,
				Notes: "Ask + Await, 1 actor"},
			Figures: append([]Figure{{Name: "throughput", Value: float64(r.ops) / r.elapsed.Seconds(), Unit: "rt/s", Higher: true}}, r.lat.figures()...),
		}, nil
	}
}

// loopResult is what closedLoop measured.
type loopResult struct {
	lat     *latency
	ops     int64 // successful operations
	failed  int64 // operations that failed with a transient error
	elapsed time.Duration
}

// closedLoop runs op from workers goroutines, each waiting for its previous
// op, until d has passed (and at most maxOps in all), timing each op. An op
// that fails with an error transient accepts is counted and the loop goes
// on; any other error ends the loop and is returned.
func closedLoop(ctx context.Context, d time.Duration, workers int, transient func(error) bool, op func(context.Context) error) (loopResult, error) {
	deadline := time.Now().Add(d)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		res   = loopResult{lat: &latency{}}
		first error
	)
	start := time.Now()
	for range workers {
		wg.Go(func() {
			var l latency
			var k, failed int64
			var err error
			for k+failed < maxOps/int64(workers) && ctx.Err() == nil {
				t0 := time.Now()
				err = op(ctx)
				t1 := time.Now()
				if err != nil {
					if transient == nil || !transient(err) {
						break
					}
					failed++
					err = nil
				} else {
					l.add(t1.Sub(t0))
					k++
				}
				if t1.After(deadline) {
					break
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.lat.merge(&l)
			res.ops += k
			res.failed += failed
			if err != nil && first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	if first == nil && res.ops == 0 {
		first = fmt.Errorf("no operation succeeded (%d failed)", res.failed)
	}
	return res, first
}

// idle is an actor that does nothing; the spawn scenario counts its
// Started messages.
type idle struct{ started *countdown }

func (a idle) Receive(_ *actor.Context, msg any) {
	if _, ok := msg.(actor.Started); ok {
		a.started.inc()
	}
}

// countdown lets one goroutine wait until a counter that others move
// reaches a target set late (once the target is known).
type countdown struct {
	n, target atomic.Int64
	once      sync.Once
	done      chan struct{}
}

func newCountdown() *countdown {
	c := &countdown{done: make(chan struct{})}
	c.target.Store(-1)
	return c
}

func (c *countdown) inc() {
	if c.n.Add(1) == c.target.Load() {
		c.once.Do(func() { close(c.done) })
	}
}

// wait sets the target and waits until the counter has reached it.
func (c *countdown) wait(ctx context.Context, target int64) error {
	c.target.Store(target)
	if c.n.Load() >= target {
		c.once.Do(func() { close(c.done) })
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for %d actors to start (%d did): %w", target, c.n.Load(), ctx.Err())
	}
}

// localSpawn measures the spawn rate, then the heap held per idle actor.
func localSpawn(ctx context.Context, e *env) (*Result, error) {
	// Rate: spawn until the duration has passed, then wait until each
	// actor has received Started.
	sys, err := actor.New(actor.Config{})
	if err != nil {
		return nil, err
	}
	started := newCountdown()
	deadline := time.Now().Add(e.o.duration)
	start := time.Now()
	var n int64
	for n < 2_000_000 && ctx.Err() == nil {
		if n%1024 == 0 && time.Now().After(deadline) {
			break
		}
		if _, err := sys.Spawn(func() actor.Actor { return idle{started} }, actor.Options{}); err != nil {
			sys.Close()
			return nil, err
		}
		n++
	}
	if err := started.wait(ctx, n); err != nil {
		sys.Close()
		return nil, err
	}
	el := time.Since(start)
	sys.Close()

	// Memory: heap growth over a fresh system holding m idle actors.
	m := int64(100_000)
	if e.o.quick {
		m = 20_000
	}
	perActor, err := idleBytes(ctx, m)
	if err != nil {
		return nil, err
	}
	return &Result{
		Setup: Setup{Nodes: 1, Processes: 1, InFlight: 1, Duration: el.Round(time.Millisecond).String(), Ops: n,
			Notes: fmt.Sprintf("rate: until every actor got Started; memory: heap after GC over %d idle actors", m)},
		Figures: []Figure{
			{Name: "spawn rate", Value: float64(n) / el.Seconds(), Unit: "spawns/s", Higher: true},
			{Name: "idle actor", Value: perActor, Unit: "B/actor"},
		},
	}, nil
}

func idleBytes(ctx context.Context, m int64) (float64, error) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	sys, err := actor.New(actor.Config{})
	if err != nil {
		return 0, err
	}
	defer sys.Close()
	started := newCountdown()
	pids := make([]actor.PID, 0, m)
	for range m {
		pid, err := sys.Spawn(func() actor.Actor { return idle{started} }, actor.Options{})
		if err != nil {
			return 0, err
		}
		pids = append(pids, pid)
	}
	if err := started.wait(ctx, m); err != nil {
		return 0, err
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(pids)
	if len(pids) == 0 {
		return 0, errors.New("no actors")
	}
	// The PIDs slice is the caller's, not the engine's: leave it out.
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc) - int64(cap(pids))*8
	return float64(held) / float64(m), nil
}
