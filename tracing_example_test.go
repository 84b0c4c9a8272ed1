package troupe_test

import (
	"context"
	"fmt"
	"log"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/troupe-dev/troupe"
)

// Plugging in the OpenTelemetry SDK: the node records a span per call on
// each side. A real program exports them with an OTLP exporter and a
// batcher (docs/operations.md, "Tracing"); this one keeps them in memory.
func ExampleConfig_tracerProvider() {
	ctx := context.Background()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSyncer(exp), // a real program: sdktrace.WithBatcher(exp)
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "greeter"))),
	)
	defer tp.Shutdown(ctx) // after node.Close: flushes the last spans

	node, err := troupe.Start(ctx, troupe.Config{TracerProvider: tp})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	if err := troupe.Register(node, "Greeter", func() *Greeter { return &Greeter{} }); err != nil {
		log.Fatal(err)
	}
	ref, err := node.Spawn(ctx, "Greeter")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := troupe.Call[string](ctx, ref, "Greet", "ada").Await(ctx); err != nil {
		log.Fatal(err)
	}
	var spans []string
	for _, s := range exp.GetSpans() {
		spans = append(spans, s.Name+" "+s.SpanKind.String())
	}
	slices.Sort(spans)
	for _, s := range spans {
		fmt.Println(s)
	}
	// Output:
	// Greeter/Greet client
	// Greeter/Greet server
}
