package producer

import (
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/replicas"
)

// DefaultMaxLen is the approximate length the ingest stream is trimmed to
// when no retention option is given.
const DefaultMaxLen = 1_000_000

// Option configures a Producer in New.
type Option func(*Producer)

// WithSpace sets the key space (prefix) of the ingest streams. The default
// is keys.Space{}, whose prefix is "herald:".
func WithSpace(s keys.Space) Option { return func(p *Producer) { p.space = s } }

// WithPrefix sets the key prefix, like HERALD_PREFIX: WithPrefix("herald:")
// is the default.
func WithPrefix(prefix string) Option { return WithSpace(keys.Space{Prefix: prefix}) }

// WithPartitions spreads tenants over n ingest streams, herald:events:{0}
// to herald:events:{n-1}, choosing fnv1a32(tenant) mod n, so one tenant's
// events stay in one stream, in order. It must match the dispatcher's
// setting. n ≤ 1 (the default) means the single stream herald:events.
func WithPartitions(n int) Option { return func(p *Producer) { p.partitions = n } }

// WithTenant sets the tenant used when a publish names none.
func WithTenant(tenant string) Option { return func(p *Producer) { p.tenant = tenant } }

// WithMaxLen trims the ingest stream to about n entries on every XADD
// (MAXLEN ~ n; Redis trims whole nodes, so the stream may hold a little
// more). It replaces WithMinIDAge: the last retention option wins. n ≤ 0
// turns trimming off. The default is DefaultMaxLen.
func WithMaxLen(n int64) Option {
	return func(p *Producer) { p.maxLen, p.minIDAge = n, 0 }
}

// WithMinIDAge trims entries older than d on every XADD (MINID ~
// <now-d in ms>-0), a retention by time. It replaces WithMaxLen: the last
// retention option wins. d ≤ 0 turns trimming off.
func WithMinIDAge(d time.Duration) Option {
	return func(p *Producer) { p.maxLen, p.minIDAge = 0, d }
}

// WithLimits sets the limits entries are validated against. They should be
// the dispatcher's. The zero value (the default) means events' defaults.
func WithLimits(l events.Limits) Option { return func(p *Producer) { p.limits = l } }

// WithClock sets the clock used for the default ts and for MINID trimming.
// nil means time.Now.
func WithClock(now func() time.Time) Option { return func(p *Producer) { p.now = now } }

// PublishOption sets a field of one published event.
type PublishOption func(*publishOptions)

type publishOptions struct {
	tenant string
	to     events.Audience
	toSet  bool
	id     string
	device string
	ttl    time.Duration
	at     time.Time
}

// Tenant sets the event's tenant, overriding WithTenant.
func Tenant(tenant string) PublishOption { return func(o *publishOptions) { o.tenant = tenant } }

// To sets the audience, overriding the event's DefaultAudience.
func To(a events.Audience) PublishOption {
	return func(o *publishOptions) { o.to, o.toSet = a, true }
}

// IdempotencyKey sets the entry's id field: a second event with the same
// tenant and key is not delivered again within the dispatcher's dedup
// window, which makes a retried publish safe. "" means none.
func IdempotencyKey(key string) PublishOption { return func(o *publishOptions) { o.id = key } }

// Device delivers the event only to this device of the user (user
// audiences only). "" means every device.
func Device(device string) PublishOption { return func(o *publishOptions) { o.device = device } }

// TTL sets how long the event may still be pushed or replayed; it is sent
// in whole seconds, rounded up. 0 means no expiry; a negative TTL is refused.
func TTL(d time.Duration) PublishOption { return func(o *publishOptions) { o.ttl = d } }

// At sets the producer time (ts). The default is the producer's clock at
// publish time.
func At(t time.Time) PublishOption { return func(o *publishOptions) { o.at = t } }

// WithReplicaAcks makes Publish and PublishBatch return an entry id only
// once n replicas of its stream's master have the entry (Redis WAIT, up to
// timeout; 0 means 1s), so that a failover cannot lose an event the caller
// was told is stored. Otherwise they fail with an error wrapping
// ErrNotReplicated (the entry may be stored: send it again with
// the same idempotency key). n 0 (the default) waits for none.
//
// With a *redis.Client or *redis.ClusterClient, timeout may be as long as
// or longer than the client's ReadTimeout: the WAIT is read under
// ReadTimeout + timeout + 1s. With any other client keep timeout at least
// a second below its ReadTimeout.
func WithReplicaAcks(n int, timeout time.Duration) Option {
	return func(p *Producer) { p.replicas = replicas.Policy{Replicas: n, Timeout: timeout} }
}
