package troupe

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Status is what a node knows of its cluster, read from its own replica of
// the registry (no network): the members, the leader and the registry's
// figures. A replica that lags shows the state it has applied.
type Status struct {
	Node     string       `json:"node"`   // this node's id
	Leader   string       `json:"leader"` // "" while there is none
	Members  []MemberInfo `json:"members"`
	Registry RegistryInfo `json:"registry"`
}

// MemberInfo is one member as the registry records it.
type MemberInfo struct {
	ID     string   `json:"id"`
	Addr   string   `json:"addr"`
	State  string   `json:"state"` // alive, failed, left or expelled
	Voter  bool     `json:"voter"` // a Raft voter in the latest configuration
	Leader bool     `json:"leader"`
	Types  []string `json:"types"`  // the actor types it hosts, sorted
	Actors int      `json:"actors"` // active actors placed on it
}

// RegistryInfo is the registry's replica on this node.
type RegistryInfo struct {
	RaftState    string `json:"raft_state"` // Leader, Follower, Candidate, Shutdown
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"` // applied to the directory
	Actors       int    `json:"actors"`        // active actors on the members
	HasLease     bool   `json:"has_lease"`     // this node may serve its actors now
}

// Status returns the cluster as this node's replica sees it.
func (n *Node) Status(ctx context.Context) (Status, error) {
	if err := n.checkOpen(ctx); err != nil {
		return Status{}, err
	}
	if n.reg == nil {
		return Status{}, ErrClient
	}
	leader := n.reg.Leader()
	voters := n.reg.Voters()
	st := Status{Node: n.id, Leader: leader}
	for _, m := range n.reg.Members() {
		st.Members = append(st.Members, MemberInfo{
			ID: m.ID, Addr: m.Addr, State: m.Status.String(),
			Voter: slices.Contains(voters, m.ID), Leader: m.ID == leader,
			Types: slices.Clone(m.Types), Actors: m.Load,
		})
		st.Registry.Actors += m.Load
	}
	slices.SortFunc(st.Members, func(a, b MemberInfo) int { return strings.Compare(a.ID, b.ID) })
	rs := n.reg.RaftStats()
	st.Registry.RaftState = rs["state"]
	st.Registry.Term, _ = strconv.ParseUint(rs["term"], 10, 64)
	st.Registry.CommitIndex, _ = strconv.ParseUint(rs["commit_index"], 10, 64)
	st.Registry.AppliedIndex = n.reg.AppliedIndex()
	st.Registry.HasLease = n.reg.HasLease()
	return st, nil
}

// ActorFilter selects and pages the actors Node.Actors lists.
type ActorFilter struct {
	Type  string // only actors of this type; "" any
	Node  string // only actors placed on this node; "" any
	After string // only ids after this one (the Next of the previous page)
	// Limit bounds the page: zero means 100, at most 10 000.
	Limit int
}

// ActorInfo is one registered actor.
type ActorInfo struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Node     string `json:"node"`
	Epoch    uint64 `json:"epoch"`
	State    string `json:"state"` // active or stopped
	Restarts int    `json:"restarts"`
	Reason   string `json:"reason,omitempty"` // why it stopped
}

// ActorPage is one page of Node.Actors, sorted by id.
type ActorPage struct {
	Actors []ActorInfo `json:"actors"`
	// Next is the After of the next page; "" when this is the last.
	Next string `json:"next,omitempty"`
}

// maxActorPage bounds one page of Node.Actors.
const maxActorPage = 10_000

// Actors lists the registered actors placed on the cluster's members, as
// this node's replica knows them, sorted by id, one page at a time.
func (n *Node) Actors(ctx context.Context, f ActorFilter) (ActorPage, error) {
	if err := n.checkOpen(ctx); err != nil {
		return ActorPage{}, err
	}
	if n.reg == nil {
		return ActorPage{}, ErrClient
	}
	limit := f.Limit
	switch {
	case limit < 0 || limit > maxActorPage:
		return ActorPage{}, fmt.Errorf("troupe: ActorFilter.Limit %d out of range [0, %d]", limit, maxActorPage)
	case limit == 0:
		limit = 100
	}
	var nodes []string
	if f.Node != "" {
		nodes = []string{f.Node}
	} else {
		for _, m := range n.reg.Members() {
			nodes = append(nodes, m.ID)
		}
	}
	// The limit+1 smallest ids after f.After, in a max-heap: memory stays
	// bounded by the page, whatever the directory holds.
	h := &idHeap{}
	for _, node := range nodes {
		if err := ctx.Err(); err != nil {
			return ActorPage{}, err
		}
		for _, p := range n.reg.ActorsOn(node) {
			if (f.Type != "" && p.Type != f.Type) || p.ID <= f.After {
				continue
			}
			if h.Len() > limit && p.ID >= (*h)[0].ID {
				continue
			}
			heap.Push(h, ActorInfo{ID: p.ID, Type: p.Type, Node: p.Node, Epoch: p.Epoch,
				State: p.State.String(), Restarts: p.Restarts, Reason: p.Reason})
			if h.Len() > limit+1 {
				heap.Pop(h)
			}
		}
	}
	all := []ActorInfo(*h)
	slices.SortFunc(all, func(a, b ActorInfo) int { return strings.Compare(a.ID, b.ID) })
	page := ActorPage{Actors: all}
	if len(all) > limit {
		page.Actors = all[:limit:limit]
		page.Next = all[limit-1].ID
	}
	return page, nil
}

// idHeap is a max-heap of actors by id.
type idHeap []ActorInfo

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i].ID > h[j].ID }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(ActorInfo)) }
func (h *idHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// checkOpen fails a status read on a closed node or a done ctx.
func (n *Node) checkOpen(ctx context.Context) error {
	if ctx == nil {
		return errors.New("troupe: nil context")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if n.closing.Load() {
		return ErrClosed
	}
	return nil
}
