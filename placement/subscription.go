package placement

import (
	"context"
	"sync"
)

// Subscription streams the registry's changes in log order. Events queue
// without bound until Next takes them, so a slow reader never stalls Raft;
// read promptly.
type Subscription struct {
	f      *fsm
	mu     sync.Mutex
	queue  []Event
	notify chan struct{} // 1-buffered: events or close
	closed bool
}

func (f *fsm) subscribe() *Subscription {
	s := &Subscription{f: f, notify: make(chan struct{}, 1)}
	f.subMu.Lock()
	f.subs[s] = struct{}{}
	f.subMu.Unlock()
	return s
}

func (s *Subscription) push(evs []Event) {
	s.mu.Lock()
	s.queue = append(s.queue, evs...)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Next returns the next event, waiting for one until ctx is done or the
// subscription or registry is closed (ErrClosed).
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			e := s.queue[0]
			s.queue[0] = Event{}
			s.queue = s.queue[1:]
			s.mu.Unlock()
			return e, nil
		}
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return Event{}, ErrClosed
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Close ends the subscription; a blocked Next returns ErrClosed.
func (s *Subscription) Close() {
	s.f.subMu.Lock()
	delete(s.f.subs, s)
	s.f.subMu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.queue = nil
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}
