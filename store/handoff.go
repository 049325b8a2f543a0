package store

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Unflushed lists up to limit stored positions not yet flushed to Redis
// (limit <= 0 means all), in key order. It reads the dirty index ("d/"), so
// its cost follows the number of dirty positions, not of all positions. The
// dirty flag is on disk: after a crash or restart every position written
// since its last MarkFlushed is listed again. Positions still pending in
// memory appear once committed (within FlushInterval).
//
// Every listed position is durable: pebble shows a batch to readers just
// before its WAL sync completes, so Unflushed waits for a commit in progress
// rather than hand a position to Redis that a crash could still take back.
func (s *Store) Unflushed(limit int) ([]AckPosition, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	var out []AckPosition
	err := s.withDB(func(db *pebble.DB) error {
		return scan(db, prefixDirty, prefixEnd(prefixDirty), false, func(k, v []byte) (bool, error) {
			p, err := decodePosition(prefixDirty, k, v)
			if err != nil {
				s.log.Error("skip corrupt dirty index entry", attrErr, err)
				return true, nil
			}
			out = append(out, p)
			return limit <= 0 || len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list unflushed ack positions: %w", err)
	}
	return out, nil
}

// MarkFlushed records that the given positions reached Redis. A position is
// marked clean only if the stored one still has the same epoch and seq: one
// that moved on since it was listed stays dirty and is listed again.
//
// The write is not synced: if a crash loses it, the positions are flushed to
// Redis a second time, which is harmless (the hand-off is idempotent). The
// next synced ACK commit makes it durable anyway.
func (s *Store) MarkFlushed(positions []AckPosition) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err := s.withDB(func(db *pebble.DB) error {
		b := db.NewBatch()
		defer b.Close()
		seen := make(map[posID]bool, len(positions))
		for _, p := range positions {
			id := posID{p.Tenant, p.User, p.Device, p.Feed}
			if seen[id] {
				continue
			}
			seen[id] = true
			key := positionKey(prefixAck, p.Tenant, p.User, p.Device, p.Feed)
			cur, found, err := s.getStored(db, key)
			if err != nil {
				return err
			}
			if !found || !cur.Dirty || cur.Epoch != p.Epoch || cur.Seq != p.Seq {
				continue
			}
			cur.Dirty = false
			if err := b.Set(key, encodeAck(cur), nil); err != nil {
				return err
			}
			if err := b.Delete(positionKey(prefixDirty, p.Tenant, p.User, p.Device, p.Feed), nil); err != nil {
				return err
			}
		}
		if b.Empty() {
			return nil
		}
		cleared := b.Count() / 2
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
		s.m.unflushed.Sub(float64(cleared))
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark %d ack positions flushed: %w", len(positions), err)
	}
	return nil
}

// countUnflushed counts the dirty index at Open, to seed the gauge.
func (s *Store) countUnflushed() (int, error) {
	n := 0
	err := s.withDB(func(db *pebble.DB) error {
		return scan(db, prefixDirty, prefixEnd(prefixDirty), false, func(_, _ []byte) (bool, error) {
			n++
			return true, nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("count unflushed ack positions: %w", err)
	}
	return n, nil
}
