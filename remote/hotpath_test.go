package remote

import (
	"context"
	"slices"
	"testing"
)

// keeper retains what its methods are given, to show that the argument
// cells an Object reuses never leak one call's values into another's.
type keeper struct {
	kept  [][]byte
	maps  []map[string]int
	items [][]int
}

func (k *keeper) Keep(p []byte)            { k.kept = append(k.kept, p) }
func (k *keeper) Map(m map[string]int) int { k.maps = append(k.maps, m); return len(m) }
func (k *keeper) Items(xs []int) int       { k.items = append(k.items, xs); return len(xs) }
func (k *keeper) Ctx(ctx context.Context, key string) string {
	s, _ := ctx.Value(ctxKey{}).(string)
	return s + key
}

type ctxKey struct{}

// TestInvokeReusesNoArgument: argument values are decoded fresh for every
// call, although the Object reuses the reflect cells they are decoded into
// (msgpack decodes into an existing slice's array and merges into an
// existing map, so a cell not zeroed before decoding would alias or merge).
func TestInvokeReusesNoArgument(t *testing.T) {
	typ, err := NewType("Keeper", func() *keeper { return &keeper{} })
	if err != nil {
		t.Fatal(err)
	}
	obj, err := typ.New()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	invoke := func(method string, args ...any) []byte {
		t.Helper()
		out, err := obj.Invoke(ctx, nil, method, mustArgs(t, args...))
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		return out
	}
	invoke("Keep", []byte("first"))
	invoke("Keep", []byte("other"))
	invoke("Map", map[string]int{"a": 1})
	if out := invoke("Map", map[string]int{"b": 2}); !slices.Equal(out, []byte{0x01}) {
		t.Fatalf("second Map saw %x entries, want 1 (maps merged)", out)
	}
	invoke("Items", []int{1, 2, 3})
	invoke("Items", []int{9})
	k := obj.Value().(*keeper)
	if string(k.kept[0]) != "first" || string(k.kept[1]) != "other" {
		t.Fatalf("kept %q, want [first other]", k.kept)
	}
	if len(k.maps[0]) != 1 || k.maps[0]["a"] != 1 {
		t.Fatalf("first map became %v", k.maps[0])
	}
	if !slices.Equal(k.items[0], []int{1, 2, 3}) || !slices.Equal(k.items[1], []int{9}) {
		t.Fatalf("items %v, want [[1 2 3] [9]]", k.items)
	}
	// Each call sees its own ctx, and nothing is retained between calls.
	c1 := context.WithValue(ctx, ctxKey{}, "one:")
	out, err := obj.Invoke(c1, nil, "Ctx", mustArgs(t, "x"))
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := Unmarshal(out, &s); err != nil || s != "one:x" {
		t.Fatalf("Ctx = %q, %v", s, err)
	}
	if obj.ctx != nil {
		t.Fatal("the Object retains the ctx of a finished call")
	}
	for _, cells := range obj.args {
		for _, c := range cells {
			if !c.IsZero() {
				t.Fatalf("the Object retains an argument: %v", c)
			}
		}
	}
}

// TestTellLocalQueued: one-way sends to an actor on the same node keep their
// own arguments while they wait in the mailbox (the sender encodes them into
// a pooled buffer, which it reuses for the next send).
func TestTellLocalQueued(t *testing.T) {
	c, probes := newWorkerCluster(t, 2, nil)
	ref := c.reg.place("w1", "Worker", "n2", 1)
	local := c.nodes[1]
	ctx := context.Background()
	wait := local.Call(ctx, ref, "Wait", CallOptions{})
	<-probes[1].started // the actor is busy: the sends below queue up
	want := 0
	for i := range 200 {
		want += i
		if err := local.Tell(ctx, ref, "Add", i); err != nil {
			t.Fatal(err)
		}
	}
	close(probes[1].release)
	if _, err := wait.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := callInt(t, ctx, local, ref, "Get"); err != nil || got != want {
		t.Fatalf("Get = %d, %v; want %d", got, err, want)
	}
}
