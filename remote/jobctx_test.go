package remote

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestJobCtxDeadlineWithoutDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newJobCtx(context.Background(), time.Now().Add(time.Second))
		if err := c.Err(); err != nil {
			t.Fatalf("Err before the deadline: %v", err)
		}
		if dl, ok := c.Deadline(); !ok || !dl.Equal(time.Now().Add(time.Second)) {
			t.Fatalf("Deadline = %v, %v", dl, ok)
		}
		time.Sleep(time.Second)
		if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Err at the deadline: %v", err)
		}
		select {
		case <-c.Done():
		default:
			t.Fatal("Done asked after the end is not closed")
		}
	})
}

func TestJobCtxDoneClosesAtTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		c := newJobCtx(context.Background(), start.Add(50*time.Millisecond))
		<-c.Done()
		if waited := time.Since(start); waited != 50*time.Millisecond {
			t.Fatalf("Done closed after %v, want 50ms", waited)
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v", c.Err())
		}
	})
}

func TestJobCtxFollowsThePeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		peer, gone := context.WithCancel(context.Background())
		c := newJobCtx(peer, time.Time{})
		lazy := newJobCtx(peer, time.Time{})
		done := c.Done()
		gone()
		<-done
		if !errors.Is(c.Err(), context.Canceled) || !errors.Is(lazy.Err(), context.Canceled) {
			t.Fatalf("Err after the peer went: %v, %v", c.Err(), lazy.Err())
		}
	})
}

func TestJobCtxCancelReachesDerivedCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newJobCtx(context.Background(), time.Now().Add(time.Hour))
		child, stop := context.WithCancel(c)
		defer stop()
		grandchild, stop2 := context.WithTimeout(child, 2*time.Hour)
		defer stop2()
		c.cancel()
		<-grandchild.Done()
		if !errors.Is(grandchild.Err(), context.Canceled) {
			t.Fatalf("derived ctx: %v", grandchild.Err())
		}
		c.end(context.DeadlineExceeded) // ends once
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("Err changed after the end: %v", c.Err())
		}
	})
}

func TestJobCtxAfterFunc(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newJobCtx(context.Background(), time.Time{})
		ran := make(chan struct{})
		stop := context.AfterFunc(c, func() { close(ran) })
		kept := context.AfterFunc(c, func() { t.Error("a stopped AfterFunc ran") })
		if !kept() {
			t.Fatal("stop of a pending AfterFunc reported false")
		}
		c.cancel()
		<-ran
		if stop() {
			t.Fatal("stop after the callback ran reported true")
		}
		synctest.Wait()
	})
}

// Ending a jobCtx while another goroutine first asks for Done must close
// that channel whichever comes first (end takes no lock until Done armed).
func TestJobCtxEndRacesDone(t *testing.T) {
	for i := range 2000 {
		c := newJobCtx(context.Background(), time.Now().Add(time.Hour))
		var done <-chan struct{}
		var wg sync.WaitGroup
		wg.Go(func() { done = c.Done() })
		wg.Go(c.cancel)
		wg.Wait()
		select {
		case <-done:
		default:
			t.Fatalf("round %d: Done not closed after the ctx ended (Err %v)", i, c.Err())
		}
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("round %d: Err = %v", i, c.Err())
		}
	}
}
