package actor_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/troupe-dev/troupe/actor"
)

// Greeter prints what it is told.
type Greeter struct{ done chan struct{} }

func (g *Greeter) Receive(c *actor.Context, msg any) {
	switch m := msg.(type) {
	case actor.Started:
		fmt.Println("started", c.Self())
	case string:
		fmt.Println("hello,", m)
		close(g.done)
	}
}

func ExampleSystem_Spawn() {
	sys, _ := actor.New(actor.Config{Name: "demo"})
	defer sys.Close()

	done := make(chan struct{})
	pid, err := sys.Spawn(func() actor.Actor { return &Greeter{done: done} }, actor.Options{Name: "greeter"})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = sys.Tell(pid, "world")
	<-done
	// Output:
	// started demo/greeter
	// hello, world
}

func ExampleSystem_Tell() {
	sys, _ := actor.New(actor.Config{})
	defer sys.Close()

	got := make(chan int)
	sum := 0
	pid, _ := sys.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context, msg any) {
			if n, ok := msg.(int); ok {
				sum += n // one message at a time: no lock needed
				if n == 0 {
					got <- sum
				}
			}
		})
	}, actor.Options{})
	for _, n := range []int{1, 2, 3, 0} {
		if err := sys.Tell(pid, n); err != nil {
			fmt.Println(err) // ErrMailboxFull, ErrDeadLetter, ...
		}
	}
	fmt.Println("sum:", <-got)
	// Output: sum: 6
}

// Counter answers Asks.
type Counter struct{ n int }

func (c *Counter) Receive(ctx *actor.Context, msg any) {
	switch m := msg.(type) {
	case int:
		c.n += m
		ctx.Respond(c.n)
	case string:
		ctx.Respond(errors.New("counter: bad input " + m))
	}
}

func ExampleAsk() {
	sys, _ := actor.New(actor.Config{})
	defer sys.Close()
	pid, _ := sys.Spawn(func() actor.Actor { return &Counter{} }, actor.Options{})

	ctx := context.Background()
	n, err := actor.Ask[int](ctx, pid, 5).Await(ctx)
	fmt.Println(n, err)

	// Many requests in flight, then wait for all of them.
	fs := []*actor.Future[int]{actor.Ask[int](ctx, pid, 1), actor.Ask[int](ctx, pid, 1)}
	if err := actor.WaitAll(ctx, fs...); err == nil {
		last, _ := fs[1].Await(ctx)
		fmt.Println(last)
	}

	_, err = actor.Ask[int](ctx, pid, "x").Await(ctx)
	fmt.Println(err)
	// Output:
	// 5 <nil>
	// 7
	// counter: bad input x
}

func ExampleSupervisor() {
	// Top-level actors whose failure escalates are stopped, not restarted.
	sys, _ := actor.New(actor.Config{Supervisor: actor.Supervisor{
		Decider: func(error) actor.Directive { return actor.Stop },
	}})
	defer sys.Close()
	ctx := context.Background()

	// The boss restarts its worker twice, then gives up and escalates; the
	// root stops the boss (and so the worker).
	sup := &actor.Supervisor{Strategy: actor.OneForOne, MaxRestarts: 2}
	boss, _ := sys.Spawn(func() actor.Actor {
		var worker actor.PID
		return actor.ReceiveFunc(func(c *actor.Context, msg any) {
			switch msg.(type) {
			case actor.Started:
				worker, _ = c.Spawn(func() actor.Actor {
					return actor.ReceiveFunc(func(c *actor.Context, msg any) {
						switch msg.(type) {
						case actor.Started:
							fmt.Println("worker started")
						case string:
							panic("worker broke")
						case int:
							c.Respond("ok")
						}
					})
				}, actor.Options{Name: "worker"})
			case string:
				c.Respond(worker)
			}
		})
	}, actor.Options{Name: "boss", Supervisor: sup})

	worker, _ := actor.Ask[actor.PID](ctx, boss, "worker?").Await(ctx)
	for range 2 {
		_ = sys.Tell(worker, "break")
		reply, _ := actor.Ask[string](ctx, worker, 1).Await(ctx)
		fmt.Println("after restart:", reply, "same PID:", worker.Name())
	}
	stopped := make(chan actor.Terminated, 1)
	_, _ = sys.Watch(boss, func(t actor.Terminated) { stopped <- t })
	_ = sys.Tell(worker, "break") // the third failure escalates
	t := <-stopped
	fmt.Println("boss stopped:", errors.Is(t.Reason, actor.ErrRestartLimit))
	// Output:
	// worker started
	// worker started
	// after restart: ok same PID: worker
	// worker started
	// after restart: ok same PID: worker
	// boss stopped: true
}
