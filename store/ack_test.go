package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestAckForwardOnly(t *testing.T) {
	type step struct {
		epoch string
		seq   uint64
	}
	tests := []struct {
		name  string
		steps []step
		want  step
	}{
		{"increasing", []step{{"e1", 1}, {"e1", 2}, {"e1", 7}}, step{"e1", 7}},
		{"lower ignored", []step{{"e1", 10}, {"e1", 3}}, step{"e1", 10}},
		{"equal ignored", []step{{"e1", 10}, {"e1", 10}}, step{"e1", 10}},
		{"new epoch replaces lower seq", []step{{"e1", 10}, {"e2", 1}}, step{"e2", 1}},
		{"new epoch then forward", []step{{"e1", 10}, {"e2", 1}, {"e2", 0}, {"e2", 4}}, step{"e2", 4}},
		{"back to old epoch replaces", []step{{"e1", 10}, {"e2", 20}, {"e1", 5}}, step{"e1", 5}},
	}
	modes := map[string]func(t *testing.T, s *Store, p AckPosition){
		// Each step committed before the next: the rule applies against disk.
		"AckSync": func(t *testing.T, s *Store, p AckPosition) {
			if err := s.AckSync(t.Context(), p); err != nil {
				t.Fatalf("AckSync: %v", err)
			}
		},
		// Steps coalesce in memory: the rule applies in the pending set.
		"Ack": func(t *testing.T, s *Store, p AckPosition) {
			if err := s.Ack(p); err != nil {
				t.Fatalf("Ack: %v", err)
			}
		},
	}
	for mode, apply := range modes {
		for _, tt := range tests {
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				s := openTest(t, "", Config{FlushInterval: time.Hour})
				for _, st := range tt.steps {
					apply(t, s, pos("t1", "u1", "d1", "user", st.epoch, st.seq))
				}
				if err := s.Flush(t.Context()); err != nil {
					t.Fatalf("Flush: %v", err)
				}
				got := mustAcks(t, s, "t1", "u1", "d1")["user"]
				if got.Epoch != tt.want.epoch || got.Seq != tt.want.seq {
					t.Errorf("position = %s:%d, want %s:%d", got.Epoch, got.Seq, tt.want.epoch, tt.want.seq)
				}
			})
		}
	}
}

func TestAckCoalescing(t *testing.T) {
	s := openTest(t, "", Config{FlushInterval: time.Hour})
	for seq := uint64(1); seq <= 1000; seq++ {
		if err := s.Ack(pos("t1", "u1", "d1", "user", "e1", seq)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Ack(pos("t1", "u1", "d1", "tenant", "e9", 3)); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, s, "herald_store_pending_positions"); got != 2 {
		t.Errorf("pending = %v, want 2", got)
	}
	if got := metricValue(t, s, "herald_store_ack_coalesced_total"); got != 999 {
		t.Errorf("coalesced = %v, want 999", got)
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, s, "herald_store_flush_batches_total"); got != 1 {
		t.Errorf("flush batches = %v, want 1", got)
	}
	if got := metricValue(t, s, "herald_store_flush_positions_total"); got != 2 {
		t.Errorf("positions written = %v, want 2", got)
	}
	acks := mustAcks(t, s, "t1", "u1", "d1")
	if acks["user"].Seq != 1000 || acks["tenant"].Seq != 3 || len(acks) != 2 {
		t.Errorf("acks = %v", acks)
	}
}

func TestAckFlushesWithinInterval(t *testing.T) {
	s := openTest(t, "", Config{FlushInterval: 2 * time.Millisecond})
	if err := s.Ack(pos("t1", "u1", "d1", "user", "e1", 5)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "background commit", func() bool {
		ps, err := s.Unflushed(0) // lists committed positions only
		return err == nil && len(ps) == 1 && ps[0].Seq == 5
	})
}

func TestAcksReadYourWrites(t *testing.T) {
	s := openTest(t, "", Config{FlushInterval: time.Hour})
	if err := s.AckSync(t.Context(), pos("t1", "u1", "d1", "user", "e1", 10)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []AckPosition{
		pos("t1", "u1", "d1", "user", "e1", 4),       // behind disk: disk wins
		pos("t1", "u1", "d1", "topic:news", "n1", 7), // only in memory
		pos("t1", "u1", "d2", "user", "e1", 99),      // another device
	} {
		if err := s.Ack(p); err != nil {
			t.Fatal(err)
		}
	}
	if ps, _ := s.Unflushed(0); len(ps) != 1 {
		t.Fatalf("precondition: %d positions on disk, want 1 (writer must not have run)", len(ps))
	}
	acks := mustAcks(t, s, "t1", "u1", "d1")
	if len(acks) != 2 || acks["user"].Seq != 10 || acks["topic:news"].Seq != 7 {
		t.Errorf("acks = %v, want user=10 topic:news=7", acks)
	}
	if err := s.Ack(pos("t1", "u1", "d1", "user", "e2", 1)); err != nil { // epoch change in memory
		t.Fatal(err)
	}
	if got := mustAcks(t, s, "t1", "u1", "d1")["user"]; got.Epoch != "e2" || got.Seq != 1 {
		t.Errorf("after epoch change: %s:%d, want e2:1", got.Epoch, got.Seq)
	}
}

// TestAcksReadYourWritesConcurrent races Acks against the writer's commits:
// a reader must never see a position older than one it acked itself.
func TestAcksReadYourWritesConcurrent(t *testing.T) {
	s := openTest(t, "", Config{FlushInterval: 100 * time.Microsecond})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			dev := fmt.Sprintf("d%d", g)
			for seq := uint64(1); seq <= 500; seq++ {
				epoch := fmt.Sprintf("e%d", seq/100) // epoch changes too
				if err := s.Ack(pos("t1", "u1", dev, "user", epoch, seq)); err != nil {
					errs <- err
					return
				}
				got, err := s.Acks("t1", "u1", dev)
				if err != nil {
					errs <- err
					return
				}
				if p := got["user"]; p.Seq != seq || p.Epoch != epoch {
					errs <- fmt.Errorf("%s: read %s:%d after acking %s:%d", dev, p.Epoch, p.Seq, epoch, seq)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestAckBlocksWhenFullNeverDrops(t *testing.T) {
	s := openTest(t, "", Config{FlushInterval: time.Hour, MaxPending: 4})
	const n = 50
	for i := range n { // 50 distinct keys through a pending set of 4
		if err := s.Ack(pos("t1", "u1", fmt.Sprintf("d%02d", i), "user", "e1", uint64(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if got := metricValue(t, s, "herald_store_ack_blocked_total"); got < 1 {
		t.Errorf("blocked = %v, want >= 1", got)
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	ps, err := s.Unflushed(0)
	if err != nil || len(ps) != n {
		t.Fatalf("Unflushed = %d positions (%v), want %d", len(ps), err, n)
	}
}

func TestAckSyncConcurrentShareCommits(t *testing.T) {
	s := openTest(t, "", Config{})
	const n = 32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := s.AckSync(t.Context(), pos("t1", "u1", fmt.Sprintf("d%d", i), "user", "e1", 1)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	ps, err := s.Unflushed(0)
	if err != nil || len(ps) != n {
		t.Fatalf("Unflushed = %d (%v), want %d", len(ps), err, n)
	}
	batches := metricValue(t, s, "herald_store_flush_batches_total")
	t.Logf("%d AckSync calls took %v commits", n, batches)
	if batches > n {
		t.Errorf("batches = %v, want <= %d", batches, n)
	}
}

func TestAckSyncContextCancelled(t *testing.T) {
	s := openTest(t, "", Config{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := s.AckSync(ctx, pos("t1", "u1", "d1", "user", "e1", 1))
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("AckSync = %v, want nil or context.Canceled", err)
	}
	if err := s.Flush(t.Context()); err != nil { // the write itself still happens
		t.Fatal(err)
	}
	if got := mustAcks(t, s, "t1", "u1", "d1")["user"].Seq; got != 1 {
		t.Errorf("seq = %d, want 1", got)
	}
}

func TestAckInvalid(t *testing.T) {
	s := openTest(t, "", Config{})
	for _, p := range []AckPosition{
		pos("", "u", "d", "f", "e", 1),
		pos("t", "", "d", "f", "e", 1),
		pos("t", "u", "", "f", "e", 1),
		pos("t", "u", "d", "", "e", 1),
	} {
		if err := s.Ack(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("Ack(%+v) = %v, want ErrInvalid", p, err)
		}
		if err := s.AckSync(t.Context(), p); !errors.Is(err, ErrInvalid) {
			t.Errorf("AckSync(%+v) = %v, want ErrInvalid", p, err)
		}
	}
}

// TestAcksIsolatesDevices checks that ids containing separators cannot make
// one device's scan see another's positions.
func TestAcksIsolatesDevices(t *testing.T) {
	s := openTest(t, "", Config{})
	ids := [][3]string{
		{"a", "b", "c"}, {"a", "b", "c/x"}, {"a", "b/c", "x"}, {"a/b", "c", "x"},
		{"a", "b:c", "d"}, {"a", "b", "c:d"}, {"a", "b", "cc"},
	}
	for i, id := range ids {
		if err := s.AckSync(t.Context(), pos(id[0], id[1], id[2], "topic:n", "e", uint64(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range ids {
		acks := mustAcks(t, s, id[0], id[1], id[2])
		if len(acks) != 1 || acks["topic:n"].Seq != uint64(i+1) {
			t.Errorf("Acks(%q) = %v, want only seq %d", id, acks, i+1)
		}
	}
}

func mustAcks(t *testing.T, s *Store, tenant, user, device string) map[string]AckPosition {
	t.Helper()
	acks, err := s.Acks(tenant, user, device)
	if err != nil {
		t.Fatalf("Acks: %v", err)
	}
	return acks
}

// TestRequeueKeepsNewer checks how a failed commit's positions go back under
// the positions that arrived meanwhile: forward-only within an epoch, the
// newer epoch wins, and positions only in the failed batch are pending again.
func TestRequeueKeepsNewer(t *testing.T) {
	s := openTest(t, "", Config{FlushInterval: time.Hour})
	dk := deviceKey{"t1", "u1", "d1"}
	failed := newPendingSet(0)
	for _, p := range []AckPosition{
		pos("t1", "u1", "d1", "user", "e1", 10),
		pos("t1", "u1", "d1", "tenant", "e1", 10),
		pos("t1", "u1", "d1", "topic:a", "e1", 10),
		pos("t1", "u1", "d1", "topic:b", "e1", 10), // only in the failed batch
		pos("t1", "u1", "d2", "user", "e1", 1),     // another device, only failed
	} {
		failed.put(deviceKey{p.Tenant, p.User, p.Device}, p)
	}
	s.mu.Lock()
	for _, p := range []AckPosition{
		pos("t1", "u1", "d1", "user", "e1", 12),   // newer: kept
		pos("t1", "u1", "d1", "tenant", "e1", 7),  // older: the failed one wins
		pos("t1", "u1", "d1", "topic:a", "e2", 1), // new epoch: kept
		pos("t1", "u1", "d1", "topic:c", "e1", 3), // only pending
	} {
		s.pending.put(dk, p)
	}
	s.requeueLocked(failed)
	got := s.overlayLocked(dk)
	n := s.pending.n
	s.mu.Unlock()

	want := map[string]string{"user": "e1:12", "tenant": "e1:10", "topic:a": "e2:1", "topic:b": "e1:10", "topic:c": "e1:3"}
	if len(got) != len(want) {
		t.Errorf("pending feeds of d1 = %v, want %v", got, want)
	}
	for feed, w := range want {
		if p := got[feed]; fmt.Sprintf("%s:%d", p.Epoch, p.Seq) != w {
			t.Errorf("%s = %s:%d, want %s", feed, p.Epoch, p.Seq, w)
		}
	}
	if n != 6 {
		t.Errorf("pending count = %d, want 6", n)
	}
}
