package transport_test

import (
	"context"
	"fmt"

	"github.com/troupe-dev/troupe/transport"
)

// Two nodes of one process, authenticated by a throw-away dev CA, exchange
// a frame over QUIC on loopback.
func ExampleNewQUIC() {
	ca, err := transport.NewDevCA()
	if err != nil {
		panic(err)
	}
	start := func(id string) *transport.QUIC {
		ident, err := ca.Issue(id, 0)
		if err != nil {
			panic(err)
		}
		q, err := transport.NewQUIC(transport.Config{Identity: ident})
		if err != nil {
			panic(err)
		}
		return q
	}
	a, b := start("a"), start("b")
	defer a.Close()
	defer b.Close()

	got := make(chan string, 1)
	b.Handle(transport.KindCalls, transport.HandlerFunc(func(from string, frame []byte) {
		got <- fmt.Sprintf("%s says %s", from, frame)
	}))
	err = a.Send(context.Background(), transport.Peer{ID: "b", Addr: b.Addr()}, transport.KindCalls, []byte("hello"))
	if err != nil {
		panic(err)
	}
	fmt.Println(<-got)
	// Output: a says hello
}

// An in-memory network: partition two nodes, see Send fail, heal.
func ExampleMemNetwork() {
	nw := transport.NewMemNetwork()
	a, _ := nw.Join("a")
	b, _ := nw.Join("b")
	defer a.Close()
	defer b.Close()
	got := make(chan string, 1)
	b.Handle(transport.KindCalls, transport.HandlerFunc(func(from string, frame []byte) {
		got <- string(frame)
	}))
	ctx := context.Background()

	nw.Partition("a", "b")
	fmt.Println(a.Send(ctx, transport.Peer{ID: "b"}, transport.KindCalls, []byte("lost")))
	nw.Heal("a", "b")
	fmt.Println(a.Send(ctx, transport.Peer{ID: "b"}, transport.KindCalls, []byte("hello")), <-got)
	// Output:
	// transport: peer unreachable: "b" partitioned from "a"
	// <nil> hello
}
