package placement

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/troupe-dev/troupe/internal/wirecheck"
)

// A snapshot is a 20-byte header — magic "TRPS", version 1, three zero
// bytes, the body length (uint64, big endian) and the CRC-32C of the body —
// then the msgpack body. Restore refuses a wrong magic or version, a length
// or checksum mismatch, and an undecodable body, so a corrupted or truncated
// snapshot is an error, never a silent empty state.
const (
	snapMagic      = "TRPS"
	snapVersion    = 1
	snapHeaderSize = 20
	maxSnapshot    = 1 << 34 // 16 GiB: refuse absurd lengths before allocating
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type snapshotBody struct {
	Index   uint64      `msgpack:"x"`
	Members []Member    `msgpack:"m"`
	Actors  []Placement `msgpack:"a"`
	// Sessions are the exactly-once windows, by origin node.
	Sessions map[string]*session `msgpack:"s"`
}

// capture copies the state; it must not run concurrently with apply.
func (m *machine) capture() snapshotBody {
	b := snapshotBody{Index: m.applied.Load(), Members: m.memberList(), Sessions: make(map[string]*session)}
	m.mu.RLock()
	for k, s := range m.sessions {
		c := &session{Inc: s.Inc, Order: slices.Clone(s.Order), Results: make(map[uint64]result, len(s.Results)), EvictedMax: s.EvictedMax, Floor: s.Floor}
		for q, r := range s.Results {
			c.Results[q] = r
		}
		b.Sessions[k] = c
	}
	m.mu.RUnlock()
	b.Actors = make([]Placement, 0, m.count.Load())
	m.actors.Range(func(_, v any) bool {
		b.Actors = append(b.Actors, *v.(*Placement))
		return true
	})
	slices.SortFunc(b.Actors, func(x, y Placement) int { return cmp.Compare(x.ID, y.ID) })
	return b
}

func encodeSnapshot(b snapshotBody) ([]byte, error) {
	body, err := msgpack.Marshal(&b)
	if err != nil {
		return nil, err
	}
	out := make([]byte, snapHeaderSize, snapHeaderSize+len(body))
	copy(out, snapMagic)
	out[4] = snapVersion
	binary.BigEndian.PutUint64(out[8:16], uint64(len(body)))
	binary.BigEndian.PutUint32(out[16:20], crc32.Checksum(body, castagnoli))
	return append(out, body...), nil
}

func decodeSnapshot(r io.Reader) (snapshotBody, error) {
	var b snapshotBody
	var hdr [snapHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return b, fmt.Errorf("%w: header: %v", ErrBadSnapshot, err)
	}
	if string(hdr[:4]) != snapMagic {
		return b, fmt.Errorf("%w: bad magic", ErrBadSnapshot)
	}
	if hdr[4] != snapVersion || hdr[5]|hdr[6]|hdr[7] != 0 {
		return b, fmt.Errorf("%w: unknown version %d", ErrBadSnapshot, hdr[4])
	}
	n := binary.BigEndian.Uint64(hdr[8:16])
	if n > maxSnapshot {
		return b, fmt.Errorf("%w: length %d", ErrBadSnapshot, n)
	}
	var buf bytes.Buffer
	got, err := io.Copy(&buf, io.LimitReader(r, int64(n)+1))
	if err != nil {
		return b, fmt.Errorf("%w: body: %v", ErrBadSnapshot, err)
	}
	if uint64(got) != n {
		return b, fmt.Errorf("%w: body is %d bytes, header says %d", ErrBadSnapshot, got, n)
	}
	body := buf.Bytes()
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(hdr[16:20]) {
		return b, fmt.Errorf("%w: checksum mismatch", ErrBadSnapshot)
	}
	// Validate before decoding: the checksum proves only that the sender
	// meant these bytes, not that their lengths are sane.
	if n, err := wirecheck.Value(body, wirecheck.MaxDepth); err != nil {
		return b, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	} else if n != len(body) {
		return b, fmt.Errorf("%w: %d trailing bytes", ErrBadSnapshot, len(body)-n)
	}
	if err := msgpack.Unmarshal(body, &b); err != nil {
		return snapshotBody{}, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	return b, nil
}

// restore replaces the state with b; it must not run concurrently with apply.
func (m *machine) restore(b snapshotBody) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.actors.Clear()
	m.count.Store(0)
	clear(m.members)
	clear(m.byNode)
	clear(m.sessions)
	for k, s := range b.Sessions {
		if s == nil {
			continue
		}
		if s.Results == nil {
			s.Results = make(map[uint64]result)
		}
		// Snapshots before the Floor kept Order in apply order.
		slices.Sort(s.Order)
		s.Order = slices.Compact(s.Order)
		m.sessions[k] = s
	}
	for i := range b.Members {
		mb := b.Members[i]
		mb.Load = 0
		m.members[mb.ID] = &mb
	}
	a := applier{m: m, index: b.Index}
	for _, p := range b.Actors {
		a.store(p)
	}
	m.applied.Store(b.Index)
}
