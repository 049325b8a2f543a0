package keys_test

import (
	"testing"

	"github.com/heraldrt/herald/internal/keys"
)

// Values from Redis's CLUSTER KEYSLOT.
func TestSlot(t *testing.T) {
	for key, want := range map[string]int{
		"foo": 12182, "somekey": 11058, "foo{hash_tag}": 2515, "123456789": 12739,
		"foo{}{bar}": 8363, "foo{{bar}}zap": 4015, "foo{bar}{zap}": 5061,
	} {
		if got := keys.Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
	sp := keys.Space{}
	if keys.Slot(sp.EventsPartition(3)) != keys.Slot(sp.Lease(sp.EventsPartition(3))) {
		t.Error("a partition and its lease are in different slots")
	}
	f := keys.UserFeed("acme", "u42")
	if keys.Slot(sp.FeedStream(f)) != keys.Slot(sp.FeedChannel(f)) || keys.Slot(sp.FeedStream(f)) != keys.Slot(keys.WaitMark(sp.FeedStream(f))) {
		t.Error("a feed, its channel and its wait mark are in different slots")
	}
	for _, k := range []string{"herald:events", "plain", "x{tag}y"} {
		if keys.Slot(keys.WaitMark(k)) != keys.Slot(k) {
			t.Errorf("WaitMark(%q) = %q, in another slot", k, keys.WaitMark(k))
		}
	}
}
