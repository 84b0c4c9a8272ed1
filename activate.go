package troupe

import (
	"sync"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/remote"
)

// activator activates the actors the registry (re-)places on this node,
// before any call: a queue drained by at most one goroutine, so a failover
// that moves 300 k actors here costs a queue of placements, not a
// goroutine each. An actor with a restart backoff waits on a timer (no
// goroutine either) before it joins the queue.
type activator struct {
	n *Node

	mu       sync.Mutex
	queue    []placement.Placement
	draining bool                     // a drain goroutine runs
	timers   map[*time.Timer]struct{} // backoffs pending
	closed   bool
}

// after activates p after d (zero: as soon as the queue reaches it).
func (a *activator) after(p placement.Placement, d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	if d <= 0 {
		a.pushLocked(p)
		return
	}
	if a.timers == nil {
		a.timers = make(map[*time.Timer]struct{})
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if _, live := a.timers[t]; !live {
			return
		}
		delete(a.timers, t)
		a.pushLocked(p)
	})
	a.timers[t] = struct{}{}
}

func (a *activator) pushLocked(p placement.Placement) {
	if a.closed {
		return
	}
	a.queue = append(a.queue, p)
	if !a.draining && a.n.goTracked(a.drain) {
		a.draining = true
	}
}

// drain activates the queued placements until the queue is empty.
func (a *activator) drain() {
	for {
		a.mu.Lock()
		if len(a.queue) == 0 || a.closed {
			a.queue, a.draining = nil, false
			a.mu.Unlock()
			return
		}
		batch := a.queue
		a.queue = nil
		a.mu.Unlock()
		for _, p := range batch {
			if a.n.ctx.Err() != nil {
				break
			}
			a.n.activateNow(p)
		}
	}
}

// close stops the pending backoff timers and drops the queue; the drain
// goroutine, if any, ends at its next look (Node.Close waits for it).
func (a *activator) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	for t := range a.timers {
		t.Stop()
	}
	a.timers, a.queue = nil, nil
}

// activateNow activates p if the registry still places it here at its
// epoch.
func (n *Node) activateNow(p placement.Placement) {
	if q, ok := n.reg.Lookup(p.ID); !ok || q.Epoch != p.Epoch || q.Node != n.id || q.State != placement.Active {
		return
	}
	if err := n.ep.Activate(remote.Ref{ID: p.ID, Type: p.Type, Node: n.id, Epoch: p.Epoch}); err != nil {
		n.log("activate", "actor", p.ID, "err", err)
	}
}
