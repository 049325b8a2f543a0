// Package ratelimit owns Herald's rate rules: the rules document SREs edit
// (YAML, version 1), its validation, its enforcement with Sentinel, its
// distribution through Redis (or a local file), the admin HTTP API that
// reads and replaces it, and a circuit breaker for the edge's Redis calls.
//
// The pieces:
//
//   - [ParseRules] reads and validates a document; every problem is a
//     [ValidationError] naming the line, the rule and the field.
//   - [Limiter] enforces the rules in force: [Limiter.Push] returns a
//     [Verdict] (allow, queue or drop), [Limiter.Pub] and [Limiter.Connect]
//     allow or refuse. [Limiter.Apply] swaps the whole rule set atomically;
//     an invalid document never reaches it.
//   - [Store] keeps the document in Redis (a hash with the YAML, a version,
//     who and when) and announces changes on a channel; a [Watcher] applies
//     every change on each edge, and a [FileWatcher] does the same for a
//     single node that reads its rules from a file.
//   - [AdminHandler] serves GET and PUT /admin/rules behind a bearer token.
//   - [Breaker] fails calls fast while a backend keeps failing.
//
// Sentinel keeps its rules, statistics and listeners in package globals, so
// only one Limiter may be open in a process at a time ([New] returns
// [ErrLimiterOpen] otherwise), and tests that use one must not run in
// parallel. Sentinel is initialised once, without files, log directories or
// background goroutines of its own, and logs through the Limiter's (or
// Breaker's) *slog.Logger. While a Limiter or Breaker is open, one
// goroutine keeps a coarse millisecond clock for Sentinel (clock.go); the
// last Close stops it.
//
// Limits are per process: with N edges a limit of L lets up to N×L through
// in all. Rules allowing at least 400 a second are counted in leases
// (batches of tokens taken from Sentinel per user, tenant, or in all), so
// their counts are off by up to about 1% of the limit; lower limits are
// exact (lease.go).
//
// Limiter, Store, Watcher, FileWatcher and Breaker are safe for concurrent
// use. Only cmd/herald imports this package; it adapts [Verdict] to the
// edge's Gate, so ratelimit never imports wsedge.
package ratelimit
