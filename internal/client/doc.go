// Package client is a Go client of Herald's WebSocket protocol 1 that
// behaves like a real SDK: it reconnects with jittered backoff after every
// close code that says "reconnect", resumes each feed from the positions it
// has seen, drops duplicates by (feed, epoch, seq), and acks what it got in
// cumulative batches.
//
// herald listen, herald bench and the end-to-end tests use it. It imports
// events and coder/websocket only. A Client is used by one goroutine (Run);
// Stats is safe to call from others.
package client
