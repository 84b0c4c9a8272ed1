package remote

import (
	"math/bits"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Latency histograms: one per hosted (type, method), one per called (type,
// method, outcome), with a fixed bucket layout so that observing is an
// index computation and two atomic adds, with no lock and no allocation.
// They are read at gather time (Types.Stats, Endpoint.ClientStats).

// clockBase is the origin of monoNow.
var clockBase = time.Now()

// monoNow reads the monotonic clock, in nanoseconds since clockBase: 8
// bytes to keep per call rather than a time.Time's 24.
func monoNow() int64 { return int64(time.Since(clockBase)) }

// LatencyBuckets is the number of finite buckets of a latency Histogram.
const LatencyBuckets = 16

// latencyBase is the upper bound of the first bucket; bucket i holds the
// durations in (latencyBase·2^(i-1), latencyBase·2^i].
const latencyBase = 50 * time.Microsecond

// LatencyBounds returns the upper bounds of the finite buckets: 50µs
// doubling to 1.6384s.
func LatencyBounds() []time.Duration {
	b := make([]time.Duration, LatencyBuckets)
	for i := range b {
		b[i] = latencyBase << i
	}
	return b
}

// Histogram is a snapshot of a latency histogram.
type Histogram struct {
	// Counts[i] is the number of durations in bucket i (not cumulative):
	// at most LatencyBounds()[i] and over the bound before; the last
	// element counts those over every bound.
	Counts [LatencyBuckets + 1]uint64
	Sum    time.Duration
}

// Count is the number of durations observed.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// histogram is the live, lock-free form of a Histogram.
type histogram struct {
	counts [LatencyBuckets + 1]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

// bucketOf returns the bucket of d.
func bucketOf(d time.Duration) int {
	if d <= latencyBase {
		return 0
	}
	// The smallest i with d <= base·2^i: i = bit length of ceil(d/base)-1.
	i := bits.Len64(uint64((d - 1) / latencyBase))
	return min(i, LatencyBuckets)
}

func (h *histogram) observe(d time.Duration) {
	h.counts[bucketOf(d)].Add(1)
	h.sum.Add(int64(d))
}

func (h *histogram) snapshot() Histogram {
	var s Histogram
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
	}
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// ClientStats is what the calls this node made to one method came to, by
// outcome.
type ClientStats struct {
	Type, Method string
	Outcome      Code // CodeOK for success
	// Latency is from Call to the call's completion (the reply, a failure,
	// the caller's ctx), retries included.
	Latency Histogram
}

// clientKey names the histograms of the calls to one method of a type.
type clientKey struct{ typ, method string }

// clientHists holds a clientKey's histograms, one per outcome, each made
// on first use.
type clientHists struct {
	key clientKey
	by  [outcomeSlots]atomic.Pointer[histogram]
}

// clientCacheSlots is the size of Endpoint.clientCache.
const clientCacheSlots = 8

// clientCache holds recently used clientHists, in a slot picked by
// cacheSlot, so that a caller of one method a time finds its
// histograms with two string comparisons (equal strings of one origin
// compare by pointer) rather than hashing both names for the sync.Map.
type clientCache [clientCacheSlots]atomic.Pointer[clientHists]

// cacheSlot picks the clientCache slot of typ.method from its lengths and
// a few bytes: no hashing of whole names.
func cacheSlot(typ, method string) int {
	h := uint(len(typ))*7 + uint(len(method))*3
	if n := len(method); n > 0 {
		h += uint(method[0]) + uint(method[n-1])*5
	}
	return int(h % clientCacheSlots)
}

// observeCall records that a call to typ.method took d and ended with
// code.
func (e *Endpoint) observeCall(typ, method string, code Code, d time.Duration) {
	if int(code) >= outcomeSlots {
		code = CodeInternal
	}
	slot := &e.clientCache[cacheSlot(typ, method)]
	hs := slot.Load()
	if hs == nil || hs.key.method != method || hs.key.typ != typ {
		k := clientKey{typ, method}
		v, ok := e.clientLat.Load(k)
		if !ok {
			v, _ = e.clientLat.LoadOrStore(k, &clientHists{key: k})
		}
		hs = v.(*clientHists)
		slot.Store(hs)
	}
	h := hs.by[code].Load()
	if h == nil {
		hs.by[code].CompareAndSwap(nil, new(histogram))
		h = hs.by[code].Load()
	}
	h.observe(d)
}

// ClientStats returns the latency of the calls this node made so far, by
// type, method and outcome, sorted.
func (e *Endpoint) ClientStats() []ClientStats {
	var out []ClientStats
	e.clientLat.Range(func(k, v any) bool {
		key, hs := k.(clientKey), v.(*clientHists)
		for c := range hs.by {
			if h := hs.by[c].Load(); h != nil {
				out = append(out, ClientStats{Type: key.typ, Method: key.method, Outcome: Code(c), Latency: h.snapshot()})
			}
		}
		return true
	})
	slices.SortFunc(out, func(a, b ClientStats) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		if c := strings.Compare(a.Method, b.Method); c != 0 {
			return c
		}
		return int(a.Outcome) - int(b.Outcome)
	})
	return out
}

// OneWayStats counts this node's one-way requests.
type OneWayStats struct {
	// Sent counts the Tells this node made, by outcome: CodeOK when the
	// request was queued to its host (or handed to the local actor), else
	// the code of the error Tell returned.
	Sent map[Code]uint64
	// Dropped counts the one-way requests this node received that did not
	// reach their method, by reason (not owner, stopped actor, deadline,
	// ...). Those that did are counted, with their outcome, in
	// Types.Stats.
	Dropped map[Code]uint64
}

// oneWayCounters are the live counters of OneWayStats.
type oneWayCounters struct {
	sent, dropped [outcomeSlots]atomic.Uint64
}

func countCode(cs *[outcomeSlots]atomic.Uint64, c Code) {
	if int(c) >= outcomeSlots {
		c = CodeInternal
	}
	cs[c].Add(1)
}

// OneWayStats returns the one-way counts of this node so far.
func (e *Endpoint) OneWayStats() OneWayStats {
	read := func(cs *[outcomeSlots]atomic.Uint64) map[Code]uint64 {
		m := map[Code]uint64{}
		for c := range cs {
			if v := cs[c].Load(); v > 0 {
				m[Code(c)] = v
			}
		}
		return m
	}
	return OneWayStats{Sent: read(&e.oneWays.sent), Dropped: read(&e.oneWays.dropped)}
}
