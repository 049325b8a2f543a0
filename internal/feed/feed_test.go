package feed_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
)

func req(f keys.Feed, src string, n int) feed.Request {
	return feed.Request{
		Feed: f, SourceStream: "herald:events", SourceID: src,
		Type: "order.placed", TS: int64(n), Data: []byte(fmt.Sprintf(`{"n":%d}`, n)),
	}
}

func TestAppendAssignsConsecutiveSeqs(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	a := feed.NewAppender(rdb, feed.AppendConfig{})
	f := keys.UserFeed("acme", "42")
	var reqs []feed.Request
	for i := 1; i <= 250; i++ {
		reqs = append(reqs, req(f, fmt.Sprintf("%d-0", i), i))
	}
	res, err := a.Append(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if !r.Appended || r.Seq != uint64(i+1) || r.Epoch != res[0].Epoch {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	epoch, got, err := feed.NewReader(rdb, keys.Space{}).Range(ctx, f, 100, 10)
	if err != nil {
		t.Fatal(err)
	}
	if epoch != res[0].Epoch || len(got) != 10 || got[0].Seq != 101 || string(got[0].Data) != `{"n":101}` {
		t.Fatalf("range after 100: epoch %s, %d entries, first %+v", epoch, len(got), got[0])
	}
}

func TestAppendDeduplicates(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	a := feed.NewAppender(rdb, feed.AppendConfig{})
	f := keys.UserFeed("acme", "42")

	// A redelivered source entry (same or older id) is a duplicate.
	first := []feed.Request{req(f, "5-0", 1), req(f, "6-0", 2)}
	if _, err := a.Append(ctx, first); err != nil {
		t.Fatal(err)
	}
	res, err := a.Append(ctx, []feed.Request{req(f, "5-0", 1), req(f, "6-0", 2), req(f, "6-1", 3)})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Appended || res[1].Appended || !res[2].Appended || res[2].Seq != 3 {
		t.Fatalf("redelivery: %+v", res)
	}

	// The same idempotency key from two different source entries: one entry.
	k1, k2 := req(f, "10-0", 4), req(f, "11-0", 5)
	k1.IdemKey, k2.IdemKey = "pay-1", "pay-1"
	res, err = a.Append(ctx, []feed.Request{k1, k2})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Appended || res[1].Appended || res[1].Seq != res[0].Seq {
		t.Fatalf("idempotency: %+v", res)
	}
}

func TestEpochChangesWhenHistoryIsLost(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	sp := keys.Space{}
	a := feed.NewAppender(rdb, feed.AppendConfig{})
	f := keys.TenantFeed("acme")
	r1, err := a.Append(ctx, []feed.Request{req(f, "1-0", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Del(ctx, sp.FeedStream(f)).Err(); err != nil {
		t.Fatal(err)
	}
	r2, err := a.Append(ctx, []feed.Request{req(f, "2-0", 2)})
	if err != nil {
		t.Fatal(err)
	}
	if r2[0].Epoch == r1[0].Epoch || r2[0].Seq != 1 {
		t.Fatalf("after losing history: %+v then %+v", r1[0], r2[0])
	}
}

// Head and Tip read the same epoch and newest seq; Head also the oldest
// retained seq.
func TestHeadReportsRetention(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	a := feed.NewAppender(rdb, feed.AppendConfig{MaxLen: 10})
	r := feed.NewReader(rdb, keys.Space{})
	f := keys.TopicFeed("acme", "news")
	if _, err := r.Head(ctx, f); !errors.Is(err, feed.ErrNoFeed) {
		t.Fatalf("head of missing feed: %v", err)
	}
	var reqs []feed.Request
	for i := 1; i <= 500; i++ {
		reqs = append(reqs, req(f, fmt.Sprintf("%d-0", i), i))
	}
	if _, err := a.Append(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	h, err := r.Head(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if h.LastSeq != 500 || h.FirstSeq <= 1 || h.FirstSeq > 491 {
		t.Fatalf("head %+v: want last 500 and history trimmed to about 10", h)
	}
	if epoch, last, err := r.Tip(ctx, f); err != nil || epoch != h.Epoch || last != 500 {
		t.Fatalf("tip: %q %d %v, want %q 500", epoch, last, err, h.Epoch)
	}
	if _, _, err := r.Tip(ctx, keys.TopicFeed("acme", "none")); !errors.Is(err, feed.ErrNoFeed) {
		t.Fatalf("tip of missing feed: %v", err)
	}
	rdb.HSet(ctx, keys.Space{}.FeedMeta(f), "seq", "x")
	if _, _, err := r.Tip(ctx, f); !errors.Is(err, feed.ErrBadEntry) {
		t.Fatalf("tip with a seq that is not a number: %v", err)
	}
}

func TestAppendPublishesPayload(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	f := keys.UserFeed("acme", "7")
	sub := rdb.Subscribe(ctx, keys.Space{}.FeedChannel(f))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // subscription confirmed
		t.Fatal(err)
	}
	r := req(f, "1-0", 1)
	r.Device, r.Exp = "phone", time.Now().Add(time.Hour).UnixMilli()
	res, err := feed.NewAppender(rdb, feed.AppendConfig{}).Append(ctx, []feed.Request{r})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e, err := feed.DecodePayload([]byte(msg.Payload))
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != 1 || e.Epoch != res[0].Epoch || e.Device != "phone" || e.Exp != r.Exp || string(e.Data) != `{"n":1}` {
		t.Fatalf("payload %+v", e)
	}
	if want := (keys.Space{}).FeedChannel(f); msg.Channel != want {
		t.Fatalf("published on %q, want the feed's channel %q", msg.Channel, want)
	}
}

func TestAppendSurvivesScriptFlush(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	a := feed.NewAppender(rdb, feed.AppendConfig{})
	f := keys.UserFeed("acme", "1")
	if _, err := a.Append(ctx, []feed.Request{req(f, "1-0", 1)}); err != nil {
		t.Fatal(err)
	}
	rdb.ScriptFlush(ctx)
	res, err := a.Append(ctx, []feed.Request{req(f, "2-0", 2)})
	if err != nil || res[0].Seq != 2 {
		t.Fatalf("after SCRIPT FLUSH: %+v %v", res, err)
	}
}

func TestConcurrentAppendersKeepSeqsExact(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	f := keys.UserFeed("acme", "hot")
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			a := feed.NewAppender(rdb, feed.AppendConfig{})
			for i := range 50 {
				r := req(f, "", i)
				r.IdemKey = fmt.Sprintf("w%d-%d", w, i)
				if _, err := a.Append(ctx, []feed.Request{r}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	_, got, err := feed.NewReader(rdb, keys.Space{}).Range(ctx, f, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d", i, e.Seq)
		}
	}
	if len(got) != 200 {
		t.Fatalf("%d entries, want 200", len(got))
	}
}
