package keys

import (
	"strconv"
)

// DefaultPrefix is the default key prefix (HERALD_PREFIX).
const DefaultPrefix = "herald:"

// Space builds keys under one prefix. The zero value uses DefaultPrefix.
type Space struct {
	Prefix string
}

func (s Space) p() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

// Events is the ingest stream without partitions: herald:events.
func (s Space) Events() string { return s.p() + "events" }

// EventsPartition is ingest partition n: herald:events:{n}.
func (s Space) EventsPartition(n int) string {
	return s.p() + "events:{" + strconv.Itoa(n) + "}"
}

// IngestStreams lists the ingest streams for a partition count (0 or 1
// means the single unpartitioned stream).
func (s Space) IngestStreams(partitions int) []string {
	if partitions <= 1 {
		return []string{s.Events()}
	}
	out := make([]string, partitions)
	for i := range out {
		out[i] = s.EventsPartition(i)
	}
	return out
}

// DLQ is the dead-letter stream: herald:dlq.
func (s Space) DLQ() string { return s.p() + "dlq" }

// Upstream is the stream of client pub frames: herald:upstream.
func (s Space) Upstream() string { return s.p() + "upstream" }

// Rules holds the rate rules document; RulesChannel announces changes.
func (s Space) Rules() string        { return s.p() + "rules" }
func (s Space) RulesChannel() string { return s.p() + "rules:changed" }

// Lease is the ownership lease of one ingest stream by one dispatcher.
func (s Space) Lease(stream string) string { return s.p() + "lease:" + stream }

// Dispatchers is the sorted set of live dispatchers (member: name, score:
// last heartbeat in unix ms).
func (s Space) Dispatchers() string { return s.p() + "dispatchers" }

// Edges is the sorted set of live edges (member: edge id, score: last
// heartbeat in unix ms).
func (s Space) Edges() string { return s.p() + "edges" }

// EdgeControl is the Pub/Sub channel every edge listens to for requests
// from the others: close a session of a device that connected again to
// another edge.
func (s Space) EdgeControl() string { return s.p() + "edges:control" }

// Presence is the hash of a user's online devices (field: device, value:
// edge id and session), tagged like the user's feed.
func (s Space) Presence(tenant, user string) string {
	return s.p() + "presence:{" + tenant + ":u:" + user + "}"
}

// EdgeTenants is the set of tenants whose online counts an edge wrote, so
// that a survivor removes them all after the edge died.
func (s Space) EdgeTenants(edge string) string { return s.p() + "edge:" + edge + ":tenants" }

// EdgeSessions is the set of presence entries an edge owns, so a survivor
// can clean up after an edge that crashed.
func (s Space) EdgeSessions(edge string) string { return s.p() + "edge:" + edge + ":sessions" }

// Acks is the hash of one device's ACK positions (field: feed name, value:
// "<epoch>:<seq>"), written by edges so that another edge can resume it.
func (s Space) Acks(tenant, user, device string) string {
	return s.p() + "acks:{" + tenant + ":u:" + user + "}:" + device
}

// Devices is the sorted set of a user's devices that have ACK positions in
// Redis (member: device, score: its last connect in unix ms), tagged like
// the user's Acks and Presence keys: when it holds more than the edge's cap,
// the least recently connected device's Acks hash is deleted.
func (s Space) Devices(tenant, user string) string {
	return s.p() + "devices:{" + tenant + ":u:" + user + "}"
}

// IngestStream is the ingest stream a tenant's events go to: the single
// stream, or partition fnv1a32(tenant) mod partitions, so that one tenant's
// events stay in one stream, in order. Producers written in other languages
// must use the same hash (documented in docs/contracts.md).
func (s Space) IngestStream(tenant string, partitions int) string {
	if partitions <= 1 {
		return s.Events()
	}
	return s.EventsPartition(int(Partition(tenant, partitions)))
}

// Partition is fnv1a32(tenant) mod partitions.
func Partition(tenant string, partitions int) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(tenant); i++ {
		h ^= uint32(tenant[i])
		h *= 16777619
	}
	return h % uint32(partitions)
}

// ReadState is the hash of a user's inbox read state, shared by all the
// user's devices (field "w:<feed>": the read watermark "<epoch>:<seq>";
// field "s:<feed>": the seqs read above it, ascending, comma-separated),
// tagged like the user's feed.
func (s Space) ReadState(tenant, user string) string {
	return s.p() + "read:{" + tenant + ":u:" + user + "}"
}

// Online is the hash of a tenant's connection counts (field: edge id,
// value: the sessions of the tenant that edge holds), written by each edge
// as its sessions come and go and removed with a dead edge's presence.
func (s Space) Online(tenant string) string { return s.p() + "online:{" + tenant + ":t}" }

// OnlineUsers is the set of a tenant's users with at least one device
// online on any edge, tagged like Online.
func (s Space) OnlineUsers(tenant string) string { return s.p() + "online:{" + tenant + ":t}:users" }

// WaitMark is the key written beside key (in its slot) before a WAIT, so
// that the WAIT covers every write its master made before it
// (internal/replicas). It expires by itself. A key without a hash tag gets
// itself as the tag, so that the mark stays in its slot.
func WaitMark(key string) string {
	if m := key + ":wait"; Slot(m) == Slot(key) { // a key with a hash tag
		return m
	}
	if m := "{" + key + "}:wait"; Slot(m) == Slot(key) {
		return m
	}
	return key + ":wait" // a key with an unpaired brace: no tag fits, the mark is elsewhere
}
