package placement

import (
	"hash/maphash"
	"testing"
)

// TestSipHashVectors checks sipHash against the SipHash-2-4 reference
// vectors (key 00..0f, messages 00, 00 01, ... : the paper's appendix and
// the reference implementation's vectors.h), at every length across a
// word boundary.
func TestSipHashVectors(t *testing.T) {
	const k0, k1 = 0x0706050403020100, 0x0f0e0d0c0b0a0908
	want := []uint64{
		0x726fdb47dd0e0e31, 0x74f839c593dc67fd, 0x0d6c8009d9a94f5a, 0x85676696d7fb7e2d,
		0xcf2794e0277187b7, 0x18765564cd99a68d, 0xcbc9466e58fee3ce, 0xab0200f58b01d137,
		0x93f5f5799a932462, 0x9e0082df0ba9e4b0, 0x7a5dbbc594ddb9f3, 0xf4b32f46226bada7,
		0x751e8fbc860ee5fb, 0x14ea5627c0843d90, 0xf723ca908e7af2ee, 0xa129ca6149be45e5,
		0x3f2acc7f57c29bdb,
	}
	msg := make([]byte, len(want))
	for i := range msg {
		msg[i] = byte(i)
	}
	for n, w := range want {
		if got := sipHash(k0, k1, string(msg[:n])); got != w {
			t.Errorf("length %d: %#x, want %#x", n, got, w)
		}
	}
}

// BenchmarkHash compares the directory's hash with the seeded maphash it
// replaced, on a 16-byte id.
func BenchmarkHash(b *testing.B) {
	id := "actor-0001234567"
	b.Run("siphash", func(b *testing.B) {
		var h uint64
		for range b.N {
			h += sipHash(sipK0, sipK1, id)
		}
		hashSink = h
	})
	b.Run("maphash", func(b *testing.B) {
		seed := maphash.MakeSeed()
		var h uint64
		for range b.N {
			h += maphash.String(seed, id)
		}
		hashSink = h
	})
}

var hashSink uint64
