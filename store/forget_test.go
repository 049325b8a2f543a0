package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestForget deletes one feed's position in each state it can be in, and
// nothing else: not the device's other feeds, not devices whose ids share a
// prefix with it.
func TestForget(t *testing.T) {
	states := map[string]func(t *testing.T, s *Store, p AckPosition){
		"pending": func(t *testing.T, s *Store, p AckPosition) { mustAck(t, s, p) },
		"dirty":   func(t *testing.T, s *Store, p AckPosition) { mustAckSync(t, s, p) },
		"flushed": func(t *testing.T, s *Store, p AckPosition) {
			mustAckSync(t, s, p)
			if err := s.MarkFlushed([]AckPosition{p}); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, put := range states {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir, Config{FlushInterval: time.Hour})
			mustAckSync(t, s, pos("t1", "u1", "d1", "user", "e1", 3))
			for _, d := range []string{"d", "d10"} {
				mustAckSync(t, s, pos("t1", "u1", d, "topic:news", "e1", 4))
			}
			put(t, s, pos("t1", "u1", "d1", "topic:news", "e1", 5))

			if err := s.Forget("t1", "u1", "d1", "topic:news"); err != nil {
				t.Fatalf("Forget: %v", err)
			}
			check := func(when string) {
				t.Helper()
				if got := mustAcks(t, s, "t1", "u1", "d1"); len(got) != 1 || got["user"].Seq != 3 {
					t.Errorf("%s: d1 positions %v, want only user:3", when, got)
				}
				for _, d := range []string{"d", "d10"} {
					if got := mustAcks(t, s, "t1", "u1", d); got["topic:news"].Seq != 4 {
						t.Errorf("%s: %s positions %v, want topic:news:4 kept", when, d, got)
					}
				}
				ps, err := s.Unflushed(0)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range ps {
					if p.Device == "d1" && p.Feed == "topic:news" {
						t.Errorf("%s: Unflushed still lists %s", when, fmtPositions([]AckPosition{p}))
					}
				}
			}
			check("after Forget")
			if err := s.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			check("after Flush")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, dir, Config{FlushInterval: time.Hour})
			check("after reopen")
		})
	}
}

// TestForgetDevice deletes every position of one device, pending or stored.
func TestForgetDevice(t *testing.T) {
	s := openTest(t, "", Config{FlushInterval: time.Hour})
	mustAckSync(t, s, pos("t1", "u1", "d1", "user", "e1", 1))
	mustAckSync(t, s, pos("t1", "u1", "d1", "tenant", "e1", 2))
	mustAck(t, s, pos("t1", "u1", "d1", "topic:a", "e1", 3))
	mustAckSync(t, s, pos("t1", "u1", "d10", "user", "e1", 4))
	mustAckSync(t, s, pos("t1", "u10", "d1", "user", "e1", 5))

	if err := s.ForgetDevice("t1", "u1", "d1"); err != nil {
		t.Fatalf("ForgetDevice: %v", err)
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := mustAcks(t, s, "t1", "u1", "d1"); len(got) != 0 {
		t.Errorf("d1 positions %v, want none", got)
	}
	if got := mustAcks(t, s, "t1", "u1", "d10"); got["user"].Seq != 4 {
		t.Errorf("d10 positions %v, want user:4", got)
	}
	if got := mustAcks(t, s, "t1", "u10", "d1"); got["user"].Seq != 5 {
		t.Errorf("u10/d1 positions %v, want user:5", got)
	}
	if n := s.UnflushedLen(); n != 2 {
		t.Errorf("UnflushedLen = %d, want 2 (d10 and u10/d1)", n)
	}
	if got := metricValue(t, s, "herald_store_unflushed_positions"); got != 2 {
		t.Errorf("unflushed gauge = %v, want 2", got)
	}
}

// TestForgetRacesCommits forgets a position again and again while the
// writer commits it and other positions: once Forget returns, no commit in
// progress may write the forgotten position back.
func TestForgetRacesCommits(t *testing.T) {
	s := openTest(t, "", Config{FlushInterval: 50 * time.Microsecond})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // other devices keep the writer busy
		for i := uint64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.Ack(pos("t1", "u1", fmt.Sprint("other", i%50), "user", "e1", i)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for i := uint64(1); i <= 300; i++ {
		mustAck(t, s, pos("t1", "u1", "d1", "topic:x", "e1", i))
		if i%3 == 0 {
			time.Sleep(time.Duration(i%7) * 20 * time.Microsecond) // let a commit take it
		}
		if err := s.Forget("t1", "u1", "d1", "topic:x"); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := mustAcks(t, s, "t1", "u1", "d1"); len(got) != 0 {
			t.Fatalf("round %d: positions %v after Forget and Flush, want none", i, got)
		}
	}
	close(stop)
	wg.Wait()
}

func TestForgetErrors(t *testing.T) {
	s := openTest(t, "", Config{})
	if err := s.Forget("t1", "u1", "d1", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("Forget with empty feed: %v, want ErrInvalid", err)
	}
	if err := s.ForgetDevice("t1", "", "d1"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ForgetDevice with empty user: %v, want ErrInvalid", err)
	}
	if err := s.Forget("t1", "u1", "d1", "user"); err != nil {
		t.Errorf("Forget of a position never stored: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Forget("t1", "u1", "d1", "user"); !errors.Is(err, ErrClosed) {
		t.Errorf("Forget after Close: %v, want ErrClosed", err)
	}
}

func mustAck(t *testing.T, s *Store, p AckPosition) {
	t.Helper()
	if err := s.Ack(p); err != nil {
		t.Fatalf("Ack: %v", err)
	}
}

func mustAckSync(t *testing.T, s *Store, p AckPosition) {
	t.Helper()
	if err := s.AckSync(t.Context(), p); err != nil {
		t.Fatalf("AckSync: %v", err)
	}
}
