package placement

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/troupe-dev/troupe/internal/wirecheck"
)

// A command is one Raft log entry: a type byte, a version byte, then the
// msgpack body of that type. Unknown types and versions are refused with an
// error, never a panic.
type cmdType uint8

const (
	cmdJoin    cmdType = 1 // member joined or rejoined (upsert, alive)
	cmdTypes   cmdType = 2 // member hosts more types
	cmdFailed  cmdType = 3 // member failed: mark and re-place its actors
	cmdAlive   cmdType = 4 // failed member heard from again
	cmdLeave   cmdType = 5 // member leaves: re-place its actors, mark left
	cmdSpawn   cmdType = 6 // place an actor (get-if-exists by id)
	cmdStop    cmdType = 7 // stop an actor
	cmdRestart cmdType = 8 // restart a crashed actor by its policy
	cmdRead    cmdType = 9 // read an entry through the log (linearizable)
	// cmdBatch is a log entry holding up to maxBatch encoded commands,
	// applied in order; it never nests.
	cmdBatch cmdType = 10
	// cmdExpel: the leader expels a member (Node): its actors are
	// re-placed as on a failure and its id is denied from then on.
	cmdExpel cmdType = 11
	// cmdRehome: the leader moves the next chunk (Epoch, at most
	// rehomeChunk) of a down member's (Node) actors off it.
	cmdRehome cmdType = 12
	// cmdForget: a host drops the entry of an actor it passivated (ID at
	// Epoch, active on the proposer): a virtual actor's next call places
	// it anew. Refused for any other state, epoch or node.
	cmdForget cmdType = 13
	// cmdRelease: stop every actor owned by client Node (it closed, or
	// the leader found it silent past the client timeout).
	cmdRelease cmdType = 14
	cmdLast    cmdType = cmdRelease // last type decodeCommand accepts
)

// maxBatch bounds the commands in one batch entry. The epoch of a placement
// is index*maxBatch + its position in the entry, so epochs are unique and
// ordered as the log orders the commands.
const maxBatch = 1024

func encodeBatch(cmds [][]byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(byte(cmdBatch))
	buf.WriteByte(cmdVersion)
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	if err := enc.Encode(cmds); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodeBatch decodes a batch entry. The body is validated first
// (wirecheck): no length in it may exceed the bytes present, nor any
// container hold more than maxItems elements, so a forged header cannot make
// msgpack allocate for elements that are not there.
func decodeBatch(b []byte) ([][]byte, error) {
	if len(b) < 2 || cmdType(b[0]) != cmdBatch {
		return nil, fmt.Errorf("%w: not a batch", ErrBadCommand)
	}
	if b[1] != cmdVersion {
		return nil, fmt.Errorf("%w: batch version %d", ErrUnknownVersion, b[1])
	}
	if err := checkBody(b[2:], maxBatch); err != nil {
		return nil, fmt.Errorf("%w: batch: %w", ErrBadCommand, err)
	}
	var cmds [][]byte
	r := bytes.NewReader(b[2:])
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(r)
	if err := dec.Decode(&cmds); err != nil {
		return nil, fmt.Errorf("%w: batch: %v", ErrBadCommand, err)
	}
	if r.Len() != 0 || len(cmds) > maxBatch {
		return nil, fmt.Errorf("%w: batch of %d commands, %d trailing bytes", ErrBadCommand, len(cmds), r.Len())
	}
	return cmds, nil
}

// maxItems bounds the elements of every array and map in a command or a
// control frame: a batch's commands and their results (maxBatch), and the
// types a member hosts (maxTypes). The bound holds before msgpack decodes
// anything.
const maxItems = max(maxBatch, maxTypes)

// maxTypes bounds the actor types one member may declare in one command
// (join, types) or control frame (join).
const maxTypes = 1024

// checkBody validates the msgpack body of a command or control frame: one
// well-formed value that fills body exactly, nested at most
// wirecheck.MaxDepth deep, with no container of more than items elements.
func checkBody(body []byte, items int) error {
	n, err := wirecheck.Check(body, 1, wirecheck.Limits{Items: items})
	if err != nil {
		return err
	}
	if n != len(body) {
		return fmt.Errorf("%d trailing bytes", len(body)-n)
	}
	return nil
}

const cmdVersion = 1

// command is the union of every command body; each type uses a subset.
type command struct {
	Type  cmdType  `msgpack:"-"`
	Node  string   `msgpack:"n,omitempty"` // member id, or caller for spawn
	Addr  string   `msgpack:"a,omitempty"`
	Types []string `msgpack:"t,omitempty"`
	Voter uint8    `msgpack:"v,omitempty"` // join: the member's VoterPolicy
	// Takeover: join at a new address of the leader itself (the Raft
	// server of that id, so the process recorded at the old address is
	// gone, alive as it may still be recorded), or of a member silent past
	// any lease it held (see Registry.silentPastLease).
	Takeover bool         `msgpack:"k,omitempty"`
	Spawn    SpawnRequest `msgpack:"s,omitempty"`
	ID       string       `msgpack:"i,omitempty"` // actor id for stop/restart
	Epoch    uint64       `msgpack:"e,omitempty"` // expected epoch; 0 = any
	Reason   string       `msgpack:"r,omitempty"`
	// Origin, Inc and Seq identify a client request for exactly-once
	// retries: the proposing node, its incarnation (the log index of its
	// latest join) and a per-incarnation counter. Seq 0 means no dedup.
	Origin string `msgpack:"o,omitempty"`
	Inc    uint64 `msgpack:"u,omitempty"`
	Seq    uint64 `msgpack:"q,omitempty"`
	// Floor is the lowest seq of Origin whose request may still be
	// retried (its propose has not returned): the state machine may
	// forget results below it (see session). 0 means unknown.
	Floor uint64 `msgpack:"f,omitempty"`
}

// encodeCommand encodes c: its type, the version, and its fields as the
// msgpack map msgpack would make of them (cmdcodec.go).
func encodeCommand(c command) ([]byte, error) {
	return appendCommandBody(append(make([]byte, 0, 96), byte(c.Type), cmdVersion), &c), nil
}

// decodeCommand decodes one command. The body is validated first
// (checkBody), so a forged length or count is an error, never an
// allocation; every replica refuses the same bytes alike.
func decodeCommand(b []byte) (command, error) {
	var c command
	if len(b) < 2 {
		return c, fmt.Errorf("%w: %d bytes", ErrBadCommand, len(b))
	}
	t := cmdType(b[0])
	if t == 0 || t == cmdBatch || t > cmdLast {
		return c, fmt.Errorf("%w: unknown type %d", ErrBadCommand, b[0])
	}
	if b[1] != cmdVersion {
		return c, fmt.Errorf("%w: type %d version %d", ErrUnknownVersion, b[0], b[1])
	}
	if err := checkBody(b[2:], maxItems); err != nil {
		return c, fmt.Errorf("%w: type %d: %w", ErrBadCommand, b[0], err)
	}
	var ok bool
	if c, ok = decodeCommandFast(b[2:]); !ok {
		var err error
		if c, err = decodeCommandMsgpack(b[2:]); err != nil {
			return command{}, err
		}
	}
	if len(c.Types) > maxTypes {
		return command{}, fmt.Errorf("%w: %d types", ErrBadCommand, len(c.Types))
	}
	c.Type = t
	return c, nil
}

// decodeCommandMsgpack decodes a validated command body with msgpack:
// the layouts decodeCommandFast does not take.
func decodeCommandMsgpack(body []byte) (command, error) {
	var c command
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	r := bytes.NewReader(body)
	dec.Reset(r)
	if err := dec.Decode(&c); err != nil {
		return command{}, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	if r.Len() != 0 {
		return command{}, fmt.Errorf("%w: %d trailing bytes", ErrBadCommand, r.Len())
	}
	return c, nil
}

// validateCommand is the leader's check of a command it is asked to
// propose (handlePropose): exactly what every replica will decode, and
// never a batch (only the leader's batcher makes those), so no forwarded
// bytes reach the log that a replica could not decode.
func validateCommand(b []byte) error {
	if len(b) > 0 && cmdType(b[0]) == cmdBatch {
		return fmt.Errorf("%w: a batch cannot be proposed", ErrBadCommand)
	}
	_, err := decodeCommand(b)
	return err
}

// result is what Apply returns for one command, and what the leader sends
// back to a forwarding node.
type result struct {
	Placement Placement `msgpack:"p,omitempty"`
	Existed   bool      `msgpack:"x,omitempty"`  // spawn found an active actor of that id
	Index     uint64    `msgpack:"n,omitempty"`  // log index of the command
	More      bool      `msgpack:"m,omitempty"`  // rehome: actors are left to move
	HostAddr  string    `msgpack:"ha,omitempty"` // lookup: the host's address
	Members   []Member  `msgpack:"ms,omitempty"` // lookup of no id: the members
	MemberRev uint64    `msgpack:"mr,omitempty"` // lookup of no id: machine.memberRev
	// Leader and LeaderAddr redirect a joiner that asked a follower: it
	// must send its join to the leader itself (see authz.go).
	Leader     string   `msgpack:"l,omitempty"`
	LeaderAddr string   `msgpack:"la,omitempty"`
	Err        error    `msgpack:"-"`
	WireErr    *wireErr `msgpack:"e,omitempty"`
}

// wireErr carries an error across the network: a code for the sentinels,
// the SpawnError fields, and the text of anything else.
type wireErr struct {
	Code uint8  `msgpack:"c"`
	ID   string `msgpack:"i,omitempty"`
	Type string `msgpack:"t,omitempty"`
	Node string `msgpack:"n,omitempty"`
	Msg  string `msgpack:"m,omitempty"`
	Span bool   `msgpack:"s,omitempty"` // was a *SpawnError
}

// errCodes lists the sentinels that keep their identity on the wire; the
// code is the index + 1. Append only.
var errCodes = []error{
	ErrUnknownType, ErrTypeNotHosted, ErrInvalidPolicy, ErrInvalidRequest,
	ErrNoCandidate, ErrNodeNotAlive, ErrNotFound, ErrStaleEpoch, ErrNotOwner,
	ErrNoLease, ErrBadCommand, ErrUnknownVersion, ErrBadSnapshot,
	ErrIdentityMismatch, ErrNotLeader, ErrNoLeader, ErrClosed, ErrNotMember,
	ErrUnknownOutcome, ErrStaleRequest, ErrIDInUse, ErrExpelled, ErrUnauthorized,
	errForgottenNotFound, // last: a member of an older version has no code for it
}

// errForgottenNotFound is ErrForgotten as it crosses the wire: it matches
// ErrNotFound too, as errForgotten's errors do.
var errForgottenNotFound = fmt.Errorf("%w: %w", ErrForgotten, ErrNotFound)

func toWire(err error) *wireErr {
	if err == nil {
		return nil
	}
	w := &wireErr{Msg: err.Error()}
	var se *SpawnError
	if errors.As(err, &se) {
		w.Span, w.ID, w.Type, w.Node = true, se.ID, se.Type, se.Node
		err = se.Err
	}
	if errors.Is(err, ErrForgotten) {
		w.Code = uint8(len(errCodes))
		return w
	}
	for i, s := range errCodes {
		if errors.Is(err, s) {
			w.Code = uint8(i + 1)
			break
		}
	}
	return w
}

func fromWire(w *wireErr) error {
	if w == nil {
		return nil
	}
	var err error
	if w.Code >= 1 && int(w.Code) <= len(errCodes) {
		err = errCodes[w.Code-1]
	} else {
		err = errors.New(w.Msg)
	}
	if w.Span {
		return &SpawnError{ID: w.ID, Type: w.Type, Node: w.Node, Err: err}
	}
	if w.Code != 0 && w.Msg != err.Error() {
		return fmt.Errorf("%w: %s", err, w.Msg)
	}
	return err
}
