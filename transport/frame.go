package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
// the caller and small frames cost no allocation of their own.
type frameReader struct {
	r    io.Reader
	max  int
	hdr  [frameHeaderLen]byte
	slab []byte
}

func newFrameReader(r io.Reader, max int) *frameReader {
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	return &frameReader{r: r, max: max}
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
	n := binary.BigEndian.Uint32(fr.hdr[:])
	if uint64(n) > uint64(fr.max) {
		return nil, &FrameSizeError{Size: uint64(n), Max: fr.max}
	}
	var buf []byte
	if int(n) <= slabSize/4 {
		if len(fr.slab) < int(n) {
			fr.slab = make([]byte, slabSize)
		}
		buf = fr.slab[:n:n]
		fr.slab = fr.slab[n:]
	} else {
		buf = make([]byte, n)
	}
	if _, err := io.ReadFull(fr.r, buf); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: stream ended inside a %d-byte frame", ErrMalformedFrame, n)
		}
		return nil, err
	}
	return buf, nil
}
