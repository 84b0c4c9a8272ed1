package transport

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameReader(t *testing.T) {
	two := appendFrame(appendFrame(nil, []byte("hello")), []byte{})
	tests := []struct {
		name   string
		in     []byte
		frames []string
		err    error
	}{
		{"empty stream", nil, nil, io.EOF},
		{"two frames", two, []string{"hello", ""}, io.EOF},
		{"at the limit", appendFrame(nil, bytes.Repeat([]byte("x"), 8)), []string{"xxxxxxxx"}, io.EOF},
		{"over the limit", appendFrame(nil, bytes.Repeat([]byte("x"), 9)), nil, ErrFrameTooLarge},
		{"huge prefix, no payload", []byte{0xff, 0xff, 0xff, 0xff}, nil, ErrFrameTooLarge},
		{"truncated prefix", []byte{0, 0, 0}, nil, ErrMalformedFrame},
		{"truncated payload", []byte{0, 0, 0, 5, 'a'}, nil, ErrMalformedFrame},
		{"good then truncated", append(appendFrame(nil, []byte("ok")), 0, 0, 0, 2), []string{"ok"}, ErrMalformedFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := newFrameReader(bytes.NewReader(tt.in), 8)
			var got []string
			var err error
			for {
				var f []byte
				if f, err = fr.next(); err != nil {
					break
				}
				got = append(got, string(f))
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if len(got) != len(tt.frames) {
				t.Fatalf("frames = %q, want %q", got, tt.frames)
			}
			for i := range got {
				if got[i] != tt.frames[i] {
					t.Fatalf("frames = %q, want %q", got, tt.frames)
				}
			}
		})
	}
}

// TestFrameReaderOwnership checks that frames carved from one slab do not
// alias: appending to one frame must not overwrite the next.
func TestFrameReaderOwnership(t *testing.T) {
	in := appendFrame(appendFrame(nil, []byte("aaaa")), []byte("bbbb"))
	fr := newFrameReader(bytes.NewReader(in), 0)
	f1, _ := fr.next()
	f2, _ := fr.next()
	_ = append(f1, "XXXX"...)
	if string(f2) != "bbbb" {
		t.Fatalf("second frame overwritten: %q", f2)
	}
}

// FuzzReadFrame feeds arbitrary bytes to the frame decoder: it never
// panics, never returns a frame over the limit, ends with io.EOF or a typed
// error, and what it decodes re-encodes to a prefix of its input.
func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrame(nil, []byte("hello")), 64)
	f.Add(appendFrame(appendFrame(nil, []byte("a")), bytes.Repeat([]byte("b"), 100)), 64)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, 1<<20)
	f.Add([]byte{0, 0, 0, 3, 1}, 16)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max <= 0 || max > 1<<20 {
			max = 1 << 10
		}
		fr := newFrameReader(bytes.NewReader(in), max)
		var re []byte
		for {
			frame, err := fr.next()
			if err != nil {
				var fse *FrameSizeError
				switch {
				case err == io.EOF:
					if !bytes.Equal(re, in) {
						t.Fatalf("clean EOF but re-encoding differs from input")
					}
				case errors.As(err, &fse):
					if fse.Size <= uint64(max) || fse.Max != max {
						t.Fatalf("size error %v with limit %d", err, max)
					}
				case errors.Is(err, ErrMalformedFrame):
				default:
					t.Fatalf("untyped error %v", err)
				}
				break
			}
			if len(frame) > max {
				t.Fatalf("frame of %d bytes over the limit %d", len(frame), max)
			}
			re = appendFrame(re, frame)
			if !bytes.HasPrefix(in, re) {
				t.Fatalf("decoded frames do not re-encode to a prefix of the input")
			}
		}
	})
}
