package placement

// The write path on the leader (batchLoop) and on the other nodes (fwdLoop):
// commands queued while earlier ones are in flight travel together.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/troupe-dev/troupe/transport"
)

// applyReq is one command waiting for the leader's batcher.
type applyReq struct {
	data []byte
	out  chan applyOut // buffered 1
}

type applyOut struct {
	res *result
	err error
}

// applyLocal applies one encoded command on this node, the leader, through
// the batcher, and returns its result.
func (r *Registry) applyLocal(data []byte) (*result, error) {
	req := applyReq{data: data, out: make(chan applyOut, 1)}
	select {
	case r.applyQ <- req:
	case <-r.done:
		return nil, ErrClosed
	}
	select {
	case o := <-req.out:
		return o.res, o.err
	case <-r.done:
		return nil, ErrClosed
	}
}

// applyInFlight bounds the batch entries the leader has in Raft at once.
// While they are out, new commands queue and form the next batch, so the
// batch size grows with the load.
const applyInFlight = 4

// batchLoop packs the commands queued for the leader into batch entries
// (one Raft entry, one log write and one replication for many commands).
func (r *Registry) batchLoop() {
	slots := make(chan struct{}, applyInFlight)
	for {
		var first applyReq
		select {
		case first = <-r.applyQ:
		case <-r.done:
			return
		}
		select {
		case slots <- struct{}{}:
		case <-r.done:
			first.out <- applyOut{err: ErrClosed}
			return
		}
		batch := []applyReq{first}
	drain:
		for len(batch) < maxBatch/4 {
			select {
			case q := <-r.applyQ:
				batch = append(batch, q)
			default:
				break drain
			}
		}
		data := batch[0].data
		if len(batch) > 1 {
			list := make([][]byte, len(batch))
			for i, q := range batch {
				list[i] = q.data
			}
			var err error
			if data, err = encodeBatch(list); err != nil {
				finish(batch, applyOut{err: err})
				<-slots
				continue
			}
		}
		f := r.raft.Apply(data, r.attemptTimeout())
		if !r.goFunc(func() { r.finishBatch(f, batch); <-slots }) {
			finish(batch, applyOut{err: ErrClosed})
			return
		}
	}
}

func finish(batch []applyReq, o applyOut) {
	for _, q := range batch {
		q.out <- o
	}
}

func (r *Registry) finishBatch(f raft.ApplyFuture, batch []applyReq) {
	err := f.Error()
	if err == nil {
		r.pushCommit(f.Index())
	}
	if err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
			finish(batch, applyOut{res: &result{Err: ErrNotLeader}})
		case errors.Is(err, raft.ErrRaftShutdown):
			finish(batch, applyOut{err: ErrClosed})
		default: // ErrLeadershipLost and the like: maybe applied
			finish(batch, applyOut{res: &result{Err: fmt.Errorf("%w: %v", ErrUnknownOutcome, err)}})
		}
		return
	}
	var got any = f.Response()
	if a, ok := got.(*applied); ok {
		got = a.take()
	}
	switch resp := got.(type) {
	case []result:
		if len(resp) == len(batch) {
			for i, q := range batch {
				res := resp[i] // a copy: a waiter must not pin the whole batch's results
				q.out <- applyOut{res: &res}
			}
			return
		}
	case result:
		if len(batch) == 1 || resp.Err != nil {
			for _, q := range batch {
				res := resp
				q.out <- applyOut{res: &res}
			}
			return
		}
	}
	finish(batch, applyOut{err: fmt.Errorf("%w: unexpected apply response %T", ErrBadCommand, got)})
}

// fwdReq is one command waiting for the forwarder.
type fwdReq struct {
	to   transport.Peer
	data []byte
	out  chan applyOut // buffered 1
}

// forward sends one command to the leader `to` through the forwarder, which
// packs the commands queued meanwhile into one frame.
func (r *Registry) forward(ctx context.Context, to transport.Peer, data []byte) (*result, error) {
	q := fwdReq{to: to, data: data, out: make(chan applyOut, 1)}
	select {
	case r.fwdQ <- q:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.done:
		return nil, ErrClosed
	}
	select {
	case o := <-q.out:
		return o.res, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.done:
		return nil, ErrClosed
	}
}

// fwdLoop is batchLoop's counterpart on the other nodes: it packs the
// commands queued for the leader while applyInFlight frames are out into
// one propose frame, and hands each its own result.
func (r *Registry) fwdLoop() {
	slots := make(chan struct{}, applyInFlight)
	for {
		var first fwdReq
		select {
		case first = <-r.fwdQ:
		case <-r.done:
			return
		}
		select {
		case slots <- struct{}{}:
		case <-r.done:
			first.out <- applyOut{err: ErrClosed}
			return
		}
		batch := []fwdReq{first}
	drain:
		for len(batch) < maxBatch/4 {
			select {
			case q := <-r.fwdQ:
				if q.to != first.to { // the leader changed: ask again
					q.out <- applyOut{res: &result{Err: ErrNotLeader}}
					continue
				}
				batch = append(batch, q)
			default:
				break drain
			}
		}
		if !r.goFunc(func() { r.sendBatch(batch); <-slots }) {
			for _, q := range batch {
				q.out <- applyOut{err: ErrClosed}
			}
			return
		}
	}
}

func (r *Registry) sendBatch(batch []fwdReq) {
	cmds := make([][]byte, len(batch))
	for i, q := range batch {
		cmds[i] = q.data
	}
	rep, err := r.call(r.ctx, batch[0].to, &ctrl{Type: msgPropose, Cmds: cmds})
	var o applyOut
	switch {
	case errors.Is(err, errAttemptTimeout):
		o.err = ErrUnknownOutcome
	case err != nil:
		o.err = err
	case rep.Res != nil: // one outcome for all (e.g. not the leader)
		o.res = rep.Res
	case len(rep.Rs) == len(batch):
		for i, q := range batch {
			q.out <- applyOut{res: &rep.Rs[i]}
		}
		return
	default:
		o.err = fmt.Errorf("%w: %d results for %d commands", ErrBadCommand, len(rep.Rs), len(batch))
	}
	for _, q := range batch {
		if o.res != nil {
			res := *o.res
			q.out <- applyOut{res: &res}
		} else {
			q.out <- o
		}
	}
}

// handlePropose runs on the leader: apply a batch of commands forwarded by
// member from (they join the batcher's queue together) and answer with
// their results. Each command is decoded and authorized (authz.go) before
// it enters a batch, and carries from as its Origin.
func (r *Registry) handlePropose(from string, c *ctrl) *ctrl {
	rep := &ctrl{Type: msgResult, Req: c.Req}
	if !r.IsLeader() {
		rep.Res = &result{Err: ErrNotLeader}
		if addr, id := r.raft.LeaderWithID(); id != "" && string(id) != r.id {
			rep.Res.Leader, rep.Res.LeaderAddr = string(id), string(addr) // for a client
		}
		return rep
	}
	cmds := c.Cmds
	if len(cmds) == 0 && c.Cmd != nil {
		cmds = [][]byte{c.Cmd}
	}
	if len(cmds) > maxBatch {
		rep.Res = &result{Err: fmt.Errorf("%w: %d commands in one frame", ErrBadCommand, len(cmds))}
		return rep
	}
	reqs := make([]applyReq, len(cmds))
	for i, d := range cmds {
		reqs[i] = applyReq{data: d, out: make(chan applyOut, 1)}
		if err := validateCommand(d); err != nil { // nothing undecodable enters the log
			reqs[i].out <- applyOut{res: &result{Err: err}}
			continue
		}
		d, err := r.authorizeCommand(from, d) // nothing unauthorized either
		if err != nil {
			reqs[i].out <- applyOut{res: &result{Err: err}}
			continue
		}
		reqs[i].data = d
		select {
		case r.applyQ <- reqs[i]:
		case <-r.done:
			rep.Res = &result{Err: ErrClosed}
			return rep
		}
	}
	rep.Rs = make([]result, len(cmds))
	for i, q := range reqs {
		var o applyOut
		select {
		case o = <-q.out:
		case <-r.done:
			o.err = ErrClosed
		}
		switch {
		case o.err != nil:
			rep.Rs[i] = result{Err: o.err}
		default:
			rep.Rs[i] = *o.res
		}
	}
	return rep
}

// pushCommit tells the followers soon that the entry at index committed,
// when nothing is appended after it. hashicorp/raft carries the commit
// index only in AppendEntries, and with nothing new to send it sends one
// every 1-2 x CommitTimeout (50 ms), so a follower would apply the last
// write of a burst that much later (Node.Spawn waits for its own replica,
// a new owner for the failure entry). A barrier entry is the one way to
// make Raft replicate at once; its AppendEntries carries index as
// committed. Entries appended after index do the same when they commit, so
// only the last of a burst pushes; and the push waits pushDelay for a next
// entry first, so one writer whose next write follows at once (a loop of
// Spawns on the leader) does not pay a barrier's log write per write.
func (r *Registry) pushCommit(index uint64) {
	if r.raft.LastIndex() != index {
		return
	}
	time.AfterFunc(pushDelay, func() {
		if r.closed.Load() || r.raft.LastIndex() != index {
			return
		}
		r.goFunc(func() { r.raft.Barrier(r.attemptTimeout()) })
	})
}

// pushDelay is how long pushCommit waits for a next entry to carry the
// commit instead of a barrier: a fraction of a LAN round trip's worth of
// follower lag, more than a writer's turnaround on the leader.
const pushDelay = time.Millisecond
