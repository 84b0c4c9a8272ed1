// Command local is a runnable tour of troupe's local actor engine (package
// actor): spawning, Tell and Ask, futures, supervision, watching,
// backpressure and shutdown. It prints what happens and exits 0.
//
//	go run ./examples/local
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
	n := flag.Int("n", 1_000_000, "messages for the throughput step")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, *n); err != nil {
		log.Fatal(err)
	}
}

// Counter keeps a running total. It is only ever called one message at a
// time, so it needs no lock.
type Counter struct{ total int }

// Add asks the counter to add N and reply with the new total.
type Add struct{ N int }

// Get asks for the total.
type Get struct{}

// Crash makes the counter panic.
type Crash struct{}

func (c *Counter) Receive(ctx *actor.Context, msg any) {
	switch m := msg.(type) {
	case Add:
		c.total += m.N
		ctx.Respond(c.total)
	case Get:
		ctx.Respond(c.total)
	case Crash:
		panic("counter: crash requested")
	}
}

// run is the tour; n is the message count of the throughput step.
func run(ctx context.Context, out io.Writer, n int) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }

	sys, err := actor.New(actor.Config{
		Name: "tour",
		// Top-level actors are restarted up to 3 times in 5s, after 10ms,
		// 20ms, 40ms; a failure past that stops them.
		Supervisor: actor.Supervisor{MaxRestarts: 3, Backoff: 10 * time.Millisecond},
	})
	if err != nil {
		return err
	}
	defer sys.Close()

	say("== 1. spawn, tell, ask")
	counter, err := sys.Spawn(func() actor.Actor { return &Counter{} }, actor.Options{Name: "counter"})
	if err != nil {
		return err
	}
	say("spawned %v", counter)
	for i := 1; i <= 3; i++ {
		if err := sys.Tell(counter, Add{N: i}); err != nil { // fire and forget
			return err
		}
	}
	total, err := actor.Ask[int](ctx, counter, Get{}).Await(ctx)
	if err != nil {
		return err
	}
	say("told Add 1, 2, 3; asked Get: total = %d", total)

	say("== 2. futures: many in flight, WaitAll, WaitAny")
	var fs []*actor.Future[int]
	for range 10 {
		fs = append(fs, actor.Ask[int](ctx, counter, Add{N: 10}))
	}
	if err := actor.WaitAll(ctx, fs...); err != nil {
		return err
	}
	last, _ := fs[9].Await(ctx)
	say("10 asks in flight, all done; the last saw total = %d", last)
	i, err := actor.WaitAny(ctx, actor.Ask[int](ctx, counter, Get{}))
	say("WaitAny: future %d ready first (err %v)", i, err)

	say("== 3. supervision: a panic restarts the actor, same PID, fresh state")
	stopped := make(chan actor.Terminated, 1)
	if _, err := sys.Watch(counter, func(t actor.Terminated) { stopped <- t }); err != nil {
		return err
	}
	_ = sys.Tell(counter, Crash{})
	total, err = actor.Ask[int](ctx, counter, Get{}).Await(ctx)
	say("after a crash: total = %d (err %v); still %v", total, err, counter)
	say("crashing it 3 more times: the 4th restart exceeds the intensity and escalates past the root")
	for range 3 {
		_ = sys.Tell(counter, Crash{})
	}
	select {
	case t := <-stopped:
		say("watch: %v terminated, restart limit reached = %v", t.PID, errors.Is(t.Reason, actor.ErrRestartLimit))
	case <-ctx.Done():
		return ctx.Err()
	}
	_, err = actor.Ask[int](ctx, counter, Get{}).Await(ctx)
	say("ask to the stopped counter fails at once: %v", err)

	say("== 4. backpressure: a mailbox of 8 while the actor is busy")
	gate := make(chan struct{})
	slow, _ := sys.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context, msg any) {
			if msg == "block" {
				<-gate
			}
		})
	}, actor.Options{MailboxSize: 8})
	_ = sys.Tell(slow, "block")
	accepted := 0
	for {
		if err := sys.Tell(slow, accepted); errors.Is(err, actor.ErrMailboxFull) {
			break
		}
		accepted++
	}
	say("Tell accepted %d more (the message being handled counts), then returned %q", accepted, actor.ErrMailboxFull)
	wait, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	err = sys.Send(wait, slow, "one more")
	cancel()
	say("Send waits for room until its ctx is done: %v", err)
	close(gate)

	say("== 5. throughput: %d tells into one actor", n)
	done := make(chan struct{})
	seen := 0
	sink, _ := sys.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context, msg any) {
			if _, ok := msg.(int); ok {
				if seen++; seen == n {
					close(done)
				}
			}
		})
	}, actor.Options{MailboxSize: 1 << 16})
	start := time.Now()
	var one any = 1
	for sent := 0; sent < n; {
		if err := sys.Send(ctx, sink, one); err != nil {
			return err
		}
		sent++
	}
	<-done
	el := time.Since(start)
	say("delivered %d messages in %v (%.1f M msgs/s on this machine)", n, el.Round(time.Millisecond), float64(n)/el.Seconds()/1e6)

	say("== 6. shutdown: graceful drains the mailboxes, children first")
	if err := sys.Shutdown(ctx); err != nil {
		return err
	}
	say("Shutdown done; Tell now returns %q; dead letters so far: %d", sys.Tell(sink, 1), sys.DeadLetters())

	// Close is abrupt: what is queued is dropped. Here 100 messages wait
	// behind an actor whose restart is an hour away.
	abrupt, _ := actor.New(actor.Config{Name: "abrupt", Supervisor: actor.Supervisor{Backoff: time.Hour}})
	stuck, _ := abrupt.Spawn(func() actor.Actor { return &Counter{} }, actor.Options{})
	_, err = actor.Ask[int](ctx, stuck, Crash{}).Await(ctx)
	say("on another system, an actor crashed (%v) and waits an hour for its restart", err)
	for i := range 100 {
		_ = abrupt.Tell(stuck, Add{N: i})
	}
	say("Close with 100 messages queued behind it dropped %d", abrupt.Close())
	return nil
}
