// Package store is the durable local state of one Herald WebSocket edge
// node, kept in one Pebble database per process (HERALD_DATA_DIR).
//
// # What it owns
//
//   - ACK positions: for each (tenant, user, device, feed) the (epoch, seq)
//     the device has acknowledged, the "offline ACK state" of the client
//     protocol. A position only moves forward within an epoch (a lower or
//     equal seq is ignored, not an error); a different epoch replaces it.
//     Positions not yet flushed to Redis are listed in a secondary index on
//     disk (the dirty index), mirrored in memory, for the edge's Redis
//     hand-off (Unflushed, MarkFlushed); memory holds only that backlog.
//   - Connection metadata: live sessions, and recently closed ones with
//     their close code and reason.
//
// The store imports only the standard library, Pebble and the Prometheus
// client; it knows nothing of Redis, WebSockets or other Herald packages.
// Only the edge (wsedge) and cmd/herald import it. The key layout is in
// keys.go and the value encodings in codec.go.
//
// # Durability
//
// ACK positions are written in pebble batches committed with pebble.Sync
// (one fsync per batch, not per key):
//
//   - AckSync returns only once its position is synced: a crash, even
//     SIGKILL or power loss, loses nothing acknowledged through it. Drain and
//     shutdown use it (or Flush) for the last positions.
//   - Ack returns at once. The background writer commits the pending
//     positions every FlushInterval (5ms by default), one batch for all. A
//     crash can lose at most the positions accepted in the last
//     FlushInterval (plus the commit in progress). Losing a position means
//     the device resumes from an older position, so a few notifications are
//     delivered again (delivery is at-least-once and clients drop seqs they
//     have seen); it never means a notification is lost.
//   - Close commits everything pending before it returns.
//   - Unflushed lists only durable positions, so the Redis hand-off never
//     carries a position that a crash could still take back: the in-memory
//     dirty index changes only after a synced commit, and Unflushed waits
//     for a commit in progress. After a crash the dirty index on disk lists
//     again every position written since its last MarkFlushed. (Acks, by
//     design, also shows positions still in memory.)
//   - MarkFlushed and session writes use pebble.NoSync: losing them in a
//     crash only repeats an idempotent Redis hand-off or leaves stale
//     session bookkeeping, and any later synced commit makes them durable
//     too because pebble's write-ahead log is one sequential file.
//
// Pending positions are bounded by Config.MaxPending distinct keys. When the
// bound is reached Ack asks for an immediate commit and blocks until it frees
// room: it never drops a position. If commits keep failing (a broken disk),
// the writer keeps the positions and retries with backoff up to 1s, so Ack
// blocks until a commit succeeds or Close begins, when it returns ErrClosed.
// Repeated acks of one device and feed
// coalesce in memory (the forward-only rule applies), so the bound is on
// distinct (device, feed) pairs, not on acks per second.
//
// # Concurrency
//
// A *Store is safe for concurrent use by many goroutines. Acks reads its own
// writes: it merges positions still in memory over the stored ones. The
// Store owns one goroutine, the ACK writer, started by Open and stopped by
// Close, which waits for it and for calls in progress. Close is safe to call
// more than once; any other call after Close returns ErrClosed. Metrics are
// fields of the Store; Collectors returns them for the caller to register.
package store
