package remote_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/troupe-dev/troupe/remote"
	"github.com/troupe-dev/troupe/transport"
)

type Counter struct{ n int }

func (c *Counter) Add(ctx context.Context, n int) (int, error) {
	if n < 0 {
		return c.n, errors.New("negative")
	}
	c.n += n
	return c.n, nil
}

// Two nodes on an in-memory network: n2 hosts counter "c1", n1 calls it.
func ExampleEndpoint_Call() {
	net := transport.NewMemNetwork()
	tr1, _ := net.Join("n1")
	tr2, _ := net.Join("n2")
	defer tr1.Close()
	defer tr2.Close()

	types := remote.NewTypes()
	if _, err := remote.Register(types, "Counter", func() *Counter { return &Counter{} }); err != nil {
		fmt.Println(err)
		return
	}
	// n2 owns c1; in a cluster the placement registry answers this.
	owner := remote.OwnerFunc(func(id string, epoch uint64) (string, error) {
		if id != "c1" {
			return "", remote.ErrNotFound
		}
		return "Counter", nil
	})
	caller, _ := remote.New(remote.Config{Transport: tr1, Types: types})
	host, _ := remote.New(remote.Config{Transport: tr2, Types: types, Owner: owner})
	defer caller.Close()
	defer host.Close()

	ctx := context.Background()
	ref := remote.Ref{ID: "c1", Type: "Counter", Node: "n2", Epoch: 1}
	for _, n := range []int{2, 3} {
		var sum int
		err := caller.Call(ctx, ref, "Add", remote.CallOptions{}, n).Decode(ctx, &sum)
		fmt.Println(sum, err)
	}
	_, err := caller.Call(ctx, ref, "Add", remote.CallOptions{}, -1).Wait(ctx)
	fmt.Println(errors.Is(err, remote.ErrApplication), err)
	_, err = caller.Call(ctx, ref, "Add", remote.CallOptions{}, "x").Wait(ctx)
	fmt.Println(errors.Is(err, remote.ErrBadArgs))
	// Output:
	// 2 <nil>
	// 5 <nil>
	// true remote: application: c1.Add @n2: negative
	// true
}
