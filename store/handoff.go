package store

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// UnflushedLen is the number of stored positions not yet flushed to Redis.
func (s *Store) UnflushedLen() int {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.dirty.len()
}

// Unflushed lists up to limit stored positions not yet flushed to Redis
// (limit <= 0 means all), in key order. It reads the in-memory mirror of the
// dirty index, so it does no disk I/O and its cost follows the number of
// dirty positions, not of all positions. The dirty index itself is on disk:
// after a crash or restart every position written since its last
// MarkFlushed is listed again. Positions still pending in memory appear once
// committed (within FlushInterval).
//
// Every listed position is durable: the mirror changes only after a synced
// commit, and Unflushed waits for a commit in progress rather than hand a
// position to Redis that a crash could still take back.
func (s *Store) Unflushed(limit int) ([]AckPosition, error) {
	return s.unflushed("", limit)
}

// UnflushedAfter is Unflushed for the positions whose keys sort after
// after's (the order Unflushed lists them in), so that a caller can walk
// the dirty positions once, in pieces, without meeting the first ones again
// when they turn dirty anew meanwhile. A zero after lists from the start.
func (s *Store) UnflushedAfter(after AckPosition, limit int) ([]AckPosition, error) {
	if after.Tenant == "" {
		return s.unflushed("", limit)
	}
	return s.unflushed(string(appendPositionKey(nil, prefixDirty, after.id())), limit)
}

func (s *Store) unflushed(after string, limit int) ([]AckPosition, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	var out []AckPosition
	err := s.withDB(func(*pebble.DB) error {
		out = s.dirty.first(after, limit)
		return nil
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
// The write (deleting dirty index entries) is not synced: if a crash loses
// it, the positions are flushed to Redis a second time, which is harmless
// (the hand-off is idempotent). The next synced ACK commit makes it durable
// anyway.
func (s *Store) MarkFlushed(positions []AckPosition) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err := s.withDB(func(db *pebble.DB) error {
		b := db.NewBatch()
		defer b.Close()
		var key []byte
		for _, p := range positions {
			if key = appendPositionKey(key[:0], prefixDirty, p.id()); s.dirty.holds(key, p) {
				_ = b.Delete(key, nil) // copies key; fails only on a closed or read-only batch
			}
		}
		if b.Empty() {
			return nil
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
		// Same test again: writeMu kept the set as it was. A position listed
		// twice was deleted twice in the batch, which is harmless.
		for _, p := range positions {
			if key = appendPositionKey(key[:0], prefixDirty, p.id()); s.dirty.holds(key, p) {
				s.dirty.remove(key)
			}
		}
		s.m.unflushed.Set(float64(s.dirty.len()))
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark %d ack positions flushed: %w", len(positions), err)
	}
	return nil
}

// loadDirty reads the dirty index at Open into the in-memory mirror. A
// corrupt entry is logged and left alone: the next commit of its position
// overwrites it.
func (s *Store) loadDirty() error {
	s.dirty = newDirtySet()
	err := s.withDB(func(db *pebble.DB) error {
		return scan(db, prefixDirty, prefixEnd(prefixDirty), false, func(k, v []byte) (bool, error) {
			p, err := decodePosition(prefixDirty, k, v)
			if err != nil {
				s.log.Error("skip corrupt dirty index entry", attrErr, err)
				return true, nil
			}
			s.dirty.put(k, p)
			return true, nil
		})
	})
	if err != nil {
		return fmt.Errorf("load unflushed ack positions: %w", err)
	}
	s.m.unflushed.Set(float64(s.dirty.len()))
	return nil
}
