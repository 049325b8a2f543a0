package wsedge

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/store"
	"github.com/heraldrt/herald/wsedge/auth"
)

// Verifier checks a client's token; *auth.Verifier is the real one.
type Verifier interface {
	Verify(token string) (auth.Claims, error)
}

// Config configures an Edge. Zero values are the documented defaults.
type Config struct {
	Space    keys.Space
	EdgeID   string       // unique per process; "" means hostname-pid
	Verifier Verifier     // required
	Store    *store.Store // required: ACK positions and session metadata
	Logger   *slog.Logger // nil discards

	OriginPatterns   []string      // extra allowed browser origins (host globs); the request host is always allowed
	ConnectRatePerIP float64       // new connections per second per client address; 0 means 50, <0 turns it off
	MaxConnsPerUser  int           // live sessions per user on this edge; 0 means 16
	SendQueue        int           // frames queued per session before 4008; 0 means 1024
	WriteTimeout     time.Duration // longest write of a batch of frames (at least half of it is given); 0 means 10s
	Heartbeat        time.Duration // server ping interval, told to clients; 0 means 25s
	IdleTimeout      time.Duration // no frame or pong from the client; 0 means 3 heartbeats
	ReadLimit        int64         // largest client frame; 0 means 80 KiB (a 64 KiB pub plus framing)
	TokenLeeway      time.Duration // clock skew allowed past exp, as the Verifier allows at connect; 0 means 30s
	Writers          int           // writer goroutines; 0 means 32
	ReplayBatch      int64         // entries per feed read while catching up; 0 means 256
	RingSize         int           // recent entries kept per feed; 0 means 128
	AckFlushInterval time.Duration // ACK positions to Redis, each copy spread over half of it; 0 means 5s
	PresenceTTL      time.Duration // an edge silent this long is dead; 0 means 30s
	// OnlineRepairInterval is how often the online-users repair takes its
	// bounded step (online.go); 0 means 5s.
	OnlineRepairInterval time.Duration
	SetupTimeout         time.Duration // longest session set-up (Redis, store) before 1013; 0 means 3s
	MaxSetups            int           // session set-ups running at once, the rest wait their turn; 0 means 64
	SetupQueueWait       time.Duration // longest wait for a turn before 1013; 0 means 30s
	// HandshakeTimeout and MaxHandshakeBytes bound an upgrade request read
	// by Listener's connections: the time to send its request line and
	// headers (0 means 10s) and their size (0 means 16 KiB; 431 past it).
	HandshakeTimeout  time.Duration
	MaxHandshakeBytes int
	MaxConnsPerIP     int           // live sessions from one client address; 0 means 1000, <0 turns it off
	ClosedRetention   time.Duration // closed-session records kept in the store; 0 means 24h

	// TrustedProxies are the load balancers whose X-Forwarded-For header,
	// or PROXY protocol header (v1 or v2), names the client's address for
	// the per-address limits and the audit log. Empty: the TCP peer's
	// address is the client's.
	TrustedProxies []netip.Prefix

	// Breaker, when set, wraps the edge's Redis calls (not the Pub/Sub
	// stream) so that a failing or slow Redis is not hammered: while it is
	// open, calls fail at once, sessions stay up, ACK positions wait in the
	// store, and catch-ups retry. nil calls Redis directly.
	Breaker Breaker

	// Gate, when set, decides whether a notification may be pushed now
	// (rate rules). nil pushes everything.
	Gate Gate

	// Client limits.
	// What one client may cost the edge (docs/security.md). Each rate
	// is a token bucket per session, full at connect; a session past one
	// gets an error frame rate_limited and is closed with 4029.
	ClientFrameRate   int           // client frames per second per session; 0 means 200, <0 turns it off
	ClientFrameBurst  int           // client frames a session may send at once; 0 means 2000
	ClientByteRate    int           // client frame bytes per second per session; 0 means 256 KiB, <0 turns it off
	ClientByteBurst   int           // client frame bytes at once; 0 means 1 MiB, and never less than ReadLimit
	PubRate           int           // pub frames per second per session, before any Gate rule; 0 means 10, <0 turns it off
	PubBurst          int           // pub frames at once; 0 means 20
	PubByteRate       int           // pub frame bytes per second per session; 0 means 64 KiB, <0 turns it off
	PubByteBurst      int           // pub frame bytes at once; 0 means 256 KiB, and never less than ReadLimit
	UpstreamMaxLen    int64         // entries the upstream stream keeps (MAXLEN ~ at each pub); 0 means 100,000
	UpstreamMaxAge    time.Duration // older upstream entries are trimmed (MINID ~ at each pub); 0 means 24h
	MaxSubscriptions  int           // topic subscriptions per session; 0 means 64
	MaxDevicesPerUser int           // devices per user whose ACK positions Redis keeps, the least recently connected evicted; 0 means 32

	// Compression: permessage-deflate (RFC 7692), for either protocol,
	// with every client that offers it (contracts section 7).
	NoCompression        bool // never negotiate permessage-deflate
	CompressionThreshold int  // frames shorter than this go uncompressed; 0 means 512, <0 means every frame is deflated
	// CompressionContextTakeover lets a session's deflated frames refer
	// to the ones before it (the server keeps the last 512 bytes it deflated
	// for the session, from its first deflated frame on): much smaller
	// frames for a stream of similar notifications, for that memory per
	// session. Off: each frame is deflated on its own and a session holds
	// no compression state (server_no_context_takeover).
	CompressionContextTakeover bool
}

func (c *Config) fill() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ConnectRatePerIP == 0 {
		c.ConnectRatePerIP = 50
	}
	if c.MaxConnsPerUser <= 0 {
		c.MaxConnsPerUser = 16
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 1024
	}
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.Heartbeat, 25*time.Second)
	def(&c.IdleTimeout, 3*c.Heartbeat)
	if c.ReadLimit <= 0 {
		c.ReadLimit = 80 << 10
	}
	c.fillClientLimits() // after ReadLimit: bursts are at least one frame
	if c.Writers <= 0 {
		c.Writers = 32
	}
	if c.ReplayBatch <= 0 {
		c.ReplayBatch = 256
	}
	if c.RingSize <= 0 {
		c.RingSize = 128
	}
	def(&c.AckFlushInterval, 5*time.Second)
	def(&c.TokenLeeway, 30*time.Second)
	def(&c.PresenceTTL, 30*time.Second)
	def(&c.OnlineRepairInterval, 5*time.Second)
	def(&c.SetupTimeout, 3*time.Second)
	def(&c.SetupQueueWait, 30*time.Second)
	def(&c.HandshakeTimeout, 10*time.Second)
	if c.MaxHandshakeBytes <= 0 {
		c.MaxHandshakeBytes = 16 << 10
	}
	if c.MaxSetups <= 0 {
		c.MaxSetups = 64
	}
	def(&c.ClosedRetention, 24*time.Hour)
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = 1000
	}
	switch {
	case c.CompressionThreshold == 0:
		c.CompressionThreshold = defaultCompressionThreshold
	case c.CompressionThreshold < 0:
		c.CompressionThreshold = 1
	}
}

// Breaker is the seam for a circuit breaker (ratelimit.Breaker).
type Breaker interface {
	Do(ctx context.Context, name string, fn func(context.Context) error) error
}

// Gate is the seam for rate rules (package ratelimit, adapted in
// cmd/herald). Every method must be cheap and must not block.
type Gate interface {
	// AllowPush decides whether a notification may be pushed now.
	AllowPush(tenant, user, typ string) Decision
	// AllowPub decides whether a client's pub frame is accepted.
	AllowPub(tenant, user, typ string) bool
	// AllowConnect decides whether a tenant may open another connection.
	AllowConnect(tenant string) bool
}

// Decision is a Gate's verdict on one push.
type Decision struct {
	Allow bool
	// When !Allow: Drop skips the notification (it stays in the feed for the
	// inbox and the device's position moves past it); otherwise it is held
	// and tried again after Retry, for at most MaxWait in all, after which
	// it is skipped like a drop.
	Drop    bool
	Retry   time.Duration
	MaxWait time.Duration
}
