package placement

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Control frames (transport.KindControl) carry the registry's own RPCs: a
// type byte, a version byte, then a msgpack body. Requests carry a request
// id from a per-node counter; the reply echoes it.
type msgType uint8

const (
	msgPropose msgType = 1 // Cmd: an encoded command for the leader to apply
	msgJoin    msgType = 2 // Node, Addr, Types; Origin when forwarded
	msgPing    msgType = 3 // lease renewal and liveness; leader replies msgPong
	msgRemove  msgType = 4 // leader removes the sender from the Raft configuration
	msgResult  msgType = 5 // reply: Res or Err
	msgPong    msgType = 6 // reply to ping: Lease (ns) and Index
	msgBack    msgType = 7 // Addr: restarted from DataDir, loading (no reply)
	msgLookup  msgType = 8 // ID, After, Wait: where an actor is (any member answers)
	msgVerify  msgType = 9 // leader to voters: Req (round), Term; a voter in Term replies msgVouch
	msgVouch   msgType = 10
	msgEnd     msgType = 11
)

const msgVersion = 1

type ctrl struct {
	Type   msgType  `msgpack:"-"`
	Req    uint64   `msgpack:"q"`
	Cmd    []byte   `msgpack:"c,omitempty"`
	Node   string   `msgpack:"n,omitempty"`
	Addr   string   `msgpack:"a,omitempty"`
	Types  []string `msgpack:"t,omitempty"`
	Voter  uint8    `msgpack:"v,omitempty"` // join: the joiner's VoterPolicy
	Origin string   `msgpack:"o,omitempty"`
	Res    *result  `msgpack:"r,omitempty"`
	Cmds   [][]byte `msgpack:"cs,omitempty"` // propose: a batch of commands
	Rs     []result `msgpack:"rs,omitempty"` // result: one per command of Cmds
	Lease  int64    `msgpack:"l,omitempty"`  // pong: lease left at the leader, ns
	Index  uint64   `msgpack:"x,omitempty"`  // pong: leader's commit index
	ID     string   `msgpack:"i,omitempty"`  // lookup: the actor id
	After  uint64   `msgpack:"af,omitempty"` // lookup: wait for an epoch above this
	Wait   bool     `msgpack:"w,omitempty"`  // lookup: wait (bounded) for After
	Term   uint64   `msgpack:"tm,omitempty"` // verify, vouch: the leader's Raft term
}

func encodeCtrl(c *ctrl) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(byte(c.Type))
	buf.WriteByte(msgVersion)
	if c.Res != nil {
		c.Res.WireErr = toWire(c.Res.Err)
	}
	for i := range c.Rs {
		c.Rs[i].WireErr = toWire(c.Rs[i].Err)
	}
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodeCtrl decodes a control frame from any peer. The body is validated
// before msgpack sees it (checkBody): a length or count beyond the bytes
// present, nesting beyond wirecheck.MaxDepth, or a container of more than
// maxItems elements is ErrBadCommand. Cmds and Rs hold at most maxBatch
// entries, Types at most maxTypes.
func decodeCtrl(b []byte) (*ctrl, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: control frame of %d bytes", ErrBadCommand, len(b))
	}
	t := msgType(b[0])
	if t == 0 || t >= msgEnd {
		return nil, fmt.Errorf("%w: control type %d", ErrBadCommand, b[0])
	}
	if b[1] != msgVersion {
		return nil, fmt.Errorf("%w: control type %d version %d", ErrUnknownVersion, b[0], b[1])
	}
	if err := checkBody(b[2:], maxItems); err != nil {
		return nil, fmt.Errorf("%w: control type %d: %w", ErrBadCommand, b[0], err)
	}
	c := new(ctrl)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	r := bytes.NewReader(b[2:])
	dec.Reset(r)
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBadCommand, r.Len())
	}
	if len(c.Cmds) > maxBatch || len(c.Rs) > maxBatch || len(c.Types) > maxTypes {
		return nil, fmt.Errorf("%w: control type %d: %d commands, %d results, %d types",
			ErrBadCommand, b[0], len(c.Cmds), len(c.Rs), len(c.Types))
	}
	c.Type = t
	if c.Res != nil {
		c.Res.Err = fromWire(c.Res.WireErr)
		c.Res.WireErr = nil
	}
	for i := range c.Rs {
		c.Rs[i].Err = fromWire(c.Rs[i].WireErr)
		c.Rs[i].WireErr = nil
	}
	return c, nil
}
