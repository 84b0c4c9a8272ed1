package troupe

import (
	"context"
	"fmt"
	"sync"

	"github.com/troupe-dev/troupe/placement"
)

// EventKind says what happened to a watched actor.
type EventKind uint8

const (
	// Panicked: a method panicked on this node, which hosts the actor. The
	// local supervisor restarts it in place (fresh instance, same epoch)
	// within Config.Restart; past that budget a Restarted or Stopped event
	// from the registry follows. Only a watcher on the hosting node sees it.
	Panicked EventKind = iota + 1
	// Restarted: the registry restarted the actor (its node failed, or it
	// crashed past the local budget) with a new epoch, maybe on another
	// node; Ref is the new placement. The restart consumed its policy.
	Restarted
	// Moved: the registry re-placed the actor without a restart (its node
	// left gracefully); Ref is the new placement.
	Moved
	// Stopped: the actor stopped for good (policy spent, StopActor, or an
	// ephemeral actor past its local budget). It is the last event.
	Stopped
)

func (k EventKind) String() string {
	switch k {
	case Panicked:
		return "panicked"
	case Restarted:
		return "restarted"
	case Moved:
		return "moved"
	case Stopped:
		return "stopped"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// ActorEvent is one thing that happened to a watched actor.
type ActorEvent struct {
	Kind   EventKind
	Ref    Ref    // the actor, at its new placement for Restarted and Moved
	Reason string // why: the panic, the failure reported, the stop reason
}

// watcher queues events for one Watch channel; its pump goroutine, owned by
// the node, delivers them in order.
type watcher struct {
	mu     sync.Mutex
	queue  []ActorEvent
	wake   chan struct{} // buffered 1
	ch     chan ActorEvent
	closed bool
}

func (w *watcher) push(ev ActorEvent) {
	w.mu.Lock()
	if !w.closed {
		w.queue = append(w.queue, ev)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Watch reports what happens to the actor r names from now on: restarts,
// moves and its final stop (see EventKind). Events arrive in order on the
// returned channel, which is closed after Stopped, when ctx is done, or
// when the node closes. Read it promptly: events queue in memory until
// read. An actor already stopped yields Stopped at once.
func (n *Node) Watch(ctx context.Context, r Ref) (<-chan ActorEvent, error) {
	w := &watcher{wake: make(chan struct{}, 1), ch: make(chan ActorEvent)}
	n.watchMu.Lock()
	if n.watchers[r.ID] == nil {
		n.watchers[r.ID] = make(map[*watcher]struct{})
	}
	n.watchers[r.ID][w] = struct{}{}
	n.watchMu.Unlock()
	if !n.goTracked(func() { n.pump(ctx, r.ID, w) }) {
		n.unwatch(r.ID, w)
		return nil, ErrClosed
	}
	if isLocalID(r.ID) {
		if _, ok := n.locals.Load(r.ID); !ok && r.Node == n.id {
			w.push(ActorEvent{Kind: Stopped, Ref: r, Reason: "not running"})
		}
	} else if p, ok := n.dir.Lookup(r.ID); ok && p.State == placement.Stopped {
		w.push(ActorEvent{Kind: Stopped, Ref: n.refOf(p), Reason: p.Reason})
	}
	return w.ch, nil
}

// pump delivers w's events until Stopped, ctx or Close.
func (n *Node) pump(ctx context.Context, id string, w *watcher) {
	defer n.unwatch(id, w)
	defer close(w.ch)
	for {
		w.mu.Lock()
		var ev ActorEvent
		have := len(w.queue) > 0
		if have {
			ev = w.queue[0]
			w.queue = w.queue[1:]
		}
		w.mu.Unlock()
		if !have {
			select {
			case <-w.wake:
				continue
			case <-ctx.Done():
				return
			case <-n.ctx.Done():
				return
			}
		}
		select {
		case w.ch <- ev:
			if ev.Kind == Stopped {
				return
			}
		case <-ctx.Done():
			return
		case <-n.ctx.Done():
			return
		}
	}
}

func (n *Node) unwatch(id string, w *watcher) {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	n.watchMu.Lock()
	defer n.watchMu.Unlock()
	delete(n.watchers[id], w)
	if len(n.watchers[id]) == 0 {
		delete(n.watchers, id)
	}
}

// notify queues ev for every watcher of id. It never blocks.
func (n *Node) notify(id string, ev ActorEvent) {
	n.watchMu.Lock()
	defer n.watchMu.Unlock()
	for w := range n.watchers[id] {
		w.push(ev)
	}
}

// closeWatchers runs after every pump returned: nothing is left to close.
func (n *Node) closeWatchers() {
	n.watchMu.Lock()
	defer n.watchMu.Unlock()
	clear(n.watchers)
}
