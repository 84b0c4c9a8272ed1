package placement

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/internal/wirecheck"
	"github.com/vmihailenco/msgpack/v5"
)

// codecCommands are commands with every field set, one at a time and all
// together, at the edges of their encodings.
func codecCommands() []command {
	full := command{Type: cmdSpawn, Node: "n1", Addr: "127.0.0.1:7400", Types: []string{"A", "B"}, Voter: 2, Takeover: true,
		Spawn: SpawnRequest{ID: "x", Type: "T", Strategy: OnNode, Node: "n2", Policy: RestartPolicy{MaxRestarts: -1, Backoff: 3 * time.Second}, Owner: "c1"},
		ID:    "a", Epoch: math.MaxUint64, Reason: "why", Origin: "n3", Inc: 1 << 40, Seq: 1 << 20, Floor: 200}
	long := string(make([]byte, 70000))
	out := append(seedCommands(), full,
		command{Type: cmdJoin},
		command{Type: cmdJoin, Node: long},
		command{Type: cmdSpawn, Spawn: SpawnRequest{Policy: RestartPolicy{MaxRestarts: math.MinInt64, Backoff: math.MaxInt64}}},
		command{Type: cmdSpawn, Spawn: SpawnRequest{Policy: RestartPolicy{MaxRestarts: -33, Backoff: -129}}},
		command{Type: cmdJoin, Types: make([]string, 40)},
		command{Type: cmdStop, Epoch: 127}, command{Type: cmdStop, Epoch: 128}, command{Type: cmdStop, Epoch: 1 << 16}, command{Type: cmdStop, Epoch: 1 << 32},
	)
	return out
}

// TestCommandCodec: what encodeCommand writes decodes to the same command
// by the fast path and by msgpack (what an older replica runs), and the
// fast path decodes what msgpack itself writes.
func TestCommandCodec(t *testing.T) {
	for _, c := range codecCommands() {
		b, err := encodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkBody(b[2:], maxItems); err != nil {
			t.Fatalf("%+v: encoded body refused by the check: %v", c, err)
		}
		fast, ok := decodeCommandFast(b[2:])
		if !ok {
			t.Fatalf("%+v: fast decode refused its own encoding", c)
		}
		var slow command
		if err := msgpack.Unmarshal(b[2:], &slow); err != nil {
			t.Fatalf("%+v: msgpack refuses the encoding: %v", c, err)
		}
		c.Type, fast.Type, slow.Type = 0, 0, 0
		if !reflect.DeepEqual(normCmd(fast), normCmd(c)) || !reflect.DeepEqual(normCmd(slow), normCmd(c)) {
			t.Fatalf("round trip of %+v:\nfast    %+v\nmsgpack %+v", c, fast, slow)
		}
		mb, err := msgpack.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := decodeCommandFast(mb); !ok || !reflect.DeepEqual(normCmd(got), normCmd(c)) {
			t.Fatalf("fast decode of msgpack's encoding of %+v: %+v, %v", c, got, ok)
		}
	}
}

// FuzzDecodeCommandFast: whatever body the fast decoder accepts, msgpack
// decodes without error to the same command, so replicas of this version
// and of older ones never apply a log entry differently.
func FuzzDecodeCommandFast(f *testing.F) {
	for _, c := range codecCommands() {
		b, _ := encodeCommand(c)
		f.Add(b[2:])
		mb, _ := msgpack.Marshal(&c)
		f.Add(mb)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if n, err := wirecheck.Check(body, 1, wirecheck.Limits{Items: maxItems}); err != nil || n != len(body) {
			return // decodeCommand refuses it first
		}
		fast, ok := decodeCommandFast(body)
		if !ok {
			return
		}
		want, err := decodeCommandMsgpack(body)
		if err != nil {
			t.Fatalf("fast decoded what msgpack refuses (%v): %+v", err, fast)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("fast %+v\nmsgpack %+v", fast, want)
		}
	})
}

func BenchmarkCommandCodec(b *testing.B) {
	c := command{Type: cmdSpawn, Spawn: SpawnRequest{Type: "Bench", Strategy: OnNode, Node: "fs2"}, Origin: "fsc", Inc: 12345, Seq: 678901, Floor: 678000}
	data, _ := encodeCommand(c)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			encodeCommand(c)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			decodeCommand(data)
		}
	})
	b.Run("decode-msgpack", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			decodeCommandMsgpack(data[2:])
		}
	})
}
