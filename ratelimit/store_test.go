package ratelimit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
)

const rulesV1 = `version: 1
rules:
  - name: per-user
    per: user
    limit: 2
    interval: 1m
    action: drop
`

const rulesV2 = `version: 1
rules:
  - name: per-user
    per: user
    limit: 4
    interval: 1m
    action: drop
`

// An invalid document: interval 0s on line 7.
const rulesBad = `version: 1
rules:
  - name: per-user
    per: user
    limit: 2
    action: drop
    interval: 0s
`

var testSpace = keys.Space{Prefix: "t:"}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond) // polling, not synchronisation
	}
}

func TestStorePutGetAndConflicts(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	s := NewStore(rdb, testSpace)
	ctx := t.Context()
	if _, err := s.Get(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty store: %v", err)
	}
	sub := rdb.Subscribe(ctx, testSpace.RulesChannel())
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // subscribed
		t.Fatal(err)
	}
	m1, err := s.PutIf(ctx, []byte(rulesV1), "alice", 0)
	if err != nil || m1.Version != 1 || m1.UpdatedBy != "alice" {
		t.Fatalf("first put: %+v %v", m1, err)
	}
	if msg, err := sub.ReceiveMessage(ctx); err != nil || msg.Payload != "1" {
		t.Fatalf("announcement: %v %v", msg, err)
	}
	m2, err := s.Put(ctx, []byte(rulesV2), "bob\n\x00")
	if err != nil || m2.Version != 2 || m2.UpdatedBy != "bob" {
		t.Fatalf("second put: %+v %v", m2, err)
	}
	st, err := s.Get(ctx)
	if err != nil || string(st.YAML) != rulesV2 || st.Meta.Version != 2 || st.Meta.UpdatedBy != "bob" ||
		time.Since(st.Meta.UpdatedAt) > time.Minute || st.Meta.Origin != "redis" {
		t.Fatalf("get: %+v %v", st.Meta, err)
	}
	var conflict *ConflictError
	if _, err := s.PutIf(ctx, []byte(rulesV1), "carol", 1); !errors.As(err, &conflict) || conflict.Current != 2 || !errors.Is(err, ErrConflict) {
		t.Fatalf("stale put: %v", err)
	}
	if _, err := s.PutIf(ctx, []byte(rulesV1), "carol", 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("create when one exists: %v", err)
	}
	// Invalid: refused whole, with line and field, and nothing changes.
	_, err = s.Put(ctx, []byte(rulesBad), "mallory")
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `line 7: rule "per-user": field interval: "0s" must be positive`) {
		t.Fatalf("invalid put: %v", err)
	}
	if st, _ := s.Get(ctx); st.Meta.Version != 2 {
		t.Fatalf("invalid put changed the store: %+v", st.Meta)
	}
	doc, err := s.Load(ctx)
	if err != nil || doc.Meta.Version != 2 || doc.Rules[0].Limit != 4 {
		t.Fatalf("load: %+v %v", doc, err)
	}
}

// recorder is an ApplyFunc that remembers what it was given.
type recorder struct {
	mu   sync.Mutex
	docs []*Document
	next ApplyFunc
}

func (r *recorder) apply(doc *Document) error {
	if r.next != nil {
		if err := r.next(doc); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.docs = append(r.docs, doc)
	return nil
}

func (r *recorder) version() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.docs) == 0 {
		return -1
	}
	return r.docs[len(r.docs)-1].Meta.Version
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.docs)
}

// runWatcher runs w until the test ends.
func runWatcher(t *testing.T, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestWatchersApplyEveryChangeWithinTwoSeconds(t *testing.T) {
	srv := redistest.Start(t)
	store := NewStore(srv.Client(t), testSpace)
	l := newLimiter(t, "")
	m := l.Metrics()
	a := &recorder{}
	b := &recorder{next: l.Apply} // one edge with the real Limiter
	for _, r := range []*recorder{a, b} {
		w := NewWatcher(NewStore(srv.Client(t), testSpace), r.apply, WatcherConfig{Logger: testLogger(t), Metrics: m})
		runWatcher(t, w.Run)
	}
	if _, err := store.Put(t.Context(), []byte(rulesV1), "alice"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "both watchers apply version 1", func() bool { return a.version() == 1 && b.version() == 1 })
	if n, _ := pushes(l, 5, "acme", "1", "x"); n != 2 {
		t.Fatalf("version 1 (limit 2): %d of 5 allowed", n)
	}
	start := time.Now()
	if _, err := store.Put(t.Context(), []byte(rulesV2), "bob"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "both watchers apply version 2", func() bool { return a.version() == 2 && b.version() == 2 })
	t.Logf("version 2 reached both watchers in %v", time.Since(start))
	if _, meta := l.Current(); meta.Version != 2 || meta.UpdatedBy != "bob" {
		t.Fatalf("limiter has %+v", meta)
	}
	if n, _ := pushes(l, 5, "acme", "2", "x"); n != 4 {
		t.Fatalf("version 2 (limit 4): %d of 5 allowed", n)
	}

	// Refused by the Store with the field named; nothing reaches the edges.
	if _, err := store.Put(t.Context(), []byte(rulesBad), "mallory"); !errors.Is(err, ErrInvalid) ||
		!strings.Contains(err.Error(), `line 7: rule "per-user": field interval: "0s" must be positive`) {
		t.Fatalf("invalid put: %v", err)
	}
	// Written around the Store: the watchers refuse it, count it, keep v2.
	rdb := srv.Client(t)
	rdb.HSet(t.Context(), testSpace.Rules(), "yaml", rulesBad, "version", 3)
	rdb.Publish(t.Context(), testSpace.RulesChannel(), "3")
	eventually(t, 2*time.Second, "reload errors counted", func() bool { return value(m.reloadErrors) == 2 })
	if a.version() != 2 || b.version() != 2 || a.count() != 2 {
		t.Fatalf("an invalid stored document was applied: %d %d", a.version(), b.version())
	}
	if n, _ := pushes(l, 5, "acme", "3", "x"); n != 4 {
		t.Fatalf("old rules no longer in force: %d of 5", n)
	}
}

func TestWatcherCatchesUpAfterReconnectAndOnFallback(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	store := NewStore(rdb, testSpace)
	if _, err := store.Put(t.Context(), []byte(rulesV1), "alice"); err != nil {
		t.Fatal(err)
	}
	slow, fast := &recorder{}, &recorder{}
	var syncs atomic.Int32
	fw := NewWatcher(store, fast.apply, WatcherConfig{Logger: testLogger(t), Fallback: 100 * time.Millisecond})
	fw.synced = func() { syncs.Add(1) }
	runWatcher(t, NewWatcher(store, slow.apply, WatcherConfig{Logger: testLogger(t), Fallback: time.Hour}).Run)
	runWatcher(t, fw.Run)
	eventually(t, 2*time.Second, "version 1 applied at start", func() bool { return slow.version() == 1 && fast.version() == 1 })

	// A change nobody announces: only the fallback read finds it...
	rdb.HSet(t.Context(), testSpace.Rules(), "yaml", rulesV2, "version", 2)
	eventually(t, 2*time.Second, "fallback applies version 2", func() bool { return fast.version() == 2 })
	if slow.version() != 1 {
		t.Fatal("the watcher without fallback saw an unannounced change")
	}
	// ...or a Pub/Sub reconnect, after which the watcher reads again.
	if err := rdb.ClientKillByFilter(t.Context(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "reconnect applies version 2", func() bool { return slow.version() == 2 })
	if slow.count() != 2 || fast.count() != 2 {
		t.Fatalf("re-reads applied unchanged documents again: %d %d", slow.count(), fast.count())
	}

	// The document vanishing (a Redis without persistence restarted) keeps
	// the rules in force.
	rdb.Del(t.Context(), testSpace.Rules())
	rdb.Publish(t.Context(), testSpace.RulesChannel(), "0")
	after := syncs.Load()
	eventually(t, 2*time.Second, "three more reads", func() bool { return syncs.Load() >= after+3 })
	if fast.version() != 2 || fast.count() != 2 {
		t.Fatalf("a missing document changed the rules: %d", fast.version())
	}
}

func TestWatcherSurvivesRedisRestart(t *testing.T) {
	srv := redistest.Start(t, redistest.WithAOF())
	rdb := srv.Client(t)
	store := NewStore(rdb, testSpace)
	if _, err := store.Put(t.Context(), []byte(rulesV1), "alice"); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	runWatcher(t, NewWatcher(NewStore(srv.Client(t), testSpace), rec.apply,
		WatcherConfig{Logger: testLogger(t), Fallback: time.Hour}).Run)
	eventually(t, 2*time.Second, "version 1", func() bool { return rec.version() == 1 })
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(t.Context(), []byte(rulesV2), "bob"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "version 2 after the restart", func() bool { return rec.version() == 2 })
}
