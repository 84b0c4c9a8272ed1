package troupe

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// Probe reports the span its method's ctx carries.
type Probe struct{}

// Span returns the trace and span id of ctx's span, "" when it has none.
func (Probe) Span(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String() + "/" + sc.SpanID().String()
}

// Via calls Span on other, through the ctx's node.
func (Probe) Via(ctx context.Context, other Ref) (string, error) {
	return Call[string](ctx, other, "Span").Await(ctx)
}

// FailVia calls Fail on the Counter other names.
func (Probe) FailVia(ctx context.Context, other Ref) error {
	_, err := Call[struct{}](ctx, other, "Fail", "no").Await(ctx)
	return err
}

// tracedCluster starts n nodes sharing one tracer provider whose spans rec
// records, with Probe registered beside Counter.
func tracedCluster(t *testing.T, n int, traced bool) (*testCluster, *tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	c := newTestCluster(t, false, n, func(cfg *Config) {
		if traced {
			cfg.TracerProvider = tp
		}
	})
	for _, nd := range c.nodes {
		if err := Register(nd, "Probe", func() *Probe { return &Probe{} }); err != nil {
			t.Fatal(err)
		}
	}
	return c, rec, tp
}

func attrs(kvs []attribute.KeyValue) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.String()
	}
	return m
}

// TestTracePropagatesAcrossThreeNodes: a caller on n1 calls an actor on n2
// whose method calls an actor on n3; the five spans (the caller's own, a
// client and a server span per hop) form one trace, each the child of the
// one before, and each method's ctx carries its server span.
func TestTracePropagatesAcrossThreeNodes(t *testing.T) {
	c, rec, tp := tracedCluster(t, 3, true)
	ctx := ctxT(t)
	n1 := c.nodes[0]
	b := must[Ref](t)(n1.Spawn(ctx, "Probe", WithName("b"), OnNode("n2")))
	cc := must[Ref](t)(n1.Spawn(ctx, "Probe", WithName("c"), OnNode("n3")))
	rec.Reset()

	rctx, root := tp.Tracer("test").Start(ctx, "root")
	got := must[string](t)(Call[string](rctx, b, "Via", cc).Await(rctx))
	root.End()

	spans := rec.Ended()
	if len(spans) != 5 {
		for _, s := range spans {
			t.Logf("%s %s parent %s", s.Name(), s.SpanContext().SpanID(), s.Parent().SpanID())
		}
		t.Fatalf("%d spans, want 5", len(spans))
	}
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if s.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Errorf("span %s is in trace %s, want %s", s.Name(), s.SpanContext().TraceID(), root.SpanContext().TraceID())
		}
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	pick := func(name string, kind trace.SpanKind) sdktrace.ReadOnlySpan {
		t.Helper()
		for _, s := range byName[name] {
			if s.SpanKind() == kind {
				return s
			}
		}
		t.Fatalf("no %s span %q", kind, name)
		return nil
	}
	viaClient, viaServer := pick("Probe/Via", trace.SpanKindClient), pick("Probe/Via", trace.SpanKindServer)
	spanClient, spanServer := pick("Probe/Span", trace.SpanKindClient), pick("Probe/Span", trace.SpanKindServer)
	for _, link := range []struct {
		child, parent trace.SpanContext
		remote        bool
	}{
		{viaClient.Parent(), root.SpanContext(), false},
		{viaServer.Parent(), viaClient.SpanContext(), true},
		{spanClient.Parent(), viaServer.SpanContext(), false},
		{spanServer.Parent(), spanClient.SpanContext(), true},
	} {
		if link.child.SpanID() != link.parent.SpanID() || link.child.IsRemote() != link.remote {
			t.Errorf("parent %s (remote %v), want %s (remote %v)", link.child.SpanID(), link.child.IsRemote(), link.parent.SpanID(), link.remote)
		}
	}
	// The method on n3 ran in its server span.
	if want := spanServer.SpanContext().TraceID().String() + "/" + spanServer.SpanContext().SpanID().String(); got != want {
		t.Errorf("the method's ctx carries span %s, want its server span %s", got, want)
	}
	for _, tc := range []struct {
		s                     sdktrace.ReadOnlySpan
		method, actor, node   string
		peer                  string
		wantPeer, wantService bool
	}{
		{viaClient, "Via", "b", "n1", "n2", true, true},
		{viaServer, "Via", "b", "n2", "n1", true, true},
		{spanClient, "Span", "c", "n2", "n3", true, true},
		{spanServer, "Span", "c", "n3", "n2", true, true},
	} {
		a := attrs(tc.s.Attributes())
		want := map[attribute.Key]string{"rpc.system": "troupe", "rpc.service": "Probe", "rpc.method": tc.method,
			"troupe.actor.id": tc.actor, "troupe.node.id": tc.node, "troupe.peer.node.id": tc.peer, "troupe.outcome": "ok"}
		for k, v := range want {
			if a[k] != v {
				t.Errorf("%s %s: %s = %q, want %q", tc.s.SpanKind(), tc.s.Name(), k, a[k], v)
			}
		}
		if tc.s.Status().Code != codes.Unset {
			t.Errorf("%s %s: status %v", tc.s.SpanKind(), tc.s.Name(), tc.s.Status())
		}
	}
}

// TestTraceRecordsFailure: a method's error is the outcome of both spans
// of its call, and of the caller's span when it passes the error on.
func TestTraceRecordsFailure(t *testing.T) {
	c, rec, _ := tracedCluster(t, 3, true)
	ctx := ctxT(t)
	n1 := c.nodes[0]
	b := must[Ref](t)(n1.Spawn(ctx, "Probe", WithName("b"), OnNode("n2")))
	cc := must[Ref](t)(n1.Spawn(ctx, "Counter", WithName("c"), OnNode("n3")))
	rec.Reset()
	_, err := Call[struct{}](ctx, b, "FailVia", cc).Await(ctx)
	if !errors.Is(err, ErrApplication) {
		t.Fatalf("FailVia: %v", err)
	}
	spans := rec.Ended()
	if len(spans) != 4 {
		t.Fatalf("%d spans, want 4", len(spans))
	}
	for _, s := range spans {
		a := attrs(s.Attributes())
		if a["troupe.outcome"] != "application" || a["error.type"] != "application" || s.Status().Code != codes.Error {
			t.Errorf("%s %s: outcome %q, error.type %q, status %v", s.SpanKind(), s.Name(), a["troupe.outcome"], a["error.type"], s.Status())
		}
		if s.SpanContext().TraceID() != spans[0].SpanContext().TraceID() {
			t.Errorf("%s %s in another trace", s.SpanKind(), s.Name())
		}
	}
}

// TestTraceOneWay: a Tell gets a Producer span on the caller and a Consumer
// span on the host, its child.
func TestTraceOneWay(t *testing.T) {
	c, rec, _ := tracedCluster(t, 2, true)
	ctx := ctxT(t)
	n1 := c.nodes[0]
	a := must[Ref](t)(n1.Spawn(ctx, "Counter", WithName("a"), OnNode("n2")))
	rec.Reset()
	if err := Tell(ctx, a, "Add", 2); err != nil {
		t.Fatal(err)
	}
	// The call runs after the Tell on the same actor, which ended its span
	// before the actor took the call.
	if v := must[int](t)(Call[int](ctx, a, "Get").Await(ctx)); v != 2 {
		t.Fatalf("Get = %d", v)
	}
	var producer, consumer sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.SpanKind() {
		case trace.SpanKindProducer:
			producer = s
		case trace.SpanKindConsumer:
			consumer = s
		}
	}
	if producer == nil || consumer == nil {
		t.Fatalf("producer %v, consumer %v", producer, consumer)
	}
	if consumer.Parent().SpanID() != producer.SpanContext().SpanID() || producer.Name() != "Counter/Add" || consumer.Name() != "Counter/Add" {
		t.Fatalf("consumer %s parent %s, producer %s %s", consumer.Name(), consumer.Parent().SpanID(), producer.Name(), producer.SpanContext().SpanID())
	}
	if a := attrs(consumer.Attributes()); a["troupe.outcome"] != "ok" || a["troupe.node.id"] != "n2" {
		t.Fatalf("consumer attributes %v", a)
	}
}

// TestNoSpansWithoutProvider: nodes without a TracerProvider record
// nothing and pass nothing on, even when the caller's ctx carries a span
// of another provider: the methods see no span.
func TestNoSpansWithoutProvider(t *testing.T) {
	c, rec, tp := tracedCluster(t, 3, false)
	ctx := ctxT(t)
	n1 := c.nodes[0]
	b := must[Ref](t)(n1.Spawn(ctx, "Probe", WithName("b"), OnNode("n2")))
	cc := must[Ref](t)(n1.Spawn(ctx, "Probe", WithName("c"), OnNode("n3")))
	rctx, root := tp.Tracer("test").Start(ctx, "root")
	got := must[string](t)(Call[string](rctx, b, "Via", cc).Await(rctx))
	root.End()
	if got != "" {
		t.Fatalf("the method's ctx carries span %s", got)
	}
	if spans := rec.Ended(); len(spans) != 1 || spans[0].Name() != "root" {
		t.Fatalf("%d spans recorded, want the caller's own", len(spans))
	}
}

// benchProviders are the tracer providers of the tracing benchmarks: the
// SDK sampling nothing (spans are made, not recorded; the context still
// travels), and sampling everything into a synchronous processor whose
// exporter drops the spans (a lower bound of a real exporter's cost).
func benchProviders(b *testing.B) map[string]*sdktrace.TracerProvider {
	ps := map[string]*sdktrace.TracerProvider{
		"never":  sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())),
		"always": sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(tracetest.NewNoopExporter()))),
	}
	b.Cleanup(func() {
		for _, tp := range ps {
			_ = tp.Shutdown(context.Background())
		}
	})
	return ps
}

// BenchmarkTracedCall is BenchmarkRemoteCall (inflight=1) and
// BenchmarkLocalCall with a TracerProvider on both nodes.
func BenchmarkTracedCall(b *testing.B) {
	for _, sampler := range []string{"never", "always"} {
		for _, where := range []string{"remote", "local"} {
			b.Run(sampler+"/"+where, func(b *testing.B) {
				tp := benchProviders(b)[sampler]
				nodes := tracedBenchNodes(b, 2, tp)
				ctx := context.Background()
				opt := OnNode(nodes[1].ID())
				if where == "local" {
					opt = Local()
				}
				r, err := nodes[0].Spawn(ctx, "Sink", opt)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Call[int](ctx, r, "Count").Await(ctx); err != nil { // activate, connect
					b.Fatal(err)
				}
				roundTrips(b, 1, func(int) error {
					_, err := Call[int](ctx, r, "Take", payload).Await(ctx)
					return err
				})
			})
		}
	}
}

// tracedBenchNodes is benchNodes with tp on every node.
func tracedBenchNodes(b *testing.B, n int, tp *sdktrace.TracerProvider) []*Node {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var nodes []*Node
	b.Cleanup(func() {
		for _, nd := range nodes {
			nd.Close()
		}
	})
	for i := range n {
		cfg := Config{Name: fmt.Sprintf("b%d", i+1), FailTimeout: 5 * time.Second, TracerProvider: tp}
		if i > 0 {
			cfg.Join = []string{nodes[0].Addr()}
		}
		nd, err := Start(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, nd)
		if err := Register(nd, "Sink", func() *Sink { return &Sink{} }); err != nil {
			b.Fatal(err)
		}
	}
	return nodes
}
