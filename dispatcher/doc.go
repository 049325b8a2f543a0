// Package dispatcher is Herald's middle stage: it reads published events
// from the ingest streams (herald:events, or herald:events:{0..N-1} with
// partitions), resolves each event's audience into feeds, appends it to
// those feeds with the exact per-feed seq of package feed, and
// acknowledges it. Entries that break the ingest contract, or that failed
// MaxDeliveries times, go to the dead-letter stream (herald:dlq) with the
// reason; [DLQ] lists, shows, replays and purges them.
//
// # One reader per stream
//
// Every dispatcher joins one consumer group ("herald-dispatchers", created
// from id 0 so that nothing published before the first dispatcher started
// is skipped). Within the group, each ingest stream is read by one
// dispatcher at a time, the holder of the stream's lease
// (herald:lease:<stream>, SET NX PX, renewed every LeaseTTL/3, released on
// shutdown). That is what makes a feed's order the publish order and the
// feed's source-id dedup exact: the feed drops an entry whose source id is
// not newer than the last one it took from that stream, which is right
// only if entries arrive in stream order.
//
// A dispatcher holds at most its fair share of leases, ceil(streams / live
// dispatchers), where the live dispatchers are those that heartbeat into
// herald:dispatchers (by Redis's clock) within 3 heartbeats. With one
// stream, one dispatcher works and the others are hot standbys; with N
// partitions the work spreads and moves when dispatchers come and go.
//
// On taking a lease a dispatcher first claims everything pending in the
// group (XAUTOCLAIM from 0 with no minimum idle time) and handles it in id
// order, then its own pending entries, and only then new ones. A holder
// frozen longer than LeaseTTL (a VM pause, a SIGSTOP) notices by its
// monotonic clock before its next read and stops. New entries are also read
// in a MULTI together with a GET of the lease, so a read caught by a freeze
// after that check knows that the lease was no longer its own when it took
// the entries: it leaves them alone, and the new holder delivers them with
// its periodic claim, as late entries appended without the source-id check:
// out of order, within ClaimIdle+ClaimInterval, never lost. What the old holder was working on
// when it froze, the new holder claimed at takeover and handles too: both
// append in stream order, the feed keeps the first of each, and nothing is
// lost or duplicated; the cost is repeated work and, rarely, a duplicate
// dead letter. On Redis Cluster the MULTI needs the stream and its lease in
// one slot, which partitioned streams are ({N} hash tag): New refuses a
// cluster client without partitions (ErrCrossSlot).
//
// # Batches
//
// Each batch (up to BatchSize entries) costs two round trips: the read,
// which carries the previous batch's XACK in its MULTI, and the feed
// appends (two pipelines sent at once, split by feed, so that the client
// encodes one while Redis runs the other; each feed's appends stay in
// order). A batch with dead letters, claimed or re-read entries, or
// replica acks is acknowledged in a round trip of its own instead (a
// single XACK of every id), and its dead letters are written in one before
// it, so that an entry whose dead letter failed stays pending. A failed
// append is retried with capped exponential backoff and never skipped:
// transient failures (network, LOADING, READONLY, OOM...) retry the batch
// as it is; others (a script or WRONGTYPE error caused by the data) re-read
// the pending entries one at a time, which counts deliveries, so the one
// entry at fault is dead-lettered once delivered more than MaxDeliveries
// times and the ones behind it flow.
//
// Every ClaimInterval the holder also claims entries idle longer than
// ClaimIdle in other consumers (a safety net) and deletes consumers with
// nothing pending that were idle longer than ConsumerIdleTimeout.
//
// Run returns after the batch in flight of every stream was appended and
// acknowledged and the leases released.
//
// Only cmd/herald imports this package. A Dispatcher and a DLQ are safe
// for concurrent use.
package dispatcher
