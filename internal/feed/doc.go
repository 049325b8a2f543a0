// Package feed owns Herald's feeds in Redis: the atomic append that gives
// every notification its exact per-feed seq, and the reads that replay and
// fill gaps.
//
// A feed is a Redis Stream whose entry ids are "<seq>-0", so a range of seqs
// is a range of ids. Next to it a meta hash keeps the last seq, the feed's
// epoch (a random id that changes when history is lost) and, per source
// stream, the last source entry id appended (which makes a redelivered
// source entry a no-op). Every append publishes the entry on the feed's
// channel in the payload format of [Entry.AppendPayload], so edges push it
// at once.
//
// The dispatcher imports feed to append; the edge imports it to read and to
// decode channel payloads. Appender and Reader are safe for concurrent use.
package feed
