package placement

import (
	"context"
	"sync"
)

// seqWindow numbers this node's writes for exactly-once retries and tracks
// which are still in flight. Each command carries its seq and the window's
// floor, the lowest seq whose propose has not returned; the state machine
// keeps every result at or above the floor it has seen (see session). A
// new seq waits while it would be sessionWindow or more above the floor,
// so the state machine's cap never drops a result this node may still ask
// for, however the batcher reorders the commands.
type seqWindow struct {
	mu    sync.Mutex
	last  uint64              // newest seq handed out
	floor uint64              // lowest seq not yet released; last+1 if none
	done  map[uint64]struct{} // released seqs above floor
	room  chan struct{}       // closed when floor rises, if someone waits
}

// acquire hands out the next seq and the floor to send with it, waiting
// for room in the window; it returns ctx's error or ErrClosed if they come
// first.
func (w *seqWindow) acquire(ctx context.Context, closed <-chan struct{}) (seq, floor uint64, err error) {
	w.mu.Lock()
	for {
		if w.floor == 0 {
			w.floor = w.last + 1
		}
		if w.last+1-w.floor < sessionWindow {
			break
		}
		if w.room == nil {
			w.room = make(chan struct{})
		}
		room := w.room
		w.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-closed:
			return 0, 0, ErrClosed
		}
		w.mu.Lock()
	}
	w.last++
	seq, floor = w.last, w.floor
	w.mu.Unlock()
	return seq, floor, nil
}

// release marks seq finished: its propose returned and will not retry it.
func (w *seqWindow) release(seq uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if seq != w.floor {
		if w.done == nil {
			w.done = make(map[uint64]struct{})
		}
		w.done[seq] = struct{}{}
		return
	}
	w.floor++
	for {
		if _, ok := w.done[w.floor]; !ok {
			break
		}
		delete(w.done, w.floor)
		w.floor++
	}
	if w.room != nil {
		close(w.room)
		w.room = nil
	}
}
