// Command herald-load is Herald's load generator: WebSocket clients in
// worker processes (children of the command, this binary again) against
// a running deployment, a publisher beside them, and reports of latency,
// loss, memory and CPU.
//
// The same scenarios run against Herald or, for comparison, Centrifugo v6
// without or with history (internal/loadtest/centrifugo: the targets of
// target.go); `herald-load compare` runs them one after the other with the
// same clients and reports every figure as a Herald/Centrifugo ratio.
//
// It imports the project's packages as a client and a producer would
// (events, producer, internal/client, wsedge/auth to mint tokens),
// internal/loadtest/centrifugo for the Centrifugo targets, and nothing of
// cmd/herald. Every setting is a flag and a HERALD_LOAD_*
// environment variable; flags win.
package main
