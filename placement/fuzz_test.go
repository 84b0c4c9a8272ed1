package placement

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"runtime"
	"testing"

	"github.com/troupe-dev/troupe/internal/wirecheck"
)

// The seed corpora live in testdata/fuzz/<FuzzName>; f.Add adds a few more.

func FuzzDecodeCommand(f *testing.F) {
	var all [][]byte
	for _, c := range seedCommands() {
		b, _ := encodeCommand(c)
		f.Add(b)
		all = append(all, b)
	}
	batch, _ := encodeBatch(all)
	f.Add(batch)
	for _, b := range attackCommands() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCommand(b)
		m := newMachine()
		m.apply(1, []byte{byte(cmdJoin), cmdVersion, 0x81, 0xa1, 'n', 0xa2, 'n', '1'})
		m.applyEntry(2, b) // batches too: must not panic, valid or not
		res, _ := m.apply(3, b)
		if err != nil {
			if res.Err == nil {
				t.Fatalf("decode refused (%v) but apply accepted", err)
			}
			return
		}
		b2, err := encodeCommand(c)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		c2, err := decodeCommand(b2)
		if err != nil {
			t.Fatalf("decode of re-encoded: %v", err)
		}
		if !reflect.DeepEqual(normCmd(c), normCmd(c2)) {
			t.Fatalf("round trip: %+v != %+v", c, c2)
		}
	})
}

func normCmd(c command) command {
	if len(c.Types) == 0 {
		c.Types = nil
	}
	return c
}

func FuzzDecodeControl(f *testing.F) {
	for _, c := range seedControls() {
		b, _ := encodeCtrl(c)
		f.Add(b)
	}
	for _, b := range attackControls() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCtrl(b)
		if err != nil {
			return
		}
		if _, err := encodeCtrl(c); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	for _, s := range seedSnapshots() {
		f.Add(s)
	}
	for _, s := range attackSnapshots() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := decodeSnapshot(bytes.NewReader(b))
		if err != nil {
			return
		}
		m := newMachine()
		m.restore(body) // must not panic, whatever it holds
		if _, err := encodeSnapshot(m.capture()); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func seedCommands() []command {
	return []command{
		{Type: cmdJoin, Node: "n1", Addr: "mem:n1", Types: []string{"A", "B"}},
		{Type: cmdTypes, Node: "n1", Types: []string{"C"}},
		{Type: cmdFailed, Node: "n1"},
		{Type: cmdAlive, Node: "n1"},
		{Type: cmdLeave, Node: "n1"},
		{Type: cmdSpawn, Node: "n1", Spawn: SpawnRequest{ID: "x", Type: "A", Strategy: HashID, Policy: RestartPolicy{MaxRestarts: -1, Backoff: 5}}},
		{Type: cmdStop, ID: "x", Epoch: 4, Reason: "r"},
		{Type: cmdRestart, ID: "x", Epoch: 4, Reason: "panic"},
		{Type: cmdRead, ID: "x"},
	}
}

func seedControls() []*ctrl {
	return []*ctrl{
		{Type: msgPropose, Req: 1, Cmd: []byte{6, 1, 0x80}},
		{Type: msgJoin, Req: 2, Node: "n2", Addr: "mem:n2", Types: []string{"A"}, Origin: "n2"},
		{Type: msgPing, Req: 3},
		{Type: msgRemove, Req: 4},
		{Type: msgResult, Req: 5, Res: &result{Placement: Placement{ID: "x", Node: "n1", Epoch: 9}, Index: 9, Err: &SpawnError{ID: "x", Err: ErrNoCandidate}}},
		{Type: msgPong, Req: 6, Lease: 1e8, Index: 12},
		{Type: msgPropose, Req: 7, Cmds: [][]byte{{6, 1, 0x80}, {7, 1, 0x80}}},
		{Type: msgResult, Req: 8, Rs: []result{{Index: 3}, {Err: &SpawnError{ID: "y", Err: ErrUnknownType}}}},
	}
}

func seedSnapshots() [][]byte {
	m := newMachine()
	for i, c := range seedCommands() {
		b, _ := encodeCommand(c)
		m.apply(uint64(i+1), b)
	}
	b, _ := encodeSnapshot(m.capture())
	empty, _ := encodeSnapshot(newMachine().capture())
	return [][]byte{b, empty}
}

// The inputs that crashed main (issue 9): a header announcing more elements
// than the bytes hold made msgpack v5.4 allocate them all.
var (
	// attackPropose is the 7-byte command a peer proposed: a batch whose
	// body is an array32 header of 2^32-1 elements.
	attackPropose = []byte{byte(cmdBatch), cmdVersion, 0xdd, 0xff, 0xff, 0xff, 0xff}
	// attackControl is the 11-byte propose control frame {"cs": array32
	// of 2^32-1}.
	attackControl = []byte{byte(msgPropose), msgVersion, 0x81, 0xa2, 'c', 's', 0xdd, 0xff, 0xff, 0xff, 0xff}
)

func attackCommands() [][]byte {
	deep := append([]byte{byte(cmdJoin), cmdVersion, 0x81, 0xa1, 'r'}, bytes.Repeat([]byte{0x91}, 300)...)
	return [][]byte{
		attackPropose,
		{byte(cmdSpawn), cmdVersion, 0xdd, 0xff, 0xff, 0xff, 0xff},
		{byte(cmdJoin), cmdVersion, 0x81, 0xa1, 't', 0xdd, 0xff, 0xff, 0xff, 0xff},
		{byte(cmdJoin), cmdVersion, 0x81, 0xa1, 'n', 0xdb, 0xff, 0xff, 0xff, 0xff},
		{byte(cmdBatch), cmdVersion, 0x91, 0xdb, 0xff, 0xff, 0xff, 0xff},
		append(deep, 0),
	}
}

func attackControls() [][]byte {
	return [][]byte{
		attackControl,
		{byte(msgJoin), msgVersion, 0x81, 0xa1, 't', 0xdd, 0xff, 0xff, 0xff, 0xff},
		{byte(msgResult), msgVersion, 0x81, 0xa2, 'r', 's', 0xdd, 0xff, 0xff, 0xff, 0xff},
		{byte(msgPropose), msgVersion, 0x81, 0xa1, 'c', 0xc6, 0xff, 0xff, 0xff, 0xff},
		append(append([]byte{byte(msgJoin), msgVersion, 0x81, 0xa1, 'o'}, bytes.Repeat([]byte{0x91}, 300)...), 0),
	}
}

// snapshotOf frames body as a snapshot with a valid header and checksum.
func snapshotOf(body []byte) []byte {
	out := make([]byte, snapHeaderSize, snapHeaderSize+len(body))
	copy(out, snapMagic)
	out[4] = snapVersion
	binary.BigEndian.PutUint64(out[8:16], uint64(len(body)))
	binary.BigEndian.PutUint32(out[16:20], crc32.Checksum(body, castagnoli))
	return append(out, body...)
}

func attackSnapshots() [][]byte {
	return [][]byte{
		snapshotOf([]byte{0x81, 0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff}),
		snapshotOf([]byte{0x81, 0xa1, 's', 0xdf, 0xff, 0xff, 0xff, 0xff}),
		snapshotOf([]byte{0x81, 0xa1, 'm', 0x91, 0x81, 0xa1, 't', 0xdd, 0xff, 0xff, 0xff, 0xff}),
		snapshotOf(append(append([]byte{0x81, 0xa1, 'x'}, bytes.Repeat([]byte{0x91}, 4<<20)...), 0)),
	}
}

// allocated runs f and returns the bytes it allocated.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDecodeAttackInputs feeds every decoder the inputs that crashed main:
// each is refused with ErrBadCommand (or ErrBadSnapshot) wrapping a
// *wirecheck.Error, in a few MiB at most, and a replica that meets them in
// its log records an error result and goes on applying.
func TestDecodeAttackInputs(t *testing.T) {
	const budget = 8 << 20
	check := func(t *testing.T, err error, sentinel error) {
		t.Helper()
		var we *wirecheck.Error
		if !errors.Is(err, sentinel) || !errors.As(err, &we) {
			t.Fatalf("err = %v, want %v wrapping a *wirecheck.Error", err, sentinel)
		}
	}
	for i, b := range attackCommands() {
		var err, verr error
		var res any
		m := newMachine()
		if n := allocated(func() {
			if b[0] == byte(cmdBatch) {
				_, err = decodeBatch(b)
			} else {
				_, err = decodeCommand(b)
			}
			verr = validateCommand(b)
			res, _ = m.applyEntry(7, b)
		}); n > budget {
			t.Errorf("command %d: %d bytes allocated", i, n)
		}
		check(t, err, ErrBadCommand)
		if !errors.Is(verr, ErrBadCommand) {
			t.Errorf("command %d: validateCommand = %v", i, verr)
		}
		if r, ok := res.(result); !ok || !errors.Is(r.Err, ErrBadCommand) || r.Index != 7 {
			t.Errorf("command %d: applyEntry = %#v, want an ErrBadCommand result", i, res)
		}
		if m.applied.Load() != 7 {
			t.Errorf("command %d: applied index %d, want 7", i, m.applied.Load())
		}
		// The replica goes on: a good command applies after it.
		good, _ := encodeCommand(command{Type: cmdJoin, Node: "n1", Addr: "mem:n1"})
		if r, _ := m.apply(8, good); r.Err != nil {
			t.Errorf("command %d: a good command after it: %v", i, r.Err)
		}
		if _, ok := m.member("n1"); !ok {
			t.Errorf("command %d: the good command had no effect", i)
		}
	}
	for i, b := range attackControls() {
		var err error
		if n := allocated(func() { _, err = decodeCtrl(b) }); n > budget {
			t.Errorf("control %d: %d bytes allocated", i, n)
		}
		check(t, err, ErrBadCommand)
	}
	for i, b := range attackSnapshots() {
		var err error
		// Reading the body into a growing buffer costs a few times its
		// length; decoding must add no more than the budget.
		if n := allocated(func() { _, err = decodeSnapshot(bytes.NewReader(b)) }); n > budget+16*uint64(len(b)) {
			t.Errorf("snapshot %d: %d bytes allocated", i, n)
		}
		check(t, err, ErrBadSnapshot)
	}
	if len(attackPropose) != 7 || len(attackControl) != 11 {
		t.Fatal("the attack inputs are not the ones of the issue")
	}
}

// TestDecodeBounds: the element caps hold, and what the encoders produce
// within them still decodes.
func TestDecodeBounds(t *testing.T) {
	types := make([]string, maxTypes)
	for i := range types {
		types[i] = "T"
	}
	b, _ := encodeCommand(command{Type: cmdJoin, Node: "n1", Types: types})
	if c, err := decodeCommand(b); err != nil || len(c.Types) != maxTypes {
		t.Fatalf("%d types: %v", maxTypes, err)
	}
	b, _ = encodeCommand(command{Type: cmdJoin, Node: "n1", Types: append(types, "U")})
	if _, err := decodeCommand(b); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("%d types: %v", maxTypes+1, err)
	}
	cmds := make([][]byte, maxBatch+1)
	for i := range cmds {
		cmds[i] = []byte{byte(cmdRead), cmdVersion, 0x80}
	}
	b, _ = encodeBatch(cmds[:maxBatch])
	if got, err := decodeBatch(b); err != nil || len(got) != maxBatch {
		t.Fatalf("batch of %d: %v", maxBatch, err)
	}
	b, _ = encodeBatch(cmds)
	if _, err := decodeBatch(b); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("batch of %d: %v", maxBatch+1, err)
	}
	b, _ = encodeCtrl(&ctrl{Type: msgPropose, Req: 1, Cmds: cmds[:maxBatch]})
	if c, err := decodeCtrl(b); err != nil || len(c.Cmds) != maxBatch {
		t.Fatalf("control of %d commands: %v", maxBatch, err)
	}
	b, _ = encodeCtrl(&ctrl{Type: msgPropose, Req: 1, Cmds: cmds})
	if _, err := decodeCtrl(b); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("control of %d commands: %v", maxBatch+1, err)
	}
	b, _ = encodeCommand(command{Type: cmdBatch})
	if err := validateCommand(b); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("validateCommand of a batch: %v", err)
	}
	for _, c := range seedCommands() {
		b, _ := encodeCommand(c)
		if err := validateCommand(b); err != nil {
			t.Fatalf("validateCommand(%+v): %v", c, err)
		}
	}
}
