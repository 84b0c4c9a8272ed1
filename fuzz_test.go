package troupe

import (
	"testing"

	"github.com/troupe-dev/troupe/remote"
	"github.com/vmihailenco/msgpack/v5"
)

// FuzzDecodeRef feeds arbitrary bytes to the decoder of Refs the runtime
// uses (remote.Unmarshal: validated by wirecheck, then msgpack), the form in
// which they travel as arguments and results: it must never panic nor
// allocate by announced sizes, a decoded Ref is always unbound, and it
// re-encodes to what decodes equal. (msgpack.Unmarshal alone allocates a
// str32's announced length: never hand it untrusted bytes.)
func FuzzDecodeRef(f *testing.F) {
	f.Add([]byte("\x94\xdb\xc0\xc0\xd00")) // a str32 of 3.2 GB announced in 6 bytes
	for _, r := range []remote.Ref{{}, {ID: "c1", Type: "Counter", Node: "n1", Epoch: 1024}, {ID: "~L.n2.7", Type: "T", Node: "n2"}} {
		b, err := msgpack.Marshal(Ref{Ref: r})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Ref
		if err := remote.Unmarshal(data, &r); err != nil {
			return
		}
		if r.Bound() {
			t.Fatal("decoded Ref is bound")
		}
		b, err := msgpack.Marshal(r)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", r, err)
		}
		var again Ref
		if err := remote.Unmarshal(b, &again); err != nil || again.Ref != r.Ref {
			t.Fatalf("round trip %+v -> %+v, %v", r, again, err)
		}
	})
}
