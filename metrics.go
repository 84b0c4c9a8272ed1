package troupe

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/troupe-dev/troupe/remote"
	"github.com/troupe-dev/troupe/transport"
)

// Metrics returns the node's own Prometheus registry (never the global
// one): the figures of its transport, registry replica and endpoint, read
// when gathered, so they cost nothing on the path of a call. Serve it with
// promhttp.HandlerFor, or through Config.AdminAddr.
func (n *Node) Metrics() prometheus.Gatherer { return n.metrics }

// newMetrics makes the node's registry with its collector and the Go
// runtime's and process's.
func newMetrics(n *Node) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(nodeCollector{n}, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "troupe"}))
	return r
}

var (
	descFramesSent     = prometheus.NewDesc("troupe_transport_frames_sent_total", "Frames handed to QUIC for a peer.", []string{"peer"}, nil)
	descFramesReceived = prometheus.NewDesc("troupe_transport_frames_received_total", "Frames read from a peer.", []string{"peer"}, nil)
	descBytesSent      = prometheus.NewDesc("troupe_transport_sent_bytes_total", "Payload bytes handed to QUIC for a peer.", []string{"peer"}, nil)
	descBytesReceived  = prometheus.NewDesc("troupe_transport_received_bytes_total", "Payload bytes read from a peer.", []string{"peer"}, nil)
	descFramesDropped  = prometheus.NewDesc("troupe_transport_frames_dropped_total", "Frames to or from a peer that were dropped (connection lost, no handler).", []string{"peer"}, nil)
	descQueuedBytes    = prometheus.NewDesc("troupe_transport_queued_bytes", "Bytes queued to a peer now.", []string{"peer"}, nil)
	descTrRefusals     = prometheus.NewDesc("troupe_transport_refusals_total", "Handshakes, streams and connections refused, by reason.", []string{"reason"}, nil)
	descRaftState      = prometheus.NewDesc("troupe_registry_raft_state", "1 for this replica's Raft state.", []string{"state"}, nil)
	descTerm           = prometheus.NewDesc("troupe_registry_raft_term", "This replica's Raft term.", nil, nil)
	descCommit         = prometheus.NewDesc("troupe_registry_commit_index", "This replica's Raft commit index.", nil, nil)
	descApplied        = prometheus.NewDesc("troupe_registry_applied_index", "Log index this replica's directory has applied.", nil, nil)
	descLease          = prometheus.NewDesc("troupe_registry_lease", "1 while this node holds a lease to serve its actors.", nil, nil)
	descMembers        = prometheus.NewDesc("troupe_registry_members", "Members by status.", []string{"status"}, nil)
	descActors         = prometheus.NewDesc("troupe_registry_actors", "Active actors placed on a member.", []string{"node"}, nil)
	descLeader         = prometheus.NewDesc("troupe_registry_leader", "1 for the member this replica sees as leader.", []string{"node"}, nil)
	descLeaderChanges  = prometheus.NewDesc("troupe_registry_leader_changes_total", "Leaders this replica has seen elected.", nil, nil)
	descLeaseRenewals  = prometheus.NewDesc("troupe_registry_lease_renewals_total", "Lease grants this node took.", nil, nil)
	descLeaseLapses    = prometheus.NewDesc("troupe_registry_lease_lapses_total", "Times this node's lease ended without a renewal (it stopped serving).", nil, nil)
	descRestartGraces  = prometheus.NewDesc("troupe_registry_restart_graces_total", "As leader: members that announced a restart from their DataDir and were given RestartGrace before being failed.", nil, nil)
	descReplaySnaps    = prometheus.NewDesc("troupe_registry_replay_snapshots_total", "Snapshots this replica took, beside Raft's own, to bound what a restart from its DataDir replays.", nil, nil)
	descPlacements     = prometheus.NewDesc("troupe_registry_placements", "Actors in the registry, by state.", []string{"state"}, nil)
	descConnections    = prometheus.NewDesc("troupe_transport_connections", "Usable QUIC connections to a peer now.", []string{"peer"}, nil)
	descStreams        = prometheus.NewDesc("troupe_transport_streams", "Open streams to and from a peer now.", []string{"peer"}, nil)
	descPassivations   = prometheus.NewDesc("troupe_passivations_total", "Actors passivated on this node after their idle timeout.", nil, nil)
	descRegRefusals    = prometheus.NewDesc("troupe_registry_refusals_total", "Registry writes refused, by reason.", []string{"reason"}, nil)
	descCalls          = prometheus.NewDesc("troupe_calls_total", "Calls that reached a method hosted here, by type, method and outcome.", []string{"type", "method", "outcome"}, nil)
	descActivations    = prometheus.NewDesc("troupe_activations", "Actors active on this node, by type.", []string{"type"}, nil)
	descMailbox        = prometheus.NewDesc("troupe_mailbox_calls", "Calls in the mailboxes of this node's actors (queued or being run), by type.", []string{"type"}, nil)
	descRepliesDropped = prometheus.NewDesc("troupe_remote_replies_dropped_total", "Replies not queued to their caller (connection gone or full).", nil, nil)
	descCallDuration   = prometheus.NewDesc("troupe_call_duration_seconds", "Time from the arrival of a call that reached a method hosted here to its reply (to the method's return for a one-way call), by type and method.", []string{"type", "method"}, nil)
	descClientDuration = prometheus.NewDesc("troupe_client_call_duration_seconds", "Time from a call this node made to its completion (retries included), by type, method and outcome.", []string{"type", "method", "outcome"}, nil)
	descOneWaySent     = prometheus.NewDesc("troupe_oneway_sent_total", "One-way sends (Tell) this node made, by outcome: ok when queued to the host.", []string{"outcome"}, nil)
	descOneWayDropped  = prometheus.NewDesc("troupe_oneway_dropped_total", "One-way requests received here that did not reach their method, by reason.", []string{"reason"}, nil)
)

// latencyBounds are the upper bounds of the latency histograms' buckets,
// in seconds.
var latencyBounds = func() []float64 {
	var b []float64
	for _, d := range remote.LatencyBounds() {
		b = append(b, d.Seconds())
	}
	return b
}()

// constHistogram is h as a Prometheus histogram of desc.
func constHistogram(desc *prometheus.Desc, h *remote.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(latencyBounds))
	var n uint64
	for i, le := range latencyBounds {
		n += h.Counts[i]
		buckets[le] = n
	}
	n += h.Counts[len(latencyBounds)]
	return prometheus.MustNewConstHistogram(desc, n, h.Sum.Seconds(), buckets, labels...)
}

// nodeCollector reads the node's figures at each gather.
type nodeCollector struct{ n *Node }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFramesSent, descFramesReceived, descBytesSent, descBytesReceived, descFramesDropped,
		descQueuedBytes, descTrRefusals, descRaftState, descTerm, descCommit, descApplied, descLease, descMembers, descActors,
		descLeader, descLeaderChanges, descLeaseRenewals, descLeaseLapses, descRestartGraces, descReplaySnaps, descPlacements, descConnections, descStreams, descPassivations, descRegRefusals, descRepliesDropped, descCalls, descActivations, descMailbox,
		descCallDuration, descClientDuration, descOneWaySent, descOneWayDropped} {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, s := range n.types.Stats() {
		for code, v := range s.Outcomes {
			counter(descCalls, v, s.Type, s.Method, outcomeLabel(code))
		}
		if s.Latency.Count() > 0 {
			ch <- constHistogram(descCallDuration, &s.Latency, s.Type, s.Method)
		}
	}
	for _, s := range n.ep.ClientStats() {
		ch <- constHistogram(descClientDuration, &s.Latency, s.Type, s.Method, outcomeLabel(s.Outcome))
	}
	ow := n.ep.OneWayStats()
	for code, v := range ow.Sent {
		counter(descOneWaySent, v, outcomeLabel(code))
	}
	for code, v := range ow.Dropped {
		counter(descOneWayDropped, v, outcomeLabel(code))
	}
	for _, s := range n.tr.Stats() {
		counter(descFramesSent, s.FramesSent, s.Peer)
		counter(descFramesReceived, s.FramesReceived, s.Peer)
		counter(descBytesSent, s.BytesSent, s.Peer)
		counter(descBytesReceived, s.BytesReceived, s.Peer)
		counter(descFramesDropped, s.FramesDropped, s.Peer)
		gauge(descQueuedBytes, float64(s.QueuedBytes), s.Peer)
		if _, ok := n.tr.(*transport.QUIC); ok {
			gauge(descConnections, float64(s.Connections), s.Peer)
			gauge(descStreams, float64(s.Streams), s.Peer)
		}
	}
	if r, ok := n.tr.(interface{ Refusals() map[string]uint64 }); ok {
		for reason, v := range r.Refusals() {
			counter(descTrRefusals, v, reason)
		}
	}
	if n.closing.Load() || n.reg == nil {
		return // the registry may be closed, or this is a client: no figures
	}
	rs := n.reg.RaftStats()
	gauge(descRaftState, 1, rs["state"])
	if v, err := strconv.ParseUint(rs["term"], 10, 64); err == nil {
		gauge(descTerm, float64(v))
	}
	if v, err := strconv.ParseUint(rs["commit_index"], 10, 64); err == nil {
		gauge(descCommit, float64(v))
	}
	gauge(descApplied, float64(n.reg.AppliedIndex()))
	lease := 0.0
	if n.reg.HasLease() {
		lease = 1
	}
	gauge(descLease, lease)
	byStatus := map[string]int{"alive": 0, "failed": 0, "left": 0, "expelled": 0}
	leader := n.reg.Leader()
	for _, m := range n.reg.Members() {
		byStatus[m.Status.String()]++
		gauge(descActors, float64(m.Load), m.ID)
		if m.ID == leader {
			gauge(descLeader, 1, m.ID)
		}
	}
	for s, v := range byStatus {
		gauge(descMembers, float64(v), s)
	}
	for reason, v := range n.reg.Refusals() {
		counter(descRegRefusals, v, reason)
	}
	k := n.reg.Counters()
	counter(descLeaderChanges, k.LeaderChanges)
	counter(descLeaseRenewals, k.LeaseRenewals)
	counter(descLeaseLapses, k.LeaseLapses)
	counter(descRestartGraces, k.RestartGraces)
	counter(descReplaySnaps, k.ReplaySnapshots)
	gauge(descPlacements, float64(k.Active), "active")
	gauge(descPlacements, float64(k.Stopped), "stopped")
	counter(descRepliesDropped, n.ep.RepliesDropped())
	counter(descPassivations, n.ep.Passivations())
	for _, a := range n.ep.Activations() {
		gauge(descActivations, float64(a.Activations), a.Type)
		gauge(descMailbox, float64(a.Queued), a.Type)
	}
}

// outcomeLabel is a call outcome as a label value: "ok", or the error's
// name with underscores ("not_owner", "deadline_exceeded", ...).
func outcomeLabel(c remote.Code) string { return c.Label() }
