package ratelimit

import (
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/redistest"
)

// TestRulesOnRedisCluster stores rules with put.lua on a real three-master
// cluster and has a watcher on another connection apply them: the script's
// one key is in one slot, and its plain PUBLISH reaches every node's
// subscribers (rule changes are rare; they are not worth a sharded channel).
func TestRulesOnRedisCluster(t *testing.T) {
	rdb := redistest.StartCluster(t, 3).Client(t)
	store := NewStore(rdb, testSpace)
	a := &recorder{}
	w := NewWatcher(NewStore(rdb, testSpace), a.apply, WatcherConfig{Logger: testLogger(t)})
	runWatcher(t, w.Run)
	for v, doc := range []string{rulesV1, rulesV2} {
		if _, err := store.Put(t.Context(), []byte(doc), "alice"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "the watcher applies the new version", func() bool { return a.version() == int64(v+1) })
	}
}
