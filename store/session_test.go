package store

import (
	"errors"
	"testing"
	"time"
)

func TestSessionLifecycle(t *testing.T) {
	s := openTest(t, "", Config{})
	base := time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, id := range []string{"s1", "s2", "s3"} {
		err := s.PutSession(Session{ID: id, Tenant: "t1", User: "u1", Device: "d1",
			Edge: "edge-a", RemoteAddr: "127.0.0.1:1", ConnectedAt: base})
		if err != nil {
			t.Fatal(err)
		}
	}
	if live := mustLive(t, s); len(live) != 3 {
		t.Fatalf("live = %d, want 3", len(live))
	}
	if err := s.CloseSession("s1", 1000, "bye", base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseSession("s2", 4008, "slow consumer", base.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseSession("s2", 1000, "", time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("closing a closed session = %v, want ErrNotFound", err)
	}
	if err := s.CloseSession("nope", 1000, "", time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("closing an unknown session = %v, want ErrNotFound", err)
	}
	live := mustLive(t, s)
	if len(live) != 1 || live[0].ID != "s3" || live[0].Edge != "edge-a" || !live[0].ConnectedAt.Equal(base) {
		t.Fatalf("live = %+v, want s3", live)
	}
	closed := mustClosed(t, s, 0)
	if len(closed) != 2 || closed[0].ID != "s2" || closed[1].ID != "s1" {
		t.Fatalf("closed = %+v, want s2, s1 (newest first)", closed)
	}
	c := closed[0]
	if c.CloseCode != 4008 || c.CloseReason != "slow consumer" || !c.ClosedAt.Equal(base.Add(2*time.Minute)) ||
		c.User != "u1" || c.RemoteAddr != "127.0.0.1:1" {
		t.Errorf("closed[0] = %+v", c)
	}
	if got := mustClosed(t, s, 1); len(got) != 1 || got[0].ID != "s2" {
		t.Errorf("RecentlyClosed(1) = %+v", got)
	}

	n, err := s.PruneClosed(base.Add(2 * time.Minute)) // strictly older than s2
	if err != nil || n != 1 {
		t.Fatalf("PruneClosed = %d, %v, want 1", n, err)
	}
	if got := mustClosed(t, s, 0); len(got) != 1 || got[0].ID != "s2" {
		t.Errorf("after prune: %+v, want s2", got)
	}
	if n, err := s.PruneClosed(base); err != nil || n != 0 {
		t.Errorf("second PruneClosed = %d, %v, want 0", n, err)
	}
}

func TestSessionOrderAcrossEpoch(t *testing.T) {
	s := openTest(t, "", Config{})
	times := []time.Time{
		time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(0, 0),
		time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i, at := range times {
		id := string(rune('a' + i))
		if err := s.PutSession(Session{ID: id}); err != nil {
			t.Fatal(err)
		}
		if err := s.CloseSession(id, 1000, "", at); err != nil {
			t.Fatal(err)
		}
	}
	got := mustClosed(t, s, 0)
	if len(got) != 3 || got[0].ID != "c" || got[1].ID != "b" || got[2].ID != "a" {
		t.Errorf("closed order = %+v, want c b a", got)
	}
}

func TestPutSessionInvalid(t *testing.T) {
	s := openTest(t, "", Config{})
	if err := s.PutSession(Session{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("PutSession(empty id) = %v, want ErrInvalid", err)
	}
}

func mustLive(t *testing.T, s *Store) []Session {
	t.Helper()
	live, err := s.LiveSessions()
	if err != nil {
		t.Fatalf("LiveSessions: %v", err)
	}
	return live
}

func mustClosed(t *testing.T, s *Store, limit int) []Session {
	t.Helper()
	closed, err := s.RecentlyClosed(limit)
	if err != nil {
		t.Fatalf("RecentlyClosed: %v", err)
	}
	return closed
}
