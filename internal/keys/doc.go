// Package keys spells every Redis key and channel Herald uses, in one place.
//
// Keys that one Lua script touches together share a Redis Cluster hash tag:
// everything of a feed carries the tag {<tenant>:<kind>:<name>}, so the
// feed's stream, its meta hash, its idempotency keys and its channel land on
// one slot. Tenant ids, user ids and topic names cannot contain ':', '{' or
// '}' (see package events), so tags never collide.
//
// Any Herald package may import keys; it imports only the standard library.
package keys
