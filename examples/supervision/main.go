package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/troupe-dev/troupe/actor"
)

func main() {
	backoff := flag.Duration("backoff", 100*time.Millisecond, "delay of the first restart; each further one doubles")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, *backoff); err != nil {
		log.Fatal(err)
	}
}

// Work asks the worker to do one unit of work; it replies with how many
// units this instance has done.
type Work struct{}

// Crash makes the worker panic.
type Crash struct{}

// event is what the actors report to the tour, in order.
type event struct {
	who  string // "worker" or "manager"
	what string // "started #2", "restarting", ...
}

// worker counts its work; a fresh instance starts from zero.
type worker struct {
	instance int
	done     int
	events   chan<- event
}

func (w *worker) Receive(c *actor.Context, msg any) {
	switch msg.(type) {
	case actor.Started:
		w.events <- event{"worker", fmt.Sprintf("started (instance #%d)", w.instance)}
	case actor.Restarting:
		w.events <- event{"worker", "restarting"}
	case Work:
		w.done++
		c.Respond(w.done)
	case Crash:
		panic(fmt.Sprintf("worker instance #%d: crash requested", w.instance))
	}
}

// manager spawns the worker as its child when it starts.
type manager struct {
	events    chan<- event
	instances *int // worker instances made, across restarts
}

func (m *manager) Receive(c *actor.Context, msg any) {
	switch msg.(type) {
	case actor.Started:
		m.events <- event{"manager", "started"}
		_, err := c.Spawn(func() actor.Actor {
			*m.instances++ // producers run one at a time for one actor
			return &worker{instance: *m.instances, events: m.events}
		}, actor.Options{Name: "worker"})
		if err != nil {
			m.events <- event{"manager", "spawn failed: " + err.Error()}
		}
	case actor.Stopping:
		m.events <- event{"manager", "stopping"}
	}
}

// run is the tour; backoff is the first restart delay.
func run(ctx context.Context, out io.Writer, backoff time.Duration) error {
	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "[%7.1fms] "+format+"\n", append([]any{float64(time.Since(start).Microseconds()) / 1000}, args...)...)
	}
	// The events channel is large enough for the whole tour, so actors
	// never block on it.
	events := make(chan event, 64)
	next := func(who, what string) error {
		select {
		case ev := <-events:
			say("  %s: %s", ev.who, ev.what)
			if ev.who != who || len(ev.what) < len(what) || ev.what[:len(what)] != what {
				return fmt.Errorf("expected %s %q, got %s %q", who, what, ev.who, ev.what)
			}
			return nil
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s %q: %w", who, what, ctx.Err())
		}
	}

	// The root stops a failed top-level actor rather than restarting it,
	// so the escalation ends the manager.
	sys, err := actor.New(actor.Config{
		Name:       "supervision",
		Supervisor: actor.Supervisor{Decider: func(error) actor.Directive { return actor.Stop }},
	})
	if err != nil {
		return err
	}
	defer sys.Close()

	policy := actor.Supervisor{
		Strategy:    actor.OneForOne,
		MaxRestarts: 3,
		Window:      time.Minute,
		Backoff:     backoff,
		MaxBackoff:  8 * backoff,
	}
	say("== 1. a manager supervises a worker: OneForOne, at most %d restarts per %s, backoff %s doubling", policy.MaxRestarts, policy.Window, policy.Backoff)
	var instances int
	mgr, err := sys.Spawn(func() actor.Actor { return &manager{events: events, instances: &instances} },
		actor.Options{Name: "manager", Supervisor: &policy})
	if err != nil {
		return err
	}
	terminated := make(chan actor.Terminated, 1)
	if _, err := sys.Watch(mgr, func(t actor.Terminated) { terminated <- t }); err != nil {
		return err
	}
	if err := next("manager", "started"); err != nil {
		return err
	}
	if err := next("worker", "started (instance #1)"); err != nil {
		return err
	}
	wpid, ok := sys.Lookup("worker")
	if !ok {
		return errors.New("worker not registered")
	}
	for range 2 {
		n, err := actor.Ask[int](ctx, wpid, Work{}).Await(ctx)
		if err != nil {
			return err
		}
		say("worker %v did work: %d unit(s) so far", wpid, n)
	}

	say("== 2. the worker panics: restarted after a backoff, same PID, fresh state")
	for i := 1; i <= policy.MaxRestarts; i++ {
		crashed := time.Now()
		say("telling the worker to crash (%d)", i)
		if err := sys.Tell(wpid, Crash{}); err != nil {
			return err
		}
		if err := next("worker", "restarting"); err != nil {
			return err
		}
		if err := next("worker", fmt.Sprintf("started (instance #%d)", i+1)); err != nil {
			return err
		}
		n, err := actor.Ask[int](ctx, wpid, Work{}).Await(ctx)
		if err != nil {
			return err
		}
		say("restart %d of %d came %s after the crash (backoff %s); the new instance has done %d unit(s)",
			i, policy.MaxRestarts, time.Since(crashed).Round(time.Millisecond), min(backoff<<(i-1), policy.MaxBackoff), n)
	}

	say("== 3. one more panic exceeds the intensity: the failure escalates to the manager")
	if err := sys.Tell(wpid, Crash{}); err != nil {
		return err
	}
	if err := next("manager", "stopping"); err != nil {
		return err
	}
	select {
	case t := <-terminated:
		var esc *actor.EscalationError
		if !errors.As(t.Reason, &esc) {
			return fmt.Errorf("manager stopped for %v, want an escalation", t.Reason)
		}
		say("watch: %v terminated; reason: escalation from %v", t.PID, esc.Child)
		say("       restart limit exceeded: %v", errors.Is(t.Reason, actor.ErrRestartLimit))
		var p *actor.PanicError
		if errors.As(t.Reason, &p) {
			say("       the last panic: %v", p.Value)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	if _, err := actor.Ask[int](ctx, wpid, Work{}).Await(ctx); !errors.Is(err, actor.ErrDeadLetter) {
		return fmt.Errorf("the stopped worker answered: %v", err)
	}
	say("the worker stopped with its manager: a message to it is a dead letter")
	say("== done: %d worker instances in all", instances)
	return nil
}
