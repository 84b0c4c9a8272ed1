package actor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/troupe-dev/troupe/actor"
)

// journal records events from actors, in order.
type journal struct {
	mu  sync.Mutex
	evs []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	j.evs = append(j.evs, fmt.Sprintf(format, args...))
	j.mu.Unlock()
}

// take returns and forgets the events so far.
func (j *journal) take() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	evs := j.evs
	j.evs = nil
	return evs
}

// child is a supervised child that logs its lifecycle and panics on "fail".
func child(j *journal, name string) actor.Producer {
	return func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context, msg any) {
			switch msg.(type) {
			case actor.Started:
				j.add("start %s", name)
			case actor.Restarting:
				j.add("restarting %s", name)
			case actor.Stopped:
				j.add("stopped %s", name)
			case string:
				if msg == "fail" {
					panic("fail " + name)
				}
			}
		})
	}
}

// parent spawns children c0, c1, c2 on Started.
func parent(j *journal, sup *actor.Supervisor) actor.Producer {
	return func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context, msg any) {
			switch msg.(type) {
			case actor.Started:
				j.add("start parent")
				for i := range 3 {
					name := fmt.Sprintf("c%d", i)
					if _, err := c.Spawn(child(j, name), actor.Options{Name: name}); err != nil {
						j.add("spawn %s: %v", name, err)
					}
				}
			case actor.Restarting:
				j.add("restarting parent")
			case actor.Stopped:
				j.add("stopped parent")
			}
		})
	}
}

func mustLookup(t *testing.T, s *actor.System, name string) actor.PID {
	t.Helper()
	pid, ok := s.Lookup(name)
	if !ok {
		t.Fatalf("no actor named %q", name)
	}
	return pid
}

func TestStrategies(t *testing.T) {
	tests := []struct {
		strategy  actor.Strategy
		restarted []string
	}{
		{actor.OneForOne, []string{"c1"}},
		{actor.AllForOne, []string{"c0", "c1", "c2"}},
		{actor.RestForOne, []string{"c1", "c2"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.strategy), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				j := &journal{}
				// The root stops a parent whose child's failure escalates.
				var reason error
				s := newSystem(t, actor.Config{Supervisor: actor.Supervisor{Decider: func(err error) actor.Directive {
					reason = err
					return actor.Stop
				}}})
				sup := &actor.Supervisor{Strategy: tt.strategy, MaxRestarts: 2, Window: time.Minute}
				p, err := s.Spawn(parent(j, sup), actor.Options{Supervisor: sup})
				if err != nil {
					t.Fatal(err)
				}
				term := watch(t, s, p)
				synctest.Wait()
				j.take()
				c1 := mustLookup(t, s, "c1")

				// Two failures within the intensity: restarts of the right group.
				for range 2 {
					s.Tell(c1, "fail")
					synctest.Wait()
					var restarted []string
					for _, ev := range j.take() {
						if name, ok := strings.CutPrefix(ev, "start "); ok {
							restarted = append(restarted, name)
						}
					}
					slices.Sort(restarted)
					if !slices.Equal(restarted, tt.restarted) {
						t.Fatalf("restarted %v, want %v", restarted, tt.restarted)
					}
					if got := mustLookup(t, s, "c1"); got != c1 {
						t.Fatalf("restart changed the PID: %v -> %v", c1, got)
					}
				}

				// The third exceeds it: escalate to the root, which stops the
				// parent, children first.
				s.Tell(c1, "fail")
				synctest.Wait()
				tm := <-term
				var esc *actor.EscalationError
				if !errors.As(tm.Reason, &esc) || esc.Child != c1 || !errors.Is(tm.Reason, actor.ErrRestartLimit) {
					t.Fatalf("parent terminated with %v", tm.Reason)
				}
				if reason != tm.Reason {
					t.Fatalf("root decider saw %v", reason)
				}
				evs := j.take()
				if evs[len(evs)-1] != "stopped parent" || len(evs) != 4 {
					t.Fatalf("stop order %v", evs)
				}
			})
		})
	}
}

func TestRestartKeepsPIDAndMailbox(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSystem(t, actor.Config{})
		gate := make(chan struct{})
		var got []string
		instances := 0
		pid, err := s.Spawn(func() actor.Actor {
			instances++
			id := instances
			return actor.ReceiveFunc(func(c *actor.Context, msg any) {
				switch m := msg.(type) {
				case string:
					if m == "boom" {
						<-gate
						panic(m)
					}
					got = append(got, fmt.Sprintf("%s@%d", m, id))
				}
			})
		}, actor.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"a", "boom", "b", "c"} {
			if err := s.Tell(pid, m); err != nil {
				t.Fatal(err)
			}
		}
		close(gate)
		synctest.Wait()
		if want := []string{"a@1", "b@2", "c@2"}; !slices.Equal(got, want) {
			t.Fatalf("handled %v, want %v", got, want)
		}
	})
}

func TestDirectives(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name     string
		dir      actor.Directive
		wantN    int   // counter after fail + inc
		wantTerm error // nil: still alive
	}{
		{"resume keeps state", actor.Resume, 2, nil},
		{"restart resets state", actor.Restart, 1, nil},
		{"stop", actor.Stop, 0, boom},
		{"escalate past the root", actor.Escalate, 0, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var seen error
				s := newSystem(t, actor.Config{Supervisor: actor.Supervisor{Decider: func(err error) actor.Directive {
					seen = err
					return tt.dir
				}}})
				pid, _ := s.Spawn(func() actor.Actor {
					n := 0
					return actor.ReceiveFunc(func(c *actor.Context, msg any) {
						switch msg {
						case "inc":
							n++
						case "fail":
							panic(boom)
						case "get":
							c.Respond(n)
						}
					})
				}, actor.Options{})
				term := watch(t, s, pid)
				ctx := context.Background()
				s.Tell(pid, "inc")
				s.Tell(pid, "fail")
				synctest.Wait()
				if !errors.Is(seen, boom) {
					t.Fatalf("decider saw %v", seen)
				}
				s.Tell(pid, "inc")
				n, err := actor.Ask[int](ctx, pid, "get").Await(ctx)
				if tt.wantTerm != nil {
					if !errors.Is(err, actor.ErrDeadLetter) {
						t.Fatalf("Ask after stop: %v", err)
					}
					if tm := <-term; !errors.Is(tm.Reason, tt.wantTerm) {
						t.Fatalf("Terminated reason %v", tm.Reason)
					}
					// The system runs on.
					other, _ := s.Spawn(func() actor.Actor {
						return actor.ReceiveFunc(func(c *actor.Context, _ any) { c.Respond(1) })
					}, actor.Options{})
					if v, err := actor.Ask[int](ctx, other, 0).Await(ctx); v != 1 || err != nil {
						t.Fatalf("system dead after escalation: %v, %v", v, err)
					}
					return
				}
				if err != nil || n != tt.wantN {
					t.Fatalf("counter = %d, %v; want %d", n, err, tt.wantN)
				}
			})
		})
	}
}

func TestBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sup := actor.Supervisor{Backoff: 100 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, MaxRestarts: 10, Window: time.Hour}
		s := newSystem(t, actor.Config{Supervisor: sup})
		start := time.Now()
		var at []time.Duration
		s.Spawn(func() actor.Actor {
			return actor.ReceiveFunc(func(c *actor.Context, msg any) {
				if _, ok := msg.(actor.Started); ok {
					at = append(at, time.Since(start))
					if len(at) <= 5 {
						panic("not yet")
					}
				}
			})
		}, actor.Options{})
		// Advance the bubble's fake clock well past the last restart: the
		// delays themselves are under test.
		time.Sleep(5 * time.Second)
		synctest.Wait()
		ms := time.Millisecond
		want := []time.Duration{0, 100 * ms, 300 * ms, 600 * ms, 900 * ms, 1200 * ms}
		if !slices.Equal(at, want) {
			t.Fatalf("starts at %v, want %v", at, want)
		}
	})
}

func TestPanicLoggedWithStack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		var mu sync.Mutex
		log := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
		s := newSystem(t, actor.Config{Name: "n1", Logger: log})
		pid, _ := s.Spawn(func() actor.Actor {
			return actor.ReceiveFunc(func(c *actor.Context, msg any) {
				if msg == "fail" {
					panic("kaboom")
				}
			})
		}, actor.Options{Name: "x"})
		s.Tell(pid, "fail")
		synctest.Wait()
		mu.Lock()
		out := buf.String()
		mu.Unlock()
		for _, want := range []string{"node=n1", "actor=n1/x", "kaboom", "stack=", "supervisor_test.go"} {
			if !strings.Contains(out, want) {
				t.Fatalf("log lacks %q:\n%s", want, out)
			}
		}
	})
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestPolicyOverridesParent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSystem(t, actor.Config{}) // the root restarts by default
		failing := func() actor.Actor {
			return actor.ReceiveFunc(func(c *actor.Context, msg any) {
				if msg == "fail" {
					panic("fail")
				}
			})
		}
		stop := &actor.Supervisor{Decider: func(error) actor.Directive { return actor.Stop }}
		a, _ := s.Spawn(failing, actor.Options{Policy: stop})
		b, _ := s.Spawn(failing, actor.Options{})
		termA, termB := watch(t, s, a), watch(t, s, b)
		s.Tell(a, "fail")
		s.Tell(b, "fail")
		synctest.Wait()
		var pe *actor.PanicError
		select {
		case tm := <-termA:
			if !errors.As(tm.Reason, &pe) {
				t.Fatalf("a terminated with %v", tm.Reason)
			}
		default:
			t.Fatal("the actor with a Stop policy was not stopped")
		}
		if len(termB) != 0 {
			t.Fatal("the actor without a policy was stopped, not restarted")
		}
	})
}

func TestNilActorIsAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSystem(t, actor.Config{})
		pid, err := s.Spawn(func() actor.Actor { return nil }, actor.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tm := <-watch(t, s, pid)
		if !errors.Is(tm.Reason, actor.ErrNilActor) || !errors.Is(tm.Reason, actor.ErrRestartLimit) {
			t.Fatalf("Terminated reason %v", tm.Reason)
		}
	})
}

func TestShutdownDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := actor.New(actor.Config{Supervisor: actor.Supervisor{Backoff: time.Hour}})
		pid, _ := s.Spawn(func() actor.Actor {
			return actor.ReceiveFunc(func(c *actor.Context, msg any) {
				if msg == "fail" {
					panic("fail")
				}
			})
		}, actor.Options{})
		s.Tell(pid, "fail")
		s.Tell(pid, "queued")
		synctest.Wait() // suspended, its restart an hour away
		start := time.Now()
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) != 0 {
			t.Fatalf("Shutdown waited %v for a backoff", time.Since(start))
		}
		if s.DeadLetters() != 1 {
			t.Fatalf("dead letters %d, want the 1 queued behind the failure", s.DeadLetters())
		}
	})
}

func TestUnwatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSystem(t, actor.Config{})
		target := spawn(t, s, func(*actor.Context, any) {}, actor.Options{})
		var got []actor.Terminated
		watcher := spawn(t, s, func(c *actor.Context, msg any) {
			switch m := msg.(type) {
			case string:
				switch m {
				case "watch":
					c.Watch(target)
				case "unwatch":
					c.Unwatch(target)
				}
			case actor.Terminated:
				got = append(got, m)
			}
		}, actor.Options{})
		s.Tell(watcher, "watch")
		s.Tell(watcher, "unwatch")
		synctest.Wait()
		s.Stop(target)
		synctest.Wait()
		if len(got) != 0 {
			t.Fatalf("got %v after Unwatch", got)
		}
		// Watching again after the death: exactly one notice.
		s.Tell(watcher, "watch")
		s.Tell(watcher, "watch")
		synctest.Wait()
		if len(got) != 1 || got[0].PID != target {
			t.Fatalf("got %v, want one Terminated", got)
		}
	})
}

// TestContextFail: a failure reported with Context.Fail is handled like a
// panic: the Ask fails with the reason and the actor restarts with a fresh
// instance, keeping its PID; a nil reason changes nothing.
func TestContextFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSystem(t, actor.Config{})
		errBoom := errors.New("boom")
		var made int
		pid, err := s.Spawn(func() actor.Actor {
			made++
			count := 0
			return actor.ReceiveFunc(func(c *actor.Context, msg any) {
				switch msg {
				case "fail":
					c.Fail(errBoom)
				case "nil":
					c.Fail(nil)
					count++
					c.Respond(count)
				case "count":
					count++
					c.Respond(count)
				}
			})
		}, actor.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		if n, err := actor.Ask[int](ctx, pid, "count").Await(ctx); err != nil || n != 1 {
			t.Fatalf("count = %d, %v", n, err)
		}
		if n, err := actor.Ask[int](ctx, pid, "nil").Await(ctx); err != nil || n != 2 {
			t.Fatalf("after Fail(nil): %d, %v; want 2 from the same instance", n, err)
		}
		if made != 1 {
			t.Fatalf("Fail(nil) restarted the actor: %d instances", made)
		}
		if _, err := actor.Ask[any](ctx, pid, "fail").Await(ctx); !errors.Is(err, errBoom) {
			t.Fatalf("Ask of a failed message: %v, want %v", err, errBoom)
		}
		synctest.Wait()
		if made != 2 {
			t.Fatalf("%d instances after Fail, want a restart (2)", made)
		}
		if n, err := actor.Ask[int](ctx, pid, "count").Await(ctx); err != nil || n != 1 {
			t.Fatalf("after restart: count = %d, %v; want 1 from a fresh instance at the same PID", n, err)
		}
	})
}
