package remote

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// testTrace is a W3C trace context with recognisable bytes.
var testTrace = TraceContext{
	TraceID: [16]byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
	SpanID:  [8]byte{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	Flags:   0x01,
}

func TestRequestTraceRoundTrip(t *testing.T) {
	for _, q := range []Request{
		{ID: 1, Target: "a", Method: "M", Trace: &testTrace, Args: []byte{0x90}},
		{ID: 1 << 40, Target: "b", Epoch: 9, Method: "Add", Flags: FlagIdempotent | FlagNoCancel, Deadline: 1 << 60,
			Sender: "n1", After: 77, Trace: &TraceContext{TraceID: [16]byte{15: 1}, SpanID: [8]byte{7: 1}}, Args: mustArgs(t, 5, "x")},
		{ID: 3, Target: "c", Method: "Tell", Flags: FlagOneWay, Trace: &testTrace, Args: mustArgs(t, []int{1})},
	} {
		frame := AppendRequest(nil, &q)
		var env Envelope
		if err := DecodeEnvelope(frame, &env); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(env.Request, q) {
			t.Fatalf("got %+v\nwant %+v", env.Request, q)
		}
		// Still one standard msgpack value, with one more field.
		var generic []any
		if err := Unmarshal(frame, &generic); err != nil || len(generic) != tracedFields {
			t.Fatalf("msgpack view: %v %v", generic, err)
		}
		if b, ok := generic[9].([]byte); !ok || len(b) != traceLen {
			t.Fatalf("trace field is %T %v, want 25 bytes", generic[9], generic[9])
		}
	}
}

func TestRequestTraceBytes(t *testing.T) {
	q := Request{ID: 5, Target: "a", Epoch: 2, Method: "M", Flags: FlagOneWay, Args: mustArgs(t, 1)}
	plain := AppendRequest(nil, &q)
	// Without a trace context the frame is byte for byte the 10-field one.
	want := []byte{0x9a, 0x01, 0x05, 0xa1, 'a', 0x02, 0xa1, 'M', 0x01, 0x00, 0xc0, 0x00, 0x91, 0x01}
	if !bytes.Equal(plain, want) {
		t.Fatalf("untraced: got % x\nwant % x", plain, want)
	}
	q.Trace = &testTrace
	got := AppendRequest(nil, &q)
	want = append([]byte{0x9b}, plain[1:12]...)
	want = append(want, 0xc4, 25)
	want = append(want, testTrace.TraceID[:]...)
	want = append(want, testTrace.SpanID[:]...)
	want = append(want, 0x01, 0x91, 0x01)
	if !bytes.Equal(got, want) {
		t.Fatalf("traced: got % x\nwant % x", got, want)
	}
	if len(got)-len(plain) != 27 {
		t.Fatalf("the trace field costs %d bytes, want 27", len(got)-len(plain))
	}
	// An 11-field request whose trace is nil decodes with no trace.
	nilTrace := append(append([]byte{0x9b}, plain[1:12]...), 0xc0, 0x91, 0x01)
	var env Envelope
	if err := DecodeEnvelope(nilTrace, &env); err != nil || env.Request.Trace != nil || env.Request.After != 0 || string(env.Request.Args) != "\x91\x01" {
		t.Fatalf("nil trace: %+v, %v", env.Request, err)
	}
	// A decoded traced request leaves no trace on the next, untraced one.
	if err := DecodeEnvelope(got, &env); err != nil || env.Request.Trace == nil || *env.Request.Trace != testTrace {
		t.Fatalf("traced: %+v, %v", env.Request, err)
	}
	if err := DecodeEnvelope(plain, &env); err != nil || env.Request.Trace != nil {
		t.Fatalf("untraced after traced: %+v, %v", env.Request, err)
	}
	old := []byte{0x99, 0x01, 0x05, 0xa1, 'a', 0x02, 0xa1, 'M', 0x01, 0x00, 0xc0, 0x91, 0x01}
	if err := DecodeEnvelope(old, &env); err != nil || env.Request.Trace != nil {
		t.Fatalf("9-field request: %+v, %v", env.Request, err)
	}
}

func TestRequestTraceMalformed(t *testing.T) {
	head := AppendRequestHeader(nil, &Request{ID: 1, Target: "a", Method: "M", Trace: &testTrace})
	fixed := head[:len(head)-2-traceLen] // up to and including after
	with := func(trace ...byte) []byte {
		return append(append(append([]byte{}, fixed...), trace...), 0x90)
	}
	body := append(append(append([]byte{}, testTrace.TraceID[:]...), testTrace.SpanID[:]...), testTrace.Flags)
	tests := []struct {
		name  string
		frame []byte
	}{
		{"bin too short", with(append([]byte{0xc4, 24}, body[:24]...)...)},
		{"bin too long", with(append([]byte{0xc4, 26}, append(body, 0)...)...)},
		{"bin16", with(append([]byte{0xc5, 0, 25}, body...)...)},
		{"string", with(append([]byte{0xb9}, body...)...)},
		{"integer", with(0x01)},
		{"array", with(0x90)},
		{"length past the end", append(append([]byte{}, fixed...), 0xc4, 25, 1, 2, 3)},
		{"truncated after the code", append(append([]byte{}, fixed...), 0xc4)},
		{"zero trace id", with(append([]byte{0xc4, 25}, append(make([]byte, 16), body[16:]...)...)...)},
		{"zero span id", with(append([]byte{0xc4, 25}, append(append(append([]byte{}, body[:16]...), make([]byte, 8)...), 1)...)...)},
		{"missing args", append(append([]byte{}, fixed...), append([]byte{0xc4, 25}, body...)...)},
		{"12 fields", append([]byte{0x9c}, with(append([]byte{0xc4, 25}, body...)...)[1:]...)},
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
	// The well-formed frame the cases are cut from decodes.
	var env Envelope
	if err := DecodeEnvelope(with(append([]byte{0xc4, 25}, body...)...), &env); err != nil || env.Request.Trace == nil || *env.Request.Trace != testTrace {
		t.Fatalf("good frame: %+v, %v", env.Request, err)
	}
}
