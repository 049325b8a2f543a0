package dispatcher

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
)

// DefaultGroup is the consumer group every dispatcher joins.
const DefaultGroup = "herald-dispatchers"

// Config configures a Dispatcher. Zero values are the documented defaults,
// filled in by New.
type Config struct {
	// Space is the key prefix of every Herald key. The zero value is "herald:".
	Space keys.Space

	// Partitions is the number of ingest streams; 0 or 1 means the single
	// stream herald:events, N > 1 means herald:events:{0} .. {N-1}. Every
	// producer and dispatcher must agree on it.
	Partitions int

	// Group is the consumer group on each ingest stream; "" means
	// "herald-dispatchers".
	Group string

	// Consumer is this process's consumer name in the group; "" means
	// "<hostname>-<pid>". It should be stable for the life of the process
	// and differ between processes.
	Consumer string

	// BatchSize is the most entries read, appended and acknowledged at once;
	// 0 means 500.
	BatchSize int

	// Block is how long one read waits for new entries before the loop
	// checks for shutdown and housekeeping; 0 means 1s. It is always finite.
	Block time.Duration

	// Linger is how long a worker pauses after a batch smaller than
	// BatchSize before it reads again, so that under load entries are
	// handled in larger batches, each costing Redis and the dispatcher
	// about the same whatever its size. It delays an entry by at most
	// Linger, and only one that arrives while the worker handles a small
	// batch or pauses after it; a worker waiting on an idle stream wakes at
	// once. 0 means 2ms; negative means no pause.
	Linger time.Duration

	// LeaseTTL is the life of a stream lease. A holder renews it every
	// LeaseTTL/3 and heartbeats just as often; a crashed holder's streams are
	// taken over at most about LeaseTTL+LeaseTTL/3 later. 0 means 6s.
	LeaseTTL time.Duration

	// ClaimInterval is how often a lease holder claims entries left idle by
	// other consumers and removes idle consumers; 0 means 30s.
	ClaimInterval time.Duration

	// ClaimIdle is how long an entry must sit unacknowledged in another
	// consumer's pending list before the periodic claim takes it; 0 means 60s.
	ClaimIdle time.Duration

	// MaxDeliveries is how many deliveries an entry may have without
	// success before it goes to the dead-letter stream; 0 means 10.
	MaxDeliveries int

	// ConsumerIdleTimeout is how long a consumer with nothing pending may be
	// idle before it is removed from the group; 0 means 1h.
	ConsumerIdleTimeout time.Duration

	// RetryMin is the first delay after a failed batch; it doubles on each
	// further failure up to RetryMax. 0 means 50ms.
	RetryMin time.Duration

	// RetryMax caps the delay between retries of a failed batch; 0 means 5s.
	RetryMax time.Duration

	// DLQMaxLen caps the dead-letter stream at about this many entries
	// (XADD MAXLEN ~); 0 means no cap.
	DLQMaxLen int64

	// Append sets feed retention and dedup windows. Its Space is ignored:
	// Space above is used.
	Append feed.AppendConfig

	// Limits bound what an ingest entry may hold (data size).
	Limits events.Limits

	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
}

// fill sets the defaults of zero fields and checks the rest.
func (c *Config) fill() error {
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.Consumer == "" {
		c.Consumer = defaultConsumer()
	}
	c.BatchSize = orInt(c.BatchSize, 500)
	c.MaxDeliveries = orInt(c.MaxDeliveries, 10)
	c.Block = orDur(c.Block, time.Second)
	if c.Linger == 0 {
		c.Linger = 2 * time.Millisecond
	}
	c.LeaseTTL = orDur(c.LeaseTTL, 6*time.Second)
	c.ClaimInterval = orDur(c.ClaimInterval, 30*time.Second)
	c.ClaimIdle = orDur(c.ClaimIdle, 60*time.Second)
	c.ConsumerIdleTimeout = orDur(c.ConsumerIdleTimeout, time.Hour)
	c.RetryMin = orDur(c.RetryMin, 50*time.Millisecond)
	c.RetryMax = orDur(c.RetryMax, 5*time.Second)
	c.Append.Space = c.Space
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.Partitions < 0:
		return fmt.Errorf("%w: partitions %d is negative", ErrConfig, c.Partitions)
	case c.LeaseTTL < 30*time.Millisecond:
		return fmt.Errorf("%w: lease ttl %v is shorter than 30ms", ErrConfig, c.LeaseTTL)
	case c.RetryMax < c.RetryMin:
		return fmt.Errorf("%w: retry max %v is below retry min %v", ErrConfig, c.RetryMax, c.RetryMin)
	case c.BatchSize < 0 || c.MaxDeliveries < 0:
		return fmt.Errorf("%w: batch size and max deliveries must be positive", ErrConfig)
	}
	return nil
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orDur(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}

// defaultConsumer is "<hostname>-<pid>".
func defaultConsumer() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "herald"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}
