package troupe

import (
	"bytes"
	"log/slog"
	"runtime"
	"sync"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/troupe-dev/troupe/remote"
	"github.com/troupe-dev/troupe/transport"
)

// hostile is a process holding a valid certificate of the cluster CA that
// never joined: it speaks the wire directly, over real QUIC.
func hostile(t *testing.T, id string) *transport.QUIC {
	t.Helper()
	ca, err := devCA()
	if err != nil {
		t.Fatal(err)
	}
	ident, err := ca.Issue(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	q, err := transport.NewQUIC(transport.Config{Identity: ident})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// The attacks of issue 9 against a whole cluster over QUIC: a registry
// command that once made every replica run out of memory, a control frame
// that once killed its receiver, and an argument nested a million levels
// deep for a method taking any. Every node stays up, keeps serving, and
// holds no more than a bounded amount of memory.
func TestHostileCertificateHolder(t *testing.T) {
	c := newTestCluster(t, true, 3, nil)
	ctx := ctxT(t)
	n1 := c.nodes[0]
	r := must[Ref](t)(n1.Spawn(ctx, "Counter", WithName("target"), OnNode("n2")))
	if _, err := Call[int](ctx, r, "Add", 1).Await(ctx); err != nil {
		t.Fatal(err)
	}
	evil := hostile(t, "mallory")
	before := heapInUse()
	leader := c.nodes[0]
	for _, nd := range c.nodes {
		if nd.ID() == n1.Leader() {
			leader = nd
		}
	}
	send := func(to *Node, k transport.Kind, frame []byte) {
		t.Helper()
		if err := evil.Send(ctx, transport.Peer{ID: to.ID(), Addr: to.Addr()}, k, frame); err != nil {
			t.Fatal(err)
		}
	}
	// 1. A propose carrying a lone 7-byte batch whose array32 header
	// announces 2^32-1 commands.
	body, err := msgpack.Marshal(map[string]any{"q": 1, "cs": [][]byte{{10, 1, 0xdd, 0xff, 0xff, 0xff, 0xff}}})
	if err != nil {
		t.Fatal(err)
	}
	send(leader, transport.KindControl, append([]byte{1, 1}, body...))
	// 2. An 11-byte control frame announcing a huge array of commands.
	for _, nd := range c.nodes {
		send(nd, transport.KindControl, []byte{1, 1, 0x81, 0xa2, 'c', 's', 0xdd, 0xff, 0xff, 0xff, 0xff})
	}
	// 3. An argument nested a million levels deep, for Keep(any).
	deep := append(bytes.Repeat([]byte{0x91}, 1<<20), 0xc0)
	q := remote.Request{ID: 1, Target: r.ID, Epoch: r.Epoch, Method: "Keep", Flags: remote.FlagNoCancel,
		Sender: "mallory", Args: append([]byte{0x91}, deep...)}
	send(c.nodes[1], transport.KindCalls, remote.AppendRequest(nil, &q))
	// 4. A one-way send of the same, and a frame that is no envelope.
	q.Flags = remote.FlagOneWay
	q.Sender = ""
	send(c.nodes[1], transport.KindOneWay, remote.AppendRequest(nil, &q))
	send(c.nodes[1], transport.KindCalls, []byte{0xdd, 0xff, 0xff, 0xff, 0xff})

	// The cluster still serves: calls, a spawn (a registry write), and the
	// actor kept its state (it was never restarted by a bad argument).
	for i := range 20 {
		v, err := Call[int](ctx, r, "Add", 1).Await(ctx)
		if err != nil || v != i+2 {
			t.Fatalf("call %d after the attacks = %d, %v", i, v, err)
		}
	}
	r2 := must[Ref](t)(c.nodes[2].Spawn(ctx, "Counter", OnNode("n3")))
	if _, err := Call[int](ctx, r2, "Add", 1).Await(ctx); err != nil {
		t.Fatal(err)
	}
	for _, nd := range c.nodes {
		if len(nd.Members()) != 3 {
			t.Fatalf("%s sees members %v", nd.ID(), nd.Members())
		}
	}
	if grown := int64(heapInUse()) - int64(before); grown > 64<<20 {
		t.Fatalf("heap grew by %d MiB under attack", grown>>20)
	}
	if leader.reg.Refused() == 0 {
		t.Fatal("the leader did not count the refused propose")
	}
}

// A non-member cannot write to the registry, even with a well-formed
// command: stopping any actor is refused and the actor keeps serving.
func TestHostileRegistryWriteRefused(t *testing.T) {
	refused := signalHandler{msg: "refused registry request", once: new(sync.Once), ch: make(chan struct{})}
	c := newTestCluster(t, true, 3, func(cfg *Config) { cfg.Logger = slog.New(refused) })
	ctx := ctxT(t)
	n1 := c.nodes[0]
	r := must[Ref](t)(n1.Spawn(ctx, "Counter", WithName("victim"), OnNode("n2")))
	evil := hostile(t, "mallory")
	leader := c.nodes[0]
	for _, nd := range c.nodes {
		if nd.ID() == n1.Leader() {
			leader = nd
		}
	}
	stop, err := msgpack.Marshal(map[string]any{"i": r.ID, "r": "pwned"})
	if err != nil {
		t.Fatal(err)
	}
	body, err := msgpack.Marshal(map[string]any{"q": 7, "cs": [][]byte{append([]byte{7, 1}, stop...)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := evil.Send(ctx, transport.Peer{ID: leader.ID(), Addr: leader.Addr()}, transport.KindControl, append([]byte{1, 1}, body...)); err != nil {
		t.Fatal(err)
	}
	recv(ctx, t, refused.ch) // the refusal itself
	if leader.reg.Refused() == 0 {
		t.Fatal("the leader did not count the refusal")
	}
	if _, err := Call[int](ctx, r, "Add", 1).Await(ctx); err != nil {
		t.Fatalf("the victim after a forged stop: %v", err)
	}
	if p, ok := n1.reg.Lookup(r.ID); !ok || p.Node != "n2" {
		t.Fatalf("victim placement after a forged stop: %+v, %v", p, ok)
	}
}
