package remote

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Ref names an actor anywhere in the cluster: its id, its registered type,
// and a location hint (the node that hosted it at Epoch). It is plain data:
// it encodes as the msgpack array [id, type, node|nil, epoch], so it can be
// passed as an argument and returned as a result. The hint is only a hint:
// callers resolve through their Resolver first and fall back to it.
type Ref struct {
	ID    string
	Type  string
	Node  string
	Epoch uint64
}

var (
	_ msgpack.CustomEncoder = Ref{}
	_ msgpack.CustomDecoder = (*Ref)(nil)
)

// IsZero reports whether r names no actor.
func (r Ref) IsZero() bool { return r.ID == "" }

// String formats r as type/id@node#epoch.
func (r Ref) String() string {
	return fmt.Sprintf("%s/%s@%s#%d", r.Type, r.ID, r.Node, r.Epoch)
}

// EncodeMsgpack writes r as [id, type, node|nil, epoch].
func (r Ref) EncodeMsgpack(enc *msgpack.Encoder) error {
	var buf [64]byte
	b := append(buf[:0], 0x94)
	b = appendString(b, r.ID)
	b = appendString(b, r.Type)
	b = appendOptString(b, r.Node)
	b = appendUint(b, r.Epoch)
	_, err := enc.Writer().Write(b)
	return err
}

// DecodeMsgpack reads what EncodeMsgpack writes.
func (r *Ref) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return fmt.Errorf("remote: ref: %w", err)
	}
	if n != 4 {
		return fmt.Errorf("remote: ref: want 4 fields, got %d", n)
	}
	if r.ID, err = dec.DecodeString(); err != nil {
		return fmt.Errorf("remote: ref: id: %w", err)
	}
	if r.Type, err = dec.DecodeString(); err != nil {
		return fmt.Errorf("remote: ref: type: %w", err)
	}
	if r.Node, err = dec.DecodeString(); err != nil { // nil decodes as ""
		return fmt.Errorf("remote: ref: node: %w", err)
	}
	if r.Epoch, err = dec.DecodeUint64(); err != nil {
		return fmt.Errorf("remote: ref: epoch: %w", err)
	}
	return nil
}
