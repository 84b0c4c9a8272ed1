package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

const (
	// DefaultMaxFrameSize is the frame size limit when Config leaves it zero.
	DefaultMaxFrameSize = 4 << 20
	// DefaultMaxQueueBytes bounds the bytes queued to one peer when Config
	// leaves it zero.
	DefaultMaxQueueBytes = 8 << 20
	// frameHeaderLen is the length prefix: a big-endian uint32.
	frameHeaderLen = 4
	// slabSize is the size of the buffers that small frames are carved from.
	slabSize = 64 << 10
	// bigChunk is the first buffer of a frame too big for a slab; it
	// doubles as the frame's bytes arrive, up to the announced size.
	bigChunk = 64 << 10
)

// ErrMalformedFrame means a stream ended inside a frame.
var ErrMalformedFrame = errors.New("transport: malformed frame")

// FrameSizeError reports a frame over the size limit, whether sent or
// announced by a peer's length prefix. It matches ErrFrameTooLarge with
// errors.Is.
type FrameSizeError struct {
	Size uint64 // the size sent or announced
	Max  int    // the limit in force
}

func (e *FrameSizeError) Error() string {
	return fmt.Sprintf("transport: frame too large: %d bytes, limit %d", e.Size, e.Max)
}

// Is reports whether target is ErrFrameTooLarge.
func (e *FrameSizeError) Is(target error) bool { return target == ErrFrameTooLarge }

// appendFrame appends the length prefix and payload of one frame to dst.
func appendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// frameReader decodes length-prefixed frames from r. The size of each frame
// is checked against max before anything is allocated for it. Frames are
// carved from shared slabs (never reused), so each returned frame is owned by
// the caller and small frames cost no allocation of their own. A bigger
// frame's buffer starts at bigChunk and doubles as its bytes arrive, so a
// half-sent frame costs what was sent, not what was announced; with a
// budget, each growth is reserved from the connection's connBudget first.
type frameReader struct {
	r      io.Reader
	br     *bufio.Reader // r, when it is one: ready peeks into it
	max    int
	hdr    [frameHeaderLen]byte
	slab   []byte
	budget *connBudget // nil: no per-connection budget

	held       int  // bytes reserved from budget; guarded by budget.mu
	inProgress bool // listed in budget.order; guarded by budget.mu
}

func newFrameReader(r io.Reader, max int) *frameReader {
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	br, _ := r.(*bufio.Reader)
	return &frameReader{r: r, br: br, max: max}
}

// ready reports whether the next frame is a small one (carved from a slab)
// already buffered whole, so that next returns it without waiting.
func (fr *frameReader) ready() bool {
	if fr.br == nil || fr.br.Buffered() < frameHeaderLen {
		return false
	}
	h, err := fr.br.Peek(frameHeaderLen)
	if err != nil {
		return false
	}
	n := int(binary.BigEndian.Uint32(h))
	return n <= slabSize/4 && n <= fr.max && fr.br.Buffered() >= frameHeaderLen+n
}

// next returns the next frame. It returns io.EOF when r ends cleanly between
// frames, a *FrameSizeError for a length over the limit and an error matching
// ErrMalformedFrame when r ends inside a frame.
func (fr *frameReader) next() ([]byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: stream ended inside a length prefix", ErrMalformedFrame)
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(fr.hdr[:]))
	if uint64(n) > uint64(fr.max) {
		return nil, &FrameSizeError{Size: uint64(n), Max: fr.max}
	}
	if n <= slabSize/4 {
		if len(fr.slab) < n {
			fr.slab = make([]byte, slabSize)
		}
		buf := fr.slab[:n:n]
		fr.slab = fr.slab[n:]
		if _, err := io.ReadFull(fr.r, buf); err != nil {
			return nil, truncated(err, n)
		}
		return buf, nil
	}
	buf, err := fr.readBig(n)
	fr.budget.release(fr)
	return buf, err
}

// readBig reads a frame of n bytes into a buffer that grows as they arrive.
func (fr *frameReader) readBig(n int) ([]byte, error) {
	if err := fr.budget.grow(fr, min(n, bigChunk)); err != nil {
		return nil, err
	}
	buf := make([]byte, min(n, bigChunk))
	got := 0
	for got < n {
		if got == len(buf) {
			size := min(2*len(buf), n)
			if err := fr.budget.grow(fr, size-len(buf)); err != nil {
				return nil, err
			}
			nb := make([]byte, size)
			copy(nb, buf)
			buf = nb
		}
		m, err := fr.r.Read(buf[got:])
		got += m
		if err != nil && got < n {
			return nil, truncated(err, n)
		}
	}
	return buf, nil
}

func truncated(err error, n int) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: stream ended inside a %d-byte frame", ErrMalformedFrame, n)
	}
	return err
}

// errBudgetClosed means the connection ended while a stream waited for
// room in its budget.
var errBudgetClosed = errors.New("transport: connection ended")

// connBudget bounds the bytes held in partly-read frames across the streams
// of one connection. A reader asks for each growth of its buffer before it
// allocates it and gives everything back when its frame completes or fails.
//
// Readers with a frame in progress are kept in the order their frames began;
// the first one holds the token and may always grow, up to its frame's size
// (at most maxFrame), so a frame alone always completes. The others share
// limit-maxFrame and wait while a growth would exceed it: when the token
// holder finishes, the next one takes the token and the bytes it holds leave
// the shared part. So the bytes held never exceed limit, and no set of
// readers can wait on each other forever.
type connBudget struct {
	limit    int
	maxFrame int
	done     <-chan struct{} // the connection's end

	mu      sync.Mutex
	order   []*frameReader // frames in progress, oldest first
	total   int            // bytes held by every reader
	peak    int            // highest total seen (tests)
	changed chan struct{}  // closed when bytes are released; nil if no waiter
}

func newConnBudget(limit, maxFrame int, done <-chan struct{}) *connBudget {
	return &connBudget{limit: limit, maxFrame: maxFrame, done: done}
}

// grow reserves delta more bytes for fr, waiting while they do not fit.
func (b *connBudget) grow(fr *frameReader, delta int) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	if !fr.inProgress {
		fr.inProgress = true
		b.order = append(b.order, fr)
	}
	for {
		token := b.order[0]
		shared := b.total - token.held
		if token == fr || shared+delta <= b.limit-b.maxFrame {
			fr.held += delta
			b.total += delta
			b.peak = max(b.peak, b.total)
			b.mu.Unlock()
			return nil
		}
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-b.done:
			return errBudgetClosed
		}
		b.mu.Lock()
	}
}

// release gives back everything fr holds and ends its frame in progress.
func (b *connBudget) release(fr *frameReader) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !fr.inProgress {
		return
	}
	fr.inProgress = false
	b.total -= fr.held
	fr.held = 0
	for i, x := range b.order {
		if x == fr {
			b.order = append(b.order[:i], b.order[i+1:]...)
			break
		}
	}
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
}

// stats returns the bytes held now and the most ever held.
func (b *connBudget) stats() (total, peak int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total, b.peak
}
