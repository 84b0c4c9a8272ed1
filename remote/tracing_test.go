package remote

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/troupe-dev/troupe/transport"
)

// TestWireTraceField checks the frames an Endpoint sends: without a
// TracerProvider a request carries no trace field (10 elements, as
// before), even when the caller's ctx carries a span; with one, a call and
// a one-way send carry the context of their caller-side span.
func TestWireTraceField(t *testing.T) {
	callerSpan := trace.ContextWithSpanContext(context.Background(), testTrace.spanContext())
	for _, traced := range []bool{false, true} {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		c, _ := newWorkerCluster(t, 1, func(cfg *Config) {
			if traced {
				cfg.TracerProvider = tp
			}
		})
		spy, err := c.net.Join("spy")
		if err != nil {
			t.Fatal(err)
		}
		frames := make(chan []byte, 4)
		spy.Handle(transport.KindCalls, transport.HandlerFunc(func(from string, f []byte) { frames <- f }))
		oneWays := make(chan []byte, 4)
		spy.Handle(transport.KindOneWay, transport.HandlerFunc(func(from string, f []byte) { oneWays <- f }))
		ref := Ref{ID: "x", Type: "Worker", Node: "spy", Epoch: 1}
		ctx, cancel := context.WithCancel(callerSpan)
		call := c.nodes[0].Call(ctx, ref, "Add", CallOptions{}, 1)
		if err := c.nodes[0].Tell(callerSpan, ref, "Add", 2); err != nil {
			t.Fatal(err)
		}
		for _, ch := range []chan []byte{frames, oneWays} {
			frame := <-ch
			var env Envelope
			if err := DecodeEnvelope(frame, &env); err != nil {
				t.Fatal(err)
			}
			tc := env.Request.Trace
			switch {
			case !traced && (frame[0] != 0x9a || tc != nil):
				t.Fatalf("untraced endpoint sent % x", frame[:2])
			case traced && (frame[0] != 0x9b || tc == nil || tc.TraceID != testTrace.TraceID || tc.SpanID == testTrace.SpanID || tc.Flags != testTrace.Flags):
				t.Fatalf("traced endpoint sent trace %+v, want a child of %+v", tc, testTrace)
			}
		}
		cancel()
		<-call.Done()
		want := 0
		if traced {
			want = 2 // the call's Client span and the send's Producer span
		}
		if got := len(rec.Ended()); got != want {
			t.Fatalf("traced %v: %d spans, want %d", traced, got, want)
		}
		c.close()
		spy.Close()
		_ = tp.Shutdown(context.Background())
	}
}
