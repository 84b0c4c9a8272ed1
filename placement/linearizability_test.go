package placement_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/placement/placementtest"
)

// The porcupine model of the registry, per actor name: spawn is
// get-if-exists, stop stops, read (Resolve) returns the entry. An operation
// that returned an error may or may not have taken effect.

type opKind uint8

const (
	opSpawn opKind = iota
	opStop
	opRead
)

type regInput struct {
	kind opKind
	name string
}

type regOutput struct {
	err      bool // unknown outcome
	notFound bool
	active   bool
	epoch    uint64
}

type regState struct {
	exists, active bool
	epoch          uint64 // 0: active at an epoch not yet observed
}

var registryModel = porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		for _, op := range h {
			n := op.Input.(regInput).name
			by[n] = append(by[n], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range by {
			out = append(out, ops)
		}
		return out
	},
	Init: func() []any { return []any{regState{}} },
	Step: func(st, in, out any) []any {
		s, i, o := st.(regState), in.(regInput), out.(regOutput)
		switch i.kind {
		case opSpawn:
			if o.err {
				if s.active {
					return []any{s}
				}
				return []any{s, regState{exists: true, active: true}}
			}
			// Spawn does not say whether the actor existed: an active one
			// must come back unchanged, a new one with a later epoch.
			if s.active {
				if s.epoch == 0 || o.epoch == s.epoch {
					return []any{regState{true, true, o.epoch}}
				}
				return nil
			}
			if o.epoch > s.epoch {
				return []any{regState{true, true, o.epoch}}
			}
			return nil
		case opStop:
			if o.err {
				if s.exists {
					return []any{s, regState{exists: true, epoch: s.epoch}}
				}
				return []any{s}
			}
			if o.notFound != !s.exists {
				return nil
			}
			return []any{regState{exists: s.exists, epoch: s.epoch}}
		default:
			if o.err {
				return []any{s}
			}
			if o.notFound != !s.exists || (s.exists && o.active != s.active) {
				return nil
			}
			if s.active && s.epoch != 0 && o.epoch != s.epoch {
				return nil
			}
			if s.active {
				s.epoch = o.epoch
			}
			return []any{s}
		}
	},
	DescribeOperation: func(in, out any) string {
		return fmt.Sprintf("%v -> %+v", in, out)
	},
}

func TestLinearizableUnderPartitions(t *testing.T) {
	c := placementtest.NewCluster(t, 3)
	c.WaitLeader()
	const (
		clients = 6
		perOp   = 300
		keys    = 4
	)
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	var (
		mu  sync.Mutex
		ops []porcupine.Operation
	)
	stop := make(chan struct{})
	var nemesis sync.WaitGroup
	nemesis.Go(func() { // partitions at random, bounded by the clients
		rng := rand.New(rand.NewPCG(1, 2))
		tk := time.NewTicker(300 * time.Millisecond)
		cut := false
		defer tk.Stop()
		for {
			select {
			case <-stop:
				c.HealAll()
				return
			case <-tk.C:
			}
			if cut {
				c.HealAll()
				cut = false
			} else {
				cut = true
				n := rng.IntN(3)
				c.Isolate(n)
			}
		}
	})
	var wg sync.WaitGroup
	deadline := time.Now().Add(3500 * time.Millisecond)
	for cl := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(cl), 7))
			pace := time.NewTicker(10 * time.Millisecond) // spread the ops over the partitions
			defer pace.Stop()
			for range perOp {
				<-pace.C
				if time.Now().After(deadline) {
					return
				}
				in := regInput{kind: opKind(rng.IntN(3)), name: fmt.Sprint("k", rng.IntN(keys))}
				reg := c.Reg(rng.IntN(3))
				ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
				call := now()
				var out regOutput
				var err error
				switch in.kind {
				case opSpawn:
					var p placement.Placement
					p, err = reg.Spawn(ctx, placement.SpawnRequest{ID: in.name, Type: "T"})
					out = regOutput{epoch: p.Epoch, active: true}
				case opStop:
					err = reg.Stop(ctx, in.name, "test")
				case opRead:
					var p placement.Placement
					p, err = reg.Resolve(ctx, in.name)
					out = regOutput{epoch: p.Epoch, active: p.State == placement.Active}
				}
				cancel()
				ret := now()
				switch {
				case errors.Is(err, placement.ErrNotFound):
					out = regOutput{notFound: true}
				case err != nil:
					out = regOutput{err: true}
					ret = math.MaxInt64
				}
				mu.Lock()
				ops = append(ops, porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	nemesis.Wait()
	ok := 0
	for _, op := range ops {
		if !op.Output.(regOutput).err {
			ok++
		}
	}
	if ok < len(ops)/3 {
		t.Fatalf("only %d of %d operations completed: the history says little", ok, len(ops))
	}
	res := porcupine.CheckOperationsTimeout(registryModel.ToModel(), ops, 20*time.Second)
	if res != porcupine.Ok {
		t.Fatalf("history of %d operations is %v", len(ops), res)
	}
	t.Logf("%d operations (%d completed) linearizable", len(ops), ok)
	// The model is strict: one read showing a wrong epoch breaks the history.
	bad := append([]porcupine.Operation(nil), ops...)
	for i, op := range bad {
		if o := op.Output.(regOutput); op.Input.(regInput).kind == opRead && o.active && !o.err {
			o.epoch += 1000
			bad[i].Output = o
			break
		}
	}
	if res := porcupine.CheckOperationsTimeout(registryModel.ToModel(), bad, 20*time.Second); res != porcupine.Illegal {
		t.Fatalf("a history with a forged read is %v, want Illegal", res)
	}
}
