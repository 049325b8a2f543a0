package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/heraldrt/herald/dispatcher"
	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
)

func init() {
	register(command{name: "dispatcher", summary: "move events from the ingest streams into feeds", run: runDispatcher})
}

const dispatcherHelp = `Reads the ingest stream(s) in the consumer group, appends every event to
the feeds of its audience and acknowledges it; malformed entries go to the
dead-letter stream (see herald dlq). Run several for availability: each
ingest stream is worked by one dispatcher at a time (a lease), the others
stand by or, with --partitions, share the streams. SIGTERM finishes the
batch in flight, releases the leases and exits.`

// dispatcherFlags are the settings of the dispatcher command.
type dispatcherFlags struct {
	redis   redisOptions
	log     logOptions
	admin   string
	srv     serverOptions
	cfg     dispatcher.Config
	maxData int
	dlqMax  int
	feedMax int
	gc      int
}

func runDispatcher(ctx context.Context, args []string) error {
	return runDispatch(ctx, args, os.Stderr)
}

// runDispatch runs the dispatcher until ctx ends, logging to logs.
func runDispatch(ctx context.Context, args []string, logs io.Writer) error {
	o, err := parseDispatcherFlags(args)
	if err != nil {
		return err
	}
	log, err := o.log.logger(logs)
	if err != nil {
		return err
	}
	o.cfg.Logger = log
	setGCPercent(o.gc)
	rdb, err := o.redis.client(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	d, err := dispatcher.New(rdb, o.cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	reg := newRegistry()
	reg.MustRegister(d.Collectors()...)
	adm, err := startAdmin(o.admin, o.srv, reg, func(ctx context.Context) error { return rdb.Ping(ctx).Err() }, log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = adm.Close(sctx)
	}()
	log.Info("dispatcher ready", "admin", adm.Addr(), "consumer", d.Consumer(),
		"streams", len(o.cfg.Space.IngestStreams(o.cfg.Partitions)), "redis", redact(o.redis.url))
	return d.Run(ctx)
}

func parseDispatcherFlags(args []string) (*dispatcherFlags, error) {
	o := new(dispatcherFlags)
	c := &o.cfg
	f := newFlags("dispatcher", dispatcherHelp)
	f.redis(&o.redis)
	f.logging(&o.log)
	f.admin(&o.admin, &o.srv)
	f.Int(&c.Partitions, "partitions", 0, "ingest partitions (0 or 1: the single stream); must match the producers")
	f.String(&c.Group, "group", dispatcher.DefaultGroup, "consumer group on the ingest streams")
	f.String(&c.Consumer, "consumer", "", "consumer name in the group (default <hostname>-<pid>)")
	f.Int(&c.BatchSize, "batch-size", 500, "entries read, appended and acknowledged at once")
	f.Duration(&c.Block, "block", time.Second, "longest wait for new entries before housekeeping and shutdown checks")
	f.Duration(&c.Linger, "linger", 2*time.Millisecond, "pause after a batch smaller than --batch-size, so that busy streams are read in larger batches (0: none)")
	f.Duration(&c.LeaseTTL, "lease-ttl", 6*time.Second, "stream lease lifetime; renewed every third of it, taken over after it")
	f.Duration(&c.ClaimInterval, "claim-interval", 30*time.Second, "how often to claim idle entries of other consumers and remove idle consumers")
	f.Duration(&c.ClaimIdle, "claim-idle", time.Minute, "idle time after which another consumer's pending entry is claimed")
	f.Int(&c.MaxDeliveries, "max-deliveries", 10, "failed deliveries after which an entry goes to the dead-letter stream")
	f.Duration(&c.ConsumerIdleTimeout, "consumer-idle-timeout", time.Hour, "idle time after which a consumer with nothing pending is removed")
	f.Duration(&c.RetryMin, "retry-min", 50*time.Millisecond, "first delay after a failed batch; doubles up to --retry-max")
	f.Duration(&c.RetryMax, "retry-max", 5*time.Second, "longest delay between retries of a failed batch")
	f.Int(&o.dlqMax, "dlq-maxlen", 0, "cap the dead-letter stream at about this many entries (0: no cap)")
	f.Int(&o.feedMax, "feed-maxlen", 1000, "entries kept per feed, approximately")
	f.Duration(&c.Append.FeedTTL, "feed-ttl", 7*24*time.Hour, "a feed without appends expires after this")
	f.Duration(&c.Append.IdemTTL, "idem-ttl", 24*time.Hour, "dedup window of idempotency keys")
	f.Int(&c.Append.Replicas.Replicas, "replica-acks", 0, "replicas that must have a batch's feed appends (Redis WAIT) before its events are acknowledged; 0: none (see docs/scaling.md)")
	f.Duration(&c.Append.Replicas.Timeout, "replica-ack-timeout", time.Second, "longest wait for --replica-acks; a batch not replicated by then is appended again")
	f.Int(&o.maxData, "max-data", events.DefaultMaxData, "largest data field accepted, in bytes")
	f.Int(&o.gc, "gc-percent", 400, "Go GC target percentage (GOGC); a dispatcher's live heap is a few MB, so a high value trades a little memory for CPU; the GOGC variable wins")
	if err := f.parse(args); err != nil {
		return nil, err
	}
	if f.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", errUsage, f.Arg(0))
	}
	for name, v := range map[string]int{"partitions": c.Partitions, "batch-size": c.BatchSize, "max-deliveries": c.MaxDeliveries,
		"dlq-maxlen": o.dlqMax, "feed-maxlen": o.feedMax, "max-data": o.maxData, "gc-percent": o.gc, "replica-acks": c.Append.Replicas.Replicas} {
		if v < 0 {
			return nil, fmt.Errorf("%w: --%s %d must not be negative", errUsage, name, v)
		}
	}
	if t := c.Append.Replicas.Timeout; t <= 0 || t > time.Minute {
		// Any value is fine with any read_timeout in --redis-url (the WAIT
		// is read under read_timeout + this, see internal/replicas); the
		// minute only catches a typo, since a batch waits this long per try
		// while a replica is missing.
		return nil, fmt.Errorf("%w: --replica-ack-timeout %v must be above 0 and at most 1m", errUsage, t)
	}
	if c.Linger < 0 {
		return nil, fmt.Errorf("%w: --linger %v must not be negative", errUsage, c.Linger)
	}
	if c.Linger == 0 {
		c.Linger = -1 // the flag's 0 is no pause; Config's 0 is the default
	}
	c.Space = keys.Space{Prefix: o.redis.prefix}
	c.DLQMaxLen = int64(o.dlqMax)
	c.Append = feed.AppendConfig{MaxLen: int64(o.feedMax), FeedTTL: c.Append.FeedTTL, IdemTTL: c.Append.IdemTTL,
		Replicas: c.Append.Replicas}
	c.Limits = events.Limits{MaxData: o.maxData}
	return o, nil
}
