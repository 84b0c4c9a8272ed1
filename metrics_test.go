package troupe

import (
	"errors"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// family gathers n's metrics and returns the metrics of family name whose
// labels include want.
func family(t *testing.T, n *Node, name string, want map[string]string) []*dto.Metric {
	t.Helper()
	mfs, err := n.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []*dto.Metric
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue metrics
				}
			}
			out = append(out, m)
		}
	}
	return out
}

// histogramCount returns the count of the one histogram of family name
// with labels want, checking that its buckets are cumulative and end at
// that count.
func histogramCount(t *testing.T, n *Node, name string, want map[string]string) uint64 {
	t.Helper()
	ms := family(t, n, name, want)
	if len(ms) != 1 {
		t.Fatalf("%s on %s: %d histograms with %v, want 1", name, n.ID(), len(ms), want)
	}
	h := ms[0].GetHistogram()
	if h == nil {
		t.Fatalf("%s is not a histogram", name)
	}
	prev := uint64(0)
	for _, b := range h.GetBucket() {
		if b.GetCumulativeCount() < prev || b.GetCumulativeCount() > h.GetSampleCount() {
			t.Fatalf("%s: bucket le=%v holds %d after %d, of %d", name, b.GetUpperBound(), b.GetCumulativeCount(), prev, h.GetSampleCount())
		}
		prev = b.GetCumulativeCount()
	}
	if len(h.GetBucket()) != 16 || h.GetBucket()[0].GetUpperBound() != 50e-6 {
		t.Fatalf("%s: %d buckets from %v", name, len(h.GetBucket()), h.GetBucket()[0].GetUpperBound())
	}
	if h.GetSampleCount() > 0 && h.GetSampleSum() <= 0 {
		t.Fatalf("%s: sum %v for %d calls", name, h.GetSampleSum(), h.GetSampleCount())
	}
	return h.GetSampleCount()
}

func counterValue(t *testing.T, n *Node, name string, want map[string]string) float64 {
	t.Helper()
	ms := family(t, n, name, want)
	if len(ms) != 1 {
		t.Fatalf("%s on %s: %d counters with %v, want 1", name, n.ID(), len(ms), want)
	}
	return ms[0].GetCounter().GetValue()
}

// TestLatencyHistograms: the host's and the caller's histograms count the
// calls made, by type and method (and outcome on the caller), and the
// one-way counters count the sends and the drops.
func TestLatencyHistograms(t *testing.T) {
	c := newTestCluster(t, false, 2, nil)
	ctx := ctxT(t)
	n1, n2 := c.nodes[0], c.nodes[1]
	a := must[Ref](t)(n1.Spawn(ctx, "Counter", WithName("a"), OnNode("n2")))
	for range 3 {
		must[int](t)(Call[int](ctx, a, "Add", 1).Await(ctx))
	}
	if _, err := Call[struct{}](ctx, a, "Fail", "no").Await(ctx); !errors.Is(err, ErrApplication) {
		t.Fatalf("Fail: %v", err)
	}
	for range 2 {
		if err := Tell(ctx, a, "Add", 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := Tell(ctx, a, "NoSuchMethod"); err != nil {
		t.Fatal(err)
	}
	// The call runs after the three Tells, on the same actor.
	if v := must[int](t)(Call[int](ctx, a, "Get").Await(ctx)); v != 5 {
		t.Fatalf("Get = %d, want 5", v)
	}

	counter := map[string]string{"type": "Counter"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range counter {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	// Host side (n2): three calls and two one-way sends reached Add.
	for _, tc := range []struct {
		method string
		want   uint64
	}{{"Add", 5}, {"Fail", 1}, {"Get", 1}} {
		if got := histogramCount(t, n2, "troupe_call_duration_seconds", with("method", tc.method)); got != tc.want {
			t.Errorf("n2 troupe_call_duration_seconds{method=%q} count %d, want %d", tc.method, got, tc.want)
		}
	}
	if ms := family(t, n1, "troupe_call_duration_seconds", nil); len(ms) != 0 {
		t.Errorf("n1 hosts nothing but has %d host histograms", len(ms))
	}
	// Caller side (n1), by outcome.
	for _, tc := range []struct {
		method, outcome string
		want            uint64
	}{{"Add", "ok", 3}, {"Fail", "application", 1}, {"Get", "ok", 1}} {
		if got := histogramCount(t, n1, "troupe_client_call_duration_seconds", with("method", tc.method, "outcome", tc.outcome)); got != tc.want {
			t.Errorf("n1 troupe_client_call_duration_seconds{method=%q,outcome=%q} count %d, want %d", tc.method, tc.outcome, got, tc.want)
		}
	}
	if ms := family(t, n2, "troupe_client_call_duration_seconds", with("method", "Add")); len(ms) != 0 {
		t.Errorf("n2 made no call to Add but has %d caller histograms", len(ms))
	}
	if got := counterValue(t, n1, "troupe_oneway_sent_total", map[string]string{"outcome": "ok"}); got != 3 {
		t.Errorf("n1 troupe_oneway_sent_total{outcome=ok} = %v, want 3", got)
	}
	if got := counterValue(t, n2, "troupe_oneway_dropped_total", map[string]string{"reason": "unknown_method"}); got != 1 {
		t.Errorf("n2 troupe_oneway_dropped_total{reason=unknown_method} = %v, want 1", got)
	}
	if got := counterValue(t, n2, "troupe_calls_total", with("method", "Add", "outcome", "ok")); got != 5 {
		t.Errorf("n2 troupe_calls_total{method=Add,outcome=ok} = %v, want 5", got)
	}
}

// TestTransportConnectionMetrics: over QUIC, the connections and open
// streams to each peer are gauges.
func TestTransportConnectionMetrics(t *testing.T) {
	c := newTestCluster(t, true, 2, nil)
	ctx := ctxT(t)
	ref := must[Ref](t)(c.nodes[0].Spawn(ctx, "Counter", OnNode("n2")))
	must[int](t)(Call[int](ctx, ref, "Add", 1).Await(ctx))
	fams, err := c.nodes[0].Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if n := f.GetName(); n == "troupe_transport_connections" || n == "troupe_transport_streams" {
			for _, m := range f.GetMetric() {
				if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == "n2" {
					got[n] = m.GetGauge().GetValue()
				}
			}
		}
	}
	// One connection; at least the calls stream n1 opened, and Raft's and
	// the control stream.
	if got["troupe_transport_connections"] != 1 || got["troupe_transport_streams"] < 2 {
		t.Fatalf("gauges for n2: %v", got)
	}
}
