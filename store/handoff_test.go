package store

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
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
	// Marking again (or marking unknown positions, or one twice in a call)
	// changes nothing.
	if err := s.MarkFlushed(append(all[:2:2], pos("t9", "u9", "d9", "user", "e", 1), all[0])); err != nil {
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

// TestUnflushedKeyOrderAndPaging checks that Unflushed lists positions in
// dirty-index key order (length-prefixed ids, so not the order of the id
// strings) and that paging with MarkFlushed, with acks landing between
// pages, hands off every position exactly at its latest value.
func TestUnflushedKeyOrderAndPaging(t *testing.T) {
	s := openTest(t, "", Config{})
	long := func(n int) string { return strings.Repeat("x", n) }
	ids := []posID{
		{"b", "u", "d", "user"}, {"aa", "u", "d", "user"}, // "b" sorts first: shorter
		{"t", "u", long(127), "user"}, {"t", "u", long(128), "user"}, {"t", "u", long(300), "user"},
		{"t", "u", "d", "topic:z"}, {"t", "u", "d", "user"}, {"t", "u", "d", "tenant"},
		{"t", "u", "dd", "user"}, {"t", "u2", "d", "user"}, {"t", "u10", "d", "user"},
	}
	for i := range 40 {
		ids = append(ids, posID{"t", fmt.Sprintf("u%d", i%5), fmt.Sprintf("dev%d", i), "user"})
	}
	at := func(id posID, seq uint64) AckPosition {
		return AckPosition{Tenant: id.Tenant, User: id.User, Device: id.Device, Feed: id.Feed, Epoch: "e", Seq: seq}
	}
	for _, id := range ids {
		if err := s.Ack(at(id, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	keyOf := func(p AckPosition) []byte { return positionKey(prefixDirty, p.Tenant, p.User, p.Device, p.Feed) }
	inKeyOrder := func(ps []AckPosition) bool {
		return slices.IsSortedFunc(ps, func(a, b AckPosition) int { return bytes.Compare(keyOf(a), keyOf(b)) })
	}
	all := mustUnflushed(t, s, 0)
	if len(all) != len(ids) || !inKeyOrder(all) {
		t.Fatalf("Unflushed(0) = %d positions, in key order: %v", len(all), inKeyOrder(all))
	}
	if all[0].Tenant != "b" {
		t.Errorf("first position %s, want tenant b (shorter ids sort first)", fmtPositions(all[:1]))
	}

	// Page through; between pages, move some positions on and add one.
	latest := map[posID]uint64{}
	for _, id := range ids {
		latest[id] = 1
	}
	handed := map[posID]uint64{}
	for page := 0; ; page++ {
		want := mustUnflushed(t, s, 0)
		got := mustUnflushed(t, s, 7)
		if len(got) == 0 {
			break
		}
		if !inKeyOrder(got) || len(got) != min(7, len(want)) || !slices.EqualFunc(got, want[:len(got)], same) {
			t.Fatalf("page %d: Unflushed(7) = %s, want the first of %s", page, fmtPositions(got), fmtPositions(want))
		}
		for _, p := range got {
			handed[p.id()] = p.Seq
		}
		if page < 5 {
			moved, added := ids[(page*13)%len(ids)], posID{"a", "new", fmt.Sprint(page), "user"}
			latest[moved]++
			latest[added] = 1
			for _, p := range []AckPosition{at(moved, latest[moved]), at(added, 1)} {
				if err := s.AckSync(t.Context(), p); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := s.MarkFlushed(got); err != nil {
			t.Fatal(err)
		}
	}
	if len(handed) != len(latest) {
		t.Fatalf("handed off %d positions, want %d", len(handed), len(latest))
	}
	for id, seq := range latest {
		if handed[id] != seq {
			t.Errorf("%+v: handed off seq %d, want the latest %d", id, handed[id], seq)
		}
	}
	if got := metricValue(t, s, "herald_store_unflushed_positions"); got != 0 {
		t.Errorf("unflushed gauge = %v, want 0", got)
	}
}

// TestUnflushedAfterReopen checks that the dirty index, not memory, decides
// what is listed after a restart: positions flushed stay clean, positions
// that moved on after being listed are listed at their latest value, with
// the same values as before the restart.
func TestUnflushedAfterReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := pos("t1", "u1", "d1", "user", "e1", 5), pos("t1", "u1", "d2", "user", "e1", 6), pos("t1", "u2", "d1", "user", "e1", 7)
	for _, p := range []AckPosition{a, b, c} {
		if err := s.AckSync(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	listed := mustUnflushed(t, s, 0)
	b.Seq, b.UpdatedAt = 60, time.Date(2025, 11, 25, 12, 0, 0, 123, time.Local)
	if err := s.AckSync(t.Context(), b); err != nil { // b moves on after the listing
		t.Fatal(err)
	}
	if err := s.MarkFlushed(listed); err != nil {
		t.Fatal(err)
	}
	d := pos("t2", "u1", "d1", "topic:x", "e9", 1)
	if err := s.Ack(d); err != nil { // committed by Close
		t.Fatal(err)
	}
	before := mustUnflushed(t, s, 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(before) != 1 || !same(before[0], b) {
		t.Fatalf("before Close: Unflushed = %s, want only %s", fmtPositions(before), fmtPositions([]AckPosition{b}))
	}
	if got := before[0].UpdatedAt; !got.Equal(b.UpdatedAt) || got.Location() != time.UTC {
		t.Errorf("listed UpdatedAt = %v, want %v in UTC, as stored", got, b.UpdatedAt)
	}

	s = openTest(t, dir, Config{})
	after := mustUnflushed(t, s, 0)
	want := []AckPosition{b, d}
	if !slices.EqualFunc(after, want, same) {
		t.Fatalf("after reopen: Unflushed = %s, want %s", fmtPositions(after), fmtPositions(want))
	}
	if after[0] != before[0] {
		t.Errorf("after reopen: %+v, before: %+v", after[0], before[0])
	}
	if got := metricValue(t, s, "herald_store_unflushed_positions"); got != 2 {
		t.Errorf("unflushed gauge after reopen = %v, want 2", got)
	}
	if err := s.MarkFlushed(after); err != nil {
		t.Fatal(err)
	}
	if got := mustUnflushed(t, s, 0); len(got) != 0 {
		t.Errorf("after MarkFlushed: %s", fmtPositions(got))
	}
}

// TestLegacyDirtyFlag opens a store written before the in-memory dirty
// mirror: ACK values carry a dirty flag, which no longer means anything. The
// dirty index alone decides what is listed; values written now have no flag.
func TestLegacyDirtyFlag(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	legacy := storedAck{Epoch: "e1", Seq: 4, UpdatedAt: time.Unix(1732550000, 0), Dirty: true}
	dirtyP, staleFlagP := pos("t1", "u1", "d1", "user", "e1", 4), pos("t1", "u1", "d2", "user", "e1", 4)
	corruptP := pos("t1", "u1", "d3", "user", "e1", 4)
	err = s.withDB(func(db *pebble.DB) error {
		b := db.NewBatch()
		defer b.Close()
		for _, p := range []AckPosition{dirtyP, staleFlagP, corruptP} {
			_ = b.Set(positionKey(prefixAck, p.Tenant, p.User, p.Device, p.Feed), encodeAck(legacy), nil)
		}
		_ = b.Set(positionKey(prefixDirty, dirtyP.Tenant, dirtyP.User, dirtyP.Device, dirtyP.Feed), encodeAck(legacy), nil)
		_ = b.Set(positionKey(prefixDirty, corruptP.Tenant, corruptP.User, corruptP.Device, corruptP.Feed), []byte{9, 9}, nil)
		return b.Commit(pebble.Sync)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir, Config{})
	if got := mustUnflushed(t, s, 0); len(got) != 1 || !same(got[0], dirtyP) {
		t.Fatalf("Unflushed = %s, want only %s (the one in the dirty index)", fmtPositions(got), fmtPositions([]AckPosition{dirtyP}))
	}
	// A flag without an index entry is ignored, and an equal ack is still a no-op.
	if err := s.AckSync(t.Context(), staleFlagP); err != nil {
		t.Fatal(err)
	}
	if got := mustUnflushed(t, s, 0); len(got) != 1 {
		t.Fatalf("after an equal ack: Unflushed = %s", fmtPositions(got))
	}
	next, fixed := staleFlagP, corruptP
	next.Seq, fixed.Seq = 5, 5
	for _, p := range []AckPosition{next, fixed} {
		if err := s.AckSync(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	got := mustUnflushed(t, s, 0)
	if want := []AckPosition{dirtyP, next, fixed}; !slices.EqualFunc(got, want, same) {
		t.Fatalf("Unflushed = %s, want %s", fmtPositions(got), fmtPositions(want))
	}
	raw := rawAck(t, s, next)
	if raw.Dirty || raw.Seq != 5 {
		t.Errorf("written value = %+v, want seq 5 without the dirty flag", raw)
	}
	if err := s.MarkFlushed(got); err != nil {
		t.Fatal(err)
	}
	if got := mustUnflushed(t, s, 0); len(got) != 0 {
		t.Errorf("after MarkFlushed: %s", fmtPositions(got))
	}
}

// rawAck reads the stored ACK value of p.
func rawAck(t *testing.T, s *Store, p AckPosition) storedAck {
	t.Helper()
	var a storedAck
	err := s.withDB(func(db *pebble.DB) error {
		v, closer, err := db.Get(positionKey(prefixAck, p.Tenant, p.User, p.Device, p.Feed))
		if err != nil {
			return err
		}
		defer closer.Close()
		a, err = decodeAck(v)
		return err
	})
	if err != nil {
		t.Fatalf("read stored ack: %v", err)
	}
	return a
}

func mustUnflushed(t *testing.T, s *Store, limit int) []AckPosition {
	t.Helper()
	ps, err := s.Unflushed(limit)
	if err != nil {
		t.Fatalf("Unflushed: %v", err)
	}
	return ps
}

// TestUnflushedAfterWalksOnce: a walk with UnflushedAfter reaches every
// position dirty at its start once, in key order, even when the first ones
// turn dirty again behind it; those wait for the next walk.
func TestUnflushedAfterWalksOnce(t *testing.T) {
	s := openTest(t, "", Config{})
	at := func(i int, seq uint64) AckPosition {
		return AckPosition{Tenant: "t", User: fmt.Sprintf("u%03d", i), Device: "d", Feed: "user", Epoch: "e", Seq: seq}
	}
	for i := range 50 {
		if err := s.Ack(at(i, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	var walked []AckPosition
	var after AckPosition
	for {
		ps, err := s.UnflushedAfter(after, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 0 {
			break
		}
		walked = append(walked, ps...)
		if err := s.MarkFlushed(ps); err != nil {
			t.Fatal(err)
		}
		// The first position turns dirty again behind the cursor.
		if err := s.AckSync(t.Context(), at(0, uint64(len(walked)+1))); err != nil {
			t.Fatal(err)
		}
		after = ps[len(ps)-1]
	}
	if len(walked) != 50 {
		t.Fatalf("walked %d positions, want each of the 50 once: %s", len(walked), fmtPositions(walked))
	}
	for i, p := range walked {
		if p.User != at(i, 0).User {
			t.Fatalf("position %d is %s, want user %s: not in key order", i, fmtPositions(walked[i:i+1]), at(i, 0).User)
		}
	}
	if rest := mustUnflushed(t, s, 0); len(rest) != 1 || rest[0].User != "u000" {
		t.Fatalf("after the walk, unflushed = %s, want only u000 (dirty again)", fmtPositions(rest))
	}
}
