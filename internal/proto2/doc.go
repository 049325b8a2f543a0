// Package proto2 is the codec of WebSocket protocol 2 (docs/contracts.md
// section 7): every frame of protocol 1, in both directions, as one
// MessagePack map with protocol 1's field names in a binary WebSocket
// frame. A notification's data (and a pub frame's) is a MessagePack bin
// holding the producer's JSON bytes unchanged.
//
// The server's few fixed frames are written by hand-written encoders
// (encode.go: no reflection, about ten times faster than a generic
// encoder, see BenchmarkEncodeNotification); frames are read with
// github.com/vmihailenco/msgpack/v5 (decode.go), behind the checks of
// events.ClientFrame.Check, with a fast path for the two frames clients
// send most (ping, ack). The decoders are fuzzed (fuzz_test.go).
//
// The edge (wsedge), the Go test client (internal/client), the end-to-end
// tests and herald-load import it; it imports only events and the
// MessagePack library (events itself stays standard-library only). Every
// function is safe for concurrent use.
package proto2
