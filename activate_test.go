package troupe

import (
	"fmt"
	"runtime"
	"testing"
)

// TestMassActivationOnLeave: every actor a leaving node hosted is
// activated by its new host, before any call, through one queue: the new
// host's goroutines do not grow with the number of actors moved.
func TestMassActivationOnLeave(t *testing.T) {
	const actors = 2000
	made := make(chan string, 2*actors)
	c := newTestCluster(t, false, 2, nil)
	ctx := ctxT(t)
	for _, n := range c.nodes {
		id := n.ID()
		if err := Register(n, "Eager", func() *Eager { made <- id; return &Eager{node: id} }); err != nil {
			t.Fatal(err)
		}
	}
	n1, n2 := c.nodes[0], c.nodes[1]
	for i := range actors {
		must[Ref](t)(n1.Spawn(ctx, "Eager", OnNode("n2"), WithName(fmt.Sprint("e", i))))
	}
	base := runtime.NumGoroutine()
	if err := n2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	peak := 0
	for got := 0; got < actors; {
		select {
		case id := <-made:
			if id == "n1" {
				got++
			}
			// Sampled while activations run: actors are goroutine-free
			// when idle, and the queue has at most one drainer.
			peak = max(peak, runtime.NumGoroutine())
		case <-ctx.Done():
			t.Fatalf("%d of %d actors activated on n1", got, actors)
		}
	}
	if peak > base+actors/10 {
		t.Fatalf("goroutines peaked at %d (from %d) while activating %d actors", peak, base, actors)
	}
}
