// Package pubsub publishes and subscribes the way the Redis deployment
// calls for: plain PUBLISH and SUBSCRIBE on one Redis, sharded SPUBLISH and
// SSUBSCRIBE on Redis Cluster, where a plain PUBLISH is copied to every node
// and so costs each node the whole cluster's traffic.
//
// On a cluster, a Subscriber keeps one connection per master that owns a
// slot of a channel it listens on, and moves a channel to its new owner when
// the owner's connection drops (a killed master, a promoted replica) or
// Redis tells it the slot moved (a MOVED reply, or an unasked sunsubscribe
// when the slot was migrated away). Each such move is confirmed to the
// reader by a fresh subscription message for the channel, so that a reader
// who fills gaps after a resubscription (the edge's hub) also does it here.
//
// Channels must carry the hash tag of the keys their messages are about
// (internal/keys builds them so): a Lua script may SPUBLISH only into its own
// slot.
//
// Imported by wsedge, internal/inbox and internal/feed; imports
// internal/keys and go-redis.
// A Subscriber is safe for concurrent use; Receive has one caller.
package pubsub
