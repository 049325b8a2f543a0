package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/store"
	"github.com/heraldrt/herald/wsedge"
	"github.com/heraldrt/herald/wsedge/auth"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

func init() {
	register(command{name: "edge", summary: "serve WebSocket clients: authenticate, push feeds in order, take ACKs, replay", run: runEdge})
}

const edgeHelp = `Serves /ws (protocol 1), /healthz and /readyz on --listen, and /metrics,
/debug/pprof/ and the admin API on --admin-listen. Keeps ACK positions and
session metadata in a Pebble store in --data-dir (one edge per directory).
SIGTERM drains: new connections are refused, sessions are closed with 1012
in waves, ACK positions are flushed, then it exits.`

// edgeFlags are the settings of the edge (and of dev, which adds a dispatcher).
type edgeFlags struct {
	redis     redisOptions
	log       logOptions
	admin     string
	listen    string
	dataDir   string
	secret    string
	keyFiles  string
	jwksURL   string
	issuer    string
	audience  string
	origins   string
	compress  bool
	connRate  int
	cfg       wsedge.Config
	drainTime time.Duration
	rules     ruleFlags
	console   *devConsole   // herald dev's console listener; nil: none
	srv       serverOptions // admin token and pprof access, HTTP limits
	gcPercent int
	storeSync time.Duration
	leeway    time.Duration
	// trustedProxies: HERALD_TRUSTED_PROXIES, parsed by parsePrefixes.
	trustedProxies string
	upstreamMaxLen int
	// The HTTP API (internal/httpapi) on the public listener.
	apiKeys    string // HERALD_API_KEYS: the service keys file
	partitions int    // ingest partitions, as the dispatchers have them
	maxData    int
}

func (f *flags) edge(o *edgeFlags) {
	f.String(&o.listen, "listen", ":8080", "public listener: /ws, the HTTP API /v1/, /healthz, /readyz")
	f.String(&o.apiKeys, "api-keys", "", "file of service keys for the HTTP API's publish, presence and online endpoints, one per line: <name> <key> <tenant or *>; without it they answer 404; SIGHUP re-reads it")
	f.Int(&o.partitions, "partitions", 0, "ingest partitions (0 or 1: the single stream); must match the dispatchers (the HTTP API publishes as the producer does)")
	f.Int(&o.maxData, "max-data", events.DefaultMaxData, "largest data field the HTTP API's publish accepts, in bytes (as the dispatchers' --max-data)")
	f.String(&o.dataDir, "data-dir", "./herald-data", "Pebble store directory (ACK positions, sessions); one edge per directory")
	f.StringVar(&o.secret, "jwt-hs256-secret", "", "HS256 secret for client tokens, at least 32 bytes (env "+secretEnv+")")
	f.String(&o.keyFiles, "jwt-keys", "", "comma-separated PEM or JWKS files with RS256/ES256/EdDSA public keys")
	f.String(&o.jwksURL, "jwt-jwks-url", "", "https URL of a JWKS with RS256/ES256/EdDSA public keys, fetched at start (which fails if it cannot), again on its Cache-Control max-age (1m..24h, 15m without) and, at most every 10s, for a token with an unknown kid; combined with --jwt-keys; SIGHUP re-reads both")
	f.String(&o.issuer, "jwt-issuer", "", "required iss claim (empty: not checked)")
	f.String(&o.audience, "jwt-audience", "", "required aud claim (empty: not checked)")
	f.Duration(&o.leeway, "jwt-leeway", 30*time.Second, "clock skew allowed on exp and nbf, at connect and for the session's expiry")
	f.String(&o.origins, "origins", "", "comma-separated extra browser origins allowed (host globs); the request host is always allowed")
	f.Bool(&o.compress, "compression", true, "negotiate permessage-deflate (RFC 7692) with clients that offer it, for either protocol")
	f.Int(&o.cfg.CompressionThreshold, "compression-threshold", 512, "frames shorter than this many bytes go uncompressed (0: 512; negative: every frame is deflated)")
	f.Bool(&o.cfg.CompressionContextTakeover, "compression-context-takeover", false, "let deflated frames refer to the frames before them (keeps the last 512 bytes deflated per session): smaller frames for that memory; off, a session holds no compression state")
	f.Int(&o.connRate, "connect-rate-per-ip", 50, "new WebSocket connections per second from one address (bursts to twice that); 0 turns it off")
	f.Int(&o.cfg.MaxConnsPerUser, "max-conns-per-user", 16, "live sessions per user on this edge; more are closed with 4029")
	f.Int(&o.cfg.MaxConnsPerIP, "max-conns-per-ip", 1000, "live sessions from one client address on this edge; more are closed with 4029; 0 turns it off")
	f.String(&o.trustedProxies, "trusted-proxies", "", "comma-separated CIDRs of load balancers whose X-Forwarded-For or PROXY protocol header names the client address")
	f.Duration(&o.cfg.SetupTimeout, "setup-timeout", 3*time.Second, "longest session set-up (Redis, store); past it the client gets 1013 and reconnects later")
	f.Int(&o.cfg.MaxSetups, "max-setups", 64, "session set-ups running at once; in a reconnect storm the others wait their turn")
	f.Duration(&o.cfg.SetupQueueWait, "setup-queue-wait", 30*time.Second, "longest wait for a set-up turn; past it the client gets 1013")
	f.Duration(&o.cfg.ClosedRetention, "closed-retention", 24*time.Hour, "how long closed-session records stay in the store before they are pruned")
	// What one client may cost (docs/security.md); past a rate: error frame, then 4029.
	f.Int(&o.cfg.ClientFrameRate, "client-frame-rate", 200, "client frames per second per session (token bucket); negative turns it off")
	f.Int(&o.cfg.ClientFrameBurst, "client-frame-burst", 2000, "client frames a session may send at once")
	f.Int(&o.cfg.ClientByteRate, "client-byte-rate", 256<<10, "client frame bytes per second per session; negative turns it off")
	f.Int(&o.cfg.ClientByteBurst, "client-byte-burst", 1<<20, "client frame bytes a session may send at once (never less than the 80 KiB frame limit)")
	f.Int(&o.cfg.PubRate, "pub-rate", 10, "pub frames per second per session, before the rate rules; negative turns it off")
	f.Int(&o.cfg.PubBurst, "pub-burst", 20, "pub frames a session may send at once")
	f.Int(&o.cfg.PubByteRate, "pub-byte-rate", 64<<10, "pub frame bytes per second per session; negative turns it off")
	f.Int(&o.cfg.PubByteBurst, "pub-byte-burst", 256<<10, "pub frame bytes a session may send at once")
	f.Int(&o.upstreamMaxLen, "upstream-max-len", 100_000, "entries the upstream stream keeps (approximately)")
	f.Duration(&o.cfg.UpstreamMaxAge, "upstream-max-age", 24*time.Hour, "upstream entries older than this are trimmed")
	f.Int(&o.cfg.MaxSubscriptions, "max-subscriptions", 64, "topic subscriptions per session")
	f.Int(&o.cfg.MaxDevicesPerUser, "max-devices-per-user", 32, "devices per user whose ACK positions are kept; the least recently connected are evicted")
	f.Int(&o.cfg.SendQueue, "send-queue", 1024, "frames queued per session before it is closed with 4008 (it resumes, nothing is lost)")
	f.Duration(&o.cfg.Heartbeat, "heartbeat", 25*time.Second, "server ping interval, told to clients in welcome")
	f.Duration(&o.cfg.WriteTimeout, "write-timeout", 10*time.Second, "longest write of one batch of frames to a client before 4008")
	f.Duration(&o.cfg.PresenceTTL, "presence-ttl", 30*time.Second, "an edge that has not heartbeated for this long (it heartbeats every third of it) is dead: the others remove its presence entries and online counts")
	f.Duration(&o.cfg.OnlineRepairInterval, "online-repair-interval", 5*time.Second, "how often the repair of the online-users set takes its bounded step (256 own presence records, 256 tenant users)")
	f.String(&o.cfg.EdgeID, "edge-id", "", "this edge's id in presence (default <hostname>-<pid>)")
	f.Duration(&o.drainTime, "drain-timeout", 30*time.Second, "longest graceful drain on SIGTERM")
	f.Duration(&o.storeSync, "store-sync-interval", 50*time.Millisecond, "how often ACK positions are committed (fsync) to the store; a crash loses at most this much of them, which means a few notifications pushed again, never lost")
	f.Duration(&o.cfg.AckFlushInterval, "ack-flush-interval", 5*time.Second, "how often ACK positions are copied from the store to Redis, where another edge resumes a device from; a device that moves to another edge after this edge dies gets at most this much again (pushed twice, never lost); a drained edge copies them all")
	f.rules(&o.rules)
	f.Int(&o.gcPercent, "gc-percent", 50, "Go GC target percentage (GOGC); an edge holds many small idle sessions, so a lower value trades a little CPU for RSS; the GOGC variable wins")
}

// check refuses durations the edge cannot use. Each must be above 0:
// wsedge.Config and auth.Config read 0 (and the edge read a negative
// value) as "the default", so --jwt-leeway 0 used to mean 30s and
// --online-repair-interval -1s 5s, silently.
func (o *edgeFlags) check() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"jwt-leeway", o.leeway}, {"setup-timeout", o.cfg.SetupTimeout}, {"setup-queue-wait", o.cfg.SetupQueueWait},
		{"closed-retention", o.cfg.ClosedRetention}, {"upstream-max-age", o.cfg.UpstreamMaxAge},
		{"heartbeat", o.cfg.Heartbeat}, {"write-timeout", o.cfg.WriteTimeout}, {"presence-ttl", o.cfg.PresenceTTL},
		{"online-repair-interval", o.cfg.OnlineRepairInterval}, {"drain-timeout", o.drainTime},
		{"store-sync-interval", o.storeSync}, {"ack-flush-interval", o.cfg.AckFlushInterval},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%w: --%s %v must be above 0", errUsage, d.name, d.v)
		}
	}
	return nil
}

func runEdge(ctx context.Context, args []string) error {
	o := new(edgeFlags)
	f := newFlags("edge", edgeHelp)
	f.redis(&o.redis)
	f.logging(&o.log)
	f.admin(&o.admin, &o.srv)
	f.edge(o)
	if err := f.parse(args); err != nil {
		return err
	}
	if err := o.check(); err != nil {
		return err
	}
	log, err := o.log.logger(os.Stderr)
	if err != nil {
		return err
	}
	rdb, err := o.redis.client(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	return serveEdge(ctx, o, rdb, log, nil)
}

// verifier builds the token verifier; with --jwt-jwks-url it runs a
// refresher until Close (watchReload's stop closes it).
func (o *edgeFlags) verifier(log *slog.Logger) (*auth.Verifier, error) {
	if o.secret == "" {
		o.secret = os.Getenv(secretEnv)
	}
	cfg := auth.Config{KeyFiles: splitList(o.keyFiles), JWKSURL: o.jwksURL, Issuer: o.issuer, Audience: o.audience, Leeway: o.leeway,
		Logger: log.With("component", "auth")}
	if o.secret != "" {
		cfg.HS256Secret = []byte(o.secret)
	}
	v, err := auth.New(cfg)
	if errors.Is(err, auth.ErrNoKeys) {
		return nil, fmt.Errorf("%w: no token keys: set %s, --jwt-keys or --jwt-jwks-url", errUsage, secretEnv)
	}
	return v, err
}

// serveEdge runs an edge until ctx ends, then drains it. extra, when set,
// runs beside it (herald dev's dispatcher) and is stopped after the drain.
func serveEdge(ctx context.Context, o *edgeFlags, rdb redis.UniversalClient, log *slog.Logger, extra *component) error {
	ver, err := o.verifier(log)
	if err != nil {
		return err
	}
	hooks := &reloadHooks{}
	stopReload := watchReload(ctx, ver, hooks, log) // SIGHUP; closes ver when serveEdge returns
	defer stopReload()
	setGCPercent(o.gcPercent)
	st, err := store.Open(o.dataDir, store.Config{Logger: log.With("component", "store"), FlushInterval: o.storeSync})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("data directory %s is in use by another edge (one edge per --data-dir)", o.dataDir)
	}
	if err != nil {
		return fmt.Errorf("open data directory %s: %w", o.dataDir, err)
	}
	defer st.Close()
	o.rules.adminToken = o.srv.adminToken
	space := keys.Space{Prefix: o.redis.prefix}
	rules, err := newEdgeRules(rdb, space, o.rules, log)
	if err != nil {
		return err
	}
	defer rules.close()
	o.cfg.NoCompression = !o.compress
	cfg := o.cfg
	cfg.Space, cfg.Verifier, cfg.Store, cfg.Logger = space, ver, st, log
	cfg.Gate = gateAdapter{rules.limiter}
	cfg.TokenLeeway = o.leeway
	if rules.breaker != nil {
		cfg.Breaker = rules.breaker
	}
	cfg.OriginPatterns = splitList(o.origins)
	if cfg.MaxConnsPerIP == 0 {
		cfg.MaxConnsPerIP = -1
	}
	cfg.UpstreamMaxLen = int64(o.upstreamMaxLen)
	if cfg.TrustedProxies, err = parsePrefixes(o.trustedProxies); err != nil {
		return err
	}
	cfg.ConnectRatePerIP = float64(o.connRate)
	if o.connRate == 0 {
		cfg.ConnectRatePerIP = -1
	}
	// the edge reads upgrade requests itself, within the same limits as
	// every HTTP server of the command
	cfg.HandshakeTimeout, cfg.MaxHandshakeBytes = readHeaderTimeout, maxHeaderBytes
	e, err := wsedge.New(rdb, cfg)
	if err != nil {
		return err
	}
	api, apiKeys, err := o.newAPI(rdb, space, ver, rules, log)
	if err != nil {
		return err
	}
	if apiKeys != nil {
		hooks.add(reloadAPIKeys(apiKeys, log))
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	reg := newRegistry()
	reg.MustRegister(e.Collectors()...)
	reg.MustRegister(api.Collectors()...)
	reg.MustRegister(st.Collectors()...)
	reg.MustRegister(rules.collectors()...)
	if extra != nil {
		reg.MustRegister(extra.collectors...)
	}
	adm, err := startAdmin(o.admin, o.srv, reg, func(ctx context.Context) error { return rdb.Ping(ctx).Err() }, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer closeAdmin(adm)
	if adm != nil && rules.admin != nil {
		adm.Mux.Handle("/admin/rules", rules.admin)
	}
	if err := e.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	public := http.NewServeMux()
	public.Handle("/v1/", api)
	public.Handle("/", e)
	srv := o.srv.newHTTPServer(public, log)
	srv.ConnContext = e.ConnContext
	served := make(chan error, 1)
	go func() { served <- srv.Serve(e.Listener(ln, public)) }()
	stopConsole := o.console.serve(e, public, o.srv, log) // herald dev --dev-console
	defer stopConsole()
	stopExtra := extra.start(ctx)
	stopWatch := (&component{run: rules.watch}).start(ctx)
	log.Info("edge ready", "listen", ln.Addr().String(), "admin", adm.Addr(), "edge", e.ID(),
		"data_dir", o.dataDir, "algorithms", strings.Join(ver.Algorithms(), ","),
		"protocols", "herald.v1,herald.v2", "compression", compressionSetting(o.cfg))
	select {
	case <-ctx.Done():
	case err := <-served:
		log.Error("public listener failed", "err", err)
	}
	log.Info("draining", "timeout", o.drainTime)
	dctx, cancel := context.WithTimeout(context.Background(), o.drainTime)
	defer cancel()
	derr := e.Shutdown(dctx)
	srv.Shutdown(dctx)
	stopWatch()
	if err := stopExtra(); err != nil && derr == nil {
		derr = err
	}
	log.Info("stopped", "err", derr)
	return derr
}

func closeAdmin(a *adminServer) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.Close(ctx)
}

// component is something that runs beside the edge in one process.
type component struct {
	run        func(ctx context.Context) error
	collectors []prometheus.Collector
}

// start runs the component until the returned stop is called.
func (c *component) start(ctx context.Context) (stop func() error) {
	if c == nil {
		return func() error { return nil }
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- c.run(cctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

// parsePrefixes parses a comma-separated list of CIDRs (a bare address is
// a one-address prefix).
func parsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, item := range splitList(list) {
		p, err := netip.ParsePrefix(item)
		if err != nil {
			a, aerr := netip.ParseAddr(item)
			if aerr != nil {
				return nil, fmt.Errorf("%w: --trusted-proxies entry %d %q: not a CIDR or an address", errUsage, i+1, item)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// compressionSetting describes the edge's permessage-deflate setting for
// its ready line.
func compressionSetting(c wsedge.Config) string {
	switch {
	case c.NoCompression:
		return "off"
	case c.CompressionContextTakeover:
		return fmt.Sprintf("deflate, threshold %d, context takeover", c.CompressionThreshold)
	}
	return fmt.Sprintf("deflate, threshold %d, no context takeover", c.CompressionThreshold)
}
