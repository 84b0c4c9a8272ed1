package remote

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// FuzzDecodeEnvelope checks that the decoder never panics, that every
// failure is a *DecodeError, and that a decoded frame re-encodes to a frame
// that decodes to the same envelope.
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(AppendRequest(nil, &Request{ID: 1, Target: "a", Epoch: 3, Method: "Add", Deadline: 99, Sender: "n1", Args: []byte{0x91, 0x05}}))
	f.Add(AppendRequest(nil, &Request{ID: 1 << 40, Target: "a", Method: "M", Flags: FlagOneWay, Args: []byte{0x90}}))
	// Issue 12: a request carrying a trace context, and one whose trace
	// field is nil.
	f.Add(AppendRequest(nil, &Request{ID: 7, Target: "a", Method: "M", After: 2, Trace: &testTrace, Args: []byte{0x91, 0x05}}))
	f.Add([]byte{0x9b, 0x01, 0x05, 0xa1, 'a', 0x02, 0xa1, 'M', 0x01, 0x00, 0xc0, 0x00, 0xc0, 0x91, 0x01})
	f.Add(AppendReply(nil, &Reply{ID: 2, Result: []byte{0x92, 0x81, 0xa1, 'k', 0xc3, 0xd6, 0xff, 0, 0, 0, 0}}))
	f.Add(AppendErrorReply(nil, 3, &Error{Code: CodeBadArgs, Message: "m", Node: "n", Actor: "a", Method: "M"}))
	f.Add(AppendCancel(nil, 4))
	f.Add([]byte{0x99, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff})
	// Issue 9: headers announcing more than the frame holds, and nesting
	// deeper than wirecheck.MaxDepth (the 4 M-level frame is in
	// TestAdversarialEnvelope; 300 levels take the same path).
	f.Add(AppendRequest(nil, &Request{ID: 1, Target: "a", Method: "M", Args: []byte{0xdd, 0xff, 0xff, 0xff, 0xff}}))
	f.Add(AppendRequest(nil, &Request{ID: 1, Target: "a", Method: "M", Args: nested(300)}))
	f.Add(AppendReply(nil, &Reply{ID: 1, Result: []byte{0xdf, 0xff, 0xff, 0xff, 0xff}}))
	f.Add(AppendReply(nil, &Reply{ID: 1, Result: nested(300)[1:]}))
	f.Fuzz(func(t *testing.T, frame []byte) {
		var env Envelope
		err := DecodeEnvelope(frame, &env)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		var again []byte
		switch env.Type {
		case FrameRequest:
			again = AppendRequest(nil, &env.Request)
		case FrameReply:
			again = AppendReply(nil, &env.Reply)
		case FrameCancel:
			again = AppendCancel(nil, env.CancelID)
		default:
			t.Fatalf("decoded unknown type %d", env.Type)
		}
		var env2 Envelope
		if err := DecodeEnvelope(again, &env2); err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if !reflect.DeepEqual(env, env2) {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", env, env2)
		}
	})
}

// FuzzDecodeArgs runs Invoke, as the runtime does, on arbitrary argument
// bytes for methods of every parameter shape: it never panics, and every
// failure is a CodeBadArgs *Error (the methods themselves cannot fail).
func FuzzDecodeArgs(f *testing.F) {
	ty, err := NewType("Victim", func() *victim { return &victim{} })
	if err != nil {
		f.Fatal(err)
	}
	methods := ty.Methods()
	for i, args := range [][]byte{
		mustArgs(f, 5), mustArgs(f, "s"), mustArgs(f, point{1, 2}), mustArgs(f, Ref{ID: "a", Type: "T"}),
		mustArgs(f, map[string]int{"a": 1}), mustArgs(f, []any{1, "x", nil}), {0x91, 0xc0},
		nested(300), nested(4), {0x91, 0xdd, 0xff, 0xff, 0xff, 0xff}, {0x91, 0xdb, 0xff, 0xff, 0xff, 0xff},
		{0x91, 0xc7, 0x04, 0xff, 0, 0, 0, 0}, {0x91, 0xd6, 0xff, 0, 0, 0, 1},
	} {
		f.Add(uint8(i), args)
	}
	f.Fuzz(func(t *testing.T, m uint8, args []byte) {
		obj, _ := ty.New()
		name := methods[int(m)%len(methods)]
		out, err := obj.Invoke(context.Background(), nil, name, args)
		if err == nil {
			if len(out) == 0 {
				t.Fatalf("%s: no result", name)
			}
			return
		}
		var re *Error
		if !errors.As(err, &re) || re.Code != CodeBadArgs || out != nil {
			t.Fatalf("%s(% x): %v; want CodeBadArgs", name, args, err)
		}
	})
}

// FuzzUnmarshal decodes arbitrary bytes into values of several types:
// never a panic, and whatever decodes re-encodes.
func FuzzUnmarshal(f *testing.F) {
	for _, b := range [][]byte{{0x05}, {0xa1, 'a'}, {0x94, 0xa1, 'a', 0xa1, 'T', 0xc0, 0x01}, {0xdd, 0xff, 0xff, 0xff, 0xff}, nested(300)[1:]} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var (
			a  any
			s  fmt.Stringer
			r  Ref
			p  point
			xs []fmt.Stringer
			mp map[string][]int
		)
		for _, v := range []any{&a, &s, &r, &p, &xs, &mp} {
			if err := Unmarshal(b, v); err == nil {
				if _, err := msgpack.Marshal(v); err != nil {
					t.Fatalf("%T decoded from % x does not re-encode: %v", v, b, err)
				}
			}
		}
	})
}
