package troupe

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/remote"
)

// Pool is a set of workers of one registered type, spread over the nodes
// that host it, to which calls go by load: PoolCall sends each call to the
// worker with the fewest calls in flight from this Pool, and Map runs a
// method over a slice of inputs, bounded in flight, retrying elsewhere what
// certainly did not run. Workers are ordinary registered actors with an
// unlimited cluster restart policy: a worker whose node fails is restarted
// on another, and its Ref keeps working. A Pool is safe for concurrent use;
// its load figures are this process's only (another Pool over the same
// workers does not see them).
type Pool struct {
	node     *Node
	typ      string
	workers  []Ref
	inflight []atomic.Int64
	next     atomic.Uint64 // rotates the start of the least-busy scan
	closed   atomic.Bool
}

// PoolOption configures NewPool.
type PoolOption func(*poolOptions)

type poolOptions struct {
	size    int
	perNode int
	policy  RestartPolicy
}

// PoolSize makes a pool of n workers, spread round-robin over the nodes
// hosting the type. The default is one worker per hosting node.
func PoolSize(n int) PoolOption { return func(o *poolOptions) { o.size = n } }

// PoolPerNode makes a pool of n workers on each node hosting the type.
func PoolPerNode(n int) PoolOption { return func(o *poolOptions) { o.perNode = n } }

// PoolRestart sets the workers' cluster restart policy. The default
// restarts them without limit and without backoff.
func PoolRestart(p RestartPolicy) PoolOption { return func(o *poolOptions) { o.policy = p } }

// NewPool spawns the workers of a pool of typeName, spread over the alive
// members that host the type (as this node's replica sees them). It fails
// with ErrNoCandidate when none does, and stops the workers it spawned if
// a spawn fails.
func (n *Node) NewPool(ctx context.Context, typeName string, opts ...PoolOption) (*Pool, error) {
	o := poolOptions{policy: RestartPolicy{MaxRestarts: -1}}
	for _, f := range opts {
		f(&o)
	}
	if o.size < 0 || o.perNode < 0 {
		return nil, fmt.Errorf("troupe: pool of %q: negative size", typeName)
	}
	var hosts []string
	if n.cl != nil {
		if _, err := n.cl.Members(ctx); err != nil {
			return nil, fmt.Errorf("troupe: pool of %q: %w", typeName, err)
		}
	}
	for _, m := range n.memberList() {
		if m.Status == placement.Alive && slices.Contains(m.Types, typeName) {
			hosts = append(hosts, m.ID)
		}
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("troupe: pool of %q: %w", typeName, ErrNoCandidate)
	}
	size := len(hosts)
	switch {
	case o.size > 0:
		size = o.size
	case o.perNode > 0:
		size = o.perNode * len(hosts)
	}
	p := &Pool{node: n, typ: typeName, workers: make([]Ref, 0, size), inflight: make([]atomic.Int64, size)}
	for i := range size {
		r, err := n.Spawn(ctx, typeName, OnNode(hosts[i%len(hosts)]), WithRestart(o.policy))
		if err != nil {
			_ = p.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("troupe: pool of %q: worker %d of %d: %w", typeName, i+1, size, err)
		}
		p.workers = append(p.workers, r)
	}
	return p, nil
}

// Workers returns the pool's workers.
func (p *Pool) Workers() []Ref { return slices.Clone(p.workers) }

// Close stops the pool's workers for good. Calls through the pool fail
// afterwards with ErrNotFound.
func (p *Pool) Close(ctx context.Context) error {
	p.closed.Store(true)
	var errs []error
	for _, w := range p.workers {
		if err := p.node.StopActor(ctx, w); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pick returns the index of the worker with the fewest calls in flight
// from this pool, skipping avoid (when there is another), and counts one
// more call on it.
func (p *Pool) pick(avoid int) int {
	n := len(p.workers)
	start := int(p.next.Add(1) % uint64(n))
	best, bestLoad := -1, int64(0)
	for k := range n {
		i := (start + k) % n
		if i == avoid && n > 1 {
			continue
		}
		if l := p.inflight[i].Load(); best < 0 || l < bestLoad {
			best, bestLoad = i, l
		}
	}
	p.inflight[best].Add(1)
	return best
}

// PoolCall calls method with args on the least-busy worker of p.
func PoolCall[R any](ctx context.Context, p *Pool, method string, args ...any) *Future[R] {
	return poolCall[R](ctx, p, -1, method, args...)
}

func poolCall[R any](ctx context.Context, p *Pool, avoid int, method string, args ...any) *Future[R] {
	if p.closed.Load() {
		return &Future[R]{err: &Error{Code: remote.CodeNotFound, Message: "pool closed", Node: p.node.id, Method: method}}
	}
	i := p.pick(avoid)
	f := Call[R](ctx, p.workers[i], method, args...)
	f.OnDone(func() { p.inflight[i].Add(-1) })
	return f
}

// MapOption configures Map.
type MapOption func(*mapOptions)

type mapOptions struct {
	inFlight    int
	attempts    int
	idempotent  bool
	inFlightSet bool
}

// MaxInFlight bounds the calls Map has in flight at once. The default is
// 16 per worker.
func MaxInFlight(n int) MapOption {
	return func(o *mapOptions) { o.inFlight, o.inFlightSet = n, true }
}

// MaxAttempts bounds how often Map tries one input. The default is 4.
func MaxAttempts(n int) MapOption { return func(o *mapOptions) { o.attempts = n } }

// MapIdempotent declares the method safe to run twice for one input, so
// an item whose worker failed after the call left (ErrUnknownOutcome) is
// retried too. Without it such an item is reported as failed: Map never
// runs a method twice for an input on its own.
func MapIdempotent() MapOption { return func(o *mapOptions) { o.idempotent = true } }

// ItemError is the failure of one input of a Map.
type ItemError struct {
	Index    int // the input's position
	Attempts int // how many calls were made for it
	Err      error
}

func (e *ItemError) Error() string {
	return "item " + strconv.Itoa(e.Index) + ": " + e.Err.Error()
}

func (e *ItemError) Unwrap() error { return e.Err }

// MapError lists every input of a Map that failed, in input order.
type MapError struct {
	Items []*ItemError
	Total int // inputs in the Map
}

func (e *MapError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "troupe: map: %d of %d items failed", len(e.Items), e.Total)
	for i, it := range e.Items {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Items)-3)
			break
		}
		b.WriteString("; ")
		b.WriteString(it.Error())
	}
	return b.String()
}

// Unwrap returns the items' errors, so errors.Is and errors.As look at
// every one.
func (e *MapError) Unwrap() []error {
	errs := make([]error, len(e.Items))
	for i, it := range e.Items {
		errs[i] = it
	}
	return errs
}

// Map calls method on p's workers once per input (the input is the one
// argument) and returns the results in input order. At most MaxInFlight
// calls are in flight; each goes to the least-busy worker. An input whose
// call certainly did not run (a worker moving or restarting, a host
// unreachable before the send) is retried on another worker, up to
// MaxAttempts; one whose call may have run is retried only with
// MapIdempotent. A full mailbox (ErrBackpressure) is retried after a
// backoff (1 ms doubling to 100 ms, at most 20 times) without using an
// attempt. Map returns once every input succeeded or failed for good, with
// a *MapError listing every failure (results of failed inputs are zero),
// or when ctx ends, with ctx's error.
func Map[R, In any](ctx context.Context, p *Pool, method string, inputs []In, opts ...MapOption) ([]R, error) {
	o := mapOptions{attempts: 4}
	for _, f := range opts {
		f(&o)
	}
	if !o.inFlightSet {
		o.inFlight = 16 * len(p.workers)
	}
	if o.inFlight <= 0 || o.attempts <= 0 {
		return nil, errors.New("troupe: map: MaxInFlight and MaxAttempts must be positive")
	}
	type event struct {
		item int
		f    *Future[R] // nil: a backoff ended, send item again
	}
	results := make([]R, len(inputs))
	attempts := make([]int, len(inputs))
	full := make([]int, len(inputs)) // backpressure refusals
	lastWorker := make([]int, len(inputs))
	var failed []*ItemError
	// ch receives completions (from the futures' OnDone hooks) and ended
	// backoffs. Each item in flight or backing off holds one of the
	// inFlight slots and sends at most one event, so a sender never
	// blocks, even after Map returned.
	ch := make(chan event, o.inFlight)
	var again []int // items to send again, before new ones
	next, busy, finished := 0, 0, 0
	send := func(item int) {
		avoid := -1
		if attempts[item] > 1 { // a retry: counted before this send
			avoid = lastWorker[item]
		}
		i := p.pick(avoid)
		lastWorker[item] = i
		f := Call[R](ctx, p.workers[i], method, inputs[item])
		f.OnDone(func() {
			p.inflight[i].Add(-1)
			ch <- event{item: item, f: f}
		})
	}
	for finished < len(inputs) {
		for busy < o.inFlight && ctx.Err() == nil && (len(again) > 0 || next < len(inputs)) {
			var item int
			if len(again) > 0 {
				item, again = again[0], again[1:]
			} else {
				item, next = next, next+1
			}
			attempts[item]++
			busy++
			send(item)
		}
		var ev event
		select {
		case ev = <-ch:
		case <-ctx.Done():
			return results, ctxError(ctx, "", method)
		}
		busy--
		if ev.f == nil {
			attempts[ev.item]-- // a backoff: the refusal used no attempt
			again = append(again, ev.item)
			continue
		}
		v, err := ev.f.Await(ctx)
		if err == nil {
			results[ev.item] = v
			finished++
			continue
		}
		if errors.Is(err, ErrBackpressure) && full[ev.item] < 20 && ctx.Err() == nil {
			d := time.Millisecond << full[ev.item]
			full[ev.item]++
			busy++
			item := ev.item
			time.AfterFunc(min(d, 100*time.Millisecond), func() { ch <- event{item: item} })
			continue
		}
		if attempts[ev.item] < o.attempts && retriable(err, o.idempotent) && ctx.Err() == nil {
			again = append(again, ev.item)
			continue
		}
		failed = append(failed, &ItemError{Index: ev.item, Attempts: attempts[ev.item], Err: err})
		finished++
	}
	if len(failed) > 0 {
		slices.SortFunc(failed, func(a, b *ItemError) int { return a.Index - b.Index })
		return results, &MapError{Items: failed, Total: len(inputs)}
	}
	return results, nil
}

// retriable reports whether a failed call may be sent again: it certainly
// did not run and could succeed elsewhere or later, or it may have run and
// the method is idempotent.
func retriable(err error, idempotent bool) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case remote.CodeNotOwner, remote.CodeUnavailable, remote.CodeNotFound:
		return !e.MayHaveRun() || idempotent
	case remote.CodeUnknownOutcome:
		return idempotent
	}
	return false
}
