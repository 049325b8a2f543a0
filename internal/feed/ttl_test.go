package feed_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// ttlHarness appends to one feed with a clock the test moves.
type ttlHarness struct {
	t   *testing.T
	rdb *redis.Client
	a   *feed.Appender
	f   keys.Feed
	now time.Time
	n   int
}

const (
	testFeedTTL = 800 * time.Second // refreshed once 100s have passed
	testIdemTTL = 50 * time.Second
)

func newTTLHarness(t *testing.T) *ttlHarness {
	h := &ttlHarness{t: t, rdb: redistest.Start(t).Client(t), f: keys.UserFeed("acme", "1"), now: time.Unix(1_700_000_000, 0)}
	h.a = feed.NewAppender(h.rdb, feed.AppendConfig{FeedTTL: testFeedTTL, IdemTTL: testIdemTTL, Now: func() time.Time { return h.now }})
	return h
}

// append appends one request at now+at.
func (h *ttlHarness) append(at time.Duration) feed.Result {
	h.t.Helper()
	h.n++
	r := req(h.f, fmt.Sprintf("%d-0", h.n), h.n)
	r.IdemKey = fmt.Sprintf("k%d", h.n)
	h.now = h.now.Add(at)
	res, err := h.a.Append(context.Background(), []feed.Request{r})
	if err != nil {
		h.t.Fatal(err)
	}
	return res[0]
}

// ttls returns the TTLs of the feed's stream and meta.
func (h *ttlHarness) ttls() (stream, meta time.Duration) {
	h.t.Helper()
	ctx, sp := context.Background(), keys.Space{}
	return h.rdb.TTL(ctx, sp.FeedStream(h.f)).Val(), h.rdb.TTL(ctx, sp.FeedMeta(h.f)).Val()
}

// wantTTLs checks that both keys' TTLs are in (lo, hi].
func (h *ttlHarness) wantTTLs(step string, lo, hi time.Duration) {
	h.t.Helper()
	s, m := h.ttls()
	if s <= lo || s > hi || m <= lo || m > hi {
		h.t.Fatalf("%s: stream TTL %v, meta TTL %v, want both in (%v, %v]", step, s, m, lo, hi)
	}
}

// shorten sets both keys' TTLs to d, as if time had passed.
func (h *ttlHarness) shorten(d time.Duration) {
	h.t.Helper()
	ctx, sp := context.Background(), keys.Space{}
	for _, k := range []string{sp.FeedStream(h.f), sp.FeedMeta(h.f)} {
		if err := h.rdb.Expire(ctx, k, d).Err(); err != nil {
			h.t.Fatal(err)
		}
	}
}

func TestTTLsAreSetThenRefreshedOnceAnEighthHasPassed(t *testing.T) {
	h := newTTLHarness(t)
	full := testFeedTTL - 10*time.Second
	h.append(0)
	h.wantTTLs("first append", full, testFeedTTL)

	h.shorten(30 * time.Second)
	h.append(99 * time.Second)
	h.wantTTLs("99s later", 0, 30*time.Second)

	h.append(time.Second) // 100s after the TTL was set: 7/8 of it left
	h.wantTTLs("100s later", full, testFeedTTL)
}

func TestALongerTTLAppliesAtTheNextAppend(t *testing.T) {
	h := newTTLHarness(t)
	short := feed.AppendConfig{FeedTTL: time.Minute, Now: func() time.Time { return h.now }}
	h.a, h.now = feed.NewAppender(h.rdb, short), h.now.Add(time.Second)
	h.append(0)
	h.wantTTLs("a minute", 50*time.Second, time.Minute)

	// A new configuration, a second later: the TTL set a second ago has
	// far less than 7/8 of the new one left.
	h.a = feed.NewAppender(h.rdb, feed.AppendConfig{FeedTTL: testFeedTTL, Now: func() time.Time { return h.now }})
	h.append(time.Second)
	h.wantTTLs("longer ttl", testFeedTTL-10*time.Second, testFeedTTL)
}

func TestTTLsAreSetOnAFeedRebuiltAfterALoss(t *testing.T) {
	h := newTTLHarness(t)
	ctx, sp := context.Background(), keys.Space{}
	first := h.append(0)

	// The stream is lost just after a refresh: the new stream and the new
	// meta get their TTL at once.
	if err := h.rdb.Del(ctx, sp.FeedStream(h.f)).Err(); err != nil {
		t.Fatal(err)
	}
	r := h.append(time.Second)
	if r.Epoch == first.Epoch || r.Seq != 1 {
		t.Fatalf("after the stream was lost: %+v then %+v", first, r)
	}
	h.wantTTLs("stream lost", testFeedTTL-10*time.Second, testFeedTTL)

	// A meta with an epoch, no seq yet, a TTL just set and no stream: the
	// stream it creates gets its TTL too.
	if err := h.rdb.Del(ctx, sp.FeedStream(h.f)).Err(); err != nil {
		t.Fatal(err)
	}
	expires := h.now.Add(testFeedTTL).Unix()
	if err := h.rdb.HSet(ctx, sp.FeedMeta(h.f), "epoch", "e0", "seq", 0, "expires", expires).Err(); err != nil {
		t.Fatal(err)
	}
	r = h.append(time.Second)
	if r.Epoch != "e0" || r.Seq != 1 {
		t.Fatalf("on a feed without entries: %+v", r)
	}
	h.wantTTLs("first entry of an empty feed", testFeedTTL-10*time.Second, testFeedTTL)
}
