package wirecheck

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestValueAccepts(t *testing.T) {
	for _, v := range []any{
		nil, true, false, 0, 1, -1, -33, 127, 128, 1 << 20, -1 << 40, uint64(1) << 63,
		float32(1.5), 2.5, "", "s", strings.Repeat("x", 31), strings.Repeat("x", 300), strings.Repeat("x", 70000),
		[]byte{}, []byte{1, 2}, make([]byte, 300), make([]byte, 70000),
		[]any{}, []any{1, "a", nil}, make([]int, 20), make([]int, 70000),
		map[string]any{}, map[string]any{"a": 1, "b": []any{map[string]any{"c": nil}}},
		map[int]int{1: 2, 3: 4, 5: 6, 7: 8, 9: 10, 11: 12, 13: 14, 15: 16, 17: 18, 19: 20, 21: 22, 23: 24, 25: 26, 27: 28, 29: 30, 31: 32, 33: 34},
	} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		n, err := Value(append(b, 0xc1, 0xff), MaxDepth) // trailing bytes are not examined
		if err != nil || n != len(b) {
			t.Errorf("%T %.40v: Value = %d, %v; want %d, nil", v, v, n, err, len(b))
		}
	}
	// ext and fixext, including the timestamp.
	for _, b := range [][]byte{
		{0xd4, 1, 0}, {0xd5, 1, 0, 0}, {0xd6, 0xff, 0, 0, 0, 0}, {0xd7, 1, 0, 0, 0, 0, 0, 0, 0, 0},
		append([]byte{0xd8, 1}, make([]byte, 16)...), {0xc7, 0, 5}, {0xc7, 2, 5, 0, 0},
		{0xc8, 0, 1, 5, 0}, {0xc9, 0, 0, 0, 1, 5, 0},
	} {
		if n, err := Value(b, 0); err != nil || n != len(b) {
			t.Errorf("% x: Value = %d, %v; want %d, nil", b, n, err, len(b))
		}
	}
}

func TestValueRefuses(t *testing.T) {
	deep := bytes.Repeat([]byte{0x91}, MaxDepth+1)
	deep = append(deep, 0)
	emptyDeep := append(bytes.Repeat([]byte{0x91}, MaxDepth), 0x90)
	for _, tc := range []struct {
		name   string
		b      []byte
		offset int
		reason string
	}{
		{"empty", nil, 0, "more values"},
		{"reserved", []byte{0xc1}, 0, "reserved"},
		{"reserved inside", []byte{0x92, 0x01, 0xc1}, 2, "reserved"},
		{"array32 of 2^32-1", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, 0, "container longer"},
		{"map32 of 2^32-1", []byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0, 0}, 0, "container longer"},
		{"map needs 2n", []byte{0x82, 1, 2, 3}, 0, "container longer"},
		{"array16 short", []byte{0xdc, 0x00, 0x03, 1, 2}, 0, "container longer"},
		{"nested claim beyond outer", []byte{0x92, 0x93, 1, 2, 3}, 1, "container longer"},
		{"str32 huge", []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}, 0, "length longer"},
		{"bin8 short", []byte{0xc4, 3, 1, 2}, 0, "length longer"},
		{"ext32 huge", []byte{0xc9, 0xff, 0xff, 0xff, 0xff, 1}, 0, "length longer"},
		{"ext8 without type", []byte{0xc7, 0}, 0, "length longer"},
		{"fixext16 short", []byte{0xd8, 1, 0}, 0, "length longer"},
		{"uint64 short", []byte{0xcf, 0, 0}, 0, "length longer"},
		{"header short", []byte{0xdd, 0xff}, 0, "truncated header"},
		{"str16 header short", []byte{0xda, 0}, 0, "truncated header"},
		{"fixstr short", []byte{0xa3, 'a'}, 0, "length longer"},
		{"too deep", deep, MaxDepth, "nested deeper"},
		{"too deep, empty innermost", emptyDeep, MaxDepth, "nested deeper"},
		{"missing element", []byte{0x92, 0x01}, 0, "container longer"},
		{"missing value after a container", []byte{0x92, 0x91, 0x01}, 1, "container longer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Value(tc.b, MaxDepth)
			var we *Error
			if !errors.As(err, &we) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("Value = %d, %v; want a *Error", n, err)
			}
			if n != 0 || we.Offset != tc.offset || !strings.Contains(we.Reason, tc.reason) {
				t.Fatalf("Value = %d, %+v; want offset %d, reason %q", n, we, tc.offset, tc.reason)
			}
		})
	}
}

func TestDepthBound(t *testing.T) {
	for _, d := range []int{1, 2, 16, 17, 40} {
		ok := append(bytes.Repeat([]byte{0x91}, d-1), 0x90) // exactly d containers
		if n, err := Value(ok, d); err != nil || n != len(ok) {
			t.Errorf("depth %d at bound %d: %d, %v", d, d, n, err)
		}
		if _, err := Value(ok, d-1); d > 1 && err == nil {
			t.Errorf("depth %d at bound %d: accepted", d, d-1)
		}
	}
	if n, err := Value([]byte{7}, 1); err != nil || n != 1 {
		t.Errorf("scalar: %d, %v", n, err)
	}
	// Zero means MaxDepth.
	ok := append(bytes.Repeat([]byte{0x91}, MaxDepth-1), 0x90)
	if _, err := Value(ok, 0); err != nil {
		t.Errorf("MaxDepth by default: %v", err)
	}
	if _, err := Value(append([]byte{0x91}, ok...), 0); err == nil {
		t.Error("MaxDepth+1 by default: accepted")
	}
}

func TestValues(t *testing.T) {
	b := []byte{0x01, 0x92, 0xa1, 'a', 0xc0, 0xc3, 0xc1}
	if n, err := Values(b, 3, 0); err != nil || n != 6 {
		t.Fatalf("Values(3) = %d, %v; want 6", n, err)
	}
	if _, err := Values(b, 4, 0); err == nil {
		t.Fatal("Values(4) accepted 0xc1")
	}
	if n, err := Values(b, 0, 0); err != nil || n != 0 {
		t.Fatalf("Values(0) = %d, %v", n, err)
	}
	if _, err := Values([]byte{1, 2}, 3, 0); err == nil {
		t.Fatal("Values(3) of 2 bytes accepted")
	}
}

// TestAttackInputs: the headers that made msgpack allocate gigabytes or
// recurse millions of levels are refused at once, in little memory.
func TestAttackInputs(t *testing.T) {
	deep := bytes.Repeat([]byte{0x91}, 4<<20) // 4 M nested arrays
	deep = append(deep, 0)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, b := range [][]byte{
		{0xdd, 0xff, 0xff, 0xff, 0xff},
		{0xdf, 0xff, 0xff, 0xff, 0xff},
		{0xdb, 0xff, 0xff, 0xff, 0xff},
		{0xc6, 0xff, 0xff, 0xff, 0xff},
		deep,
	} {
		if _, err := Value(b, MaxDepth); !errors.Is(err, ErrMalformed) {
			t.Fatalf("% x...: %v", b[:min(len(b), 8)], err)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("validation allocated %d bytes", grew)
	}
	// With no practical depth bound the deep value is well-formed: the
	// explicit stack costs 8 bytes a level, not a goroutine stack.
	if n, err := Value(deep, 1<<30); err != nil || n != len(deep) {
		t.Fatalf("deep with no bound: %d, %v", n, err)
	}
}

func TestNoAllocation(t *testing.T) {
	b, _ := msgpack.Marshal(map[string]any{"a": []any{1, 2, map[string]any{"b": "c"}}, "d": nil})
	if a := testing.AllocsPerRun(100, func() { _, _ = Value(b, MaxDepth) }); a != 0 {
		t.Fatalf("%v allocations per Value", a)
	}
}

func TestCheckItems(t *testing.T) {
	arr3 := []byte{0x93, 1, 2, 3}
	map2 := []byte{0x82, 1, 2, 3, 4}
	for _, tc := range []struct {
		b     []byte
		items int
		ok    bool
	}{
		{arr3, 3, true}, {arr3, 2, false}, {arr3, 0, true},
		{map2, 2, true}, {map2, 1, false},
		{[]byte{0x91, 0x93, 1, 2, 3}, 2, false}, // nested containers too
	} {
		n, err := Check(tc.b, 1, Limits{Items: tc.items})
		if tc.ok != (err == nil) || tc.ok && n != len(tc.b) {
			t.Errorf("% x items %d: %d, %v", tc.b, tc.items, n, err)
		}
		if err != nil && !strings.Contains(err.Error(), "items") {
			t.Errorf("% x items %d: %v", tc.b, tc.items, err)
		}
	}
}
