package placement

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"strings"
	"time"

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
	// dir, when set, holds the actors instead of Actors: decoded straight
	// into directory entries (decodeBodyFast).
	dir *snapEntries
}

// withActors returns b with its actors as Placements (tests).
func (b snapshotBody) withActors() snapshotBody {
	if b.dir != nil {
		b.Actors, b.dir = b.dir.placements(), nil
	}
	return b
}

// snapView is a point-in-time view of the state, taken on the FSM
// goroutine in O(members + sessions): the directory is its published root,
// which no later apply changes. Persist encodes it on its own goroutine.
type snapView struct {
	index    uint64
	members  []Member
	sessions map[string]*session
	root     *hnode
	count    int
	abort    <-chan struct{} // closed: writeTo gives up (the registry closes)
}

// errSnapshotAborted ends a snapshot's Persist when its registry closes:
// a million entries take most of a second to write, ten million several,
// and Raft's Shutdown waits for the snapshot in progress.
var errSnapshotAborted = errors.New("placement: snapshot aborted: registry closing")

// view captures the state; it must not run concurrently with apply.
func (m *machine) view() *snapView {
	v := &snapView{index: m.applied.Load(), members: m.memberList(), sessions: make(map[string]*session),
		root: m.dir.root.Load(), count: int(m.count.Load())}
	m.mu.RLock()
	for k, s := range m.sessions {
		c := &session{Inc: s.Inc, Order: slices.Clone(s.Order), Results: make(map[uint64]result, len(s.Results)), EvictedMax: s.EvictedMax, Floor: s.Floor}
		for q, r := range s.Results {
			c.Results[q] = r
		}
		v.sessions[k] = c
	}
	m.mu.RUnlock()
	return v
}

// body materializes the view as a snapshotBody, actors sorted by id
// (tests; Persist encodes the view without it).
func (v *snapView) body() snapshotBody {
	b := snapshotBody{Index: v.index, Members: v.members, Sessions: v.sessions, Actors: make([]Placement, 0, v.count)}
	walk(v.root, func(e *entry) bool {
		b.Actors = append(b.Actors, e.placement())
		return true
	})
	slices.SortFunc(b.Actors, func(x, y Placement) int { return cmp.Compare(x.ID, y.ID) })
	return b
}

// capture copies the state; it must not run concurrently with apply.
func (m *machine) capture() snapshotBody { return m.view().body() }

// writeTo writes the view in the snapshot format: the body exactly as
// msgpack encodes a snapshotBody (a map of its four fields), the actors in
// trie order, encoded field by field from the trie. It walks the trie
// twice, first for the header's length and checksum, and allocates nothing
// per actor, so Persist neither copies the directory nor feeds the
// collector (whose assists would stall the FSM goroutine).
func (v *snapView) writeTo(w io.Writer) error {
	// Members and sessions are encoded once, so both passes write the
	// same bytes (map order).
	var head, tail bytes.Buffer
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&head)
	err := errors.Join(enc.EncodeMapLen(4),
		enc.EncodeString("x"), enc.EncodeUint(v.index),
		enc.EncodeString("m"), enc.Encode(v.members),
		enc.EncodeString("a"), enc.EncodeArrayLen(v.count))
	enc.Reset(&tail)
	err = errors.Join(err, enc.EncodeString("s"), enc.Encode(v.sessions))
	if err != nil {
		return err
	}
	sum := &crcCounter{abort: v.abort}
	if err := v.writeBody(sum, head.Bytes(), tail.Bytes()); err != nil {
		return err
	}
	var hdr [snapHeaderSize]byte
	copy(hdr[:], snapMagic)
	hdr[4] = snapVersion
	binary.BigEndian.PutUint64(hdr[8:16], uint64(sum.n))
	binary.BigEndian.PutUint32(hdr[16:20], sum.crc)
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	check := &crcCounter{w: w, abort: v.abort}
	if err := v.writeBody(check, head.Bytes(), tail.Bytes()); err != nil {
		return err
	}
	if check.n != sum.n || check.crc != sum.crc {
		return fmt.Errorf("placement: snapshot body changed between passes")
	}
	return nil
}

func (v *snapView) writeBody(w *crcCounter, head, tail []byte) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(head)
	n := 0
	buf := make([]byte, 0, 256)
	walk(v.root, func(e *entry) bool {
		buf = appendEntry(buf[:0], e)
		bw.Write(buf)
		n++
		return true
	})
	if n != v.count {
		return fmt.Errorf("placement: snapshot of %d actors, counted %d", v.count, n)
	}
	bw.Write(tail)
	return bw.Flush()
}

// appendEntry appends e as msgpack encodes its Placement: a map with the
// same keys, in field order. (Hand-written: 5× faster than the encoder.)
func appendEntry(b []byte, e *entry) []byte {
	c := e.cls
	if c.owner != "" {
		b = append(b, 0x80|10)
	} else {
		b = append(b, 0x80|9)
	}
	b = appendStr(appendStr(b, "i"), e.id)
	b = appendStr(appendStr(b, "t"), c.typ)
	b = appendStr(appendStr(b, "n"), c.node)
	b = appendUint(appendStr(b, "e"), e.epoch)
	b = appendUint(appendStr(b, "s"), uint64(c.strategy))
	b = append(appendStr(b, "p"), 0x80|2)
	b = appendInt(appendStr(b, "m"), int64(c.policy.MaxRestarts))
	b = appendInt(appendStr(b, "b"), int64(c.policy.Backoff))
	b = appendUint(appendStr(b, "r"), uint64(e.restarts))
	b = appendUint(appendStr(b, "x"), uint64(c.state))
	b = appendStr(appendStr(b, "y"), c.reason)
	if c.owner != "" {
		b = appendStr(appendStr(b, "o"), c.owner)
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v <= math.MaxInt8:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return appendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

// crcCounter counts and checksums what passes through to w (if set).
type crcCounter struct {
	w     io.Writer
	n     int64
	crc   uint32
	abort <-chan struct{}
}

func (c *crcCounter) Write(p []byte) (int, error) {
	if c.abort != nil {
		select {
		case <-c.abort:
			return 0, errSnapshotAborted
		default:
		}
	}
	if c.w != nil {
		if n, err := c.w.Write(p); err != nil {
			return n, err
		}
	}
	c.n += int64(len(p))
	c.crc = crc32.Update(c.crc, castagnoli, p)
	return len(p), nil
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
	// One allocation for a body of up to 64 MiB (a million actors), not a
	// doubling series; past that, growth follows the bytes that arrive.
	buf.Grow(int(min(n+1, 64<<20)))
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
	// The fast decoder checks every length against the bytes present and
	// validates what it hands msgpack; what it gives up on is validated
	// whole before msgpack sees it: the checksum proves only that the
	// sender meant these bytes, not that their lengths are sane.
	if fast, ok := decodeBodyFast(body); ok {
		return fast, nil
	}
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

// decodeBodyFast decodes a snapshot body as msgpack.Unmarshal would, the
// actors by hand straight into directory entries (b.dir: no Placement per
// actor, ids cut from shared blocks, classes interned), the rest by
// msgpack once wirecheck has validated each. It gives up (false) on
// anything but the layout writeTo and the reflecting encoder produce, and
// the caller validates the whole body and decodes it by reflection
// instead.
func decodeBodyFast(body []byte) (snapshotBody, bool) {
	var b snapshotBody
	r := mpReader{b: body}
	n, ok := r.mapLen()
	if !ok {
		return b, false
	}
	for range n {
		key, ok := r.str()
		if !ok || r.off >= len(body) {
			return b, false
		}
		if string(key) == "a" {
			// The body was validated whole; the actors' reader finds
			// where they end without a second pass over them.
			var used int
			if b.dir, used, ok = decodeEntries(body[r.off:]); !ok {
				return b, false
			}
			b.Actors = nil
			r.off += used
			continue
		}
		vlen, err := wirecheck.Value(body[r.off:], wirecheck.MaxDepth)
		if err != nil {
			return b, false
		}
		val := body[r.off : r.off+vlen]
		r.off += vlen
		switch string(key) {
		case "x":
			err = msgpack.Unmarshal(val, &b.Index)
		case "m":
			b.Members = nil
			err = msgpack.Unmarshal(val, &b.Members)
		case "s":
			b.Sessions = nil
			err = msgpack.Unmarshal(val, &b.Sessions)
		}
		if err != nil {
			return b, false
		}
	}
	return b, r.off == len(body)
}

// snapEntries is a snapshot's directory decoded straight into entries
// (decodeBodyFast), with the classes they point to, for restore to build
// the trie from without a Placement per actor.
type snapEntries struct {
	es      []entry
	classes map[class]*classInfo
}

// idBlock is the size of the strings actor ids are cut from on a restore:
// one allocation per block instead of one per id. A block lives while any
// id cut from it does (ids of stopped actors keep their block's bytes).
const idBlock = 64 << 10

// decodeEntries reads the array of actors at the start of val as
// directory entries and returns them and the bytes they took. Classes are
// interned as dirWriter.classOf interns them (the last few are compared
// first: neighbours mostly share one), ids are cut from idBlock strings.
func decodeEntries(val []byte) (*snapEntries, int, bool) {
	r := mpReader{b: val}
	n, ok := r.arrayLen()
	if !ok || n > len(val) { // each element takes a byte at least
		return nil, 0, false
	}
	// An entry takes ~60 bytes: size for that, grow for forged tiny ones.
	out := &snapEntries{es: make([]entry, 0, min(n, len(val)/32)), classes: make(map[class]*classInfo)}
	shared := make(map[string]string)
	intern := func(b []byte) string {
		if s, ok := shared[string(b)]; ok {
			return s
		}
		s := string(b)
		if len(shared) < maxInterned {
			shared[s] = s
		}
		return s
	}
	var ids idCutter
	var recent [8]*classInfo
	for range n {
		// The fields as msgpack would fill a Placement: missing ones
		// zero, a repeated key's last value kept.
		var (
			id, typ, node, reason, owner []byte
			epoch, restarts              uint64
			k                            class
		)
		fields, ok := r.mapLen()
		if !ok {
			return nil, 0, false
		}
		for range fields {
			key, ok := r.str()
			if !ok || len(key) != 1 {
				return nil, 0, false
			}
			var u uint64
			switch key[0] {
			case 'i':
				id, ok = r.str()
			case 't':
				typ, ok = r.str()
			case 'n':
				node, ok = r.str()
			case 'y':
				reason, ok = r.str()
			case 'o':
				owner, ok = r.str()
			case 'e':
				epoch, ok = r.uint(math.MaxUint64)
			case 's':
				u, ok = r.uint(math.MaxUint8)
				k.strategy = Strategy(u)
			case 'x':
				u, ok = r.uint(math.MaxUint8)
				k.state = ActorState(u)
			case 'r':
				var x int64
				x, ok = r.int()
				restarts = uint64(min(max(x, 0), math.MaxUint32))
			case 'p':
				ok = r.policy(&k.policy)
			default:
				return nil, 0, false
			}
			if !ok {
				return nil, 0, false
			}
		}
		var c *classInfo
		for _, rc := range recent {
			if rc != nil && rc.policy == k.policy && rc.strategy == k.strategy && rc.state == k.state &&
				rc.typ == string(typ) && rc.node == string(node) && rc.reason == string(reason) && rc.owner == string(owner) {
				c = rc
				break
			}
		}
		if c == nil {
			k.typ, k.node, k.reason, k.owner = intern(typ), intern(node), intern(reason), intern(owner)
			if c = out.classes[k]; c == nil {
				c = &classInfo{class: k, tmpl: Placement{Type: k.typ, Node: k.node, Reason: k.reason, Owner: k.owner, Policy: k.policy, Strategy: k.strategy, State: k.state}}
				if len(out.classes) < maxInterned {
					out.classes[k] = c
				}
			}
			copy(recent[1:], recent[:])
			recent[0] = c
		}
		ids.add(out.es, id)
		out.es = append(out.es, entry{epoch: epoch, cls: c, restarts: uint32(restarts)})
	}
	ids.flush(out.es)
	return out, r.off, true
}

// idCutter gives entries their ids cut from shared strings: add copies an
// id into the current block, flush makes the block a string and sets the
// ids of the entries added since the last flush.
type idCutter struct {
	blk   []byte
	first int     // index of the block's first entry
	ends  []int32 // end offset of each of its ids in blk
}

// add records id for the entry about to be appended at len(es).
func (c *idCutter) add(es []entry, id []byte) {
	if len(c.blk)+len(id) > cap(c.blk) {
		c.flush(es)
		if cap(c.blk) < len(id) {
			c.blk = make([]byte, 0, max(idBlock, len(id)))
		}
	}
	c.blk = append(c.blk, id...)
	c.ends = append(c.ends, int32(len(c.blk)))
}

func (c *idCutter) flush(es []entry) {
	s, start := string(c.blk), int32(0)
	for i, end := range c.ends {
		es[c.first+i].id = s[start:end]
		start = end
	}
	c.first += len(c.ends)
	c.blk, c.ends = c.blk[:0], c.ends[:0]
}

// placements materializes decoded entries as Placements, in order (tests,
// and the comparison with msgpack's decoding).
func (d *snapEntries) placements() []Placement {
	out := make([]Placement, len(d.es))
	for i := range d.es {
		out[i] = d.es[i].placement()
	}
	return out
}

// mpReader reads the msgpack subset of a snapshot's actors; every method
// reports false on anything else (or a truncated value).
type mpReader struct {
	b   []byte
	off int
}

func (r *mpReader) byte() (byte, bool) {
	if r.off >= len(r.b) {
		return 0, false
	}
	c := r.b[r.off]
	r.off++
	return c, true
}

// be reads an n-byte big-endian unsigned integer.
func (r *mpReader) be(n int) (uint64, bool) {
	if len(r.b)-r.off < n {
		return 0, false
	}
	var v uint64
	for _, c := range r.b[r.off : r.off+n] {
		v = v<<8 | uint64(c)
	}
	r.off += n
	return v, true
}

func (r *mpReader) header(fix, fixMask byte, c16, c32 byte) (int, bool) {
	c, ok := r.byte()
	var n uint64
	switch {
	case !ok:
		return 0, false
	case c&^fixMask == fix:
		return int(c & fixMask), true
	case c == c16:
		n, ok = r.be(2)
	case c == c32:
		n, ok = r.be(4)
	default:
		return 0, false
	}
	return int(n), ok
}

func (r *mpReader) mapLen() (int, bool)   { return r.header(0x80, 0x0f, 0xde, 0xdf) }
func (r *mpReader) arrayLen() (int, bool) { return r.header(0x90, 0x0f, 0xdc, 0xdd) }

func (r *mpReader) str() ([]byte, bool) {
	c, ok := r.byte()
	var n uint64
	switch {
	case !ok:
		return nil, false
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == 0xd9:
		n, ok = r.be(1)
	case c == 0xda:
		n, ok = r.be(2)
	case c == 0xdb:
		n, ok = r.be(4)
	default:
		return nil, false
	}
	if !ok || uint64(len(r.b)-r.off) < n {
		return nil, false
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, true
}

// int reads any msgpack integer that fits an int64.
func (r *mpReader) int() (int64, bool) {
	c, ok := r.byte()
	if !ok {
		return 0, false
	}
	switch {
	case c <= 0x7f:
		return int64(c), true
	case c >= 0xe0:
		return int64(int8(c)), true
	case c >= 0xcc && c <= 0xcf:
		v, ok := r.be(1 << (c - 0xcc))
		return int64(v), ok && v <= math.MaxInt64
	case c >= 0xd0 && c <= 0xd3:
		n := 1 << (c - 0xd0)
		v, ok := r.be(n)
		shift := 64 - 8*n
		return int64(v<<shift) >> shift, ok
	}
	return 0, false
}

// uint reads a non-negative msgpack integer up to limit.
func (r *mpReader) uint(limit uint64) (uint64, bool) {
	c, ok := r.byte()
	if !ok {
		return 0, false
	}
	var v uint64
	switch {
	case c <= 0x7f:
		v = uint64(c)
	case c >= 0xcc && c <= 0xcf:
		v, ok = r.be(1 << (c - 0xcc))
	case c >= 0xd0 && c <= 0xd3:
		r.off--
		var x int64
		x, ok = r.int()
		ok = ok && x >= 0
		v = uint64(x)
	default:
		return 0, false
	}
	return v, ok && v <= limit
}

func (r *mpReader) policy(p *RestartPolicy) bool {
	n, ok := r.mapLen()
	if !ok {
		return false
	}
	for range n {
		key, ok := r.str()
		if !ok || len(key) != 1 {
			return false
		}
		x, ok := r.int()
		if !ok {
			return false
		}
		switch key[0] {
		case 'm':
			p.MaxRestarts = int(x)
		case 'b':
			p.Backoff = time.Duration(x)
		default:
			return false
		}
	}
	return true
}

// restore replaces the state with b; it must not run concurrently with apply.
func (m *machine) restore(b snapshotBody) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.w.reset() // readers keep the old directory until the publish below
	m.count.Store(0)
	m.stopped.Store(0)
	clear(m.members)
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
	var es []entry
	if b.dir != nil {
		es, m.w.intern = b.dir.es, b.dir.classes
	} else {
		es = make([]entry, len(b.Actors))
		for i := range b.Actors {
			es[i] = m.w.entryOf(&b.Actors[i])
		}
	}
	b.Actors, b.dir = nil, nil // the trie holds what is kept
	hs := make([]uint64, len(es))
	for i := range es {
		hs[i] = m.dir.hash(es[i].id)
	}
	m.w.build(es, hs)
	var count, stopped int64
	m.awaiting = nil
	m.owned = nil
	walk(m.w.root, func(e *entry) bool {
		count++
		switch e.cls.state {
		case Stopped:
			stopped++
		case Active:
			if mb := m.members[e.cls.node]; mb != nil {
				mb.Load++
			}
			if e.cls.owner != "" {
				m.own(e.cls.owner, 1)
			}
			if strings.HasPrefix(e.cls.reason, awaitingHost) {
				m.await(e.cls.node, 1)
			}
		}
		return true
	})
	m.count.Store(count)
	m.stopped.Store(stopped)
	m.rqMu.Lock()
	m.rehomeQ = nil
	m.rqMu.Unlock()
	m.revMu.Lock()
	m.revoked = make(map[string]uint64, len(m.members))
	for id := range m.members {
		m.revoked[id] = b.Index
	}
	m.revMu.Unlock()
	m.memberRev.Store(b.Index)
	m.w.publish()
	m.applied.Store(b.Index)
}
