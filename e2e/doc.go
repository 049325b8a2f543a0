// Package e2e is Herald's end-to-end reliability suite. It holds no
// production code: every file but this one is a _test.go file.
//
// TestMain builds the herald binary once (without -race, to keep the time)
// and every test runs real processes from it: a redis-server of its own
// (internal/redistest, AOF with appendfsync always), two dispatchers and two
// edges, each in its own process group, started with exec and read from
// their "ready" log line for their ports. Hundreds of real WebSocket clients
// (goroutines of the test process) connect to both edges, reconnect with
// jittered backoff like an SDK, move to the other edge when theirs dies,
// ack what they get and record every notification. A paced publisher sends
// at least 500 events/s through package producer while a scenario injects
// a fault (SIGKILL of a dispatcher or an edge, Redis killed and restarted
// from its AOF or frozen with SIGSTOP, a client that stops reading, random
// disconnects, an edge drained with SIGTERM) or bad input (malformed stream
// entries, bad client frames, bad tokens, a connection flood).
//
// The accounting checker (ledger_test.go) then proves the delivery contract
// of docs/contracts.md section 3: every event reaches every intended device
// exactly once after client-side dedup by (feed, epoch, seq), in feed
// order, and nothing reaches a device it was not meant for. Each scenario
// logs a one-line summary (published, clients, lost, dup-on-wire,
// out-of-order, quiescence time); docs/reliability.md has the table.
//
// TestMain fails the run if a child process or a goroutine outlives the
// tests. Nothing here is safe for concurrent use across tests: scenarios
// run one after another (no t.Parallel), each on its own Redis.
package e2e
