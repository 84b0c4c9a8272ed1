package actor_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/troupe-dev/troupe/actor"
)

func newSystem(t *testing.T, cfg actor.Config) *actor.System {
	t.Helper()
	s, err := actor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func spawn(t *testing.T, s *actor.System, f actor.ReceiveFunc, o actor.Options) actor.PID {
	t.Helper()
	pid, err := s.Spawn(func() actor.Actor { return f }, o)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// watch returns a channel that receives pid's Terminated.
func watch(t *testing.T, s *actor.System, pid actor.PID) <-chan actor.Terminated {
	t.Helper()
	ch := make(chan actor.Terminated, 1)
	if _, err := s.Watch(pid, func(tm actor.Terminated) { ch <- tm }); err != nil {
		t.Fatal(err)
	}
	return ch
}

type seq struct {
	from int
	n    int
}

func TestPerSenderOrder(t *testing.T) {
	const senders, per = 4, 2000
	s := newSystem(t, actor.Config{MailboxSize: senders * per})
	done := make(chan error, 1)
	next := make([]int, senders)
	total := 0
	pid := spawn(t, s, func(c *actor.Context, msg any) {
		m, ok := msg.(seq)
		if !ok {
			return
		}
		if m.n != next[m.from] {
			done <- fmt.Errorf("sender %d: got %d, want %d", m.from, m.n, next[m.from])
			return
		}
		next[m.from]++
		if total++; total == senders*per {
			done <- nil
		}
	}, actor.Options{})
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			for n := range per {
				if err := s.Tell(pid, seq{i, n}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestActorToActorOrder checks FIFO between two actors, with Sender.
func TestActorToActorOrder(t *testing.T) {
	const n = 1000
	s := newSystem(t, actor.Config{})
	done := make(chan error, 1)
	want := 0
	sink := spawn(t, s, func(c *actor.Context, msg any) {
		if v, ok := msg.(int); ok {
			if v != want || c.Sender().Name() != "src" {
				done <- fmt.Errorf("got %d from %v, want %d from src", v, c.Sender(), want)
				return
			}
			if want++; want == n {
				done <- nil
			}
		}
	}, actor.Options{})
	spawn(t, s, func(c *actor.Context, msg any) {
		if _, ok := msg.(actor.Started); ok {
			for i := range n {
				if err := c.Tell(sink, i); err != nil {
					done <- err
					return
				}
			}
		}
	}, actor.Options{Name: "src"})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// blocker is an actor that reports each message it begins to handle and
// then, for int messages, blocks until gate is closed.
func blocker(gate <-chan struct{}, seen chan<- any) actor.ReceiveFunc {
	return func(c *actor.Context, msg any) {
		seen <- msg
		if _, ok := msg.(int); ok {
			<-gate
		}
	}
}

func TestBackpressure(t *testing.T) {
	s := newSystem(t, actor.Config{})
	gate := make(chan struct{})
	seen := make(chan any, 100)
	pid := spawn(t, s, blocker(gate, seen), actor.Options{MailboxSize: 4})
	if _, ok := (<-seen).(actor.Started); !ok {
		t.Fatal("first message is not Started")
	}
	for i := range 4 {
		if err := s.Tell(pid, i); err != nil {
			t.Fatalf("Tell %d: %v", i, err)
		}
	}
	if err := s.Tell(pid, 4); !errors.Is(err, actor.ErrMailboxFull) {
		t.Fatalf("Tell to a full mailbox: %v, want ErrMailboxFull", err)
	}
	f := actor.Ask[int](context.Background(), pid, 4)
	select {
	case <-f.Done():
	default:
		t.Fatal("Ask to a full mailbox did not fail at once")
	}
	if _, err := f.Await(context.Background()); !errors.Is(err, actor.ErrMailboxFull) {
		t.Fatalf("Ask to a full mailbox: %v, want ErrMailboxFull", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Send(ctx, pid, 4); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send with a cancelled ctx to a full mailbox: %v", err)
	}
	// A waiting Send goes through once the actor catches up.
	sent := make(chan error, 1)
	go func() { sent <- s.Send(context.Background(), pid, 4) }()
	close(gate)
	if err := <-sent; err != nil {
		t.Fatalf("Send: %v", err)
	}
	for want := range 5 {
		if got := <-seen; got != want {
			t.Fatalf("got %v, want %d", got, want)
		}
	}
}

func TestSystemMessagesOvertake(t *testing.T) {
	var dead atomic.Int64
	s := newSystem(t, actor.Config{OnDeadLetter: func(actor.DeadLetter) { dead.Add(1) }})
	gates := []chan struct{}{make(chan struct{}), make(chan struct{})}
	seen := make(chan any, 100)
	pid := spawn(t, s, func(c *actor.Context, msg any) {
		seen <- msg
		if i, ok := msg.(int); ok && i < len(gates) {
			<-gates[i]
		}
	}, actor.Options{})
	<-seen // Started
	s.Tell(pid, 0)
	<-seen // 0 is being handled: 1..4 queue up and are taken as one batch
	for i := 1; i < 5; i++ {
		if err := s.Tell(pid, i); err != nil {
			t.Fatal(err)
		}
	}
	close(gates[0])
	<-seen // 1 is being handled, 2..4 wait in the same batch
	term := watch(t, s, pid)
	if err := s.Stop(pid); err != nil {
		t.Fatal(err)
	}
	close(gates[1])
	tm := <-term
	if tm.PID != pid || tm.Reason != nil {
		t.Fatalf("Terminated = %+v", tm)
	}
	var got []any
	for len(seen) > 0 {
		got = append(got, <-seen)
	}
	want := []any{actor.Stopping{}, actor.Stopped{}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the stop, handled %v, want %v", got, want)
	}
	if n := dead.Load(); n != 3 || s.DeadLetters() != 3 {
		t.Fatalf("dead letters: hook %d, count %d, want 3", n, s.DeadLetters())
	}
	if err := s.Tell(pid, 9); !errors.Is(err, actor.ErrDeadLetter) {
		t.Fatalf("Tell to a stopped actor: %v", err)
	}
}

func TestAskDeadFailsAtOnce(t *testing.T) {
	s := newSystem(t, actor.Config{})
	pid := spawn(t, s, func(*actor.Context, any) {}, actor.Options{})
	term := watch(t, s, pid)
	s.Stop(pid)
	<-term
	f := actor.Ask[int](context.Background(), pid, 1)
	select {
	case <-f.Done():
	default:
		t.Fatal("Ask to a dead actor is pending")
	}
	if _, err := f.Await(context.Background()); !errors.Is(err, actor.ErrDeadLetter) {
		t.Fatalf("Await: %v, want ErrDeadLetter", err)
	}
}

func TestAsk(t *testing.T) {
	s := newSystem(t, actor.Config{})
	pid := spawn(t, s, func(c *actor.Context, msg any) {
		switch m := msg.(type) {
		case int:
			c.Respond(m * 2)
		case string:
			c.Respond(errors.New(m))
		case bool:
			c.Respond("wrong type")
		case float64:
			panic("boom")
		}
	}, actor.Options{})
	ctx := context.Background()
	if v, err := actor.Ask[int](ctx, pid, 21).Await(ctx); v != 42 || err != nil {
		t.Fatalf("Ask int = %v, %v", v, err)
	}
	if _, err := actor.Ask[int](ctx, pid, "nope").Await(ctx); err == nil || err.Error() != "nope" {
		t.Fatalf("Ask error reply: %v", err)
	}
	if e, err := actor.Ask[error](ctx, pid, "as value").Await(ctx); err != nil || e.Error() != "as value" {
		t.Fatalf("Ask[error] = %v, %v", e, err)
	}
	if _, err := actor.Ask[int](ctx, pid, true).Await(ctx); !errors.Is(err, actor.ErrReplyType) {
		t.Fatalf("Ask wrong type: %v", err)
	}
	var pe *actor.PanicError
	if _, err := actor.Ask[int](ctx, pid, 1.5).Await(ctx); !errors.As(err, &pe) || pe.Value != "boom" || len(pe.Stack) == 0 {
		t.Fatalf("Ask to a panicking actor: %v", err)
	}
	// Restarted by the root supervisor, same PID.
	if v, err := actor.Ask[int](ctx, pid, 1).Await(ctx); v != 2 || err != nil {
		t.Fatalf("Ask after restart = %v, %v", v, err)
	}
	done := make(chan int, 1)
	actor.Ask[int](ctx, pid, 5).Then(func(v int, err error) { done <- v })
	if v := <-done; v != 10 {
		t.Fatalf("Then got %d", v)
	}
}

func TestAwaitContextCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSystem(t, actor.Config{})
		var ctxSeen atomic.Bool
		pid := spawn(t, s, func(c *actor.Context, msg any) {
			if _, ok := msg.(int); ok {
				ctxSeen.Store(c.RequestContext().Value(key{}) == "v")
			}
		}, actor.Options{}) // never responds
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), key{}, "v"), time.Second)
		defer cancel()
		start := time.Now()
		_, err := actor.Ask[int](ctx, pid, 1).Await(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
			t.Fatalf("Await = %v after %v", err, time.Since(start))
		}
		if !ctxSeen.Load() {
			t.Fatal("RequestContext is not the caller's ctx")
		}
		// A request whose ctx is done before it is handled is skipped.
		gate := make(chan struct{})
		seen := make(chan any, 10)
		slow := spawn(t, s, blocker(gate, seen), actor.Options{})
		s.Tell(slow, 0)
		synctest.Wait()
		cctx, ccancel := context.WithCancel(context.Background())
		f := actor.Ask[int](cctx, slow, "skipped")
		ccancel()
		close(gate)
		if _, err := f.Await(context.Background()); !errors.Is(err, context.Canceled) {
			t.Fatalf("skipped Ask: %v", err)
		}
		synctest.Wait()
		for len(seen) > 0 {
			if m := <-seen; m == "skipped" {
				t.Fatal("a cancelled request was handled")
			}
		}
	})
}

type key struct{}

func TestWaitAnyAll(t *testing.T) {
	ctx := context.Background()
	f0, _ := actor.NewFuture[int]()
	f1, done1 := actor.NewFuture[int]()
	f2, done2 := actor.NewFuture[int]()
	got := make(chan int, 1)
	go func() {
		i, err := actor.WaitAny(ctx, f0, f1, f2)
		if err != nil {
			t.Error(err)
		}
		got <- i
	}()
	done2(2, nil)
	if i := <-got; i != 2 {
		t.Fatalf("WaitAny = %d, want 2", i)
	}
	done1(1, nil)
	if i, err := actor.WaitAny(ctx, f0, f1, f2); i != 1 || err != nil {
		t.Fatalf("WaitAny with two ready = %d, %v, want the lowest (1)", i, err)
	}
	if done1(7, nil) {
		t.Fatal("a future completed twice")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if i, err := actor.WaitAny(cctx, f0); i != -1 || !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitAny cancelled = %d, %v", i, err)
	}
	if _, err := actor.WaitAny[*actor.Future[int]](ctx); !errors.Is(err, actor.ErrNoFutures) {
		t.Fatalf("WaitAny() = %v", err)
	}
	if err := actor.WaitAll(cctx, f0, f1); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitAll cancelled = %v", err)
	}
	boom := errors.New("boom")
	f3, done3 := actor.NewFuture[string]()
	done3("", boom)
	if err := actor.WaitAll[actor.Awaitable](ctx, f1, f2, f3); err != boom {
		t.Fatalf("WaitAll = %v, want boom", err)
	}
	if err := actor.WaitAll(ctx, f1, f2); err != nil {
		t.Fatalf("WaitAll = %v", err)
	}
}

func TestBadInput(t *testing.T) {
	s := newSystem(t, actor.Config{Name: "a"})
	other := newSystem(t, actor.Config{Name: "b"})
	pid := spawn(t, s, func(*actor.Context, any) {}, actor.Options{Name: "x"})
	foreign := spawn(t, other, func(*actor.Context, any) {}, actor.Options{})
	ctx := context.Background()
	var nilCtx context.Context
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"Tell nil PID", s.Tell(actor.PID{}, 1), actor.ErrNilPID},
		{"Tell foreign PID", s.Tell(foreign, 1), actor.ErrForeignPID},
		{"Send nil ctx", s.Send(nilCtx, pid, 1), actor.ErrNilContext},
		{"Stop nil PID", s.Stop(actor.PID{}), actor.ErrNilPID},
		{"Stop foreign PID", s.Stop(foreign), actor.ErrForeignPID},
		{"Spawn nil producer", func() error { _, err := s.Spawn(nil, actor.Options{}); return err }(), actor.ErrNilProducer},
		{"Spawn duplicate name", func() error {
			_, err := s.Spawn(func() actor.Actor { return actor.ReceiveFunc(func(*actor.Context, any) {}) }, actor.Options{Name: "x"})
			return err
		}(), actor.ErrDuplicateName},
		{"Watch nil PID", func() error { _, err := s.Watch(actor.PID{}, func(actor.Terminated) {}); return err }(), actor.ErrNilPID},
		{"Ask nil ctx", func() error { _, err := actor.Ask[int](nilCtx, pid, 1).Await(ctx); return err }(), actor.ErrNilContext},
		{"Ask nil PID", func() error { _, err := actor.Ask[int](ctx, actor.PID{}, 1).Await(ctx); return err }(), actor.ErrNilPID},
		{"Await nil ctx", func() error { _, err := actor.Ask[int](ctx, pid, 1).Await(nilCtx); return err }(), actor.ErrNilContext},
		{"Shutdown nil ctx", other.Shutdown(nilCtx), actor.ErrNilContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.want) {
				t.Fatalf("got %v, want %v", tt.err, tt.want)
			}
		})
	}
	if got, ok := s.Lookup("x"); !ok || got != pid || pid.String() != "a/x" || pid.Name() != "x" || pid.System() != "a" {
		t.Fatalf("Lookup = %v, %v (pid %v)", got, ok, pid)
	}
	if (actor.PID{}).String() != "<nil>" || !(actor.PID{}).IsZero() {
		t.Fatal("zero PID")
	}
	if _, err := actor.New(actor.Config{MailboxSize: 1 << 31}); err == nil {
		t.Fatal("New accepted an absurd mailbox size")
	}
}

func TestWatch(t *testing.T) {
	s := newSystem(t, actor.Config{})
	target := spawn(t, s, func(*actor.Context, any) {}, actor.Options{})
	got := make(chan actor.Terminated, 10)
	watcher := spawn(t, s, func(c *actor.Context, msg any) {
		switch m := msg.(type) {
		case actor.PID:
			if err := c.Watch(m); err != nil {
				c.Respond(err)
				return
			}
			c.Watch(m) // twice is once
			c.Respond(true)
		case actor.Terminated:
			got <- m
		}
	}, actor.Options{})
	ctx := context.Background()
	var calls atomic.Int64
	cancelled := make(chan actor.Terminated, 1)
	cancel, err := s.Watch(target, func(actor.Terminated) { cancelled <- actor.Terminated{} })
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	ext := watch(t, s, target)
	if _, err := actor.Ask[bool](ctx, watcher, target).Await(ctx); err != nil {
		t.Fatal(err)
	}
	s.Stop(target)
	if tm := <-got; tm.PID != target || tm.Reason != nil {
		t.Fatalf("live watch: %+v", tm)
	}
	if tm := <-ext; tm.PID != target {
		t.Fatalf("external watch: %+v", tm)
	}
	// Watching a dead actor delivers Terminated at once, exactly once.
	if _, err := actor.Ask[bool](ctx, watcher, target).Await(ctx); err != nil {
		t.Fatal(err)
	}
	if tm := <-got; tm.PID != target {
		t.Fatalf("dead watch: %+v", tm)
	}
	if _, err := s.Watch(target, func(actor.Terminated) { calls.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Fatal("watch of a dead actor did not call back before returning")
	}
	// Flush the watcher's mailbox: no duplicate Terminated may follow.
	if _, err := actor.Ask[bool](ctx, watcher, actor.PID{}).Await(ctx); err == nil {
		t.Fatal("watching the zero PID succeeded")
	}
	s.Close()
	if len(got) != 0 || len(cancelled) != 0 {
		t.Fatalf("extra notices: %d to the actor, %d after cancel", len(got), len(cancelled))
	}
}

func TestIdleActorHoldsNoGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := actor.New(actor.Config{})
		if err != nil {
			t.Fatal(err)
		}
		release := make(chan struct{})
		pids := make([]actor.PID, 100)
		for i := range pids {
			pids[i], _ = s.Spawn(func() actor.Actor {
				return actor.ReceiveFunc(func(_ *actor.Context, msg any) {
					if msg == "block" {
						<-release
					}
				})
			}, actor.Options{})
			s.Tell(pids[i], i)
		}
		s.Tell(pids[0], "block")
		synctest.Wait()
		// The check is live: a busy actor shows up as a worker goroutine.
		if n := actorWorkers(); n != 1 {
			t.Fatalf("%d actor worker goroutines with one busy actor, want 1", n)
		}
		close(release)
		synctest.Wait()
		if n := actorWorkers(); n != 0 {
			t.Fatalf("%d actor worker goroutines with 100 idle actors, want 0", n)
		}
		s.Close()
	})
}

// Workers park for reuse after running an actor dry: a bounded few, however
// many actors ran at once, and none after Close.
func TestParkedWorkersBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := actor.New(actor.Config{})
		if err != nil {
			t.Fatal(err)
		}
		release := make(chan struct{})
		for range 100 {
			pid, _ := s.Spawn(func() actor.Actor {
				return actor.ReceiveFunc(func(_ *actor.Context, msg any) {
					if msg == "block" {
						<-release
					}
				})
			}, actor.Options{})
			s.Tell(pid, "block")
		}
		synctest.Wait()
		if n := actorWorkers(); n != 100 {
			t.Fatalf("%d actor worker goroutines with 100 busy actors, want 100", n)
		}
		close(release)
		synctest.Wait()
		if n := parkedWorkers(); n < 1 || n > max(8, 4*runtime.GOMAXPROCS(0)) {
			t.Fatalf("%d parked workers after 100 actors ran at once", n)
		}
		s.Close()
		if n := parkedWorkers(); n != 0 {
			t.Fatalf("%d parked workers after Close", n)
		}
	})
}

// parkedWorkers counts the engine's worker goroutines parked for reuse.
func parkedWorkers() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "troupe/actor.(*System).worker(") - actorWorkers()
}

// actorWorkers counts the goroutines of the whole process that are running
// an actor's mailbox loop. Counting runtime.NumGoroutine instead would also
// count goroutines of other tests that are still winding down.
func actorWorkers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return strings.Count(string(buf), "troupe/actor.(*process).run(")
}
