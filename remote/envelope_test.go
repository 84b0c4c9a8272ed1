package remote

import (
	"context"
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestRequestRoundTrip(t *testing.T) {
	long := string(make([]byte, 300))
	tests := []struct {
		name string
		q    Request
	}{
		{"minimal", Request{ID: 1, Target: "a", Method: "M", Args: []byte{0x90}}},
		{"all fields", Request{ID: math.MaxUint64, Target: "actor-17", Epoch: 1 << 40, Method: "Add",
			Flags: FlagIdempotent, Deadline: 1764160000123456789, Sender: "node-1", Args: mustArgs(t, 5, "x")}},
		{"one-way no sender", Request{ID: 300, Target: "t", Method: "Tell", Flags: FlagOneWay, Args: mustArgs(t, []int{1})}},
		{"negative deadline", Request{ID: 2, Target: "t", Method: "M", Deadline: -5, Args: []byte{0x90}}},
		{"long strings", Request{ID: 70000, Target: long, Epoch: 65536, Method: long[:40], Sender: long, Args: mustArgs(t, long)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := AppendRequest([]byte{}, &tt.q)
			var env Envelope
			if err := DecodeEnvelope(frame, &env); err != nil {
				t.Fatal(err)
			}
			if env.Type != FrameRequest {
				t.Fatalf("type %d", env.Type)
			}
			if !reflect.DeepEqual(env.Request, tt.q) {
				t.Fatalf("got %+v\nwant %+v", env.Request, tt.q)
			}
			// The frame is a single, standard msgpack value.
			var generic []any
			if err := Unmarshal(frame, &generic); err != nil || len(generic) != requestFields {
				t.Fatalf("msgpack view: %v %v", generic, err)
			}
		})
	}
}

func TestRequestBytes(t *testing.T) {
	q := Request{ID: 5, Target: "a", Epoch: 2, Method: "M", Flags: FlagOneWay, Deadline: 0, Args: mustArgs(t, 1)}
	got := AppendRequest(nil, &q)
	want := []byte{0x9a, 0x01, 0x05, 0xa1, 'a', 0x02, 0xa1, 'M', 0x01, 0x00, 0xc0, 0x00, 0x91, 0x01}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
	// A request of the 9-field layout (no After) still decodes.
	old := []byte{0x99, 0x01, 0x05, 0xa1, 'a', 0x02, 0xa1, 'M', 0x01, 0x00, 0xc0, 0x91, 0x01}
	var env Envelope
	if err := DecodeEnvelope(old, &env); err != nil || env.Request.After != 0 || env.Request.Method != "M" {
		t.Fatalf("9-field request: %+v, %v", env.Request, err)
	}
}

func TestReplyRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		p    Reply
	}{
		{"ok with result", Reply{ID: 9, Result: []byte{0xa2, 'h', 'i'}}},
		{"ok nil result", Reply{ID: 10, Result: []byte{mpNil}}},
		{"error", Reply{ID: 11, Err: &Error{Code: CodeApplication, Message: "boom", Node: "n1", Actor: "a1", Method: "Add"}}},
		{"error empty fields", Reply{ID: 12, Err: &Error{Code: CodeNotOwner}}},
		{"unknown future code", Reply{ID: 13, Err: &Error{Code: 999, Message: "new"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := AppendReply(nil, &tt.p)
			var env Envelope
			if err := DecodeEnvelope(frame, &env); err != nil {
				t.Fatal(err)
			}
			if env.Type != FrameReply || !reflect.DeepEqual(env.Reply, tt.p) {
				t.Fatalf("got %+v, want %+v", env.Reply, tt.p)
			}
		})
	}
}

func TestCancelRoundTrip(t *testing.T) {
	frame := AppendCancel(nil, 1<<33)
	var env Envelope
	if err := DecodeEnvelope(frame, &env); err != nil {
		t.Fatal(err)
	}
	if env.Type != FrameCancel || env.CancelID != 1<<33 {
		t.Fatalf("got %+v", env)
	}
}

// Every wire error code survives encode/decode unchanged and still matches
// its sentinel (and the context errors where they apply).
func TestErrorsSurviveWire(t *testing.T) {
	for code := CodeApplication; code <= CodeInternal; code++ {
		t.Run(code.String(), func(t *testing.T) {
			in := &Error{Code: code, Message: "m", Node: "n", Actor: "a", Method: "M", cause: errors.New("local")}
			var env Envelope
			if err := DecodeEnvelope(AppendErrorReply(nil, 1, in), &env); err != nil {
				t.Fatal(err)
			}
			out := env.Reply.Err
			if out.Code != in.Code || out.Message != in.Message || out.Node != in.Node ||
				out.Actor != in.Actor || out.Method != in.Method || out.Error() != in.Error() {
				t.Fatalf("got %#v, want %#v", out, in)
			}
			if !errors.Is(out, sentinels[code]) {
				t.Fatalf("errors.Is(%v, %v) false", out, sentinels[code])
			}
			for other := CodeApplication; other <= CodeInternal; other++ {
				if other != code && errors.Is(out, sentinels[other]) {
					t.Fatalf("%v also matches %v", out, sentinels[other])
				}
			}
			if got := errors.Is(out, context.DeadlineExceeded); got != (code == CodeDeadline) {
				t.Fatalf("Is(DeadlineExceeded) = %v", got)
			}
			if got := errors.Is(out, context.Canceled); got != (code == CodeCanceled) {
				t.Fatalf("Is(Canceled) = %v", got)
			}
			if out.Unwrap() != nil {
				t.Fatal("cause crossed the wire")
			}
		})
	}
}

func TestDecodeEnvelopeMalformed(t *testing.T) {
	good := AppendRequest(nil, &Request{ID: 1, Target: "a", Method: "M", Args: mustArgs(t, 1)})
	tests := []struct {
		name  string
		frame []byte
	}{
		{"empty", nil},
		{"not an array", []byte{0x01}},
		{"unknown type", []byte{0x92, 0x09, 0x01}},
		{"request wrong count", []byte{0x92, 0x01, 0x01}},
		{"reply wrong count", []byte{0x92, 0x02, 0x01}},
		{"cancel wrong count", []byte{0x93, 0x03, 0x01, 0x01}},
		{"cancel negative id", []byte{0x92, 0x03, 0xff}},
		{"truncated request", good[:len(good)-1]},
		{"trailing bytes", append(append([]byte{}, good...), 0x00)},
		{"cancel trailing", []byte{0x92, 0x03, 0x01, 0x01}},
		{"unknown flags", AppendRequest(nil, &Request{ID: 1, Target: "a", Method: "M", Flags: 0x80})},
		{"target not a string", []byte{0x99, 0x01, 0x01, 0x01}},
		{"args not an array", append(AppendRequestHeader(nil, &Request{ID: 1, Target: "a", Method: "M"}), 0x01)},
		{"args array too long", append(AppendRequestHeader(nil, &Request{ID: 1, Target: "a", Method: "M"}), 0xdd, 0xff, 0xff, 0xff, 0xff)},
		{"str32 huge", []byte{0x99, 0x01, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff}},
		{"reserved code in args", append(AppendRequestHeader(nil, &Request{ID: 1, Target: "a", Method: "M"}), 0x91, 0xc1)},
		{"reply error wrong count", []byte{0x94, 0x02, 0x01, 0x02, 0x91, 0xa0}},
		{"reply code too big", []byte{0x94, 0x02, 0x01, 0xce, 0x00, 0x01, 0x00, 0x00, 0x94, 0xa0, 0xa0, 0xa0, 0xa0}},
		{"reply missing result", []byte{0x94, 0x02, 0x01, 0x00}},
		{"deadline overflow", append(AppendRequestHeader(nil, &Request{ID: 1, Target: "a", Method: "M"})[:9],
			0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc0, 0x90)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var env Envelope
			err := DecodeEnvelope(tt.frame, &env)
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want *DecodeError", err)
			}
		})
	}
}

func TestSkipAllTypes(t *testing.T) {
	values := []any{nil, true, false, 1, -1, -100, 300, -40000, 1 << 40, -(1 << 40), uint64(math.MaxUint64),
		float32(1.5), 2.5, "s", string(make([]byte, 40)), string(make([]byte, 300)), string(make([]byte, 70000)),
		[]byte{1}, make([]byte, 300), make([]byte, 70000), []int{1, 2}, make([]int, 20), make([]int, 70000),
		map[string]int{"a": 1}, map[int]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8, 9: 9, 10: 10, 11: 11, 12: 12, 13: 13, 14: 14, 15: 15, 16: 16},
		[]any{[]any{map[string]any{"x": []int{1}}}}, Ref{ID: "a", Type: "T"}}
	args := mustArgs(t, values...)
	r := reader{b: args}
	r.skip()
	if r.err != nil || r.off != len(args) {
		t.Fatalf("skip: off %d/%d err %v", r.off, len(args), r.err)
	}
}

func TestReplyHeaderLen(t *testing.T) {
	for _, id := range []uint64{0, 127, 128, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1<<64 - 1} {
		if got, want := replyHeaderLen(id), len(AppendReplyHeader(nil, id)); got != want {
			t.Errorf("replyHeaderLen(%d) = %d, want %d", id, got, want)
		}
	}
}
