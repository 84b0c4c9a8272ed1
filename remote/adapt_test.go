package remote

import (
	"bytes"
	"context"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// shapes has one method per kind of shape: fast ones and general ones.
type shapes struct{ n int }

func (s *shapes) Int(n int) int           { return n + 1 }
func (s *shapes) Int64(n int64) int64     { return n - 1 }
func (s *shapes) Uint(n uint64) uint64    { return n * 2 }
func (s *shapes) Str(x string) string     { return x + "!" }
func (s *shapes) Bytes(b []byte) []byte   { return append(b, 1) }
func (s *shapes) Bool(b bool) bool        { return !b }
func (s *shapes) Float(f float64) float64 { return f / 2 }
func (s *shapes) Mixed(b []byte) int      { return len(b) }
func (s *shapes) None()                   { s.n++ }
func (s *shapes) Count() int              { return s.n }
func (s *shapes) Take(_ string)           { s.n++ }
func (s *shapes) Fail(msg string) error   { return errors.New(msg) }
func (s *shapes) FailR(ctx context.Context, msg string) (int, error) {
	if ctx == nil {
		panic("nil ctx")
	}
	return 0, errors.New(msg)
}
func (s *shapes) Ctx(ctx context.Context) (string, error) { return "ctx", ctx.Err() }
func (s *shapes) Boom(n int) int                          { panic("boom") }
func (s *shapes) Struct(p point) int                      { return p.X }
func (s *shapes) Two(a, b int) int                        { return a + b }

func TestFastInvokersCoverTheCommonShapes(t *testing.T) {
	ty, err := NewType("Shapes", func() *shapes { return &shapes{} })
	if err != nil {
		t.Fatal(err)
	}
	general := map[string]bool{"Struct": true, "Two": true}
	for name, m := range ty.methods {
		if got := m.fast != nil; got == general[name] {
			t.Errorf("%s: typed invoker %v, want %v", name, got, !general[name])
		}
	}
}

// reflective returns a copy of ty whose methods all take the general path.
func reflective(ty *Type) *Type {
	cp := *ty
	cp.methods = map[string]*method{}
	for name, m := range ty.methods {
		cp.methods[name] = &method{index: m.index, name: m.name, full: m.full, fn: m.fn, hasCtx: m.hasCtx,
			in: m.in, result: m.result, hasErr: m.hasErr}
	}
	return &cp
}

func raw(t testing.TB, vs ...any) []byte {
	t.Helper()
	b := appendArrayHeader(nil, len(vs))
	for _, v := range vs {
		enc, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, enc...)
	}
	return b
}

// TestFastPathAgreesWithReflection runs the same argument bytes — the
// canonical encodings and others (wider integers, str for []byte, nil,
// float32, wrong types, wrong counts, trailing bytes) — through both paths:
// the results decode to the same values and the errors carry the same code
// and message.
func TestFastPathAgreesWithReflection(t *testing.T) {
	ty, err := NewType("Shapes", func() *shapes { return &shapes{} })
	if err != nil {
		t.Fatal(err)
	}
	slow := reflective(ty)
	cases := []struct {
		method string
		args   []byte
	}{
		{"Int", raw(t, 5)}, {"Int", raw(t, -5)}, {"Int", raw(t, math.MaxInt64)}, {"Int", raw(t, uint64(math.MaxUint64))},
		{"Int", raw(t, int8(-100))}, {"Int", raw(t, uint16(60000))}, {"Int", raw(t, 1.5)}, {"Int", raw(t, "x")},
		{"Int", raw(t, nil)}, {"Int", raw(t)}, {"Int", raw(t, 1, 2)}, {"Int", append(raw(t, 1), 0x01)},
		{"Int", []byte{0x91, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}}, {"Int", []byte{0x91, 0xd3}}, {"Int", []byte{}},
		{"Int64", raw(t, int64(math.MinInt64))}, {"Int64", raw(t, uint32(7))},
		{"Uint", raw(t, uint64(1<<63))}, {"Uint", raw(t, -1)}, {"Uint", raw(t, 3)},
		{"Str", raw(t, "hello")}, {"Str", raw(t, string(make([]byte, 300)))}, {"Str", raw(t, []byte("bin"))}, {"Str", raw(t, nil)},
		{"Str", []byte{0x91, 0xa5, 'a'}}, {"Str", []byte{0x91, 0xdb, 0xff, 0xff, 0xff, 0xff}},
		{"Bytes", raw(t, []byte("abc"))}, {"Bytes", raw(t, make([]byte, 70000))}, {"Bytes", raw(t, "as str")},
		{"Bytes", raw(t, nil)}, {"Bytes", raw(t, []byte{})}, {"Bytes", []byte{0x91, 0xc6, 0xff, 0xff, 0xff, 0xff}},
		{"Bool", raw(t, true)}, {"Bool", raw(t, false)}, {"Bool", raw(t, 1)},
		{"Float", raw(t, 3.0)}, {"Float", raw(t, float32(2.5))}, {"Float", raw(t, 4)},
		{"Mixed", raw(t, []byte("12345"))}, {"None", raw(t)}, {"None", raw(t, 1)}, {"Count", raw(t)},
		{"Take", raw(t, "x")}, {"Fail", raw(t, "bad")}, {"FailR", raw(t, "worse")}, {"Ctx", raw(t)},
		{"Struct", raw(t, point{1, 2})}, {"Two", raw(t, 1, 2)},
	}
	for _, c := range cases {
		for _, encode := range []bool{true, false} {
			fo, _ := ty.New()
			so, _ := slow.New()
			fout, ferr := fo.invoke(context.Background(), nil, c.method, c.args, true, encode)
			sout, serr := so.invoke(context.Background(), nil, c.method, c.args, true, encode)
			if (ferr == nil) != (serr == nil) {
				t.Errorf("%s(% x): fast err %v, reflective err %v", c.method, c.args, ferr, serr)
				continue
			}
			if ferr != nil {
				var fe, se *Error
				if !errors.As(ferr, &fe) || !errors.As(serr, &se) || fe.Code != se.Code || fe.Message != se.Message {
					t.Errorf("%s(% x): fast err %v, reflective err %v", c.method, c.args, ferr, serr)
				}
				continue
			}
			if !encode {
				if len(fout) != 0 || len(sout) != 0 {
					t.Errorf("%s: encoded a result when told not to: % x / % x", c.method, fout, sout)
				}
				continue
			}
			var fv, sv any
			if err := msgpack.Unmarshal(fout, &fv); err != nil {
				t.Fatalf("%s: fast result % x does not decode: %v", c.method, fout, err)
			}
			if err := msgpack.Unmarshal(sout, &sv); err != nil {
				t.Fatalf("%s: reflective result % x does not decode: %v", c.method, sout, err)
			}
			if !reflect.DeepEqual(normalize(fv), normalize(sv)) {
				t.Errorf("%s(% x): fast %#v, reflective %#v", c.method, c.args, fv, sv)
			}
		}
	}
}

// normalize maps msgpack's generic integers to int64 and []byte to
// string, so values compare by what they mean, not by their width.
func normalize(v any) any {
	switch x := v.(type) {
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
	case []byte:
		return string(x)
	}
	return v
}

func TestFastPathPanicIsCaught(t *testing.T) {
	ty, _ := NewType("Shapes", func() *shapes { return &shapes{} })
	obj, _ := ty.New()
	_, err := obj.Invoke(context.Background(), nil, "Boom", raw(t, 1))
	var re *Error
	var pe *PanicError
	if !errors.As(err, &re) || re.Code != CodePanicked || !errors.As(err, &pe) {
		t.Fatalf("panic in a typed invoker: %v, want CodePanicked with a *PanicError", err)
	}
}

func TestFastBytesArgumentDoesNotAliasTheFrame(t *testing.T) {
	ty, _ := NewType("Shapes", func() *shapes { return &shapes{} })
	obj, _ := ty.New()
	var kept []byte
	args := raw(t, []byte("abc"))
	out, err := obj.Invoke(context.Background(), nil, "Bytes", args)
	if err != nil {
		t.Fatal(err)
	}
	if err := msgpack.Unmarshal(out, &kept); err != nil {
		t.Fatal(err)
	}
	for i := range args {
		args[i] = 0
	}
	if !bytes.Equal(kept, []byte{'a', 'b', 'c', 1}) {
		t.Fatalf("result %q changed with the frame", kept)
	}
}

// FuzzFastDecode: whatever the fast decoder takes, msgpack decodes to the
// same value.
func FuzzFastDecode(f *testing.F) {
	for _, b := range [][]byte{{0x05}, {0xd3, 0, 0, 0, 0, 0, 0, 0, 1}, {0xa1, 'a'}, {0xc4, 1, 'x'}, {0xc3}, {0xcb, 0x40, 0, 0, 0, 0, 0, 0, 0}, {0xc0}, {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		check(t, b, decodeFast[int])
		check(t, b, decodeFast[int64])
		check(t, b, decodeFast[uint64])
		check(t, b, decodeFast[string])
		check(t, b, decodeFast[[]byte])
		check(t, b, decodeFast[bool])
		check(t, b, decodeFast[float64])
	})
}

func check[A any](t *testing.T, b []byte, dec func([]byte) (A, bool)) {
	v, ok := dec(b)
	if !ok {
		return
	}
	var want A
	if err := Unmarshal(b, &want); err != nil {
		t.Fatalf("fast decoder took % x as %T %v, msgpack refuses it: %v", b, v, v, err)
	}
	if f, isF := any(v).(float64); isF && math.IsNaN(f) && math.IsNaN(any(want).(float64)) {
		return
	}
	if !reflect.DeepEqual(v, want) && !(reflect.ValueOf(v).Kind() == reflect.Slice && reflect.ValueOf(v).Len() == 0 && reflect.ValueOf(want).Len() == 0) {
		t.Fatalf("% x: fast %T %#v, msgpack %#v", b, v, v, want)
	}
}
