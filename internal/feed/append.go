package feed

import (
	"context"
	_ "embed"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/redis/go-redis/v9"
)

//go:embed append.lua
var appendSrc string

var appendScript = redis.NewScript(appendSrc)

// AppendConfig sets retention. Zero values are the documented defaults.
type AppendConfig struct {
	Space   keys.Space
	MaxLen  int64         // entries kept per feed, approximately; 0 means 1000
	FeedTTL time.Duration // a feed without appends expires after this; 0 means 7 days
	IdemTTL time.Duration // dedup window of idempotency keys; 0 means 24 hours
}

func (c *AppendConfig) fill() {
	if c.MaxLen <= 0 {
		c.MaxLen = 1000
	}
	if c.FeedTTL <= 0 {
		c.FeedTTL = 7 * 24 * time.Hour
	}
	if c.IdemTTL <= 0 {
		c.IdemTTL = 24 * time.Hour
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
	rdb redis.UniversalClient
	cfg AppendConfig
}

// NewAppender returns an Appender; call Load before the first Append to
// surface a Redis problem early (Append also loads on NOSCRIPT).
func NewAppender(rdb redis.UniversalClient, cfg AppendConfig) *Appender {
	cfg.fill()
	return &Appender{rdb: rdb, cfg: cfg}
}

// Load loads the script into Redis.
func (a *Appender) Load(ctx context.Context) error {
	if err := appendScript.Load(ctx, a.rdb).Err(); err != nil {
		return fmt.Errorf("load feed append script: %w", err)
	}
	return nil
}

// Append appends every request in one pipeline, in order. Requests for the
// same feed are appended in slice order. On error some requests may have been
// appended: calling Append again with the same requests is safe, because the
// source id and idempotency key make the repeats duplicates.
func (a *Appender) Append(ctx context.Context, reqs []Request) ([]Result, error) {
	res, err := a.run(ctx, reqs)
	if err != nil && isNoScript(err) {
		if lerr := a.Load(ctx); lerr != nil {
			return nil, lerr
		}
		res, err = a.run(ctx, reqs)
	}
	return res, err
}

func (a *Appender) run(ctx context.Context, reqs []Request) ([]Result, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	pipe := a.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(reqs))
	for i := range reqs {
		k, args := a.args(&reqs[i])
		cmds[i] = appendScript.EvalSha(ctx, pipe, k, args...)
	}
	_, _ = pipe.Exec(ctx)
	out := make([]Result, len(reqs))
	for i, c := range cmds {
		r, err := parseResult(c)
		if err != nil {
			return nil, fmt.Errorf("append to feed %s: %w", reqs[i].Feed.Tag(), err)
		}
		out[i] = r
	}
	return out, nil
}

func (a *Appender) args(r *Request) ([]string, []any) {
	sp := a.cfg.Space
	idemKey, hasIdem := sp.FeedMeta(r.Feed)+":noidem", "0"
	if r.IdemKey != "" {
		idemKey, hasIdem = sp.FeedIdem(r.Feed, r.IdemKey), "1"
	}
	exp := ""
	if r.Exp != 0 {
		exp = strconv.FormatInt(r.Exp, 10)
	}
	k := []string{sp.FeedStream(r.Feed), sp.FeedMeta(r.Feed), idemKey}
	args := []any{
		sp.FeedChannel(r.Feed), a.cfg.MaxLen, int64(a.cfg.FeedTTL / time.Second), int64(a.cfg.IdemTTL / time.Second),
		r.SourceStream, r.SourceID, NewEpoch(), r.Type, r.TS, exp, r.Device, r.Data, hasIdem,
	}
	return k, args
}

func parseResult(c *redis.Cmd) (Result, error) {
	vals, err := c.Slice()
	if err != nil {
		return Result{}, err
	}
	if len(vals) != 3 {
		return Result{}, fmt.Errorf("script returned %d values, want 3", len(vals))
	}
	status, _ := vals[0].(int64)
	seq, _ := vals[1].(int64)
	epoch, _ := vals[2].(string)
	return Result{Appended: status == 1, Seq: uint64(seq), Epoch: epoch}, nil
}

func isNoScript(err error) bool {
	return err != nil && strings.Contains(err.Error(), "NOSCRIPT")
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
