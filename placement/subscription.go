package placement

import (
	"context"
	"sync"
)

// Subscription streams the registry's changes in log order. Events queue
// without bound until Next takes them, so a slow reader never stalls Raft;
// read promptly.
//
// The queue holds the applied entries' event slices themselves, shared by
// every subscription and never written after publish: a push costs one
// slice header, not a copy of ~350 B per event (a failover chunk
// publishes thousands), and a batch's memory goes once every
// subscription has read past it.
type Subscription struct {
	f       *fsm
	mu      sync.Mutex
	batches [][]Event     // pending, in log order; read-only
	head    int           // next in batches[0]
	notify  chan struct{} // 1-buffered: events or close
	closed  bool
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
	if !s.closed && len(evs) > 0 {
		s.batches = append(s.batches, evs)
	}
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
		if len(s.batches) > 0 {
			b := s.batches[0]
			e := b[s.head]
			if s.head++; s.head == len(b) {
				s.batches[0] = nil
				s.batches, s.head = s.batches[1:], 0
			}
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
	s.batches, s.head = nil, 0
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}
