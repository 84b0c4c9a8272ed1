package placement

import (
	"errors"
	"fmt"
	"time"
)

// Strategy chooses the node of a new or re-placed actor. Only alive members
// that host the actor's type are candidates. The choice is made inside the
// state machine's Apply from the replicated state and the log index, so every
// replica computes the same node.
type Strategy uint8

const (
	// LeastLoaded picks the candidate with the fewest active actors, ties
	// broken by node id. It is the zero value.
	LeastLoaded Strategy = iota
	// OnNode places on SpawnRequest.Node.
	OnNode
	// Local places on the node that asked for the spawn.
	Local
	// Random picks a candidate with a hash of the log index and the actor id,
	// so it is pseudo-random yet identical on every replica.
	Random
	// HashID picks a candidate by rendezvous hashing of the actor id, so an id
	// goes to the same node while the candidate set is unchanged.
	HashID
	strategyEnd
)

var strategyNames = [...]string{"least-loaded", "on-node", "local", "random", "hash-id"}

func (s Strategy) String() string {
	if s < strategyEnd {
		return strategyNames[s]
	}
	return fmt.Sprintf("strategy(%d)", uint8(s))
}

// RestartPolicy says how often the registry restarts an actor whose node
// failed or which crashed past its local budget.
type RestartPolicy struct {
	// MaxRestarts: 0 never restarts (the actor is stopped), N > 0 restarts
	// at most N times, -1 restarts without limit.
	MaxRestarts int `msgpack:"m"`
	// Backoff is the delay the hosting node waits before activating a
	// restarted actor (Placement.Restarts > 0). Zero means none.
	Backoff time.Duration `msgpack:"b"`
}

func (p RestartPolicy) valid() bool { return p.MaxRestarts >= -1 && p.Backoff >= 0 }

// SpawnRequest asks the registry to place a registered actor.
type SpawnRequest struct {
	// ID names the actor. If an active actor of that id exists, Spawn returns
	// it (get-if-exists, decided inside Apply). Empty means the registry
	// generates a unique id ("~" followed by the log index); ids starting
	// with "~" are reserved.
	ID string `msgpack:"i"`
	// Type is the registered type name; it must be hosted by some member.
	Type string `msgpack:"t"`
	// Strategy chooses the node. Zero means LeastLoaded.
	Strategy Strategy `msgpack:"s"`
	// Node is the target node for OnNode; ignored otherwise.
	Node string `msgpack:"n"`
	// Policy is the restart policy. Zero means never restart.
	Policy RestartPolicy `msgpack:"p"`
	// Owner, when set, is the client that spawned the actor and owns its
	// lifetime: the registry stops it when that client closes or goes
	// silent (see Registry's client liveness). Only a client may own, and
	// only for itself; empty means detached.
	Owner string `msgpack:"o,omitempty"`
}

// ActorState is the lifecycle state of a directory entry.
type ActorState uint8

const (
	// Active actors are served by their Node.
	Active ActorState = iota
	// Stopped actors are served by nobody; Placement.Reason says why.
	Stopped
)

func (s ActorState) String() string {
	if s == Active {
		return "active"
	}
	return "stopped"
}

// Placement is one directory entry: where an actor lives.
type Placement struct {
	ID       string        `msgpack:"i"`
	Type     string        `msgpack:"t"`
	Node     string        `msgpack:"n"`
	Epoch    uint64        `msgpack:"e"` // of its current placement: Raft log index × 1024 + position in the batch entry; grows with the log
	Strategy Strategy      `msgpack:"s"`
	Policy   RestartPolicy `msgpack:"p"`
	Restarts int           `msgpack:"r"` // restarts so far
	State    ActorState    `msgpack:"x"`
	Reason   string        `msgpack:"y"`           // why it stopped
	Owner    string        `msgpack:"o,omitempty"` // the client owning its lifetime, or "" (detached)
}

// MemberStatus is a member's liveness as recorded in the log.
type MemberStatus uint8

const (
	// Alive members are candidates for placement.
	Alive MemberStatus = iota
	// Failed members went silent for FailTimeout; their actors were re-placed.
	Failed
	// Left members left gracefully; they may join again.
	Left
	// Expelled members were removed by Expel: their id is denied (no join,
	// no connection, no Raft) for good.
	Expelled
)

func (s MemberStatus) String() string {
	switch s {
	case Alive:
		return "alive"
	case Failed:
		return "failed"
	case Expelled:
		return "expelled"
	default:
		return "left"
	}
}

// Member is one node of the cluster.
type Member struct {
	ID     string       `msgpack:"i"`
	Addr   string       `msgpack:"a"`
	Status MemberStatus `msgpack:"s"`
	Types  []string     `msgpack:"t"` // sorted
	Load   int          `msgpack:"l"` // active actors placed on it
	// Inc is the member's incarnation: the log index of its latest join.
	// The leader stamps it on the member's writes (exactly-once sessions).
	Inc uint64 `msgpack:"j,omitempty"`
	// Voter is the member's voter policy, as it joined with it.
	Voter VoterPolicy `msgpack:"v,omitempty"`
}

// VoterPolicy says whether a member may vote in Raft.
type VoterPolicy uint8

const (
	// VoterAuto: a voter while the cluster has fewer than Config.Voters.
	VoterAuto VoterPolicy = iota
	// VoterNever: never a voter (a client-like or short-lived process): it
	// never leads and is never promoted. The first node of a new cluster
	// votes until enough others do.
	VoterNever
	// VoterPrefer: a voter before any VoterAuto member (the dedicated
	// registry members, `troupe node`): it is promoted in place of an
	// auto voter.
	VoterPrefer
)

func (v VoterPolicy) String() string {
	switch v {
	case VoterNever:
		return "never"
	case VoterPrefer:
		return "prefer"
	}
	return "auto"
}

func (m *Member) hosts(typ string) bool {
	for _, t := range m.Types {
		if t == typ {
			return true
		}
	}
	return false
}

// EventKind says what changed.
type EventKind uint8

const (
	// ActorPlaced: a new actor was placed (Event.Actor).
	ActorPlaced EventKind = iota + 1
	// ActorReplaced: an actor got a new epoch, maybe on another node
	// (Event.Prev is the old placement).
	ActorReplaced
	// ActorStopped: an actor stopped (Event.Prev is the last active placement).
	ActorStopped
	// MemberJoined: a member joined or rejoined, or changed its types.
	MemberJoined
	// MemberFailed: a member was marked failed.
	MemberFailed
	// MemberAlive: a failed member was heard from again.
	MemberAlive
	// MemberLeft: a member left gracefully.
	MemberLeft
	// Reset: the replica was replaced by a snapshot; re-read everything.
	Reset
	// MemberExpelled: a member was expelled (Expel); its id is denied.
	MemberExpelled
	// ActorForgotten: the registry dropped the entry of an actor its host
	// passivated (Event.Prev); a virtual actor's next call places it anew.
	ActorForgotten
)

var eventNames = [...]string{"", "actor-placed", "actor-replaced", "actor-stopped", "member-joined", "member-failed", "member-alive", "member-left", "reset", "member-expelled", "actor-forgotten"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) && k > 0 {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is one change of the replicated state, delivered in log order.
type Event struct {
	Kind   EventKind
	Index  uint64 // log index of the change
	Actor  Placement
	Prev   Placement
	Member Member
}

// Errors of the registry. Spawn failures come as *SpawnError wrapping one of
// them, so errors.Is works and errors.As gives the data.
var (
	ErrUnknownType    = errors.New("placement: unknown actor type")
	ErrTypeNotHosted  = errors.New("placement: node does not host the type")
	ErrInvalidPolicy  = errors.New("placement: invalid restart policy")
	ErrInvalidRequest = errors.New("placement: invalid request")
	ErrNoCandidate    = errors.New("placement: no alive node hosts the type")
	ErrNodeNotAlive   = errors.New("placement: node is not an alive member")
	ErrNotFound       = errors.New("placement: no such actor")
	ErrStaleEpoch     = errors.New("placement: stale epoch")
	// ErrForgotten: the entry was dropped after its host passivated the
	// actor (Forget); errors that carry it match ErrNotFound too. A
	// virtual actor's next call places it anew.
	ErrForgotten = errors.New("placement: entry forgotten after passivation")
	ErrNotOwner  = errors.New("placement: not the owner")
	ErrNoLease   = errors.New("placement: no lease from the leader")
	// ErrFenced: the actor was just moved here from a live node, whose
	// lease may still let it serve; this node serves it once that lease
	// has surely ended (Config.LeaseTimeout plus a drift margin after it
	// applied the move). Retry shortly.
	ErrFenced           = errors.New("placement: actor moved here, fenced until the old host's lease ends")
	ErrBadCommand       = errors.New("placement: malformed command")
	ErrUnknownVersion   = errors.New("placement: unknown command version")
	ErrBadSnapshot      = errors.New("placement: corrupted snapshot")
	ErrIdentityMismatch = errors.New("placement: claimed node id does not match the authenticated peer")
	ErrNotLeader        = errors.New("placement: not the leader")
	ErrNoLeader         = errors.New("placement: no leader")
	ErrClosed           = errors.New("placement: registry closed")
	ErrNotMember        = errors.New("placement: not a member")
	// ErrUnknownOutcome: the leader was lost after a non-idempotent write (an
	// unnamed spawn) was sent; it may or may not have been applied.
	ErrUnknownOutcome = errors.New("placement: outcome unknown, leader lost")
	// ErrStaleRequest: a retried request is too old to be deduplicated; it
	// may have been applied.
	ErrStaleRequest = errors.New("placement: request too old to deduplicate")
	// ErrIDInUse: a join named an id that is alive at another address
	// (one process per node id); it may join once that member failed or left.
	ErrIDInUse = errors.New("placement: node id in use by a live member")
	// ErrExpelled: the id was expelled (Expel) and may not join or connect.
	ErrExpelled = errors.New("placement: node expelled")
	// ErrUnauthorized: the authenticated sender may not send that request
	// (not a member, or a command naming another node); see authz.go.
	ErrUnauthorized = errors.New("placement: unauthorized")
)

// SpawnError is a refused spawn, restart or stop, with its data.
type SpawnError struct {
	ID   string
	Type string
	Node string
	Err  error // one of the sentinels above
}

func (e *SpawnError) Error() string {
	s := e.Err.Error()
	if e.ID != "" {
		s += " (actor " + e.ID + ")"
	}
	if e.Type != "" {
		s += " (type " + e.Type + ")"
	}
	if e.Node != "" {
		s += " (node " + e.Node + ")"
	}
	return s
}

// Unwrap returns the sentinel.
func (e *SpawnError) Unwrap() error { return e.Err }
