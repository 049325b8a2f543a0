package store

import (
	"context"
	"testing"
	"time"
)

// TestAckSyncNotStrandedByForget: an AckSync whose position a Forget drops
// from the pending set before the writer takes it must still return. Before
// the fix the writer found the pending set empty, skipped the commit, and
// left the generation AckSync (and Flush) wait on open for good.
func TestAckSyncNotStrandedByForget(t *testing.T) {
	s := openTest(t, "", Config{FlushInterval: time.Hour})
	p := pos("t1", "u1", "d1", "topic:x", "e1", 7)
	mustAck(t, s, pos("t1", "u1", "other", "user", "e1", 1))

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	// Hold the writer inside a commit of the other device's position.
	s.writeMu.Lock()
	flushed := make(chan error, 1)
	go func() { flushed <- s.Flush(ctx) }()
	waitFor(t, "the writer to take the first set", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.inflightGen != nil
	})

	synced := make(chan error, 1)
	go func() { synced <- s.AckSync(ctx, p) }()
	waitFor(t, "AckSync to enqueue", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.pending.has(deviceKey{"t1", "u1", "d1"}, "topic:x")
	})
	// A Flush now waits for the set holding the position, which is
	// committed after the one in flight: it must not return before that.
	flushed2 := make(chan error, 1)
	go func() { flushed2 <- s.Flush(ctx) }()
	forgot := make(chan error, 1)
	go func() { forgot <- s.Forget("t1", "u1", "d1", "topic:x") }()
	waitFor(t, "Forget to drop the pending position", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.pending.n == 0
	})
	select {
	case err := <-flushed2:
		t.Errorf("Flush returned (%v) while a commit was still in flight", err)
	default:
	}
	s.writeMu.Unlock()

	for name, ch := range map[string]chan error{"Flush": flushed, "second Flush": flushed2, "Forget": forgot, "AckSync": synced} {
		if err := <-ch; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got := mustAcks(t, s, "t1", "u1", "d1"); len(got) != 0 {
		t.Errorf("positions %v after Forget, want none", got)
	}
}
