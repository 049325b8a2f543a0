package pubsub

import "testing"

// The slots Redis's CLUSTER KEYSLOT gives for these keys.
func TestKeySlot(t *testing.T) {
	for key, want := range map[string]int{
		"foo":                  12182,
		"123456789":            12739,
		"{user1000}.following": 3443,
		"foo{}{bar}":           8363,
		"foo{{bar}}zap":        4015,
		"foo{bar}{zap}":        5061,
		"herald:ch:{t1:u:u42}": keySlot("t1:u:u42"),
		"":                     0,
	} {
		if got := keySlot(key); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, want)
		}
	}
}
