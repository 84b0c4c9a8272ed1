package transport

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// A writer's chunked queue hands out its frames in the order pushed, also
// when a write sends only some of the chunks it took and the rest go back
// in front of frames pushed meanwhile (a flush that found no flow-control
// credit), with frames bigger than a chunk among them, and reused chunks
// never overwrite frames still queued.
func TestWriterQueueKeepsOrder(t *testing.T) {
	w := &streamWriter{pc: &peerConn{}}
	var want [][]byte
	push := func(n int) {
		for range n {
			size := 4 + len(want)%7*500
			if len(want)%97 == 96 {
				size = slabSize + 10
			}
			f := make([]byte, size)
			binary.BigEndian.PutUint32(f, uint32(len(want)))
			for i := 4; i < size; i++ {
				f[i] = byte(len(want) + i)
			}
			w.push(f)
			want = append(want, f)
		}
	}
	var got []byte
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		push(rng.IntN(200))
		out := w.take()
		sent := rng.IntN(len(out) + 1)
		for _, c := range out[:sent] {
			got = append(got, c.b...)
		}
		if sent == len(out) {
			w.wrote(out)
			continue
		}
		push(rng.IntN(50)) // queued while the write was in progress
		w.release(out[:sent])
		w.untake(out[sent:])
	}
	out := w.take()
	for _, c := range out {
		got = append(got, c.b...)
	}
	w.wrote(out)
	if !w.empty() {
		t.Fatal("queue not empty after the last take")
	}
	for i, f := range want {
		if len(got) < frameHeaderLen {
			t.Fatalf("%d of %d frames written", i, len(want))
		}
		n := int(binary.BigEndian.Uint32(got))
		if n != len(f) || len(got) < frameHeaderLen+n || !bytes.Equal(got[frameHeaderLen:frameHeaderLen+n], f) {
			t.Fatalf("frame %d of %d: wrong bytes (length %d, want %d; id %d)", i, len(want), n, len(f), binary.BigEndian.Uint32(got[frameHeaderLen:]))
		}
		got = got[frameHeaderLen+n:]
	}
	if len(got) != 0 {
		t.Fatalf("%d bytes written beyond the frames pushed", len(got))
	}
}
