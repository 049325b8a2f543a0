package keys_test

import (
	"testing"

	"github.com/heraldrt/herald/internal/keys"
)

// TestFeedChannelsAreDistinct: an edge finds a message's feed by its
// channel, so no two feeds may share one; client names round-trip.
func TestFeedChannelsAreDistinct(t *testing.T) {
	sp := keys.Space{Prefix: "x:"}
	seen := map[string]keys.Feed{}
	for _, f := range []keys.Feed{
		keys.UserFeed("acme", "u.1@x"), keys.TenantFeed("t-1"), keys.TopicFeed("acme", "news"),
		keys.UserFeed("acme", "t"), keys.TenantFeed("acme"), keys.TopicFeed("acme", "u"),
	} {
		ch := sp.FeedChannel(f)
		if other, ok := seen[ch]; ok {
			t.Errorf("%+v and %+v share channel %q", f, other, ch)
		}
		seen[ch] = f
		back, ok := keys.ParseClientName(f.Tenant, f.Name, f.ClientName())
		if f.Kind != keys.FeedTenant && (!ok || back != f) {
			t.Errorf("client name %q -> %+v", f.ClientName(), back)
		}
	}
}

func TestPartitionIsStable(t *testing.T) {
	// Fixed values: producers in other languages implement the same hash.
	if keys.Partition("", 8) != 2166136261%8 {
		t.Fatalf("fnv1a of empty string mod 8 = %d", keys.Partition("", 8))
	}
	if got := keys.Partition("a", 1<<31); got != 0xe40c292c%(1<<31) {
		t.Fatalf("fnv1a32(\"a\") mod 2^31 = %#x", got)
	}
	if (keys.Space{}).IngestStream("acme", 1) != "herald:events" {
		t.Fatal("one partition must be the plain stream")
	}
}
