package remote

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeEnvelope checks that the decoder never panics, that every
// failure is a *DecodeError, and that a decoded frame re-encodes to a frame
// that decodes to the same envelope.
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(AppendRequest(nil, &Request{ID: 1, Target: "a", Epoch: 3, Method: "Add", Deadline: 99, Sender: "n1", Args: []byte{0x91, 0x05}}))
	f.Add(AppendRequest(nil, &Request{ID: 1 << 40, Target: "a", Method: "M", Flags: FlagOneWay, Args: []byte{0x90}}))
	f.Add(AppendReply(nil, &Reply{ID: 2, Result: []byte{0x92, 0x81, 0xa1, 'k', 0xc3, 0xd6, 0xff, 0, 0, 0, 0}}))
	f.Add(AppendErrorReply(nil, 3, &Error{Code: CodeBadArgs, Message: "m", Node: "n", Actor: "a", Method: "M"}))
	f.Add(AppendCancel(nil, 4))
	f.Add([]byte{0x99, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff})
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
