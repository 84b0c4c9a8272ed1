package placement_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/placement/placementtest"
	"github.com/troupe-dev/troupe/transport"
)

// TestAdversarialControlFrames sends a live cluster the frames of issue 9
// from a peer on its network: the 11-byte propose frame whose command list
// is an array32 header of 2^32-1 elements (main died of out-of-memory
// decoding it), and the 7-byte command (a batch of 2^32-1) that main
// proposed verbatim, killing every replica at apply. The nodes survive,
// stay within a small memory budget, refuse the command with ErrBadCommand,
// and go on serving spawns from leader and follower alike.
func TestAdversarialControlFrames(t *testing.T) {
	c := placementtest.New(t, placementtest.Config{Nodes: 3, Types: []string{"A"}})
	l := c.WaitLeader()
	f := (l + 1) % 3
	rogue, err := c.Net.Join("n9")
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	replies := make(chan []byte, 4)
	rogue.Handle(transport.KindControl, transport.HandlerFunc(func(_ string, fr []byte) {
		select {
		case replies <- fr:
		default:
		}
	}))
	ctx := ctxT(t, 20*time.Second)

	control := []byte{1, 1, 0x81, 0xa2, 'c', 's', 0xdd, 0xff, 0xff, 0xff, 0xff} // msgPropose, v1, {"cs": array32(2^32-1)}
	command := []byte{10, 1, 0xdd, 0xff, 0xff, 0xff, 0xff}                      // cmdBatch, v1, array32(2^32-1)
	propose := append([]byte{1, 1, 0x82, 0xa1, 'q', 0x07, 0xa1, 'c', 0xc4, byte(len(command))}, command...)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, to := range []int{l, f} {
		if err := rogue.Send(ctx, transport.Peer{ID: c.Node(to).ID}, transport.KindControl, control); err != nil {
			t.Fatal(err)
		}
	}
	// The propose follows the bad frame on the same stream: its reply
	// shows the leader handled both.
	if err := rogue.Send(ctx, transport.Peer{ID: c.Node(l).ID}, transport.KindControl, propose); err != nil {
		t.Fatal(err)
	}
	var rep []byte
	select {
	case rep = <-replies:
	case <-ctx.Done():
		t.Fatal("no reply to the propose")
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("the attack cost %d MiB", grew>>20)
	}
	var m struct {
		Req uint64 `msgpack:"q"`
		Rs  []struct {
			E struct {
				Code uint8  `msgpack:"c"`
				Msg  string `msgpack:"m"`
			} `msgpack:"e"`
		} `msgpack:"rs"`
	}
	if rep[0] != 5 || msgpack.Unmarshal(rep[2:], &m) != nil || m.Req != 7 || len(m.Rs) != 1 {
		t.Fatalf("reply % x", rep)
	}
	if e := m.Rs[0].E; e.Code != 11 || !strings.Contains(e.Msg, placement.ErrBadCommand.Error()) { // code of ErrBadCommand
		t.Fatalf("propose result %+v, want ErrBadCommand", e)
	}

	// Every node still serves: spawns through the leader and a follower
	// apply on all three replicas.
	for i, from := range []int{l, f} {
		id := []string{"via-leader", "via-follower"}[i]
		p, err := c.Reg(from).Spawn(ctx, placement.SpawnRequest{ID: id, Type: "A"})
		if err != nil {
			t.Fatalf("spawn %s after the attack: %v", id, err)
		}
		for n := range 3 {
			if err := c.Reg(n).WaitApplied(ctx, p.Epoch/1024); err != nil {
				t.Fatalf("node %d: %v", n, err)
			}
			if got, ok := c.Reg(n).Lookup(id); !ok || got.Epoch != p.Epoch {
				t.Fatalf("node %d: %s = %+v, %v", n, id, got, ok)
			}
		}
	}
}
