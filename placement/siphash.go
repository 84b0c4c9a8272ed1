package placement

import (
	"encoding/binary"
	"math/bits"
)

// The directory's hash is SipHash-2-4 under a fixed key: the same on every
// replica, so every replica's trie has the same order (a failover moves
// actors in that order, chunk by chunk, each chunk a few subtries: see
// rehomeQueue). A fixed key is safe here because what an attacker who
// chooses ids could gain is bounded by SipHash's strength as a 64-bit
// function, not by the key's secrecy: a k-way full collision (k ids in one
// collision list) costs ~2^(64(k-1)/k) hashes (2^43 for 3, 2^48 for 4), and
// each extra trie level on one path costs 2^6 times more ids tried; a weak
// hash (FNV, or one with seed-independent collisions) would let a flood of
// ids share one list.
const (
	sipK0 = 0x0706050403020100 ^ 0x74726f7570652d64 // "troupe-d"
	sipK1 = 0x0f0e0d0c0b0a0908 ^ 0x69726563746f7279 // "irectory"
)

// sipHash returns SipHash-2-4 of s under key (k0, k1).
func sipHash(k0, k1 uint64, s string) uint64 {
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	n := len(s)
	for len(s) >= 8 {
		m := binary.LittleEndian.Uint64([]byte(s[:8]))
		v3 ^= m
		round()
		round()
		v0 ^= m
		s = s[8:]
	}
	m := uint64(n) << 56
	for i := 0; i < len(s); i++ {
		m |= uint64(s[i]) << (8 * i)
	}
	v3 ^= m
	round()
	round()
	v0 ^= m
	v2 ^= 0xff
	round()
	round()
	round()
	round()
	return v0 ^ v1 ^ v2 ^ v3
}
