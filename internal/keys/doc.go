// Package keys spells every Redis key and channel Herald uses, in one place:
// no other package builds a key name.
//
// Keys that one Lua script, MULTI or multi-key command touches together
// share a Redis Cluster hash tag, by design:
//
//   - a feed, {<tenant>:<kind>:<name>}: its stream, its meta hash (seq,
//     epoch, source positions, idempotency keys) and its channel;
//   - a user, {<tenant>:u:<user>} (the user feed's tag): presence, the
//     devices' ACK positions, the device set, the inbox read state;
//   - a tenant, {<tenant>:t} (the tenant feed's tag): the online counts;
//   - an ingest partition, {<n>}: the partition's stream and its lease.
//
// Keys of different tags are only ever touched by separate commands (a
// pipeline may mix them; a script or MULTI never does). The edge's set of
// its presence entries and the registries of live edges and dispatchers
// are single keys of their own. The test TestEdgeOnRedisCluster
// (wsedge) runs the edge's scripts on a three-master cluster.
//
// Tenant ids, user ids and topic names cannot contain ':', '{' or '}' (see
// package events), so tags never collide.
//
// Any Herald package may import keys; it imports only the standard library.
package keys
