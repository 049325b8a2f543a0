// Package producer is the Go library services use to publish domain events
// to Herald.
//
// Publishing is one XADD of an ingest stream entry (the contract in
// docs/contracts.md, section 1; docs/producers.md shows the same from any
// language). A [Producer] builds that entry from a typed [events.Event],
// validates it exactly as the dispatcher will (events.Limits), and only then
// sends it:
//
//	p := producer.New(rdb, producer.WithTenant("acme"))
//	id, err := p.Publish(ctx, &events.OrderPlacedEvent{OrderID: "o-1", BuyerID: "42"},
//		producer.IdempotencyKey("order-o-1-placed"))
//
// An invalid event is refused before anything is sent, with an error that
// wraps the *events.ValidationError naming the field (errors.As works). What
// is checked is the exact list of fields that XADD will send, with the
// dispatcher's own parser (events.Limits.Parse, as in Limits.Validate); the
// data of a typed event, written by encoding/json, is only checked for size
// and shape instead of being parsed a second time.
// [Producer.PublishEnvelope] sends raw entries, for event types without a
// Go type, and [Producer.PublishBatch] sends many in one pipelined round
// trip after validating all of them: a batch with one bad message sends
// nothing.
//
// # Streams and retention
//
// Entries go to herald:events, or with [WithPartitions] to the partition
// fnv1a32(tenant) mod N, so one tenant's events stay in one stream, in
// order. Every XADD trims the stream approximately: to about
// [DefaultMaxLen] entries unless [WithMaxLen] or [WithMinIDAge] says
// otherwise.
//
// # Retries and idempotency
//
// The Producer never retries by itself. The go-redis client you pass does:
// with its default MaxRetries (3), a command whose reply was lost to a
// timeout or a broken connection is sent again, and for XADD that can store
// the entry twice, under two stream ids (a pipelined batch is replayed
// whole). The Producer cannot tell such a retry from a new event, so it
// does not add retries of its own on top, and it does not reconfigure your
// client.
//
// What makes retries safe is the idempotency key ([IdempotencyKey], the
// entry's "id" field). The dispatcher keeps each (tenant, key) for its dedup
// window (24 hours by default) and delivers a second entry with the same
// key no more than once, whoever sent it twice: go-redis, your own retry
// loop after an error whose outcome is unknown, or your service
// redelivering after a crash. So:
//
//   - Give every event that must not be delivered twice a key derived from
//     the domain ("order-o-1-placed"), not a random one per attempt. Then
//     retrying Publish (or a whole PublishBatch) after any error is safe.
//   - Events without a key are delivered at least once: a retried XADD may
//     show up twice. If a duplicate is worse than a lost event, build the
//     producer's client with MaxRetries: -1 and treat a publish error as
//     "unknown outcome".
//
// # Concurrency
//
// A Producer is safe for concurrent use and holds no resources of its own:
// closing the Redis client is the caller's job. Package producer imports
// events and internal/keys only (besides go-redis); it must not import the
// dispatcher or the edge, which it talks to only through Redis.
package producer
