package troupe_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/troupe-dev/troupe"
)

// Greeter is an actor type: its exported methods become callable.
type Greeter struct{ greeted int }

// Greet is callable: ctx first (optional), msgpack arguments, a result and
// an error (both optional).
func (g *Greeter) Greet(_ context.Context, name string) (string, error) {
	g.greeted++
	return fmt.Sprintf("hello %s (#%d)", name, g.greeted), nil
}

// Square is a slow-ish method for the futures examples.
func (g *Greeter) Square(x int) int { return x * x }

// A zero Config runs a complete single-node cluster in this process.
func ExampleStart() {
	ctx := context.Background()
	node, err := troupe.Start(ctx, troupe.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	if err := troupe.Register(node, "Greeter", func() *Greeter { return &Greeter{} }); err != nil {
		log.Fatal(err)
	}
	fmt.Println("members:", len(node.Members()))
	// Output: members: 1
}

func ExampleCall() {
	ctx := context.Background()
	node, err := troupe.Start(ctx, troupe.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	if err := troupe.Register(node, "Greeter", func() *Greeter { return &Greeter{} }); err != nil {
		log.Fatal(err)
	}
	g, err := node.Spawn(ctx, "Greeter", troupe.WithName("greeter"))
	if err != nil {
		log.Fatal(err)
	}
	for _, who := range []string{"ada", "alan"} {
		msg, err := troupe.Call[string](ctx, g, "Greet", who).Await(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(msg)
	}
	// Output:
	// hello ada (#1)
	// hello alan (#2)
}

func ExampleWaitAny() {
	ctx := context.Background()
	node, err := troupe.Start(ctx, troupe.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	if err := troupe.Register(node, "Greeter", func() *Greeter { return &Greeter{} }); err != nil {
		log.Fatal(err)
	}
	var futs []*troupe.Future[int]
	for i := 1; i <= 4; i++ {
		// Ephemeral actors: no registry entry, cheap fan-out.
		w, err := node.SpawnLocal(ctx, "Greeter")
		if err != nil {
			log.Fatal(err)
		}
		futs = append(futs, troupe.Call[int](ctx, w, "Square", i))
	}
	ready, notReady := troupe.WaitAny(ctx, 2, futs...)
	fmt.Println(len(ready), "ready,", len(notReady), "not ready")
	if err := troupe.WaitAll(ctx, futs...); err != nil {
		log.Fatal(err)
	}
	sum := 0
	for _, f := range futs {
		v, _ := f.Await(ctx)
		sum += v
	}
	fmt.Println("sum of squares:", sum)
	// Output:
	// 2 ready, 2 not ready
	// sum of squares: 30
}

func ExampleNode_Watch() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node, err := troupe.Start(ctx, troupe.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	if err := troupe.Register(node, "Greeter", func() *Greeter { return &Greeter{} }); err != nil {
		log.Fatal(err)
	}
	g, err := node.Spawn(ctx, "Greeter")
	if err != nil {
		log.Fatal(err)
	}
	events, err := node.Watch(ctx, g)
	if err != nil {
		log.Fatal(err)
	}
	if err := node.StopActor(ctx, g); err != nil {
		log.Fatal(err)
	}
	for ev := range events {
		fmt.Println(ev.Kind)
	}
	_, err = troupe.Call[string](ctx, g, "Greet", "nobody").Await(ctx)
	fmt.Println(err != nil && errors.Is(err, troupe.ErrNotFound))
	// Output:
	// stopped
	// true
}
