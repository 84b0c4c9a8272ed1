package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// sleeper is an actor whose calls take time, for the fault-isolation tests.
type sleeper struct {
	n       *atomic.Int64
	started chan struct{} // Hold reports its start
}

// Sleep takes d, or less if its ctx ends first.
func (s *sleeper) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Count counts one-way sends, slowly enough to fill a small mailbox.
func (s *sleeper) Count() {
	s.n.Add(1)
	for range 200 {
		_ = bytes.Repeat([]byte{1}, 64)
	}
}

func (s *sleeper) Total() int64      { return s.n.Load() }
func (s *sleeper) Blob(n int) []byte { return make([]byte, n) }
func (s *sleeper) Take(b []byte) int { return len(b) }
func (s *sleeper) Ping() string      { return "pong" }
func (s *sleeper) Hold(ctx context.Context) {
	s.started <- struct{}{}
	<-ctx.Done()
}

func newSleeperCluster(t *testing.T, n int, tweak func(*Config)) (*cluster, *atomic.Int64) {
	t.Helper()
	var count atomic.Int64
	started := make(chan struct{}, 64)
	c := newClusterOn(t, false, n, func(ts *Types, i int) {
		if _, err := Register(ts, "Sleeper", func() *sleeper { return &sleeper{n: &count, started: started} }); err != nil {
			t.Fatal(err)
		}
	}, tweak)
	sleeperStarted = started
	return c, &count
}

// sleeperStarted is the started channel of the last newSleeperCluster.
var sleeperStarted chan struct{}

// A caller that leaves with calls queued must not keep the actor busy for
// the callers that stay: its queued calls are dropped and its running call
// is cancelled as soon as the host learns it is gone.
func TestDepartedCallerFreesActor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := newSleeperCluster(t, 3, nil)
		ref := c.reg.place("s", "Sleeper", "n2", 1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		leaver := make([]*Call, 30)
		for i := range leaver {
			leaver[i] = c.nodes[0].Call(ctx, ref, "Sleep", CallOptions{}, 100*time.Millisecond)
		}
		synctest.Wait() // all 30 are queued or running on n2
		c.nodes[1].NodeFailed("n1")
		start := time.Now()
		if _, err := c.nodes[2].Call(ctx, ref, "Sleep", CallOptions{}, time.Millisecond).Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 150*time.Millisecond {
			t.Fatalf("a staying caller waited %v behind a departed one's queue (30 calls of 100ms)", d)
		}
		c.close()
		synctest.Wait()
	})
}

// gatedOwner says "not ready" for the actors in gated until open is closed.
type gatedOwner struct {
	fakeView
	gated map[string]bool
	open  chan struct{}
	waits atomic.Int64
}

func (g *gatedOwner) Owns(id string, epoch uint64) (string, error) {
	select {
	case <-g.open:
	default:
		if g.gated[id] {
			return "", fmt.Errorf("%s: no lease yet: %w", id, ErrNotReady)
		}
	}
	return g.fakeView.Owns(id, epoch)
}

func (g *gatedOwner) WaitOwns(ctx context.Context, id string, epoch uint64) (string, error) {
	g.waits.Add(1)
	select {
	case <-g.open:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return g.Owns(id, epoch)
}

// A request the host cannot serve yet is parked off the reader: later
// frames from the same peer, to other actors, go through at once, and the
// parked call is served as soon as the host is ready.
func TestNotReadyParksOffReader(t *testing.T) {
	var owner *gatedOwner
	c, _ := newSleeperCluster(t, 2, func(cfg *Config) {
		if cfg.Transport.ID() == "n2" {
			owner = &gatedOwner{fakeView: cfg.Owner.(fakeView), gated: map[string]bool{"slow": true}, open: make(chan struct{})}
			cfg.Owner = owner
		}
	})
	slow := c.reg.place("slow", "Sleeper", "n2", 1)
	fast := c.reg.place("fast", "Sleeper", "n2", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	parked := c.nodes[0].Call(ctx, slow, "Ping", CallOptions{})
	for i := range 20 {
		var got string
		if err := c.nodes[0].Call(ctx, fast, "Ping", CallOptions{}).Decode(ctx, &got); err != nil || got != "pong" {
			t.Fatalf("call %d to another actor behind a parked one: %q, %v", i, got, err)
		}
	}
	select {
	case <-parked.Done():
		t.Fatal("the parked call completed before its host was ready")
	default:
	}
	close(owner.open)
	var got string
	if err := parked.Decode(ctx, &got); err != nil || got != "pong" {
		t.Fatalf("parked call = %q, %v", got, err)
	}
	if owner.waits.Load() == 0 {
		t.Fatal("the host never waited for ownership")
	}
}

// A parked call whose deadline passes is answered with the typed deadline
// error and says it did not run.
func TestParkedCallDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := newSleeperCluster(t, 2, func(cfg *Config) {
			if cfg.Transport.ID() == "n2" {
				cfg.Owner = &gatedOwner{fakeView: cfg.Owner.(fakeView), gated: map[string]bool{"slow": true}, open: make(chan struct{})}
			}
		})
		slow := c.reg.place("slow", "Sleeper", "n2", 1)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := c.nodes[0].Call(ctx, slow, "Ping", CallOptions{}).Wait(context.Background())
		var re *Error
		if !errors.Is(err, ErrDeadline) || !errors.As(err, &re) {
			t.Fatalf("err = %v, want ErrDeadline", err)
		}
		c.close()
		synctest.Wait()
	})
}

// Limits are the same for a local actor as for a remote one, and a result
// over the limit is answered with an error instead of never.
func TestFrameLimitSymmetric(t *testing.T) {
	const limit = 64 << 10
	c, _ := newSleeperCluster(t, 2, func(cfg *Config) { cfg.MaxFrameSize = limit })
	ref := c.reg.place("s", "Sleeper", "n2", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, caller := range []int{0, 1} { // remote, local
		err := c.nodes[caller].Call(ctx, ref, "Take", CallOptions{}, make([]byte, 2*limit)).Decode(ctx, nil)
		if !errors.Is(err, ErrTooLarge) || !bytes.Contains([]byte(err.Error()), []byte(fmt.Sprint(limit))) {
			t.Fatalf("caller %d, argument over the limit: %v", caller, err)
		}
		err = c.nodes[caller].Tell(ctx, ref, "Take", make([]byte, 2*limit))
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("caller %d, one-way argument over the limit: %v", caller, err)
		}
		var b []byte
		err = c.nodes[caller].Call(ctx, ref, "Blob", CallOptions{}, 2*limit).Decode(ctx, &b)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("caller %d, result over the limit: %v", caller, err)
		}
		var n int
		if err := c.nodes[caller].Call(ctx, ref, "Take", CallOptions{}, make([]byte, limit/2)).Decode(ctx, &n); err != nil || n != limit/2 {
			t.Fatalf("caller %d, argument under the limit: %d, %v", caller, n, err)
		}
	}
}

// One-way sends that returned nil are delivered: a full mailbox slows the
// sender down instead of dropping them.
func TestTellFlowControl(t *testing.T) {
	c, count := newSleeperCluster(t, 2, func(cfg *Config) { cfg.MailboxSize = 4 })
	ref := c.reg.place("s", "Sleeper", "n2", 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 3000
	var wg sync.WaitGroup
	var failed atomic.Int64
	for _, caller := range []int{0, 1} { // remote and local senders at once
		wg.Go(func() {
			for range n {
				if err := c.nodes[caller].Tell(ctx, ref, "Count"); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d Tells failed", f)
	}
	// A call after the Tells of the same sender runs after them.
	var total int64
	if err := c.nodes[0].Call(ctx, ref, "Total", CallOptions{}).Decode(ctx, &total); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[1].Call(ctx, ref, "Total", CallOptions{}).Decode(ctx, &total); err != nil {
		t.Fatal(err)
	}
	if total != 2*n || count.Load() != 2*n {
		t.Fatalf("delivered %d (call saw %d) of %d one-way sends", count.Load(), total, 2*n)
	}
}

// A call whose host fails after the request left says that it may have
// run, and still matches ErrUnavailable.
func TestUnknownOutcome(t *testing.T) {
	c, _ := newSleeperCluster(t, 2, nil)
	ref := c.reg.place("s", "Sleeper", "n2", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	call := c.nodes[0].Call(ctx, ref, "Hold", CallOptions{})
	<-sleeperStarted // the request reached the host and runs
	c.nodes[0].NodeFailed("n2")
	_, err := call.Wait(ctx)
	var re *Error
	if !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, ErrUnavailable) || !errors.As(err, &re) || !re.MayHaveRun() {
		t.Fatalf("err = %v, want ErrUnknownOutcome that may have run", err)
	}
	// An error that certainly did not run says so.
	other := c.reg.place("t", "Sleeper", "n2", 1)
	_, err = c.nodes[0].Call(ctx, other, "Fly", CallOptions{}).Wait(ctx)
	if !errors.As(err, &re) || re.MayHaveRun() {
		t.Fatalf("unknown method: %v, MayHaveRun should be false", err)
	}
}

// A request that reaches a closed endpoint is answered ErrNotOwner, so its
// caller retries where the actor is placed next, instead of waiting for a
// reply that never comes.
func TestClosedEndpointAnswersNotOwner(t *testing.T) {
	c, _ := newSleeperCluster(t, 3, nil)
	ref := c.reg.place("s", "Sleeper", "n2", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.nodes[1].Close(); err != nil {
		t.Fatal(err)
	}
	call := c.nodes[0].Call(ctx, ref, "Ping", CallOptions{})
	c.reg.place("s", "Sleeper", "n3", 2)
	var got string
	if err := call.Decode(ctx, &got); err != nil || got != "pong" {
		t.Fatalf("call to a closed host's actor, moved meanwhile: %q, %v", got, err)
	}
}
