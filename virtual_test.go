package troupe

import (
	"slices"
	"sync"
	"testing"
)

// TestVirtualActor: first calls racing from three nodes make one actor
// (its count goes 1, 2, 3), later calls cost no registry write, a decoded
// virtual Ref works, and after a stop for good the next call places it
// anew.
func TestVirtualActor(t *testing.T) {
	transports(t, func(t *testing.T, quic bool) {
		c := newTestCluster(t, quic, 3, nil)
		ctx := ctxT(t)
		var wg sync.WaitGroup
		start := make(chan struct{})
		got := make([]int, 3)
		errs := make([]error, 3)
		for i, n := range c.nodes {
			wg.Go(func() {
				<-start
				got[i], errs[i] = Call[int](ctx, n.Virtual("Counter", "k"), "Add", 1).Await(ctx)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("first call from n%d: %v", i+1, err)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, []int{1, 2, 3}) {
			t.Fatalf("racing first calls saw %v, want 1 2 3 from one activation", got)
		}
		n1 := c.nodes[0]
		v := n1.Virtual("Counter", "k")
		before := n1.reg.AppliedIndex()
		for range 50 {
			must[int](t)(Call[int](ctx, v, "Add", 1).Await(ctx))
		}
		if after := n1.reg.AppliedIndex(); after != before {
			t.Fatalf("calls to an active virtual actor wrote to the registry: applied %d -> %d", before, after)
		}
		// Through the wire and back: the Ref stays virtual.
		echoed := must[Ref](t)(Call[Ref](ctx, c.nodes[1].Virtual("Counter", "other"), "Echo", v).Await(ctx))
		if n := must[int](t)(Call[int](ctx, c.nodes[2].Ref(echoed), "Add", 0).Await(ctx)); n != 53 {
			t.Fatalf("through a decoded virtual Ref: %d, want 53", n)
		}
		if err := n1.StopActor(ctx, v); err != nil {
			t.Fatal(err)
		}
		if n := must[int](t)(Call[int](ctx, v, "Add", 1).Await(ctx)); n != 1 {
			t.Fatalf("after a stop, the next call = %d, want 1 from a new activation", n)
		}
	})
}
