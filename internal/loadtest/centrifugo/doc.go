// Package centrifugo runs Centrifugo v6 (Version, v6.9.1) beside Herald, so
// that the load tool can drive the same clients against both in one run and
// report every figure as a Herald/Centrifugo ratio. It owns the Centrifugo
// side: installing the binary, its configuration, starting and stopping the
// process, connection tokens, the client frames of the JSON protocol, and a
// client of the server HTTP API. It implements no WebSocket client: the load
// tool's clients dial ConnectURL with coder/websocket and use the frames
// below.
//
// Who may import it: cmd/herald-load and tests. Production packages must
// not; Centrifugo is not a dependency of Herald's go.mod, only a binary
// that Install builds into a gitignored directory (bin/). Server, API and
// the package functions are safe for concurrent use; a Frame or a
// Positions belongs to one client's reader.
//
// # Install and run
//
//	bin, err := centrifugo.Install(ctx, "bin")        // go install ...centrifugo/v6@v6.9.1, once
//	srv, err := centrifugo.Start(ctx, bin, redisAddr, centrifugo.Config{History: true})
//	defer srv.Stop()                                   // SIGTERM, then SIGKILL; ErrKilled / ErrLeaked
//	pid := srv.PID()                                   // /proc/<pid>/stat and status: CPU time, RSS
//
// Start writes the configuration file, has `centrifugo checkconfig --strict`
// refuse any key v6 does not know, starts the process in its own process
// group on a free port of 127.0.0.1 (another one if that is taken), and
// returns when the server API's info method lists the node by the random
// name it was given, which proves the process that answers is this one and
// that the API key and Redis work.
//
// # Configuration
//
// Start generates this file (JSON, Centrifugo v6 key names) for
// Config{History: true}; secrets, port, node name and Redis address are
// filled in per run:
//
//	{
//	  "http_server": {
//	    "address": "127.0.0.1",
//	    "port": 8000
//	  },
//	  "log": {
//	    "level": "info"
//	  },
//	  "engine": {
//	    "type": "redis",
//	    "redis": {
//	      "address": [
//	        "redis://127.0.0.1:6379"
//	      ],
//	      "prefix": "centrifugo"
//	    }
//	  },
//	  "client": {
//	    "token": {
//	      "hmac_secret_key": "SECRET"
//	    },
//	    "subscribe_to_user_personal_channel": {
//	      "enabled": true,
//	      "personal_channel_namespace": "personal"
//	    },
//	    "ping_interval": "25s",
//	    "pong_timeout": "8s"
//	  },
//	  "channel": {
//	    "namespaces": [
//	      {
//	        "name": "personal",
//	        "presence": true,
//	        "history_size": 20,
//	        "history_ttl": "300s",
//	        "force_recovery": true
//	      }
//	    ]
//	  },
//	  "http_api": {
//	    "key": "API_KEY"
//	  },
//	  "health": {
//	    "enabled": true
//	  },
//	  "usage_stats": {
//	    "disabled": true
//	  },
//	  "node": {
//	    "name": "herald-cf-NODE"
//	  },
//	  "shutdown": {
//	    "timeout": "5s"
//	  }
//	}
//
// The history-off variant, Config{}, is the same file with the namespace
// reduced to
//
//	{
//	  "name": "personal",
//	  "presence": true
//	}
//
// Why this is Herald's setup, feature for feature:
//
//   - Redis engine: engine.type redis makes Redis both the broker (PUB/SUB
//     fan-out between nodes, history) and the presence manager, as Herald's
//     stages share one Redis. Without history a publication is one Redis
//     PUBLISH; with it one Lua script per publication bumps the channel's
//     offset in a meta hash, appends to the channel's Redis stream (XADD
//     with MAXLEN, then EXPIRE) and publishes: the shape of Herald's feed
//     append (append.lua).
//   - Personal channels, subscribed on the server side: with
//     client.subscribe_to_user_personal_channel every connection of user u
//     is subscribed to "personal:#u" (PersonalChannel) at connect, as
//     Herald's edge follows a user's feed without the client asking. The
//     token only names the user (sub); a client connects and reads.
//   - History on = per-user Redis streams with offset and epoch, like
//     Herald's feeds with seq and epoch; force_recovery lets a reconnecting
//     client resume from its position, as Herald's devices resume from their
//     ACK position. Herald keeps 1,000 entries for 7 days; the personal
//     namespace keeps HistorySize (20) for HistoryTTL (300s), enough for a
//     load run's reconnects, and the per-publication Redis work does not
//     depend on either.
//   - Presence in Redis per connection, as Herald's edge keeps a presence
//     hash per user (Centrifugo also refreshes it every 27s per connection;
//     Config.NoPresence turns it off).
//   - JSON protocol over WebSocket, both sides; server pings every 25s,
//     Herald's default heartbeat.
//   - One node on loopback, usage statistics off, logs to a file in the
//     server's directory (LogFile).
//
// Two servers on one Redis with the same RedisPrefix form one Centrifugo
// cluster; give side-by-side variants different prefixes or Redis servers.
//
// # Client protocol (JSON, over ws://127.0.0.1:port/connection/websocket)
//
// After the WebSocket opens, a client sends one text message, the connect
// command (ConnectCommand), with a token from Server.Token or SignToken
// (HS256, claims sub and exp):
//
//	{"id":1,"connect":{"token":"<jwt>"}}
//
// The connect reply carries the same id and the personal subscription:
//
//	{"id":1,"connect":{"client":"<uuid>","version":"6.9.1 OSS","expires":true,"ttl":3600,"subs":{"personal:#u1":{"recoverable":true,"epoch":"OmrtARns","positioned":true}},"ping":25,"pong":true}}
//
// (without history the subscription is just "personal:#u1":{}; fields at
// their zero value, such as offset 0, are left out)
//
// A refused connect is an error reply with that id, then a close:
//
//	{"id":1,"error":{"code":109,"message":"token expired"}}
//
// Publications are pushes; one WebSocket message may carry several replies
// separated by '\n' (Frame.Parse splits them). Data is the published JSON
// value as it is; offset is absent without history:
//
//	{"push":{"channel":"personal:#u1","pub":{"data":{"t":1712345678901234567,"seq":42},"offset":7}}}
//
// Pings are the reply "{}"; the client answers each with exactly one "{}"
// (Pong) when the connect reply said "pong":true. A missing pong closes the
// connection with 3012 within PongTimeout; an unasked-for one with 3503.
// Centrifugo ends connections with WebSocket close codes: 3000-3499 and
// 4000-4499 mean reconnect (3001 shutdown), 3500-3999 and 4500-4999 do not
// (3500 invalid token) (ShouldReconnect).
//
// To resume after a reconnect (history on), a client keeps a Positions,
// updated from every Frame, and names its channels in the connect command:
//
//	{"id":1,"connect":{"token":"<jwt>","subs":{"personal:#u1":{"recover":true,"offset":1,"epoch":"OmrtARns"}}}}
//
// The server-side subscription then recovers from history: the missed
// publications come inside the connect reply (Frame.Publications, with
// Recovered set), and "recovered":true says none is missing (false: more
// than HistorySize missed, history expired, or the epoch changed). The
// reply's offset there is the one the client sent, not the stream's top:
//
//	{"id":1,"connect":{...,"subs":{"personal:#u1":{"recoverable":true,"epoch":"OmrtARns","publications":[{"data":{"k":"a","n":2},"offset":2},{"data":{"k":"a","n":3},"offset":3}],"recovered":true,"offset":1,"positioned":true,"was_recovering":true}},"ping":25,"pong":true}}
//
// The token's exp must fall after the run: the reply's expires and ttl ask
// for a refresh command by then, which this package does not implement.
//
// # Server API
//
// Server.API (or NewAPI) posts to http://127.0.0.1:port/api/<method> with
// X-API-Key over a pool of keep-alive connections: Publish
// ({"channel","data"}), Broadcast ({"channels","data"}, one request for many
// channels) and Batch (/api/batch, {"commands":[{"publish":{...}},
// {"broadcast":{...}}]}). Batching the publications of a short interval
// keeps 10,000 publications a second from costing 10,000 HTTP requests.
// Centrifugo runs a batch's commands one after the other, waiting for Redis
// each time, unless APIConfig.ParallelBatch asks for "parallel": true; on
// this two-core machine a sequential batch managed 6,000-12,000
// publications a second and a parallel one 25,000-75,000 (busy machine,
// rough figures), so use ParallelBatch with at most one publication per
// channel in a batch, or several sequential batches at once. Centrifugo answers API errors in the body with status 200
// ({"error":{"code":102,"message":"unknown channel"}}); they come back as
// *APIError.
package centrifugo
