package quicecho

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/troupe-dev/troupe/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func pair(t *testing.T, callers int) (*Server, *Client) {
	t.Helper()
	ca, err := transport.NewDevCA()
	if err != nil {
		t.Fatal(err)
	}
	sid, _ := ca.Issue("server", 0)
	cid, _ := ca.Issue("client", 0)
	s, err := Listen("127.0.0.1:0", sid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, s.Addr(), cid, callers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return s, c
}

func TestEchoAndSend(t *testing.T) {
	_, c := pair(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := make([]byte, 32)
	for range 100 {
		if err := c.Send(p); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if err := c.Call(ctx, i%2, p); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-c.replies[0]:
		t.Fatal("a one-way send was echoed")
	case <-c.replies[1]:
		t.Fatal("a one-way send was echoed")
	default:
	}
}

func TestRefusesClientOfAnotherCA(t *testing.T) {
	ca, _ := transport.NewDevCA()
	other, _ := transport.NewDevCA()
	sid, _ := ca.Issue("server", 0)
	cid, _ := other.Issue("client", 0)
	s, err := Listen("127.0.0.1:0", sid)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, s.Addr(), cid, 1)
	if err == nil {
		err = c.Call(ctx, 0, make([]byte, 8))
		c.Close()
	}
	if err == nil {
		t.Fatal("a client of another CA was served")
	}
}
