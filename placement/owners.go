package placement

import (
	"context"
	"slices"
	"time"
)

// Client-owned actors. A client may spawn an actor it owns
// (SpawnRequest.Owner, its own id only): the registry stops the actor when
// the client closes (it proposes release for itself) or when the leader
// has not heard from it for clientTimeout — a client killed without a word.
// A client is heard through any control frame it sends the leader; its
// member watch (Client.WatchMembers, a waiting lookup answered at least
// every lookupWait) goes to the leader when it knows it, so a live client
// is heard every few seconds. A new leader gives every owner a full
// timeout from its election before it judges them.

// minClientTimeout is the least client timeout: a live client's member
// watch reaches the leader at least every lookupWait (plus a round trip),
// so a shorter timeout would stop the actors of clients that are fine.
const minClientTimeout = 2*lookupWait + time.Second

// clientTimeout is how long the leader waits for a silent client before it
// stops the actors the client owns.
func (r *Registry) clientTimeout() time.Duration {
	if r.cfg.ClientTimeout > 0 {
		return max(r.cfg.ClientTimeout, minClientTimeout)
	}
	return max(10*time.Second, 4*r.cfg.FailTimeout)
}

// heardClient records a control frame from client id.
func (r *Registry) heardClient(id string) {
	r.hbMu.Lock()
	r.clientHeard[id] = time.Now()
	r.hbMu.Unlock()
}

// checkOwners, on the leader's monitor tick, releases the actors of owners
// silent past clientTimeout. newTerm restarts every owner's clock.
func (r *Registry) checkOwners(now time.Time, newTerm bool) {
	owners := r.fsm.m.owners() // before hbMu: never hold it while waiting for the machine
	for _, id := range r.silentOwners(owners, now, newTerm) {
		if !r.goFunc(func() { r.releaseOwner(id) }) {
			r.hbMu.Lock()
			delete(r.releasing, id)
			r.hbMu.Unlock()
		}
	}
}

// silentOwners returns the owners (sorted) silent past clientTimeout at
// now, and marks them releasing; it forgets clients that own nothing. A
// new term restarts every owner's clock at now, as does an owner seen for
// the first time.
func (r *Registry) silentOwners(owners []string, now time.Time, newTerm bool) []string {
	r.hbMu.Lock()
	defer r.hbMu.Unlock()
	var out []string
	for id := range r.clientHeard {
		if _, owns := slices.BinarySearch(owners, id); !owns && !r.releasing[id] {
			delete(r.clientHeard, id) // owns nothing: nothing to watch
		}
	}
	for _, id := range owners {
		last, ok := r.clientHeard[id]
		if !ok || newTerm && last.Before(now) {
			r.clientHeard[id] = now
			continue
		}
		silent := now.Sub(last)
		if silent <= r.clientTimeout() || r.releasing[id] {
			continue
		}
		r.releasing[id] = true
		r.log.Warn("client silent: stopping the actors it owns", "client", id, "silent", silent)
		out = append(out, id)
	}
	return out
}

// releaseOwner applies release for owner id (the leader's own command).
func (r *Registry) releaseOwner(id string) {
	defer func() {
		r.hbMu.Lock()
		delete(r.releasing, id)
		delete(r.clientHeard, id)
		r.hbMu.Unlock()
	}()
	data, _ := encodeCommand(command{Type: cmdRelease, Node: id, Reason: "owner " + id + " silent"})
	if _, err := r.applyLocal(data); err != nil {
		r.log.Warn("release a silent client's actors", "client", id, "err", err)
	}
}

// Release stops every actor the client id owns, for a client that closes
// (its own command; the leader's for another). Owning nothing is no error.
func (r *Registry) Release(ctx context.Context, id string) error {
	_, err := r.propose(ctx, command{Type: cmdRelease, Node: id, Reason: "owner " + id + " closed"}, true)
	return err
}
