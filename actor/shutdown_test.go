package actor_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/troupe-dev/troupe/actor"
)

// tree spawns a parent (with one child) whose members count messages into
// handled and log Stopped into j; both block on gate first.
func tree(t *testing.T, s *actor.System, j *journal, gate <-chan struct{}, handled *atomic.Int64) (parent, kid actor.PID) {
	t.Helper()
	ready := make(chan actor.PID, 1)
	var member func(name string, spawnKid bool) actor.Producer
	member = func(name string, spawnKid bool) actor.Producer {
		return func() actor.Actor {
			return actor.ReceiveFunc(func(c *actor.Context, msg any) {
				switch msg.(type) {
				case actor.Started:
					if spawnKid {
						pid, err := c.Spawn(member("kid", false), actor.Options{})
						if err != nil {
							t.Error(err)
						}
						ready <- pid
					}
				case actor.Stopped:
					j.add("stopped %s", name)
				case int:
					<-gate
					j.add("msg %s", name)
					handled.Add(1)
				}
			})
		}
	}
	parent, err := s.Spawn(member("parent", true), actor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return parent, <-ready
}

func TestShutdownGraceful(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := actor.New(actor.Config{})
		j := &journal{}
		gate := make(chan struct{})
		var handled atomic.Int64
		parent, kid := tree(t, s, j, gate, &handled)
		for i := range 5 {
			s.Tell(parent, i)
			s.Tell(kid, i)
		}
		done := make(chan error, 1)
		go func() { done <- s.Shutdown(context.Background()) }()
		synctest.Wait()
		if err := s.Tell(parent, 9); !errors.Is(err, actor.ErrClosed) {
			t.Fatalf("Tell during Shutdown: %v", err)
		}
		if _, err := s.Spawn(func() actor.Actor { return actor.ReceiveFunc(func(*actor.Context, any) {}) }, actor.Options{}); !errors.Is(err, actor.ErrClosed) {
			t.Fatalf("Spawn during Shutdown: %v", err)
		}
		close(gate)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if handled.Load() != 10 {
			t.Fatalf("handled %d of 10 queued messages", handled.Load())
		}
		evs := j.take()
		if k := slices.Index(evs, "stopped kid"); k < 0 || k == len(evs)-1 || evs[len(evs)-1] != "stopped parent" {
			t.Fatalf("stop order: %v", evs)
		}
		if n := s.Close(); n != 0 {
			t.Fatalf("Close after Shutdown dropped %d", n)
		}
	})
}

func TestCloseAbrupt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := actor.New(actor.Config{})
		j := &journal{}
		gate := make(chan struct{})
		var handled atomic.Int64
		parent, kid := tree(t, s, j, gate, &handled)
		for i := range 5 {
			s.Tell(parent, i)
			s.Tell(kid, i)
		}
		synctest.Wait() // both are blocked in their first message
		ask := actor.Ask[int](context.Background(), kid, 7)
		dropped := make(chan int, 1)
		go func() { dropped <- s.Close() }()
		synctest.Wait()
		close(gate)
		// Each finishes its current message; 4+4 queued plus the Ask drop.
		if n := <-dropped; n != 9 || handled.Load() != 2 {
			t.Fatalf("Close dropped %d (want 9), handled %d (want 2)", n, handled.Load())
		}
		if _, err := ask.Await(context.Background()); !errors.Is(err, actor.ErrDeadLetter) {
			t.Fatalf("queued Ask after Close: %v", err)
		}
		if evs := j.take(); !slices.Equal(evs[len(evs)-2:], []string{"stopped kid", "stopped parent"}) {
			t.Fatalf("stop order: %v", evs)
		}
		if s.Close() != 0 {
			t.Fatal("second Close dropped messages")
		}
	})
}

func TestShutdownTimeoutFallsBackToClose(t *testing.T) {
	s, _ := actor.New(actor.Config{})
	// An actor that keeps itself busy forever never drains.
	pid, _ := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context, msg any) {
			if _, ok := msg.(int); ok {
				c.Tell(c.Self(), 0)
			}
		})
	}, actor.Options{})
	s.Tell(pid, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v", err)
	}
	if err := s.Tell(pid, 0); !errors.Is(err, actor.ErrClosed) {
		t.Fatalf("Tell after Shutdown: %v", err)
	}
}
