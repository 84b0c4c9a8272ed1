package placement_test

import (
	"context"
	"fmt"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/transport"
)

// A single-node registry on the in-memory transport: bootstrap, place a
// named actor, read it back locally, and check that this node may serve it.
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := transport.NewMemNetwork().Join("n1")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close()
	reg, err := placement.New(ctx, placement.Config{Transport: tr, Types: []string{"Counter"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Close()

	p, err := reg.Spawn(ctx, placement.SpawnRequest{ID: "counter", Type: "Counter", Policy: placement.RestartPolicy{MaxRestarts: -1}})
	if err != nil {
		fmt.Println(err)
		return
	}
	got, _ := reg.Lookup("counter")
	fmt.Println(got.Node, got.State, got.Epoch == p.Epoch)

	_, err = reg.Spawn(ctx, placement.SpawnRequest{Type: "Timer"})
	fmt.Println(err)
	// Output:
	// n1 active true
	// placement: unknown actor type (type Timer)
}
