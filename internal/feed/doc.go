// Package feed owns Herald's feeds in Redis: the atomic append that gives
// every notification its exact per-feed seq, and the reads that replay and
// fill gaps.
//
// A feed is a Redis Stream whose entry ids are "<seq>-0", so a range of seqs
// is a range of ids. Next to it a meta hash keeps the last seq, the feed's
// epoch (a random id that changes when history is lost), per source stream
// the last source entry id appended (which makes a redelivered source entry
// a no-op), when its keys expire, as last set, and the idempotency keys of
// about the last IdemTTL with when each was appended and its seq (older
// ones are deleted as appends go on). Every append publishes the entry on
// the feed's channel in the payload format of [Entry.AppendPayload], so
// edges push it at once.
//
// Appends run append.lua, one call for many requests (up to
// AppendConfig.BatchSize), several calls per pipeline. On a *redis.Client
// a call may mix feeds; on any other client (Cluster, Ring) a call holds one
// feed's requests, whose keys share its hash tag. A feed's TTL is set
// again only once at most 7/8 of it is left, so a feed expires between 7/8
// of FeedTTL and FeedTTL after its last append.
//
// The dispatcher imports feed to append; the edge imports it to read and to
// decode channel payloads. Appender and Reader are safe for concurrent use.
package feed
