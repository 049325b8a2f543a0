package store

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestUnflushedAndMarkFlushed(t *testing.T) {
	s := openTest(t, "", Config{})
	ps := []AckPosition{
		pos("t1", "u1", "d1", "user", "e1", 3),
		pos("t1", "u1", "d1", "topic:a", "e1", 4),
		pos("t1", "u2", "d1", "user", "e1", 5),
	}
	for _, p := range ps {
		if err := s.AckSync(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	all := mustUnflushed(t, s, 0)
	if len(all) != 3 {
		t.Fatalf("Unflushed(0) = %s, want 3 positions", fmtPositions(all))
	}
	if got := mustUnflushed(t, s, 2); len(got) != 2 {
		t.Fatalf("Unflushed(2) = %d positions, want 2", len(got))
	}
	if got := metricValue(t, s, "herald_store_unflushed_positions"); got != 3 {
		t.Errorf("unflushed gauge = %v, want 3", got)
	}

	if err := s.MarkFlushed(all[:2]); err != nil {
		t.Fatal(err)
	}
	left := mustUnflushed(t, s, 0)
	if len(left) != 1 || !same(left[0], all[2]) {
		t.Fatalf("after MarkFlushed: %s, want %s", fmtPositions(left), fmtPositions(all[2:]))
	}
	if got := metricValue(t, s, "herald_store_unflushed_positions"); got != 1 {
		t.Errorf("unflushed gauge = %v, want 1", got)
	}
	// Marking again (or marking unknown positions) changes nothing.
	if err := s.MarkFlushed(append(all[:2:2], pos("t9", "u9", "d9", "user", "e", 1))); err != nil {
		t.Fatal(err)
	}
	if got := len(mustUnflushed(t, s, 0)); got != 1 {
		t.Errorf("after repeated MarkFlushed: %d unflushed, want 1", got)
	}
	// Clean positions keep their value.
	if got := mustAcks(t, s, "t1", "u1", "d1"); got["user"].Seq != 3 || got["topic:a"].Seq != 4 {
		t.Errorf("acks after MarkFlushed = %v", got)
	}
}

func TestMarkFlushedNewerAckKeepsDirty(t *testing.T) {
	tests := []struct {
		name  string
		newer AckPosition
	}{
		{"higher seq", pos("t1", "u1", "d1", "user", "e1", 6)},
		{"new epoch", pos("t1", "u1", "d1", "user", "e2", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, "", Config{})
			if err := s.AckSync(t.Context(), pos("t1", "u1", "d1", "user", "e1", 5)); err != nil {
				t.Fatal(err)
			}
			listed := mustUnflushed(t, s, 0) // the hand-off reads e1:5 ...
			if err := s.AckSync(t.Context(), tt.newer); err != nil {
				t.Fatal(err) // ... a newer ack lands ...
			}
			if err := s.MarkFlushed(listed); err != nil {
				t.Fatal(err) // ... and the hand-off confirms e1:5.
			}
			got := mustUnflushed(t, s, 0)
			if len(got) != 1 || !same(got[0], tt.newer) {
				t.Fatalf("Unflushed = %s, want the newer position", fmtPositions(got))
			}
			if err := s.MarkFlushed(got); err != nil {
				t.Fatal(err)
			}
			if got := mustUnflushed(t, s, 0); len(got) != 0 {
				t.Fatalf("Unflushed = %s, want none", fmtPositions(got))
			}
			// Re-acking the same position does not dirty it; moving on does.
			if err := s.AckSync(t.Context(), tt.newer); err != nil {
				t.Fatal(err)
			}
			if got := mustUnflushed(t, s, 0); len(got) != 0 {
				t.Fatalf("after equal ack: Unflushed = %s, want none", fmtPositions(got))
			}
			next := tt.newer
			next.Seq++
			if err := s.AckSync(t.Context(), next); err != nil {
				t.Fatal(err)
			}
			if got := mustUnflushed(t, s, 0); len(got) != 1 || !same(got[0], next) {
				t.Fatalf("after forward ack: Unflushed = %s", fmtPositions(got))
			}
		})
	}
}

// TestMarkFlushedRace runs the hand-off loop against a stream of acks. At
// the end the stored position must be dirty unless the hand-off confirmed
// exactly that position.
func TestMarkFlushedRace(t *testing.T) {
	s := openTest(t, "", Config{FlushInterval: 200 * time.Microsecond})
	const last = 2000
	var stop atomic.Bool
	var marked sync.Map // seq -> true, every seq passed to MarkFlushed
	var wg sync.WaitGroup
	wg.Go(func() {
		defer stop.Store(true)
		for seq := uint64(1); seq <= last; seq++ {
			if err := s.Ack(pos("t1", "u1", "d1", "user", "e1", seq)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for !stop.Load() {
			ps, err := s.Unflushed(0)
			if err == nil {
				for _, p := range ps {
					marked.Store(p.Seq, true)
				}
				err = s.MarkFlushed(ps)
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := mustUnflushed(t, s, 0)
	_, confirmed := marked.Load(uint64(last))
	switch {
	case len(got) == 1 && got[0].Seq == last:
		// dirty: fine whether or not a hand-off raced it.
	case len(got) == 0 && confirmed:
		// the hand-off confirmed the final position itself.
	default:
		t.Fatalf("Unflushed = %s (final seq %d confirmed: %v)", fmtPositions(got), last, confirmed)
	}
}

func mustUnflushed(t *testing.T, s *Store, limit int) []AckPosition {
	t.Helper()
	ps, err := s.Unflushed(limit)
	if err != nil {
		t.Fatalf("Unflushed: %v", err)
	}
	return ps
}
