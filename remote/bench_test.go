package remote

import (
	"context"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

var benchArg = make([]byte, 32)

func benchRequest(b *testing.B) Request {
	return Request{ID: 123456, Target: "counter-42", Epoch: 7, Method: "Add", Flags: FlagIdempotent,
		Deadline: 1764160000000000000, Sender: "node-1", Args: mustArgs(b, benchArg)}
}

func BenchmarkEnvelopeEncode(b *testing.B) {
	q := benchRequest(b)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRequestHeader(buf[:0], &q)
		buf = append(buf, q.Args...)
	}
	b.ReportMetric(float64(len(buf)), "frame-bytes")
}

// BenchmarkEnvelopeMarshalReflect is the baseline the hand-written encoder
// replaces: msgpack.Marshal of an equivalent struct.
func BenchmarkEnvelopeMarshalReflect(b *testing.B) {
	type envelope struct {
		Type     uint8
		ID       uint64
		Target   string
		Epoch    uint64
		Method   string
		Flags    uint8
		Deadline int64
		Sender   *string
		Args     msgpack.RawMessage
	}
	q := benchRequest(b)
	e := envelope{1, q.ID, q.Target, q.Epoch, q.Method, uint8(q.Flags), q.Deadline, &q.Sender, q.Args}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := msgpack.Marshal(&e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelopeDecode(b *testing.B) {
	q := benchRequest(b)
	frame := AppendRequest(nil, &q)
	var env Envelope
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeEnvelope(frame, &env); err != nil {
			b.Fatal(err)
		}
	}
}

type benchActor struct{ n int }

func (a *benchActor) Add(ctx context.Context, n int) (int, error) { a.n += n; return a.n, nil }
func (a *benchActor) Put(ctx context.Context, p []byte) error     { a.n += len(p); return nil }

// BenchmarkDispatch measures the server-side work of one call short of the
// mailbox: decode the envelope, look up the method, decode the arguments,
// invoke, encode the reply.
func BenchmarkDispatch(b *testing.B) {
	typ, err := NewType("Bench", func() *benchActor { return &benchActor{} })
	if err != nil {
		b.Fatal(err)
	}
	obj, err := typ.New()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name, method string
		arg          any
	}{{"int", "Add", 1}, {"bytes32", "Put", benchArg}} {
		b.Run(bc.name, func(b *testing.B) {
			q := Request{ID: 1, Target: "bench-1", Epoch: 1, Method: bc.method, Sender: "n1", Args: mustArgs(b, bc.arg)}
			frame := AppendRequest(nil, &q)
			ctx := context.Background()
			var env Envelope
			out := make([]byte, 0, 128)
			b.ReportAllocs()
			for b.Loop() {
				if err := DecodeEnvelope(frame, &env); err != nil {
					b.Fatal(err)
				}
				out = AppendReplyHeader(out[:0], env.Request.ID)
				if out, err = obj.Invoke(ctx, out, env.Request.Method, env.Request.Args); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}
