package placement

import (
	"math"
	"math/bits"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// The actor directory is a persistent hash array mapped trie (HAMT) of
// compact entries. Readers (Lookup, Owns) load the published root with one
// atomic load and walk immutable nodes: no lock, no allocation. The writer
// (the FSM goroutine) copies the nodes on the path it changes, or changes
// in place the nodes it created since the last publish (their gen is the
// current one; no reader can reach them), and publishes the new root once
// per log entry. A published root is never changed again, so a snapshot is
// the root pointer: O(1) on the FSM goroutine, encoded later by Persist.

// class is what many entries share: type, node, strategy, policy, state
// and, for a stopped actor, its reason. Classes are interned (see dirWriter.intern)
// and never mutated.
type class struct {
	typ      string
	node     string
	reason   string
	owner    string
	policy   RestartPolicy
	strategy Strategy
	state    ActorState
}

// entry is one directory entry, 40 bytes; the rest is in its class.
type entry struct {
	id       string
	epoch    uint64
	cls      *classInfo
	restarts uint32 // saturates at MaxUint32
}

// classInfo is an interned class with its Placement prefilled, so a
// lookup copies it whole and sets three fields (building it field by field
// cost a third of a lookup: narrow stores the copy out cannot forward).
type classInfo struct {
	class
	tmpl Placement
}

func (e *entry) placement() Placement {
	p := e.cls.tmpl
	p.ID, p.Epoch, p.Restarts = e.id, e.epoch, int(e.restarts)
	return p
}

// hnode is a trie node. Slot k (6 hash bits at this depth) holds an entry
// (bit k of dmap; ents in slot order) or a subnode (bit k of nmap; kids in
// slot order). Below the last level (shift ≥ 64) a node is a list of
// entries whose 64-bit hashes collide, searched by id.
type hnode struct {
	gen  uint64
	dmap uint64
	nmap uint64
	ents []entry
	kids []*hnode
}

const (
	hamtBits  = 6
	hamtMask  = 1<<hamtBits - 1
	hamtDepth = 64 // shift at which nodes become collision lists
)

// directory is the published side: what readers see.
type directory struct {
	root atomic.Pointer[hnode]
	// hashOf, if set, replaces the hash (tests: collisions).
	hashOf func(string) uint64
}

// hash is SipHash-2-4 under a fixed key (siphash.go): every replica's trie
// has the same shape and order, which a failover's rehome order uses.
func (d *directory) hash(id string) uint64 {
	if d.hashOf != nil {
		return d.hashOf(id)
	}
	return sipHash(sipK0, sipK1, id)
}

// get finds id under root n.
func (d *directory) get(n *hnode, id string) *entry {
	h := d.hash(id)
	for shift := uint(0); n != nil; shift += hamtBits {
		if shift >= hamtDepth {
			for i := range n.ents {
				if n.ents[i].id == id {
					return &n.ents[i]
				}
			}
			return nil
		}
		bit := uint64(1) << (h >> shift & hamtMask)
		if n.dmap&bit != 0 {
			e := &n.ents[bits.OnesCount64(n.dmap&(bit-1))]
			if e.id == id {
				return e
			}
			return nil
		}
		if n.nmap&bit == 0 {
			return nil
		}
		n = n.kids[bits.OnesCount64(n.nmap&(bit-1))]
	}
	return nil
}

// lookup reads id from the published root (any goroutine).
func (d *directory) lookup(id string) (p Placement, ok bool) {
	e := d.get(d.root.Load(), id)
	if e == nil {
		return p, false
	}
	p = e.cls.tmpl
	p.ID, p.Epoch, p.Restarts = e.id, e.epoch, int(e.restarts)
	return p, true
}

// walk calls f for every entry under n, in trie order, until f returns
// false.
func walk(n *hnode, f func(*entry) bool) bool {
	if n == nil {
		return true
	}
	for i := range n.ents {
		if !f(&n.ents[i]) {
			return false
		}
	}
	for _, k := range n.kids {
		if !walk(k, f) {
			return false
		}
	}
	return true
}

// walkSlots calls f for every entry under n (at depth shift) in slot
// order: slot by slot, an entry or its subtrie, so in the order of the
// hashes' 6-bit digits from the low end, and by id within a collision
// list. Unlike walk's, the order depends only on the entries' hashes and
// ids, not on the trie's history (whether an entry sits inline or was
// pushed down).
func walkSlots(n *hnode, shift uint, f func(*entry)) {
	if n == nil {
		return
	}
	if shift >= hamtDepth {
		es := make([]*entry, len(n.ents))
		for i := range n.ents {
			es[i] = &n.ents[i]
		}
		slices.SortFunc(es, func(x, y *entry) int { return strings.Compare(x.id, y.id) })
		for _, e := range es {
			f(e)
		}
		return
	}
	di, ki := 0, 0
	for m := n.dmap | n.nmap; m != 0; m &= m - 1 {
		if bit := m & -m; n.dmap&bit != 0 {
			f(&n.ents[di])
			di++
		} else {
			walkSlots(n.kids[ki], shift+hamtBits, f)
			ki++
		}
	}
}

// maxInterned bounds the interned classes; past it (a flood of distinct
// policies or stop reasons) new classes are allocated per entry.
const maxInterned = 1 << 16

// dirWriter is the writer's side of a directory: the working root, the
// current generation and the intern table. Only the FSM goroutine uses it.
type dirWriter struct {
	d      *directory
	root   *hnode
	gen    uint64
	intern map[class]*classInfo
}

func newDirWriter(d *directory) *dirWriter {
	return &dirWriter{d: d, gen: 1, intern: make(map[class]*classInfo)}
}

// publish makes the working root visible to readers; nodes reachable from
// it are never changed again.
func (w *dirWriter) publish() {
	if w.d.root.Load() != w.root {
		w.d.root.Store(w.root)
		w.gen++
	}
}

// freeze returns the working root and makes the nodes under it immutable,
// as publish does, without showing it to readers: a later write copies
// them.
func (w *dirWriter) freeze() *hnode {
	w.gen++
	return w.root
}

// reset empties the directory (restore); it is published with the next
// publish.
func (w *dirWriter) reset() {
	w.root = nil
	w.gen++
	clear(w.intern)
}

func (w *dirWriter) get(id string) (Placement, bool) {
	if e := w.d.get(w.root, id); e != nil {
		return e.placement(), true
	}
	return Placement{}, false
}

func (w *dirWriter) classOf(p *Placement) *classInfo {
	k := class{typ: p.Type, node: p.Node, reason: p.Reason, owner: p.Owner, policy: p.Policy, strategy: p.Strategy, state: p.State}
	if c := w.intern[k]; c != nil {
		return c
	}
	c := &classInfo{class: k, tmpl: Placement{Type: p.Type, Node: p.Node, Reason: p.Reason, Owner: p.Owner, Policy: p.Policy, Strategy: p.Strategy, State: p.State}}
	if len(w.intern) < maxInterned {
		w.intern[k] = c
	}
	return c
}

// entryOf makes p's entry.
func (w *dirWriter) entryOf(p *Placement) entry {
	return entry{id: p.ID, epoch: p.Epoch, cls: w.classOf(p), restarts: uint32(min(max(p.Restarts, 0), math.MaxUint32))}
}

// put stores p and returns the entry it replaced, if any.
func (w *dirWriter) put(p Placement) (old Placement, existed bool) {
	e := w.entryOf(&p)
	var prev *entry
	w.root, prev = w.insert(w.root, 0, w.d.hash(p.ID), e)
	if prev == nil {
		return Placement{}, false
	}
	return prev.placement(), true
}

// own returns n itself if this generation created it, else a copy the
// writer may change (a new node for nil).
func (w *dirWriter) own(n *hnode) *hnode {
	switch {
	case n == nil:
		return &hnode{gen: w.gen}
	case n.gen == w.gen:
		return n
	}
	return &hnode{gen: w.gen, dmap: n.dmap, nmap: n.nmap, ents: slices.Clone(n.ents), kids: slices.Clone(n.kids)}
}

// insert puts e under n (at depth shift) and returns the node to link in
// its place and, if e replaced an entry, a copy of that entry.
func (w *dirWriter) insert(n *hnode, shift uint, h uint64, e entry) (*hnode, *entry) {
	n = w.own(n)
	if shift >= hamtDepth {
		for i := range n.ents {
			if n.ents[i].id == e.id {
				old := n.ents[i]
				n.ents[i] = e
				return n, &old
			}
		}
		n.ents = grow(n.ents, len(n.ents), e)
		return n, nil
	}
	bit := uint64(1) << (h >> shift & hamtMask)
	switch {
	case n.dmap&bit != 0:
		i := bits.OnesCount64(n.dmap & (bit - 1))
		if n.ents[i].id == e.id {
			old := n.ents[i]
			n.ents[i] = e
			return n, &old
		}
		// Two entries in one slot: push both one level down.
		other := n.ents[i]
		sub, _ := w.insert(nil, shift+hamtBits, w.d.hash(other.id), other)
		sub, _ = w.insert(sub, shift+hamtBits, h, e)
		n.ents = slices.Concat(n.ents[:i], n.ents[i+1:])
		n.dmap &^= bit
		n.kids = grow(n.kids, bits.OnesCount64(n.nmap&(bit-1)), sub)
		n.nmap |= bit
		return n, nil
	case n.nmap&bit != 0:
		j := bits.OnesCount64(n.nmap & (bit - 1))
		kid, old := w.insert(n.kids[j], shift+hamtBits, h, e)
		n.kids[j] = kid
		return n, old
	}
	n.ents = grow(n.ents, bits.OnesCount64(n.dmap&(bit-1)), e)
	n.dmap |= bit
	return n, nil
}

// build makes the working root a trie of es (a restore), in one pass
// instead of one insert each: every node's slices are allocated once, at
// their final size. hs[i] is the hash of es[i]. Of entries with one id the
// last wins, as successive puts would.
//
// The sort moves (hash, index) pairs, 16 pointer-free bytes, not the
// entries: each entry is copied once, into its node, so a restore during a
// collection pays one write barrier per entry, not one per level.
func (w *dirWriter) build(es []entry, hs []uint64) {
	if len(es) == 0 {
		w.root = nil
		return
	}
	ps := make([]hpair, len(es))
	for i, h := range hs {
		ps[i] = hpair{h: h, i: uint32(i)}
	}
	w.root = w.buildNode(es, ps, 0, make([]hpair, len(ps)))
}

// hpair is an entry's hash and its index in the entries being built.
type hpair struct {
	h uint64
	i uint32
}

// buildNode builds the node at depth shift holding the entries of ps: a
// counting sort on the shift's 6 hash bits (stable, so the last of a
// duplicated id stays last), then a slot per bit with one entry, a child
// per bit with more. tmp is scratch space of len(ps).
func (w *dirWriter) buildNode(es []entry, ps []hpair, shift uint, tmp []hpair) *hnode {
	n := &hnode{gen: w.gen}
	if shift >= hamtDepth { // colliding hashes: a list
		out := make([]entry, 0, len(ps))
	next:
		for _, p := range ps {
			e := &es[p.i]
			for j := range out {
				if out[j].id == e.id {
					out[j] = *e
					continue next
				}
			}
			out = append(out, *e)
		}
		n.ents = slices.Clip(out)
		return n
	}
	var off [hamtMask + 2]int
	for _, p := range ps {
		off[p.h>>shift&hamtMask+1]++
	}
	nEnts, nKids := 0, 0
	for d := range hamtMask + 1 {
		switch c := off[d+1]; {
		case c == 1:
			nEnts++
		case c > 1:
			nKids++
		}
		off[d+1] += off[d]
	}
	pos := off
	for _, p := range ps {
		d := p.h >> shift & hamtMask
		tmp[pos[d]] = p
		pos[d]++
	}
	copy(ps, tmp)
	n.ents = make([]entry, 0, nEnts)
	n.kids = make([]*hnode, 0, nKids)
	for d := range hamtMask + 1 {
		lo, hi := off[d], off[d+1]
		bit := uint64(1) << d
		switch hi - lo {
		case 0:
		case 1:
			n.ents = append(n.ents, es[ps[lo].i])
			n.dmap |= bit
		default:
			n.kids = append(n.kids, nil)
			n.nmap |= bit
		}
	}
	// Each kid sorts its own range of ps (and of the scratch space), so
	// kids build independently: at the root of a large restore on every
	// core, else on this goroutine.
	if shift == 0 && len(ps) >= parallelBuild && runtime.GOMAXPROCS(0) > 1 {
		w.buildKids(n, es, ps, &off, tmp)
		return n
	}
	k := 0
	for d := range hamtMask + 1 {
		if lo, hi := off[d], off[d+1]; hi-lo > 1 {
			n.kids[k] = w.buildNode(es, ps[lo:hi], shift+hamtBits, tmp[lo:hi])
			k++
		}
	}
	return n
}

// buildKids builds the root's kids (their ranges of ps in off) on up to 4
// goroutines.
func (w *dirWriter) buildKids(n *hnode, es []entry, ps []hpair, off *[hamtMask + 2]int, tmp []hpair) {
	var ranges [][2]int
	for d := range hamtMask + 1 {
		if lo, hi := off[d], off[d+1]; hi-lo > 1 {
			ranges = append(ranges, [2]int{lo, hi})
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), 4) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(ranges); i = int(next.Add(1) - 1) {
				lo, hi := ranges[i][0], ranges[i][1]
				n.kids[i] = w.buildNode(es, ps[lo:hi], hamtBits, tmp[lo:hi])
			}
		})
	}
	wg.Wait()
}

// parallelBuild is the size from which build uses every core (up to 4);
// a variable for tests.
var parallelBuild = 1 << 16

// grow inserts v at i into s, reallocating to exactly the new length: the
// trie keeps no spare capacity (memory per entry).
func grow[T any](s []T, i int, v T) []T {
	out := make([]T, len(s)+1)
	copy(out, s[:i])
	out[i] = v
	copy(out[i+1:], s[i:])
	return out
}

// del removes id and returns the entry it held, if any. A node left with
// no entry and no child is unlinked; one left with a single entry and no
// child is folded into its parent's slot, so the trie after a delete has
// the shape it would have had without the entry (no empty paths kept).
func (w *dirWriter) del(id string) (old Placement, existed bool) {
	if w.d.get(w.root, id) == nil {
		return Placement{}, false // nothing copied for an absent id
	}
	var prev entry
	w.root, prev = w.remove(w.root, 0, w.d.hash(id), id)
	return prev.placement(), true
}

// remove deletes id, known to be under n, and returns the node to link in
// n's place (nil when empty) and the removed entry.
func (w *dirWriter) remove(n *hnode, shift uint, h uint64, id string) (*hnode, entry) {
	n = w.own(n)
	var prev entry
	if shift >= hamtDepth {
		i := slices.IndexFunc(n.ents, func(e entry) bool { return e.id == id })
		prev = n.ents[i]
		n.ents = slices.Concat(n.ents[:i], n.ents[i+1:])
	} else {
		bit := uint64(1) << (h >> shift & hamtMask)
		if n.dmap&bit != 0 {
			i := bits.OnesCount64(n.dmap & (bit - 1))
			prev = n.ents[i]
			n.ents = slices.Concat(n.ents[:i], n.ents[i+1:])
			n.dmap &^= bit
		} else {
			j := bits.OnesCount64(n.nmap & (bit - 1))
			var kid *hnode
			kid, prev = w.remove(n.kids[j], shift+hamtBits, h, id)
			switch {
			case kid == nil:
				n.kids = slices.Concat(n.kids[:j], n.kids[j+1:])
				n.nmap &^= bit
			case len(kid.kids) == 0 && len(kid.ents) == 1:
				// A lone entry goes back up into this slot.
				n.kids = slices.Concat(n.kids[:j], n.kids[j+1:])
				n.nmap &^= bit
				n.ents = grow(n.ents, bits.OnesCount64(n.dmap&(bit-1)), kid.ents[0])
				n.dmap |= bit
			default:
				n.kids[j] = kid
			}
		}
	}
	if len(n.ents) == 0 && len(n.kids) == 0 {
		return nil, prev
	}
	if len(n.ents) == 0 {
		n.ents = nil
	}
	if len(n.kids) == 0 {
		n.kids = nil
	}
	return n, prev
}
