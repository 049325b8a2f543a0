package feed_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
)

// appendKey appends one request with idempotency key key at now+at.
func (h *ttlHarness) appendKey(at time.Duration, key string) feed.Result {
	h.t.Helper()
	h.n++
	r := req(h.f, fmt.Sprintf("%d-0", h.n), h.n)
	r.IdemKey = key
	h.now = h.now.Add(at)
	res, err := h.a.Append(context.Background(), []feed.Request{r})
	if err != nil {
		h.t.Fatal(err)
	}
	return res[0]
}

// metaKeys returns the idempotency keys the feed's meta holds.
func (h *ttlHarness) metaKeys() map[string]bool {
	h.t.Helper()
	fields, err := h.rdb.HKeys(context.Background(), keys.Space{}.FeedMeta(h.f)).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	out := make(map[string]bool)
	for _, f := range fields {
		if k, ok := strings.CutPrefix(f, "i:"); ok {
			out[k] = true
		}
	}
	return out
}

func TestIdempotencyKeyIsADuplicateForItsTTL(t *testing.T) {
	h := newTTLHarness(t)
	first := h.appendKey(0, "pay-1")
	h.appendKey(time.Second, "other")
	for _, at := range []time.Duration{time.Second, testIdemTTL - 3*time.Second} {
		if r := h.appendKey(at, "pay-1"); r.Appended || r.Seq != first.Seq || r.Epoch != first.Epoch {
			t.Fatalf("pay-1 again %v later: %+v, want a duplicate of %+v", at, r, first)
		}
	}
	// testIdemTTL after the first: the window is over.
	if r := h.appendKey(time.Second, "pay-1"); !r.Appended || r.Seq != 3 {
		t.Fatalf("pay-1 again after its window: %+v, want appended as seq 3", r)
	}
	if r := h.appendKey(time.Second, "pay-1"); r.Appended || r.Seq != 3 {
		t.Fatalf("pay-1 again a second later: %+v, want a duplicate of seq 3", r)
	}
}

// Keys past their window are deleted as the feed goes on, so a feed keeps
// about its last window's keys.
func TestIdempotencyKeysPastTheirTTLArePruned(t *testing.T) {
	h := newTTLHarness(t)
	for i := range 100 {
		h.appendKey(0, fmt.Sprintf("old-%d", i))
	}
	h.now = h.now.Add(testIdemTTL)
	for i := range 600 { // past seq 640: eight more prune steps
		h.appendKey(0, fmt.Sprintf("new-%d", i))
	}
	got := h.metaKeys()
	for k := range got {
		if strings.HasPrefix(k, "old-") {
			t.Fatalf("meta still holds %s, appended %v ago (of %d keys)", k, testIdemTTL, len(got))
		}
	}
	if len(got) != 600 {
		t.Fatalf("meta holds %d keys, want the 600 new ones", len(got))
	}
}

// hscanCalls is how many HSCANs the harness's Redis has run.
func (h *ttlHarness) hscanCalls() int {
	h.t.Helper()
	info, err := h.rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		h.t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_hscan:calls="); ok {
			n, _, _ := strings.Cut(rest, ",")
			calls, err := strconv.Atoi(n)
			if err != nil {
				h.t.Fatalf("commandstats line %q: %v", line, err)
			}
			return calls
		}
	}
	return 0
}

// While no key of a feed can be past its window, the pruning walk does
// not run: once a round of it has seen every key, it knows the oldest,
// and walks again only when that one is past the window.
func TestIdempotencyPruningWaitsForTheOldestKey(t *testing.T) {
	h := newTTLHarness(t)
	for i := range 200 { // a round or more of the walk
		h.appendKey(0, fmt.Sprintf("a-%d", i))
	}
	walked := h.hscanCalls()
	if walked == 0 {
		t.Fatal("no pruning walk in 200 appends")
	}
	for i := range 640 { // ten more pruning steps, all keys well inside the window
		h.appendKey(0, fmt.Sprintf("b-%d", i))
	}
	if n := h.hscanCalls(); n != walked {
		t.Fatalf("%d HSCANs while every key was inside its window, want none (had %d before)", n-walked, walked)
	}
	// Past the oldest key's window the walk runs again, and deletes what
	// it meets of the 840 keys now past their window.
	h.now = h.now.Add(testIdemTTL)
	for i := range 200 {
		h.appendKey(0, fmt.Sprintf("c-%d", i))
	}
	if h.hscanCalls() == walked {
		t.Fatal("no pruning walk once keys were past their window")
	}
	old := 0
	for k := range h.metaKeys() {
		if !strings.HasPrefix(k, "c-") {
			old++
		}
	}
	if old >= 840 {
		t.Fatalf("all %d keys past their window still there after the walk ran", old)
	}
}

// A feed that loses its stream starts a new epoch but still knows what it
// appended: a redelivered source entry and a repeated key are duplicates.
func TestDedupSurvivesStreamLoss(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	a := feed.NewAppender(rdb, feed.AppendConfig{})
	f := keys.UserFeed("acme", "1")
	keyed := req(f, "5-0", 1)
	keyed.IdemKey = "pay-1"
	first, err := a.Append(ctx, []feed.Request{keyed, req(f, "6-0", 2)})
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Del(ctx, keys.Space{}.FeedStream(f)).Err(); err != nil {
		t.Fatal(err)
	}
	again := req(f, "7-0", 3)
	again.IdemKey = "pay-1"
	res, err := a.Append(ctx, []feed.Request{again, req(f, "6-0", 2), req(f, "8-0", 4)})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Appended || res[0].Seq != first[0].Seq || res[1].Appended {
		t.Fatalf("after the stream was lost: %+v, want the key and the source entry as duplicates", res)
	}
	if !res[2].Appended || res[2].Seq != 1 || res[2].Epoch == first[0].Epoch {
		t.Fatalf("after the stream was lost: %+v, want seq 1 in a new epoch", res[2])
	}
}
