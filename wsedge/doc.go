// Package wsedge is Herald's WebSocket edge: it authenticates clients,
// keeps their multi-device sessions, pushes each feed's notifications in
// order, takes cumulative ACKs and replays what a device missed.
//
// Layout of one edge process:
//
//   - [Edge.ServeHTTP] accepts /ws, checks the token (package auth), the
//     per-address connect rate and the per-user session cap, and starts one
//     reader goroutine per session; the handler then returns.
//   - A shared pool of writer goroutines drains the sessions' bounded send
//     queues, so a session costs one goroutine, not two. A session whose
//     queue overflows is closed with 4008; it resumes from its ACK position.
//   - The hub holds one Redis Pub/Sub connection. It subscribes to the
//     channel of every feed a local session needs (reference-counted), keeps
//     a short ring of each feed's recent entries, notices gaps by seq and
//     fetches the missing range from the feed before it pushes anything newer.
//     After a reconnect it fills every feed from its last seen seq.
//   - Each session keeps, per feed, the last seq it was given. A session that
//     is behind the ring (new, resuming, or replaying) is caught up from the
//     feed stream by a catch-up job, which then joins the live ring under the
//     feed's lock, so the switch from replay to live has no gap and no
//     duplicate.
//   - A connect costs one Redis round trip after the feeds are followed: it
//     reads the device's positions, replaces its presence entry and writes
//     a new device's first positions (HSETNX). When the old presence entry
//     names a session on another edge, a request on the edges' control
//     channel has that edge close it (1000, replaced).
//   - Presence: each session has an entry in its user's presence hash and
//     a record of it in this edge's set; the user is in the tenant's
//     online-users set while any device is online. Ended sessions are
//     removed in batches (the reaper), a dead edge's by the others after
//     its heartbeats stop, and a bounded repair (Config.OnlineRepairInterval)
//     corrects whatever a failure left; see online.go.
//   - ACKs go to the Pebble store (package store) at once and to Redis in
//     batches (Config.AckFlushInterval), so another edge can resume the
//     device.
//   - A session speaks protocol 1 (JSON text frames) or, when its client
//     offers herald.v2, protocol 2 (MessagePack binary frames, codec in
//     internal/proto2); a feed entry's frame is encoded once per protocol.
//     permessage-deflate is negotiated by coder/websocket, which also
//     inflates client frames; the edge's own frame writer deflates (pooled
//     deflaters, no state per session unless context takeover is on).
//
// wsedge imports events, store, internal/feed, internal/keys and
// internal/proto2; it never
// imports producer or dispatcher. An Edge is safe for concurrent use.
package wsedge
