package wirecheck

import (
	"bytes"
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// FuzzValue checks Value against msgpack's own skipper: whatever Value
// accepts, msgpack skips to the same length; whatever it refuses for being
// malformed (not for depth), msgpack cannot skip either. Value never panics.
func FuzzValue(f *testing.F) {
	for _, v := range []any{nil, 1, "s", []any{1, []any{2}}, map[string]any{"k": []byte{1}}, 1.5} {
		b, _ := msgpack.Marshal(v)
		f.Add(b)
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})                         // array32 of 2^32-1
	f.Add([]byte{0x80 | 0x01, 0xa1, 'c', 0xdd, 0xff, 0xff, 0xff, 0xff}) // inside a map
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xc1})
	f.Add(append(bytes.Repeat([]byte{0x91}, 300), 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := Value(b, MaxDepth)
		if err != nil {
			var we *Error
			if !errors.As(err, &we) || n != 0 || we.Offset < 0 || we.Offset > len(b) {
				t.Fatalf("Value = %d, %v", n, err)
			}
		} else if n <= 0 || n > len(b) {
			t.Fatalf("Value = %d of %d bytes", n, len(b))
		}
		// Without a depth bound Value agrees with msgpack's Skip (the
		// inputs are small, so msgpack's recursion is shallow enough).
		n, err = Value(b, len(b)+1)
		r := bytes.NewReader(b)
		skipErr := msgpack.NewDecoder(r).Skip()
		skipped := len(b) - r.Len()
		switch {
		case err == nil && skipErr != nil:
			t.Fatalf("Value accepted %d bytes, msgpack Skip: %v", n, skipErr)
		case err == nil && skipped != n:
			t.Fatalf("Value: %d bytes, msgpack Skip: %d", n, skipped)
		case err != nil && skipErr == nil:
			t.Fatalf("Value refused (%v), msgpack skipped %d bytes", err, skipped)
		}
	})
}
