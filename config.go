package troupe

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/troupe-dev/troupe/actor"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/transport"
)

// Config configures a Node. The zero value is a complete single-node
// cluster in this process: an in-memory Raft store, QUIC on an ephemeral
// loopback port and a throw-away development CA shared by every node of the
// process. Setting Addr, Join, DataDir and TLS makes a production node.
type Config struct {
	// Name is the node id. With TLS files it must match the certificate's
	// node id (empty means take it from the certificate); with a Transport
	// it must match Transport.ID(). Zero means a generated "node-" + 8 hex
	// digits.
	Name string
	// Addr is the UDP address the node listens on and peers dial. Zero means
	// "127.0.0.1:0". A non-loopback Addr requires TLS: the development CA is
	// refused there.
	Addr string
	// Join lists addresses of existing members to join through. Zero means
	// this node bootstraps a new cluster (unless DataDir holds one).
	Join []string
	// DataDir holds the Raft log and snapshots. Zero means in-memory stores:
	// nothing survives Close.
	DataDir string
	// TLS is the node's identity in the cluster. Zero means the process-wide
	// development CA, allowed only on a loopback Addr.
	TLS TLS
	// Transport, when set, is used as is instead of QUIC (for tests:
	// transport.Mem); Addr and TLS are then ignored and the node does not
	// close it. Zero means QUIC with mutual TLS.
	Transport transport.Transport
	// Logger receives the runtime's warnings and events. Zero means silent.
	Logger *slog.Logger
	// AdminAddr, when set, serves the node's admin endpoint there (TCP):
	// /metrics, /status and /actors. Without TLS configured it must be a
	// loopback address (plain HTTP); with Config.TLS it may be any, and is
	// served in HTTPS to callers with a certificate of the cluster CA
	// (mutual TLS). Empty means no endpoint.
	AdminAddr string
	// HeartbeatTimeout is Raft's heartbeat and election timeout. Zero means
	// 200ms.
	HeartbeatTimeout time.Duration
	// FailTimeout is how long the leader waits without hearing a node before
	// it marks it failed and re-places its actors. Zero means 800ms.
	FailTimeout time.Duration
	// LeaseTimeout is how long a node serves its actors after it last heard
	// the leader; it must be below FailTimeout. Zero means 3/8 of FailTimeout.
	LeaseTimeout time.Duration
	// ClientTimeout is how long the registry's leader waits without hearing
	// from a client before it stops the actors that client owns (see
	// Detached): a client killed without a word. A live client is heard
	// every few seconds (its member watch). Zero means 10 s, or 4 ×
	// FailTimeout if that is longer; at least 5 s. Set it alike on every
	// member (the leader of the moment applies its own).
	ClientTimeout time.Duration
	// Client makes the process a client of the cluster at Join instead of
	// a member: it calls, spawns, looks up and stops actors, but holds no
	// replica, never votes and hosts nothing (see IsClient). Its
	// certificate should be a client certificate (`troupe cert issue
	// --client`), which members never let join. DataDir and AdminAddr are
	// refused; Register answers ErrClient.
	Client bool
	// RestartGrace is how long, besides FailTimeout, the leader waits for
	// a node that restarted from its DataDir at its recorded address and
	// said so before loading its snapshot (seconds at a million actors),
	// before it fails the node and re-places its actors elsewhere. Zero
	// means 10s; negative means none.
	RestartGrace time.Duration
	// Voter is this node's voter policy in the registry's Raft: VoterAuto
	// (zero: a voter while there are fewer than Voters), VoterNever (a
	// client-like or short-lived process: it never votes, so it never
	// leads) or VoterPrefer (a dedicated, stable member: promoted in place
	// of an auto voter).
	Voter VoterPolicy
	// Voters is how many members vote in Raft; later ones are non-voters
	// with a full replica. Zero means 3.
	Voters int
	// MailboxSize bounds the calls queued per hosted actor; a call beyond it
	// fails with ErrBackpressure once the runtime's few retries found no
	// room; a one-way Tell waits for room instead. Zero means 1024.
	MailboxSize int
	// MailboxBytes bounds the argument bytes queued per hosted actor (and
	// parked on the node while it waits to be able to serve them), so that
	// no caller can make a node hold more than that per actor; beyond it a
	// call fails with ErrBackpressure as above. A lone call always fits.
	// Zero means 64 MiB.
	MailboxBytes int
	// IdleTimeout passivates a hosted actor that has had no call for this
	// long: its OnDeactivate(ctx) error hook runs (if its type has one; the
	// place to save state), its instance is dropped from memory, and its
	// next call activates a fresh instance on its host (OnActivate(ctx)
	// error runs before that call). It is never passivated with a call
	// queued or running, and a call that races the passivation is
	// delivered to the next instance. Registered actors keep their
	// registry entry; a virtual actor's entry is dropped (its next call
	// places it again, maybe on another node), so a workload of many
	// short-lived keys does not grow the registry. Register's
	// PassivateAfter overrides it per
	// type. Zero means 1 hour (as Dapr's actors); negative means never.
	IdleTimeout time.Duration
	// MaxFrameSize is the largest request or result a call may carry, the
	// same for a local actor as for a remote one: beyond it the call fails
	// with ErrTooLarge (naming the size and the limit). Zero means 4 MiB;
	// it is also the QUIC transport's frame limit.
	MaxFrameSize int
	// Restart is the local supervision of hosted actors: a panicking actor
	// is restarted in place with a fresh instance within MaxRestarts per
	// Window (with Backoff); past that budget the node reports the failure
	// to the registry, which restarts it by its cluster RestartPolicy. Its
	// Strategy is ignored. Zero means 3 restarts in 5s, no backoff.
	Restart actor.Supervisor
	// TracerProvider, when set, records OpenTelemetry spans of the calls and
	// one-way sends this node makes (kind Client, Producer) and of those it
	// hosts (Server, Consumer), linked across nodes by the W3C trace
	// context each request carries; a method's ctx carries its span, so
	// the calls it makes join the same trace. Plug in the SDK's provider
	// (docs/operations.md, "Tracing"). Zero means no spans, and nothing
	// done for them on the path of a call: the global provider is not
	// consulted.
	TracerProvider trace.TracerProvider
}

// TLS names the node's certificate, key and cluster CA. Either the three
// files or Identity; zero means the development CA (loopback only).
type TLS struct {
	// CAFile, CertFile and KeyFile are PEM files as written by
	// transport.CA.WriteFiles and IssueFiles. Zero means unset.
	CAFile, CertFile, KeyFile string
	// Identity is an identity already in memory; it wins over the files.
	// Zero means unset.
	Identity *transport.Identity
}

func (t TLS) isZero() bool {
	return t.Identity == nil && t.CAFile == "" && t.CertFile == "" && t.KeyFile == ""
}

// ErrDevCAOnNetwork is returned by Start for a non-loopback Addr without TLS:
// a production address never falls back to the throw-away development CA.
var ErrDevCAOnNetwork = errors.New("troupe: a non-loopback Addr requires TLS files (the development CA is loopback-only)")

// devCA is the process-wide development CA, made on first use, so that
// several nodes started in one process with zero TLS trust each other.
var devCA = sync.OnceValues(transport.NewDevCA)

// isLoopback reports whether addr's host is a loopback address or
// "localhost". An empty host (":7000") listens on every interface: not
// loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// identity returns the node's TLS identity per cfg.
func (cfg *Config) identity() (*transport.Identity, error) {
	switch {
	case cfg.TLS.Identity != nil:
		return cfg.TLS.Identity, nil
	case !cfg.TLS.isZero():
		if cfg.TLS.CAFile == "" || cfg.TLS.CertFile == "" || cfg.TLS.KeyFile == "" {
			return nil, errors.New("troupe: TLS needs CAFile, CertFile and KeyFile together")
		}
		id, err := transport.LoadIdentity(cfg.TLS.CAFile, cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("troupe: %w", err)
		}
		return id, nil
	}
	if !isLoopback(cfg.Addr) {
		return nil, fmt.Errorf("%w: Addr %q", ErrDevCAOnNetwork, cfg.Addr)
	}
	ca, err := devCA()
	if err != nil {
		return nil, fmt.Errorf("troupe: development CA: %w", err)
	}
	if cfg.Name == "" {
		cfg.Name = generatedName()
	}
	id, err := ca.IssueWith(cfg.Name, transport.IssueOptions{Client: cfg.Client})
	if err != nil {
		return nil, fmt.Errorf("troupe: %w", err)
	}
	return id, nil
}

func generatedName() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "node-" + hex.EncodeToString(b[:])
}

// VoterPolicy says whether a node may vote in the registry's Raft.
type VoterPolicy = placement.VoterPolicy

// Voter policies (Config.Voter).
const (
	VoterAuto   = placement.VoterAuto
	VoterNever  = placement.VoterNever
	VoterPrefer = placement.VoterPrefer
)

// defaultIdleTimeout is Config.IdleTimeout's zero value.
const defaultIdleTimeout = time.Hour

// idleTimeout is Config.IdleTimeout with its default: 0 for never.
func idleTimeout(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return defaultIdleTimeout
	case d < 0:
		return 0
	}
	return d
}
