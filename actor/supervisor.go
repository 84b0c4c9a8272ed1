package actor

import (
	"fmt"
	"strconv"
	"time"
)

// Strategy chooses which children a supervisor's directive applies to.
type Strategy uint8

const (
	// OneForOne applies the directive to the failed child only.
	OneForOne Strategy = iota
	// AllForOne applies Restart and Stop to every child of the supervisor.
	AllForOne
	// RestForOne applies Restart and Stop to the failed child and to the
	// children spawned after it.
	RestForOne
)

// Directive is what a supervisor does about a failed child.
type Directive uint8

const (
	// Restart replaces the failed instance with a fresh one from its
	// Producer, keeping the PID and the queued messages, within the
	// supervisor's intensity; the failing message is not retried.
	Restart Directive = iota + 1
	// Resume keeps the instance and goes on with the next message.
	Resume
	// Stop stops the child; its watchers see the failure as the reason.
	Stop
	// Escalate fails the supervisor itself with an *EscalationError, for
	// its own supervisor to decide about.
	Escalate
)

// Decider maps a failure reason (often a *PanicError) to a Directive.
type Decider func(reason error) Directive

// Supervisor is how an actor (or the root, for top-level actors) handles
// the failures of its children. The zero value is valid: OneForOne, restart
// every failure, at most 3 restarts per child in 5s, no backoff.
type Supervisor struct {
	// Strategy picks the children a directive applies to. Zero means
	// OneForOne.
	Strategy Strategy
	// Decider decides about each failure. Nil means Restart always.
	Decider Decider
	// MaxRestarts is the restart intensity: at most this many restarts of
	// one child within Window; one more failure escalates instead. Zero
	// means 3; negative means unlimited.
	MaxRestarts int
	// Window is the intensity period. Zero means 5s.
	Window time.Duration
	// Backoff delays the first restart within Window; each further restart
	// doubles the delay, up to MaxBackoff. The delay runs on a timer; no
	// goroutine sleeps. Zero means restart at once.
	Backoff time.Duration
	// MaxBackoff caps the delay. Zero means 10s.
	MaxBackoff time.Duration
}

func (s *Supervisor) decide(reason error) Directive {
	if s.Decider == nil {
		return Restart
	}
	switch d := s.Decider(reason); d {
	case Restart, Resume, Stop, Escalate:
		return d
	default:
		return Escalate
	}
}

// admit records a restart of child by p and returns the backoff before it,
// or ok=false when the restart intensity is exhausted. It runs in p's
// worker, which owns p.ext.
func (s *Supervisor) admit(p, child *process, now time.Time) (delay time.Duration, ok bool) {
	max, window := s.MaxRestarts, s.Window
	if max == 0 {
		max = 3
	}
	if window <= 0 {
		window = 5 * time.Second
	}
	x := p.x()
	if x.restarts == nil {
		x.restarts = make(map[*process][]time.Time)
	}
	var keep []time.Time
	for _, t := range x.restarts[child] {
		if now.Sub(t) < window {
			keep = append(keep, t)
		}
	}
	if max > 0 && len(keep) >= max {
		x.restarts[child] = keep
		return 0, false
	}
	keep = append(keep, now)
	x.restarts[child] = keep
	if s.Backoff <= 0 {
		return 0, true
	}
	maxB := s.MaxBackoff
	if maxB <= 0 {
		maxB = 10 * time.Second
	}
	delay = s.Backoff
	for i := 1; i < len(keep) && delay < maxB; i++ {
		delay *= 2
	}
	return min(delay, maxB), true
}

// supervise runs in the parent's worker when child reports a failure.
func (p *process) supervise(c *Context, child *process, reason error) {
	if child.parent != p || p.finished {
		return
	}
	sup := p.sup
	if child.policy != nil {
		sup = child.policy
	}
	switch sup.decide(reason) {
	case Resume:
		child.sendSys(sysMsg{kind: sysResume})
	case Stop:
		for _, t := range p.affected(child, sup.Strategy) {
			t.sendSys(sysMsg{kind: sysStop, err: reason})
		}
	case Escalate:
		p.escalate(child, reason)
	default: // Restart
		delay, ok := sup.admit(p, child, time.Now())
		if !ok {
			p.escalate(child, fmt.Errorf("%w: %w", ErrRestartLimit, reason))
			return
		}
		targets := p.affected(child, sup.Strategy)
		restart := func() {
			for _, t := range targets {
				t.sendSys(sysMsg{kind: sysRestart})
			}
		}
		if delay == 0 {
			restart()
		} else {
			p.sys.after(delay, restart)
		}
	}
}

// affected lists the children a Restart or Stop applies to.
func (p *process) affected(child *process, st Strategy) []*process {
	switch st {
	case AllForOne:
		return p.children()
	case RestForOne:
		p.mu.Lock()
		defer p.mu.Unlock()
		var cs []*process
		for c := child; c != nil; c = c.next {
			cs = append(cs, c)
		}
		return cs
	default:
		return []*process{child}
	}
}

// escalate fails p because of child's failure. Past the root there is no
// one left to decide: the root stops the top-level actor whose failure
// escalated (with its subtree), its watchers see the reason, the failure is
// logged, and the rest of the system runs on.
func (p *process) escalate(child *process, reason error) {
	if p.isRoot() {
		p.sys.logFailure(child, "actor: failure escalated past the root; stopping the actor", reason)
		child.sendSys(sysMsg{kind: sysStop, err: reason})
		return
	}
	p.fail(&EscalationError{Child: PID{child}, Reason: reason})
}

func (s Strategy) String() string {
	switch s {
	case OneForOne:
		return "OneForOne"
	case AllForOne:
		return "AllForOne"
	case RestForOne:
		return "RestForOne"
	}
	return "Strategy(" + strconv.Itoa(int(s)) + ")"
}

func (d Directive) String() string {
	switch d {
	case Restart:
		return "Restart"
	case Resume:
		return "Resume"
	case Stop:
		return "Stop"
	case Escalate:
		return "Escalate"
	}
	return "Directive(" + strconv.Itoa(int(d)) + ")"
}
