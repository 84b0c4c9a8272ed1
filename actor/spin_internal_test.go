package actor

import (
	"testing"
	"testing/synctest"
)

// TestAdaptiveSpin follows one actor's idle worker through the spin
// policy: fruitless rounds while the count is low, none once spinGiveUp
// rounds in a row found nothing, a probe round every spinProbe idles, and
// a round that finds a message (sent here from the hook, in the yield)
// restoring spinning.
func TestAdaptiveSpin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var target *process
		spins := 0
		var onSpin func()
		spinHook = func(p *process) {
			if p != target {
				return
			}
			spins++
			if onSpin != nil {
				f := onSpin
				onSpin = nil
				f()
			}
		}
		defer func() { spinHook = nil }()

		s, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		handled := 0
		pid, err := s.Spawn(func() Actor {
			return ReceiveFunc(func(c *Context, msg any) {
				if _, ok := msg.(int); ok {
					handled++
				}
			})
		}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // Started ran: system messages only, no spinning
		target = pid.p
		miss := func() uint8 {
			target.mu.Lock()
			defer target.mu.Unlock()
			return target.spinMiss
		}
		// idle sends one message and waits for the worker to park again;
		// it returns the yields the worker made meanwhile.
		idle := func() int {
			t.Helper()
			spins = 0
			if err := s.Tell(pid, 1); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			return spins
		}
		if spins != 0 || miss() != 0 {
			t.Fatalf("after Started: %d yields, spinMiss %d; want none", spins, miss())
		}
		for i := range spinGiveUp {
			if n := idle(); n != idleSpins {
				t.Fatalf("idle %d: %d yields, want %d", i, n, idleSpins)
			}
		}
		if m := miss(); m != spinGiveUp {
			t.Fatalf("spinMiss %d after %d fruitless rounds", m, spinGiveUp)
		}
		for miss() < spinProbe {
			if n := idle(); n != 0 {
				t.Fatalf("spinMiss %d: %d yields after giving up", miss()-1, n)
			}
		}
		// The probe round: a message arrives during its first yield.
		onSpin = func() {
			if err := s.Tell(pid, 2); err != nil {
				t.Error(err)
			}
		}
		// One round finds the message, the next (after handling it) is
		// fruitless: 1 + idleSpins yields, and spinning is back.
		if n := idle(); n != 1+idleSpins {
			t.Fatalf("probe: %d yields, want %d", n, 1+idleSpins)
		}
		if m := miss(); m != 1 {
			t.Fatalf("spinMiss %d after a round that found a message and one that did not, want 1", m)
		}
		if n := idle(); n != idleSpins {
			t.Fatalf("after the hit: %d yields, want %d", n, idleSpins)
		}
		if want := spinGiveUp + (spinProbe - spinGiveUp) + 2 + 1; handled != want {
			t.Fatalf("handled %d messages, want %d", handled, want)
		}
	})
}
