package remote

import (
	"bytes"
	"fmt"
	"reflect"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/troupe-dev/troupe/internal/wirecheck"
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

// appendValue appends the msgpack encoding of v to dst. A value nested
// deeper than wirecheck.MaxDepth is an error: no decoder here would take it
// (see checkEncoded).
func appendValue(dst []byte, v reflect.Value) (out []byte, err error) {
	e := encoders.Get().(*pooledEncoder)
	e.w.b = dst
	err = e.enc.EncodeValue(v)
	out = e.w.b
	e.w.b = nil
	encoders.Put(e)
	if err == nil {
		err = checkEncoded(out[len(dst):])
	}
	if err != nil {
		return dst, err
	}
	return out, nil
}

// AppendArgs appends args as one msgpack array, the form a Request carries.
// An argument that does not encode gives a CodeBadArgs *Error naming its
// index and type; so do arguments the callee would refuse to decode
// (nested deeper than wirecheck.MaxDepth, counting the array).
func AppendArgs(dst []byte, args ...any) ([]byte, error) {
	start := len(dst)
	dst = appendArrayHeader(dst, len(args))
	fast := true
	for _, a := range args {
		if dst, fast = appendFast(dst, a); !fast {
			break
		}
	}
	if fast {
		return dst, nil
	}
	dst = appendArrayHeader(dst[:start], len(args))
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
	if err := checkEncoded(dst[start:]); err != nil {
		return dst[:start], &Error{Code: CodeBadArgs, Message: "arguments: " + err.Error(), cause: err}
	}
	return dst, nil
}

// checkEncoded checks what this node encoded against what every decoder
// accepts (wirecheck.Value at wirecheck.MaxDepth), so a caller learns of a
// value too deep for the callee at once, rather than the callee dropping
// its frame. It costs nothing for values shorter than the depth bound,
// which cannot be nested that deep.
func checkEncoded(b []byte) error {
	if len(b) <= wirecheck.MaxDepth {
		return nil
	}
	return checkValue(b)
}

// Unmarshal decodes one raw msgpack value (a Reply's Result) into v, which
// must be a non-nil pointer. raw is validated first (checkValue): a length
// beyond its bytes, nesting beyond wirecheck.MaxDepth or trailing bytes are
// an error, never an allocation or a deep recursion; a value that does not
// fit v is an error, never a panic.
func Unmarshal(raw []byte, v any) error {
	if err := checkValue(raw); err != nil {
		return err
	}
	d := getDecoder(raw)
	defer putDecoder(d)
	return decodeSafe(d, v)
}

// checkValue validates that raw is exactly one msgpack value that a
// decoder can take without allocating beyond its bytes or recursing beyond
// wirecheck.MaxDepth.
func checkValue(raw []byte) error {
	n, err := wirecheck.Value(raw, wirecheck.MaxDepth)
	if err != nil {
		return fmt.Errorf("remote: %w", err)
	}
	if n != len(raw) {
		return fmt.Errorf("remote: %d trailing bytes after the value", len(raw)-n)
	}
	return nil
}

// decodeSafe decodes the next value of d into v (a non-nil pointer) and
// turns a panic into an error. msgpack panics rather than fails on some
// well-formed values that do not fit the destination, such as an int for a
// parameter of an interface type (reflect.Set); that is bad input, not a
// fault of the method or the runtime. (getDecoder resets the decoder for
// its next use.)
func decodeSafe(d *pooledDecoder, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("remote: value does not decode: %v", p)
		}
	}()
	return d.dec.Decode(v)
}

// decodeValueSafe is decodeSafe into a settable reflect.Value.
func decodeValueSafe(d *pooledDecoder, v reflect.Value) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("remote: value does not decode: %v", p)
		}
	}()
	return d.dec.DecodeValue(v)
}
