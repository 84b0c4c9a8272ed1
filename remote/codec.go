package remote

import (
	"bytes"
	"fmt"
	"reflect"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// appendWriter lets a msgpack.Encoder append straight into a frame.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

type pooledEncoder struct {
	w   appendWriter
	enc *msgpack.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := &pooledEncoder{}
	e.enc = msgpack.NewEncoder(&e.w)
	return e
}}

type pooledDecoder struct {
	r   bytes.Reader
	dec *msgpack.Decoder
}

var decoders = sync.Pool{New: func() any {
	d := &pooledDecoder{}
	d.dec = msgpack.NewDecoder(&d.r)
	return d
}}

func getDecoder(b []byte) *pooledDecoder {
	d := decoders.Get().(*pooledDecoder)
	d.r.Reset(b)
	d.dec.Reset(&d.r)
	return d
}

func putDecoder(d *pooledDecoder) {
	d.r.Reset(nil)
	decoders.Put(d)
}

// bufs recycles frames handed to the transport, which copies them.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

func getBuf() *[]byte { return bufs.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		*b = (*b)[:0]
		bufs.Put(b)
	}
}

// appendValue appends the msgpack encoding of v to dst.
func appendValue(dst []byte, v reflect.Value) (out []byte, err error) {
	e := encoders.Get().(*pooledEncoder)
	e.w.b = dst
	err = e.enc.EncodeValue(v)
	out = e.w.b
	e.w.b = nil
	encoders.Put(e)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// AppendArgs appends args as one msgpack array, the form a Request carries.
// An argument that does not encode gives a CodeBadArgs *Error naming its
// index and type.
func AppendArgs(dst []byte, args ...any) ([]byte, error) {
	start := len(dst)
	dst = appendArrayHeader(dst, len(args))
	e := encoders.Get().(*pooledEncoder)
	defer encoders.Put(e)
	e.w.b = dst
	for i, a := range args {
		if err := e.enc.Encode(a); err != nil {
			e.w.b = nil
			return dst[:start], &Error{Code: CodeBadArgs,
				Message: fmt.Sprintf("argument %d (%T) did not encode: %v", i, a, err)}
		}
	}
	dst, e.w.b = e.w.b, nil
	return dst, nil
}

// Unmarshal decodes one raw msgpack value (a Reply's Result) into v, which
// must be a non-nil pointer.
func Unmarshal(raw []byte, v any) error {
	d := getDecoder(raw)
	defer putDecoder(d)
	return d.dec.Decode(v)
}
