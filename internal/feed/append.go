package feed

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/pubsub"
	"github.com/heraldrt/herald/internal/replicas"
	"github.com/redis/go-redis/v9"
)

//go:embed append.lua
var appendSrc string

var appendScript = redis.NewScript(appendSrc)

// shardedAppendScript is the script for Redis Cluster: SPUBLISH instead of
// PUBLISH, so that a notification goes to the one shard that owns its
// feed's channel (which carries the feed's hash tag) and not to every node.
var shardedAppendScript = redis.NewScript(strings.Replace(appendSrc, "call('PUBLISH',", "call('SPUBLISH',", 1))

// Grouping says which requests may share one call of the append script.
type Grouping uint8

const (
	// GroupAuto is GroupAny on a *redis.Client (one server holds every
	// key) and GroupFeed on any other client (Cluster, Ring), where the
	// keys of one call must share a hash slot.
	GroupAuto Grouping = iota
	// GroupAny lets one call carry the requests of any feeds.
	GroupAny
	// GroupFeed lets one call carry the requests of one feed only: its
	// keys share the feed's hash tag.
	GroupFeed
	// GroupNone makes one call per request, all of an Append's calls in
	// one transaction (MULTI), which holds Redis for as long as they run.
	GroupNone
)

// AppendConfig sets retention and how requests are sent. Zero values are
// the documented defaults.
type AppendConfig struct {
	Space  keys.Space
	MaxLen int64 // entries kept per feed, approximately; 0 means 1000

	// FeedTTL is how long a feed without appends lives; 0 means 7 days.
	// An append sets the TTL of the feed's keys again only once at most
	// 7/8 of it is left (by Now), so a feed expires between 7/8 of FeedTTL
	// and FeedTTL after its last append. Values under 1s mean 1s.
	FeedTTL time.Duration

	// IdemTTL is the dedup window of idempotency keys; 0 means 24 hours.
	// Values under 1s mean 1s. A feed keeps its keys in its meta, so one
	// that expires forgets them: a FeedTTL of at least 8/7 of IdemTTL (the
	// defaults are 7 days and 24 hours) keeps every key for its window.
	IdemTTL time.Duration

	// Grouping says which requests share a script call; 0 means GroupAuto.
	Grouping Grouping

	// BatchSize is the most requests one script call carries; 0 means 64.
	// A call also stops growing past 1 MiB of data. All the requests for
	// one feed in an Append share a call, though, however many there are.
	BatchSize int

	// Replicas, when on, makes each Append return only once that many
	// replicas of every master it wrote to have its writes (WAIT after
	// the script calls, on their connection), and fail with an error
	// wrapping replicas.ErrNotReplicated otherwise: a dispatcher then
	// acknowledges nothing and appends again (idempotent), so a master's
	// failover cannot lose a notification whose event was acknowledged.
	Replicas replicas.Policy

	// Now is the clock that decides when TTLs are set again; nil means
	// time.Now. A clock behind the one that last set them delays that by
	// as much, one ahead brings it forward.
	Now func() time.Time
}

// maxCallBytes bounds the data of one script call (a call with one request
// may hold more), so one call never holds Redis for long.
const maxCallBytes = 1 << 20

func (c *AppendConfig) fill(rdb redis.UniversalClient) {
	if c.MaxLen <= 0 {
		c.MaxLen = 1000
	}
	if c.FeedTTL <= 0 {
		c.FeedTTL = 7 * 24 * time.Hour
	}
	if c.IdemTTL <= 0 {
		c.IdemTTL = 24 * time.Hour
	}
	c.FeedTTL, c.IdemTTL = max(c.FeedTTL, time.Second), max(c.IdemTTL, time.Second)
	if c.Grouping == GroupAuto {
		c.Grouping = GroupFeed
		if _, ok := rdb.(*redis.Client); ok {
			c.Grouping = GroupAny
		}
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 64
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Request is one notification to append to one feed.
type Request struct {
	Feed         keys.Feed
	SourceStream string // ingest stream the event came from
	SourceID     string // its entry id there; "" = no source dedup
	IdemKey      string // idempotency key; "" = none
	Type         string
	TS           int64 // unix ms
	Exp          int64 // unix ms; 0 = never
	Device       string
	Data         []byte
}

// Result says what happened to one Request.
type Result struct {
	Appended bool   // false: a duplicate, nothing written
	Seq      uint64 // the new seq, or the original's for a duplicate idempotency key (else 0)
	Epoch    string
}

// Appender appends notifications to feeds with append.lua.
type Appender struct {
	rdb    redis.UniversalClient
	cfg    AppendConfig
	script *redis.Script
}

// NewAppender returns an Appender; call Load before the first Append to
// surface a Redis problem early (Append also loads on NOSCRIPT).
func NewAppender(rdb redis.UniversalClient, cfg AppendConfig) *Appender {
	cfg.fill(rdb)
	a := &Appender{rdb: rdb, cfg: cfg, script: appendScript}
	if pubsub.Sharded(rdb) {
		a.script = shardedAppendScript
	}
	return a
}

// Load loads the script into Redis.
func (a *Appender) Load(ctx context.Context) error {
	if err := a.script.Load(ctx, a.rdb).Err(); err != nil {
		return fmt.Errorf("load feed append script: %w", err)
	}
	return nil
}

// Append appends every request, in script calls of up to BatchSize
// requests sent in one pipeline. Requests for the same feed are appended in
// slice order; requests for different feeds may be appended in any order.
// On error some requests may have been appended: calling Append again with
// the same requests is safe, because the source id and idempotency key make
// the repeats duplicates.
func (a *Appender) Append(ctx context.Context, reqs []Request) ([]Result, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	calls := a.plan(reqs)
	out := make([]Result, len(reqs))
	failed, err := a.run(ctx, reqs, calls, out)
	if err == nil && len(failed) > 0 {
		// The script was not in Redis's cache (a restart, SCRIPT FLUSH).
		// Usually every call from the first failed one on failed too, but
		// another client may have loaded it meanwhile. Running only the
		// failed calls again is right either way, since no feed has
		// requests in two calls (but with GroupNone, whose calls ran in one
		// transaction, so all failed).
		if err := a.Load(ctx); err != nil {
			return nil, err
		}
		failed, err = a.run(ctx, reqs, failed, out)
		if err == nil && len(failed) > 0 {
			err = fmt.Errorf("append to feeds: script missing after load: %w", errNoScript)
		}
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

var errNoScript = errors.New("NOSCRIPT")

// run sends calls in one pipeline and writes their results into out. It
// returns the calls that failed with NOSCRIPT, in order, or the first other
// failure.
func (a *Appender) run(ctx context.Context, reqs []Request, calls []call, out []Result) ([]call, error) {
	cmds := make([]*redis.Cmd, len(calls))
	now := a.cfg.Now().Unix()
	queue := func(pipe redis.Pipeliner, i int) {
		// Feeds created or reset in one call share its epoch: an epoch is
		// only ever compared with others of the same feed, and one call
		// resets a feed at most once.
		k, args := a.args(reqs, calls[i].idx, now, NewEpoch())
		cmds[i] = a.script.EvalSha(ctx, pipe, k, args...)
	}
	var waitErr error
	if a.cfg.Replicas.On() {
		waitErr = replicas.Exec(ctx, a.rdb, a.cfg.Replicas, len(calls), a.cfg.Grouping == GroupNone,
			func(i int) string { return a.cfg.Space.FeedStream(reqs[calls[i].idx[0]].Feed) }, queue)
	} else {
		pipe := a.rdb.Pipeline()
		if a.cfg.Grouping == GroupNone {
			pipe = a.rdb.TxPipeline()
		}
		for i := range calls {
			queue(pipe, i)
		}
		_, _ = pipe.Exec(ctx)
	}
	if waitErr != nil {
		// the scripts may have run: the caller appends again, which
		// changes nothing that is already there
		return nil, fmt.Errorf("append to feeds: %w", waitErr)
	}
	var noScript []call
	for i, c := range cmds {
		err := parseResults(c, calls[i].idx, out)
		if isNoScript(err) {
			noScript = append(noScript, calls[i])
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("append %d requests to feeds (first %s): %w",
				len(calls[i].idx), reqs[calls[i].idx[0]].Feed.Tag(), err)
		}
	}
	return noScript, nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// NewEpoch returns a fresh random epoch: 10 characters of [0-9a-z].
func NewEpoch() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [10]byte
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return string(b[:])
}
