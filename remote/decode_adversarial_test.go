package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/troupe-dev/troupe/internal/wirecheck"
	"github.com/troupe-dev/troupe/transport"
)

// victim is an actor whose parameters invite the inputs of issue 9.
type victim struct{ n int }

func (v *victim) Add(n int) int            { v.n += n; return v.n }
func (v *victim) Take(x any) int           { return 1 }
func (v *victim) Str(s fmt.Stringer) int   { return 2 }
func (v *victim) Err(e error) int          { return 3 }
func (v *victim) Pt(p point) int           { return p.X }
func (v *victim) Ptr(p *point) bool        { return p == nil }
func (v *victim) Arr(a [2]int) int         { return a[0] }
func (v *victim) Map(m map[string]int) int { return len(m) }
func (v *victim) R(r Ref) string           { return r.ID }
func (v *victim) Xs(xs []fmt.Stringer) int { return len(xs) }
func (v *victim) Deep(x []any) int         { return len(x) }

// nested returns an argument array holding one value: levels nested
// arrays around a 0.
func nested(levels int) []byte {
	b := make([]byte, 0, levels+2)
	b = append(b, 0x91)
	b = append(b, bytes.Repeat([]byte{0x91}, levels)...)
	return append(b, 0)
}

// memGrowth runs f and returns how much the heap allocated and how much
// memory the process took from the OS (stacks included) meanwhile.
func memGrowth(f func()) (alloc, sys uint64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, after.Sys - before.Sys
}

const memBudget = 64 << 20

// TestAdversarialArgsInvoke feeds Invoke, as the runtime does, arguments a
// method cannot take: 4 M levels of nested arrays for an `any` (main
// overflowed the stack), values msgpack would panic on (an int for an
// interface parameter), nils and wrong shapes. Each is a CodeBadArgs
// *Error naming the argument, never a panic, in little memory; the object
// keeps its state and serves the next call.
func TestAdversarialArgsInvoke(t *testing.T) {
	ty, err := NewType("Victim", func() *victim { return &victim{} })
	if err != nil {
		t.Fatal(err)
	}
	obj, _ := ty.New()
	ctx := context.Background()
	if _, err := obj.Invoke(ctx, nil, "Add", mustArgs(t, 5)); err != nil {
		t.Fatal(err)
	}
	enc := func(v any) []byte { b, _ := msgpack.Marshal(v); return append([]byte{0x91}, b...) }
	for _, tc := range []struct {
		name, method string
		args         []byte
	}{
		{"4M levels for any", "Take", nested(4 << 20)},
		{"1M levels for any", "Take", nested(1 << 20)},
		{"257 levels for any", "Take", nested(256)},
		{"deep inside a slice", "Deep", append([]byte{0x91, 0x91}, nested(300)[1:]...)},
		{"int for an interface", "Str", enc(5)},
		{"int for error", "Err", enc(5)},
		{"map for an interface", "Str", enc(map[string]int{"a": 1})},
		{"ints for []interface", "Xs", enc([]int{1, 2})},
		{"string for a struct", "Pt", enc("p")},
		{"array for a map", "Map", enc([]int{1})},
		{"nil then garbage for a ref", "R", []byte{0x91, 0x93, 0xc0, 0xc0, 0xc0}},
		{"int for a ref", "R", enc(7)},
		{"array32 header", "Take", []byte{0x91, 0xdd, 0xff, 0xff, 0xff, 0xff}},
		{"str32 header", "Take", []byte{0x91, 0xdb, 0xff, 0xff, 0xff, 0xff}},
		{"reserved code", "Take", []byte{0x91, 0xc1}},
		{"trailing bytes", "Take", []byte{0x91, 0x01, 0x02}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out []byte
			var err error
			alloc, sys := memGrowth(func() { out, err = obj.Invoke(ctx, nil, tc.method, tc.args) })
			var re *Error
			if !errors.As(err, &re) || re.Code != CodeBadArgs || !errors.Is(err, ErrBadArgs) || out != nil {
				t.Fatalf("Invoke = %x, %v; want a CodeBadArgs *Error", out, err)
			}
			if !strings.Contains(re.Message, "Victim."+tc.method) {
				t.Fatalf("message %q does not name the method", re.Message)
			}
			if alloc > memBudget+uint64(len(tc.args)) || sys > memBudget {
				t.Fatalf("allocated %d MiB, process grew %d MiB", alloc>>20, sys>>20)
			}
		})
	}
	// Nil for a non-pointer is its zero value, as msgpack has it, and a
	// nil for a pointer is nil: both decode, neither panics.
	for _, tc := range []struct{ method, want string }{{"Pt", "\x00"}, {"Ptr", "\xc3"}, {"Arr", "\x00"}, {"Map", "\x00"}, {"Str", "\x02"}, {"Take", "\x01"}} {
		out, err := obj.Invoke(ctx, nil, tc.method, []byte{0x91, 0xc0})
		if err != nil || string(out) != tc.want {
			t.Errorf("%s(nil) = %x, %v; want %x", tc.method, out, err, tc.want)
		}
	}
	out, err := obj.Invoke(ctx, nil, "Add", mustArgs(t, 1))
	if err != nil || !bytes.Equal(out, []byte{6}) {
		t.Fatalf("Add after the attacks = %x, %v; want 6 (state kept)", out, err)
	}
}

// TestAdversarialArgsCluster: over the network, a wrong-typed argument
// for an interface parameter is the caller's ErrBadArgs — not ErrPanicked,
// no restart, the actor's state kept; arguments nested deeper than any
// decoder takes are refused at the caller (ErrBadArgs before sending), and
// a raw frame carrying 1 M levels from a rogue peer is dropped by the host
// within the memory budget, which then answers the next request.
func TestAdversarialArgsCluster(t *testing.T) {
	var panics, stops atomic.Int32
	c := newClusterOn(t, false, 2, func(ts *Types, _ int) {
		if _, err := Register(ts, "Victim", func() *victim { return &victim{} }); err != nil {
			t.Fatal(err)
		}
	}, func(cfg *Config) {
		cfg.Restart.MaxRestarts = 1
		cfg.OnPanic = func(Ref, string, *PanicError) { panics.Add(1) }
		cfg.OnStop = func(Ref, error) { stops.Add(1) }
	})
	ref := c.reg.place("v1", "Victim", "n2", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if got, err := callInt(t, ctx, c.nodes[0], ref, "Add", 5); err != nil || got != 5 {
		t.Fatalf("Add = %d, %v", got, err)
	}
	for i := range 3 { // past the restart budget, were it spent
		_, err := c.nodes[0].Call(ctx, ref, "Str", CallOptions{}, 5).Wait(ctx)
		var re *Error
		if !errors.Is(err, ErrBadArgs) || !errors.As(err, &re) || re.Node != "n2" {
			t.Fatalf("Str(5) #%d: %v; want ErrBadArgs from n2", i, err)
		}
	}
	_, err := c.nodes[0].Call(ctx, ref, "Take", CallOptions{}, msgpack.RawMessage(nested(300)[1:])).Wait(ctx)
	if !errors.Is(err, ErrBadArgs) || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("Take(300 levels): %v; want ErrBadArgs at the caller", err)
	}

	// A rogue peer sends the raw frame no caller of this package would.
	rogue, err := c.net.Join("n9")
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	replies := make(chan []byte, 2)
	rogue.Handle(transport.KindCalls, transport.HandlerFunc(func(_ string, f []byte) {
		select {
		case replies <- f:
		default:
		}
	}))
	deep := AppendRequest(nil, &Request{ID: 1, Target: "v1", Epoch: 1, Method: "Take", Sender: "n9", Args: nested(1 << 20)})
	good := AppendRequest(nil, &Request{ID: 2, Target: "v1", Epoch: 1, Method: "Add", Sender: "n9", Args: mustArgs(t, 1)})
	var rep []byte
	alloc, sys := memGrowth(func() {
		for _, f := range [][]byte{deep, good} { // in order on one stream
			if err := rogue.Send(ctx, transport.Peer{ID: "n2"}, transport.KindCalls, f); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case rep = <-replies:
		case <-ctx.Done():
			t.Fatal("no reply from n2")
		}
	})
	if alloc > memBudget+4*uint64(len(deep)) || sys > memBudget {
		t.Fatalf("the deep frame cost %d MiB allocated, %d MiB of process", alloc>>20, sys>>20)
	}
	var env Envelope
	if err := DecodeEnvelope(rep, &env); err != nil || env.Reply.ID != 2 || env.Reply.Err != nil || !bytes.Equal(env.Reply.Result, []byte{6}) {
		t.Fatalf("reply %+v, %v; want request 2 answered 6", env.Reply, err)
	}
	if got, err := callInt(t, ctx, c.nodes[0], ref, "Add", 1); err != nil || got != 7 {
		t.Fatalf("Add after the attacks = %d, %v; want 7 (state kept)", got, err)
	}
	if panics.Load() != 0 || stops.Load() != 0 {
		t.Fatalf("%d panics, %d stops reported", panics.Load(), stops.Load())
	}
}

// TestAdversarialEnvelope: DecodeEnvelope refuses the frames of issue 9
// with a *DecodeError before anything is decoded, and Unmarshal refuses
// the results.
func TestAdversarialEnvelope(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"4M-level args", AppendRequest(nil, &Request{ID: 1, Target: "a", Method: "M", Args: nested(4 << 20)})},
		{"array32 args", AppendRequest(nil, &Request{ID: 1, Target: "a", Method: "M", Args: []byte{0xdd, 0xff, 0xff, 0xff, 0xff}})},
		{"4M-level result", AppendReply(nil, &Reply{ID: 1, Result: nested(4 << 20)[1:]})},
		{"map32 result", AppendReply(nil, &Reply{ID: 1, Result: []byte{0xdf, 0xff, 0xff, 0xff, 0xff}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var env Envelope
			var err error
			alloc, _ := memGrowth(func() { err = DecodeEnvelope(tc.frame, &env) })
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeEnvelope: %v; want a *DecodeError", err)
			}
			if alloc > 1<<20 {
				t.Fatalf("allocated %d bytes", alloc)
			}
		})
	}
	var v any
	var err error
	for _, raw := range [][]byte{nested(4 << 20), {0xdd, 0xff, 0xff, 0xff, 0xff}, {0x01, 0x02}} {
		alloc, sys := memGrowth(func() { err = Unmarshal(raw, &v) })
		if !errors.Is(err, wirecheck.ErrMalformed) && !strings.Contains(fmt.Sprint(err), "trailing") {
			t.Fatalf("Unmarshal(% x...): %v", raw[:2], err)
		}
		if alloc > memBudget || sys > memBudget {
			t.Fatalf("Unmarshal cost %d MiB, %d MiB", alloc>>20, sys>>20)
		}
	}
	var s fmt.Stringer
	if err := Unmarshal([]byte{0x05}, &s); err == nil {
		t.Fatal("Unmarshal of an int into a fmt.Stringer succeeded")
	}
}
