package wirecheck

import (
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func benchValue(b *testing.B, v any, size int) {
	data, err := msgpack.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	if len(data) < size*9/10 || len(data) > size*11/10 {
		b.Fatalf("value is %d bytes, want about %d", len(data), size)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Value(data, MaxDepth); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data))*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
}

// BenchmarkValue32 validates a typical argument array: a ref-like tuple.
func BenchmarkValue32(b *testing.B) {
	benchValue(b, []any{"actor-17", "Counter", nil, 42, []any{5, true, 1.5}}, 32)
}

// BenchmarkValue4K validates a 4 KiB value of mixed small elements.
func BenchmarkValue4K(b *testing.B) {
	items := make([]any, 0, 330)
	for i := range 330 {
		items = append(items, map[string]any{"k": i, "s": strings.Repeat("x", i%8)})
	}
	benchValue(b, items, 4096)
}
