package actor_test

import (
	"context"
	"testing"

	"github.com/troupe-dev/troupe/actor"
)

// TestHandledMessagesFreeTheirSlots: a sender that waits for the reply to
// its last message finds the room of the messages before it given back,
// except for fewer than 160 of them (the worker gives slots back every 128
// handled messages, at a segment's end), even while the worker is still
// inside the batch that held them. Flow control by windows (send N, wait
// for one reply, send N more) relies on it.
func TestHandledMessagesFreeTheirSlots(t *testing.T) {
	const size, tells, lag = 512, 400, 160
	s := newSystem(t, actor.Config{})
	gate := make(chan struct{})   // holds the first message
	inside := make(chan struct{}) // holds the sync message after its reply
	// Let the actor go before the system closes, also when the test fails.
	t.Cleanup(func() { close(inside) })
	pid := spawn(t, s, func(c *actor.Context, msg any) {
		switch msg {
		case "hold":
			<-gate
		case "sync":
			c.Respond(true)
			<-inside
		}
	}, actor.Options{MailboxSize: size})
	if err := s.Tell(pid, "hold"); err != nil {
		t.Fatal(err)
	}
	// While the actor holds, queue tells+1 messages: one batch for the
	// worker once it is let go.
	for i := range tells {
		if err := s.Tell(pid, i); err != nil {
			t.Fatalf("Tell %d: %v", i, err)
		}
	}
	sync := actor.Ask[bool](context.Background(), pid, "sync")
	close(gate)
	if _, err := sync.Await(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The worker is inside the sync message, in a batch of 402 (the hold
	// message may be in it). Fewer than lag of it still count.
	for i := range size - lag {
		if err := s.Tell(pid, i); err != nil {
			t.Fatalf("Tell %d after the reply: %v (handled messages still count)", i, err)
		}
	}
}
