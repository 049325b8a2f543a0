// Command herald-load is Herald's load generator: WebSocket clients in
// worker processes (children of the command, this binary again) against
// a running deployment, a publisher beside them, and reports of latency,
// loss, memory and CPU.
//
// It imports the project's packages as a client and a producer would
// (events, producer, internal/client, wsedge/auth to mint tokens) and
// nothing of cmd/herald. Every setting is a flag and a HERALD_LOAD_*
// environment variable; flags win.
package main
