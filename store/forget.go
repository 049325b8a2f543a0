package store

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// Forget deletes the ACK position of one device's feed wherever the store
// holds it: pending in memory, on disk, and in the dirty index, so that the
// Redis hand-off does not copy it again (a hand-off that listed it before
// Forget may still copy it once). A position accepted by Ack while Forget
// runs may survive it. The delete is not synced: a crash can bring the
// position back, which costs the device a replay from it, nothing more.
// Forgetting a position the store does not hold writes nothing.
func (s *Store) Forget(tenant, user, device, feed string) error {
	if feed == "" {
		return fmt.Errorf("forget ack position: %w: empty feed", ErrInvalid)
	}
	return s.forget(deviceKey{tenant, user, device}, feed)
}

// ForgetDevice deletes every ACK position of one device, as Forget does for
// one feed.
func (s *Store) ForgetDevice(tenant, user, device string) error {
	return s.forget(deviceKey{tenant, user, device}, "")
}

// forget deletes the position of dk's feed, or all of dk's positions when
// feed is "".
func (s *Store) forget(dk deviceKey, feed string) error {
	if err := (AckPosition{Tenant: dk.tenant, User: dk.user, Device: dk.device, Feed: "-"}).validate(); err != nil {
		return err
	}
	if err := s.dropPending(dk, feed); err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err := s.withDB(func(db *pebble.DB) error { return s.deleteStored(db, dk, feed) })
	if err != nil {
		return fmt.Errorf("forget ack positions of %s/%s/%s %q: %w", dk.tenant, dk.user, dk.device, feed, err)
	}
	return nil
}

// dropPending removes the positions from the pending set, and waits for a
// commit in progress that holds any of them (if it fails, it puts them back
// in pending, so they are dropped again): once it returns, no commit can
// write them to disk after deleteStored has deleted them.
func (s *Store) dropPending(dk deviceKey, feed string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.closed {
			return ErrClosed
		}
		if s.pending.drop(dk, feed) {
			s.space.Broadcast()
		}
		if !s.inflight.holds(dk, feed) {
			return nil
		}
		g := s.inflightGen
		s.mu.Unlock()
		<-g.done
		s.mu.Lock()
	}
}

// deleteStored deletes the positions and their dirty-index entries in one
// batch (writeMu held), and then from the dirty mirror.
func (s *Store) deleteStored(db *pebble.DB, dk deviceKey, feed string) error {
	b := db.NewBatch()
	defer b.Close()
	var dirty [][]byte
	for _, ns := range [][]byte{prefixAck, prefixDirty} {
		prefix := devicePrefix(ns, dk.tenant, dk.user, dk.device)
		if feed != "" {
			// Only one valid key starts with a whole position key: ids are
			// length-prefixed, so nothing can follow the feed.
			prefix = positionKey(ns, dk.tenant, dk.user, dk.device, feed)
		}
		isDirty := bytes.Equal(ns, prefixDirty)
		err := scan(db, prefix, prefixEnd(prefix), false, func(k, _ []byte) (bool, error) {
			_ = b.Delete(k, nil) // copies k; fails only on a closed or read-only batch
			if isDirty {
				dirty = append(dirty, append([]byte(nil), k...))
			}
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	if b.Empty() {
		return nil
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	for _, k := range dirty {
		s.dirty.remove(k)
	}
	s.m.unflushed.Set(float64(s.dirty.len()))
	return nil
}

// drop removes dk's position of feed (all of dk's positions when feed is
// "") and reports whether there was any.
func (p *pendingSet) drop(dk deviceKey, feed string) bool {
	feeds := p.m[dk]
	kept := feeds
	switch i := feedIndex(feeds, feed); {
	case feed == "":
		kept = nil
	case i >= 0:
		kept = slices.Concat(feeds[:i], feeds[i+1:]) // a new array: clear below must not reach it
	}
	if len(kept) == len(feeds) {
		return false
	}
	clear(feeds) // drop the strings (a slab slot is reused only after reset)
	if len(kept) == 0 {
		delete(p.m, dk)
	} else {
		p.m[dk] = kept
	}
	p.n -= len(feeds) - len(kept)
	return true
}

// holds reports whether the set has dk's position of feed (any of dk's
// positions when feed is "").
func (p *pendingSet) holds(dk deviceKey, feed string) bool {
	if feed == "" {
		return len(p.m[dk]) > 0
	}
	return p.has(dk, feed)
}
