package placement

import (
	"bytes"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

// TestMemSnapshots: a snapshot written in chunks reads back whole; it is
// listed only once its sink is closed, and a cancelled one never is.
func TestMemSnapshots(t *testing.T) {
	var s memSnapshots
	if l, _ := s.List(); len(l) != 0 {
		t.Fatalf("empty store lists %v", l)
	}
	want := make([]byte, 3*memChunk+12345)
	for i := range want {
		want[i] = byte(i * 7)
	}
	sink, err := s.Create(1, 10, 2, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	for p := want; len(p) > 0; {
		n := min(len(p), 100_000)
		if _, err := sink.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if l, _ := s.List(); len(l) != 0 {
		t.Fatal("listed before Close")
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	other, _ := s.Create(1, 11, 2, raft.Configuration{}, 1, nil)
	other.Write([]byte("partial"))
	other.Cancel()
	l, _ := s.List()
	if len(l) != 1 || l[0].ID != sink.ID() || l[0].Index != 10 || l[0].Size != int64(len(want)) {
		t.Fatalf("List = %+v", l)
	}
	meta, rc, err := s.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	if !bytes.Equal(got, want) || meta.Size != int64(len(want)) {
		t.Fatalf("read %d bytes (meta %d), want %d", len(got), meta.Size, len(want))
	}
	if _, _, err := s.Open(other.ID()); err == nil {
		t.Fatal("opened a cancelled snapshot")
	}
}
