package remote

import (
	"context"
	"sync"
)

// ctxWatches completes pending calls whose ctx ends before their reply
// comes (and sends the cancel frames): one context.AfterFunc per ctx, not
// per call. Calls are grouped by their ctx's Done channel, which is the
// same for every call made with one ctx (or with values derived from it by
// context.WithValue) and is closed when all of them end. A service that
// bounds a batch of calls, or a whole request, with one ctx thus registers
// with it once instead of once per call: per call, context.AfterFunc
// allocated three objects and locked the ctx's mutex twice, and with 64
// callers sharing one ctx that mutex was the most contended lock of the
// caller (77 % of the mutex profile of BenchmarkRemoteCall/deadline).
//
// A watch whose calls all completed stays registered for its next call,
// up to maxIdleWatches of them (the least recently idle one goes first),
// so a ctx used for one call after another does not register and stop an
// AfterFunc each time. An idle watch keeps its ctx reachable until it is
// evicted or the ctx ends.
type ctxWatches struct {
	mu   sync.Mutex
	by   map[<-chan struct{}]*ctxWatch
	idle []*ctxWatch // oldest first; each has no calls
}

// maxIdleWatches bounds the watches kept with no call: the ctxs a node
// reuses for call after call, few in practice.
const maxIdleWatches = 8

// ctxWatch is the AfterFunc of one ctx and the pending calls made with it.
type ctxWatch struct {
	done  <-chan struct{}
	calls []*Call // each with watch == this and its index in widx
	stop  func() bool
	idle  bool
}

// add watches c's ctx (which has a Done channel) for c. Called under c.mu.
func (ws *ctxWatches) add(e *Endpoint, c *Call) {
	done := c.ctx.Done()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.by == nil {
		ws.by = make(map[<-chan struct{}]*ctxWatch)
	}
	w := ws.by[done]
	if w == nil {
		w = &ctxWatch{done: done}
		ws.by[done] = w
		// Runs in a goroutine of its own once ctx ends, at once if it has.
		w.stop = context.AfterFunc(c.ctx, func() { ws.fire(e, w) })
	} else if w.idle {
		ws.unidle(w)
	}
	c.watch, c.widx = w, int32(len(w.calls))
	w.calls = append(w.calls, c)
}

// remove stops watching for c, if its watch has not fired. Called under
// c.mu, once c completed.
func (ws *ctxWatches) remove(c *Call) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w := c.watch
	if w == nil {
		return // fired: c is among the calls it completes
	}
	last := w.calls[len(w.calls)-1]
	w.calls[c.widx], last.widx = last, c.widx
	w.calls[len(w.calls)-1] = nil
	w.calls = w.calls[:len(w.calls)-1]
	c.watch = nil
	if len(w.calls) > 0 {
		return
	}
	if cap(w.calls) > 64 {
		w.calls = nil // a burst's slice is not kept
	}
	if len(ws.idle) == maxIdleWatches {
		old := ws.idle[0]
		ws.idle = append(ws.idle[:0], ws.idle[1:]...)
		old.idle = false
		delete(ws.by, old.done)
		old.stop()
	}
	w.idle = true
	ws.idle = append(ws.idle, w)
}

// unidle takes w, which has a call again, out of the idle list.
func (ws *ctxWatches) unidle(w *ctxWatch) {
	for i, x := range ws.idle {
		if x == w {
			ws.idle = append(ws.idle[:i], ws.idle[i+1:]...)
			break
		}
	}
	w.idle = false
}

// fire runs once w's ctx ended: it completes w's calls with the ctx's
// error and tells their hosts.
func (ws *ctxWatches) fire(e *Endpoint, w *ctxWatch) {
	ws.mu.Lock()
	if ws.by[w.done] == w {
		delete(ws.by, w.done)
	}
	if w.idle {
		ws.unidle(w)
	}
	calls := w.calls
	w.calls = nil
	for _, c := range calls {
		c.watch = nil
	}
	ws.mu.Unlock()
	// Every call completes before the first cancel leaves: a cancel that
	// ends a running method lets the next call queued on that actor run,
	// and if that call is one of these, its reply must not beat this loop
	// to it (it succeeded although its ctx had ended before it started).
	cancels := make([]callCancel, 0, len(calls))
	for _, c := range calls {
		if cc, ok := e.onCallCtxDone(c); ok {
			cancels = append(cancels, cc)
		}
	}
	e.sendCancels(cancels)
}

// close stops the idle watches (Endpoint.Close: no call is pending).
func (ws *ctxWatches) close() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, w := range ws.idle {
		w.idle = false
		delete(ws.by, w.done)
		w.stop()
	}
	ws.idle = nil
}
