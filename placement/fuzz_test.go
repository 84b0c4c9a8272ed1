package placement

import (
	"bytes"
	"reflect"
	"testing"
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
