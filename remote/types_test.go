package remote

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

type point struct {
	X, Y int
}

type counter struct {
	n int
}

func (c *counter) Add(ctx context.Context, n int) (int, error) {
	if ctx == nil {
		return 0, errors.New("nil ctx")
	}
	c.n += n
	return c.n, nil
}
func (c *counter) Get() int                  { return c.n }
func (c *counter) Reset()                    { c.n = 0 }
func (c *counter) Fail(msg string) error     { return errors.New(msg) }
func (c *counter) Boom(ctx context.Context)  { panic("kaboom") }
func (c *counter) Sum(p point, xs []int) int { return p.X + p.Y + len(xs) }
func (c *counter) Echo(r Ref) (Ref, error)   { return r, nil }
func (c *counter) Deadline(ctx context.Context) bool {
	_, ok := ctx.Deadline()
	return ok
}

// Shapes that must be skipped.
func (c *counter) Vari(xs ...int) int                 { return len(xs) }
func (c *counter) Three() (int, int, error)           { return 0, 0, nil }
func (c *counter) NotErr() (int, int)                 { return 0, 0 }
func (c *counter) Chan(ch chan int)                   {}
func (c *counter) CtxLate(n int, ctx context.Context) {}
func (c *counter) FuncResult() func()                 { return nil }

func newCounterType(t testing.TB) *Type {
	t.Helper()
	typ, err := NewType("Counter", func() *counter { return &counter{} })
	if err != nil {
		t.Fatal(err)
	}
	return typ
}

func TestNewTypeMethodTable(t *testing.T) {
	typ := newCounterType(t)
	want := []string{"Add", "Boom", "Deadline", "Echo", "Fail", "Get", "Reset", "Sum"}
	if got := typ.Methods(); !slices.Equal(got, want) {
		t.Fatalf("Methods() = %v, want %v", got, want)
	}
	skipped := typ.Skipped()
	for _, name := range []string{"Vari", "Three", "NotErr", "Chan", "CtxLate", "FuncResult"} {
		if skipped[name] == "" {
			t.Errorf("%s not skipped", name)
		}
	}
	if _, ok := skipped["unexported"]; ok {
		t.Error("unexported method listed")
	}
}

func TestNewTypeErrors(t *testing.T) {
	if _, err := NewType("", func() *counter { return nil }); !errors.Is(err, ErrBadType) {
		t.Errorf("empty name: %v", err)
	}
	if _, err := NewType[counter]("C", nil); !errors.Is(err, ErrBadType) {
		t.Errorf("nil producer: %v", err)
	}
	typ, err := NewType("C", func() *counter { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := typ.New(); !errors.Is(err, ErrBadType) {
		t.Errorf("nil instance: %v", err)
	}
}

func TestTypesRegistry(t *testing.T) {
	ts := NewTypes()
	if _, err := Register(ts, "Counter", func() *counter { return &counter{} }); err != nil {
		t.Fatal(err)
	}
	if _, err := Register(ts, "Counter", func() *counter { return &counter{} }); !errors.Is(err, ErrDuplicateType) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, ok := ts.Lookup("Counter"); !ok {
		t.Fatal("Counter not found")
	}
	if _, ok := ts.Lookup("Nope"); ok {
		t.Fatal("unregistered type found")
	}
	if got := ts.Names(); !slices.Equal(got, []string{"Counter"}) {
		t.Fatalf("Names() = %v", got)
	}
}

func mustArgs(t testing.TB, args ...any) []byte {
	t.Helper()
	b, err := AppendArgs(nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInvoke(t *testing.T) {
	typ := newCounterType(t)
	ctxDeadline, cancel := context.WithCancel(context.Background())
	defer cancel()
	ref := Ref{ID: "a1", Type: "Counter", Node: "n2", Epoch: 7}
	tests := []struct {
		name   string
		ctx    context.Context
		method string
		args   []byte
		want   any // decoded result, compared with fmt %v
		code   Code
		msg    string // substring of the error message
	}{
		{name: "ctx arg result err", method: "Add", args: mustArgs(t, 5), want: 5},
		{name: "nil ctx is background", ctx: nil, method: "Add", args: mustArgs(t, 2), want: 2},
		{name: "result only", method: "Get", args: mustArgs(t), want: 0},
		{name: "no result", method: "Reset", args: mustArgs(t), want: nil},
		{name: "struct and slice args", method: "Sum", args: mustArgs(t, point{1, 2}, []int{1, 2, 3}), want: 6},
		{name: "ref round trip", method: "Echo", args: mustArgs(t, ref), want: ref},
		{name: "ctx without deadline", ctx: ctxDeadline, method: "Deadline", args: mustArgs(t), want: false},
		{name: "application error", method: "Fail", args: mustArgs(t, "nope"), code: CodeApplication, msg: "nope"},
		{name: "panic", method: "Boom", args: mustArgs(t), code: CodePanicked, msg: "kaboom"},
		{name: "unknown method", method: "Nope", args: mustArgs(t), code: CodeUnknownMethod, msg: "Counter.Nope"},
		{name: "skipped method", method: "Vari", args: mustArgs(t), code: CodeUnknownMethod, msg: "variadic"},
		{name: "too many args", method: "Add", args: mustArgs(t, 1, 2), code: CodeBadArgs, msg: "Counter.Add: want 1 argument, got 2"},
		{name: "too few args", method: "Sum", args: mustArgs(t, point{}), code: CodeBadArgs, msg: "want 2 arguments, got 1"},
		{name: "wrong arg type", method: "Add", args: mustArgs(t, "five"), code: CodeBadArgs, msg: "Counter.Add: argument 0 (int)"},
		{name: "wrong second arg type", method: "Sum", args: mustArgs(t, point{}, "x"), code: CodeBadArgs, msg: "argument 1 ([]int)"},
		{name: "args not an array", method: "Add", args: []byte{0x05}, code: CodeBadArgs, msg: "not a msgpack array"},
		{name: "truncated args", method: "Add", args: []byte{0x91}, code: CodeBadArgs, msg: "argument 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj, err := typ.New()
			if err != nil {
				t.Fatal(err)
			}
			ctx := tt.ctx
			if ctx == nil && tt.name != "nil ctx is background" {
				ctx = context.Background()
			}
			prefix := []byte{0xaa, 0xbb}
			out, err := obj.Invoke(ctx, prefix, tt.method, tt.args)
			if tt.code != CodeOK {
				var re *Error
				if !errors.As(err, &re) || re.Code != tt.code {
					t.Fatalf("err = %v, want code %v", err, tt.code)
				}
				if !strings.Contains(re.Message, tt.msg) {
					t.Fatalf("message %q lacks %q", re.Message, tt.msg)
				}
				if !errors.Is(err, sentinels[tt.code]) {
					t.Fatalf("errors.Is(%v, %v) is false", err, sentinels[tt.code])
				}
				if len(out) != 2 {
					t.Fatalf("dst changed on failure: %x", out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out[0] != 0xaa || out[1] != 0xbb {
				t.Fatalf("prefix lost: %x", out)
			}
			var got any
			switch tt.want.(type) {
			case int:
				var v int
				err = Unmarshal(out[2:], &v)
				got = v
			case bool:
				var v bool
				err = Unmarshal(out[2:], &v)
				got = v
			case Ref:
				var v Ref
				err = Unmarshal(out[2:], &v)
				got = v
			default:
				if len(out) != 3 || out[2] != mpNil {
					t.Fatalf("want nil result, got %x", out[2:])
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) && tt.want != nil {
				t.Fatalf("result = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestInvokePanicCause(t *testing.T) {
	obj, err := newCounterType(t).New()
	if err != nil {
		t.Fatal(err)
	}
	_, err = obj.Invoke(context.Background(), nil, "Boom", mustArgs(t))
	var pe *PanicError
	if !errors.As(err, &pe) || pe.Value != "kaboom" || len(pe.Stack) == 0 {
		t.Fatalf("err = %v, want PanicError with stack", err)
	}
}

func TestInvokeKeepsState(t *testing.T) {
	obj, err := newCounterType(t).New()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := obj.Invoke(context.Background(), nil, "Add", mustArgs(t, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if got := obj.Value().(*counter).n; got != 30 {
		t.Fatalf("n = %d, want 30", got)
	}
}

func TestAppendArgsUnencodable(t *testing.T) {
	_, err := AppendArgs(nil, 1, make(chan int))
	if !errors.Is(err, ErrBadArgs) || !strings.Contains(err.Error(), "argument 1 (chan int)") {
		t.Fatalf("err = %v", err)
	}
}

func TestMethodStats(t *testing.T) {
	ts := NewTypes()
	if _, err := Register(ts, "Shapes", func() *shapes { return &shapes{} }); err != nil {
		t.Fatal(err)
	}
	ty, _ := ts.Lookup("Shapes")
	obj, _ := ty.New()
	ctx := context.Background()
	for range 3 {
		obj.Invoke(ctx, nil, "Int", raw(t, 1))
	}
	obj.Invoke(ctx, nil, "Int", raw(t, "x"))    // bad arguments
	obj.Invoke(ctx, nil, "Fail", raw(t, "bad")) // application error
	obj.Invoke(ctx, nil, "Boom", raw(t, 1))     // panicked, caught
	func() {
		defer func() {
			if recover() != nil {
				obj.countPanic() // as the endpoint does when a panic reaches it
			}
		}()
		obj.invoke(ctx, nil, "Boom", raw(t, 1), false, true) // panicked, on to the engine
	}()
	obj.Invoke(ctx, nil, "Nope", raw(t)) // unknown: not a method, not counted
	got := map[string]map[Code]uint64{}
	for _, s := range ts.Stats() {
		if len(s.Outcomes) > 0 {
			got[s.Method] = s.Outcomes
		}
	}
	want := map[string]map[Code]uint64{
		"Int":  {CodeOK: 3, CodeBadArgs: 1},
		"Fail": {CodeApplication: 1},
		"Boom": {CodePanicked: 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stats %v, want %v", got, want)
	}
}

// selfRef is a self-referential argument type: NewType must not recurse
// forever on it.
type selfRef []selfRef

type selfRefActor struct{}

func (*selfRefActor) Take(selfRef) int { return 0 }

func TestSelfReferentialArgument(t *testing.T) {
	ty, err := NewType("SelfRef", func() *selfRefActor { return &selfRefActor{} })
	if err != nil {
		t.Fatal(err)
	}
	if ms := ty.Methods(); len(ms) != 1 || ms[0] != "Take" {
		t.Fatalf("methods %v, skipped %v", ms, ty.Skipped())
	}
}
