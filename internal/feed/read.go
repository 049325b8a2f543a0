package feed

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/redis/go-redis/v9"
)

// ErrNoFeed is returned when a feed has no meta: it never existed or expired.
var ErrNoFeed = errors.New("feed: no such feed")

// Head describes a feed's retained history.
type Head struct {
	Epoch    string
	LastSeq  uint64 // seq of the newest entry; 0 = none yet
	FirstSeq uint64 // seq of the oldest retained entry; 0 = empty stream
}

// Reader reads feeds.
type Reader struct {
	rdb   redis.UniversalClient
	space keys.Space
}

// NewReader returns a Reader for feeds under space.
func NewReader(rdb redis.UniversalClient, space keys.Space) *Reader {
	return &Reader{rdb: rdb, space: space}
}

// Head returns the feed's epoch and retained seq range in one round trip,
// read atomically (MULTI). ErrNoFeed when the feed does not exist.
func (r *Reader) Head(ctx context.Context, f keys.Feed) (Head, error) {
	var meta *redis.SliceCmd
	var first *redis.XMessageSliceCmd
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.HMGet(ctx, r.space.FeedMeta(f), "epoch", "seq")
		first = p.XRangeN(ctx, r.space.FeedStream(f), "-", "+", 1)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Head{}, fmt.Errorf("read head of feed %s: %w", f.Tag(), err)
	}
	vals := meta.Val()
	epoch, _ := vals[0].(string)
	if epoch == "" {
		return Head{}, ErrNoFeed
	}
	h := Head{Epoch: epoch}
	if s, _ := vals[1].(string); s != "" {
		h.LastSeq, _ = strconv.ParseUint(s, 10, 64)
	}
	if msgs := first.Val(); len(msgs) > 0 {
		e, err := fromStream(epoch, msgs[0].ID, msgs[0].Values)
		if err != nil {
			return Head{}, err
		}
		h.FirstSeq = e.Seq
	}
	return h, nil
}

// Tip returns the feed's epoch and the seq of its newest entry (0 for
// none yet): one HMGET of its meta, without the stream, for a reader that
// only follows the feed from now on. ErrNoFeed when the feed does not exist.
func (r *Reader) Tip(ctx context.Context, f keys.Feed) (epoch string, last uint64, err error) {
	vals, err := r.rdb.HMGet(ctx, r.space.FeedMeta(f), "epoch", "seq").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", 0, fmt.Errorf("read tip of feed %s: %w", f.Tag(), err)
	}
	if len(vals) == 2 {
		epoch, _ = vals[0].(string)
	}
	if epoch == "" {
		return "", 0, ErrNoFeed
	}
	if s, _ := vals[1].(string); s != "" {
		if last, err = strconv.ParseUint(s, 10, 64); err != nil {
			return "", 0, fmt.Errorf("feed %s: seq %q: %w", f.Tag(), s, ErrBadEntry)
		}
	}
	return epoch, last, nil
}

// Range returns up to count entries with seq > after, oldest first, together
// with the feed's epoch, read atomically. ErrNoFeed when the feed does not
// exist.
func (r *Reader) Range(ctx context.Context, f keys.Feed, after uint64, count int64) (string, []Entry, error) {
	start := "(" + strconv.FormatUint(after, 10) + "-0"
	if after == 0 {
		start = "-"
	}
	return r.read(ctx, f, func(p redis.Pipeliner) *redis.XMessageSliceCmd {
		return p.XRangeN(ctx, r.space.FeedStream(f), start, "+", count)
	}, "after", after)
}

// Newest returns up to count entries with seq < before (every seq when
// before is 0), newest first, with the feed's epoch, read atomically.
// ErrNoFeed when the feed does not exist.
func (r *Reader) Newest(ctx context.Context, f keys.Feed, before uint64, count int64) (string, []Entry, error) {
	end := "+"
	if before > 0 {
		end = "(" + strconv.FormatUint(before, 10) + "-0"
	}
	return r.read(ctx, f, func(p redis.Pipeliner) *redis.XMessageSliceCmd {
		return p.XRevRangeN(ctx, r.space.FeedStream(f), end, "-", count)
	}, "before", before)
}

// read reads the feed's epoch and the entries xr asks for in one MULTI.
func (r *Reader) read(ctx context.Context, f keys.Feed, xr func(redis.Pipeliner) *redis.XMessageSliceCmd, rel string, seq uint64) (string, []Entry, error) {
	var epoch *redis.StringCmd
	var msgs *redis.XMessageSliceCmd
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		epoch = p.HGet(ctx, r.space.FeedMeta(f), "epoch")
		msgs = xr(p)
		return nil
	})
	if errors.Is(epoch.Err(), redis.Nil) {
		return "", nil, ErrNoFeed
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", nil, fmt.Errorf("read feed %s %s %d: %w", f.Tag(), rel, seq, err)
	}
	ep := epoch.Val()
	out := make([]Entry, 0, len(msgs.Val()))
	for _, m := range msgs.Val() {
		e, err := fromStream(ep, m.ID, m.Values)
		if err != nil {
			return "", nil, err
		}
		out = append(out, e)
	}
	return ep, out, nil
}
