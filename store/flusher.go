package store

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Retry pacing of the writer after a failed commit.
const (
	minRetryDelay = 50 * time.Millisecond
	maxRetryDelay = time.Second
)

// run is the background ACK writer, started by Open and stopped by Close.
// It sleeps until pending is non-empty, lets positions coalesce for
// FlushInterval (or less when someone asked for an urgent commit), then
// commits them all in one synced batch.
func (s *Store) run() {
	defer close(s.done)
	t := time.NewTimer(time.Hour)
	t.Stop()
	var retry time.Duration
	for {
		select {
		case <-s.stop:
			s.finalErr = s.flushPending()
			return
		case <-s.urgent:
		case <-s.kick:
			if !s.sleep(t, s.cfg.FlushInterval, s.urgent) {
				s.finalErr = s.flushPending()
				return
			}
		}
		err := s.flushPending()
		if err == nil {
			retry = 0
			continue
		}
		retry = min(max(2*retry, minRetryDelay), maxRetryDelay)
		s.log.Error("commit ack positions; will retry", attrErr, err, "retry_in", retry)
		if !s.sleep(t, retry, nil) {
			s.finalErr = s.flushPending()
			return
		}
		signal(s.kick) // the failed positions are pending again
	}
}

// sleep waits for d, or until wake fires (a nil wake never fires). It
// returns false if the store is stopping.
func (s *Store) sleep(t *time.Timer, d time.Duration, wake chan struct{}) bool {
	t.Reset(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-wake:
		return true
	case <-s.stop:
		return false
	}
}

// flushPending commits the pending set and completes its generation. On
// failure the positions go back into pending (under any newer ones), so
// nothing accepted is dropped while the store is open.
func (s *Store) flushPending() error {
	s.mu.Lock()
	if s.pending.n == 0 {
		// Forget can empty a set that AckSync or Flush wait on: complete its
		// generation, or they would wait for good. Nothing is in flight
		// (only this goroutine commits), so all they waited for is durable
		// or forgotten.
		g := s.cur
		s.cur = newFlushGen()
		s.mu.Unlock()
		close(g.done)
		return nil
	}
	batch, g := s.pending, s.cur
	s.inflight, s.inflightGen = batch, g
	// The next set is the one committed last time, emptied, if there is
	// one; else one sized like this one: the ack rate changes slowly.
	next := s.spare
	s.spare = pendingSet{}
	if next.m == nil {
		next = newPendingSet(len(batch.m))
	}
	s.pending, s.cur = next, newFlushGen()
	s.space.Broadcast()
	s.mu.Unlock()

	start := time.Now()
	err := s.commit(batch)
	s.m.flushDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		s.m.flushErrors.Inc()
	}

	s.mu.Lock()
	if err != nil {
		s.requeueLocked(batch)
	}
	s.inflight, s.inflightGen = pendingSet{}, nil
	if batch.n <= maxSpare { // nothing refers to the batch any more: reuse it
		batch.reset()
		s.spare = batch
	}
	s.commits++
	s.mu.Unlock()

	g.err = err
	close(g.done)
	return err
}

// maxSpare is the largest committed set kept for reuse: a set from a storm
// of acks is let go rather than kept at its size.
const maxSpare = 1 << 16

// requeueLocked puts a failed batch back under the positions that arrived
// since it was taken.
func (s *Store) requeueLocked(batch pendingSet) {
	for dk, feeds := range batch.m {
		for _, old := range feeds {
			s.pending.putUnder(dk, old)
		}
	}
}

// commit writes a batch of positions in one pebble batch with pebble.Sync.
// Each position is checked against the stored one (forward-only within an
// epoch); every position that moves is written with its dirty-index entry,
// for the Redis hand-off, and enters the dirty mirror once the batch is
// durable. A position already dirty is checked against the mirror, which
// holds its stored epoch and seq; the others are read with one iterator in
// key order, which is several times cheaper than a Get per key.
func (s *Store) commit(batch pendingSet) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.withDB(func(db *pebble.DB) error {
		entries := sortedEntries(batch)
		if len(entries) == 0 {
			return nil
		}
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefixAck, UpperBound: prefixEnd(prefixAck)})
		if err != nil {
			return fmt.Errorf("commit ack positions: %w", err)
		}
		// Room for every entry up front: a batch grown by doubling copies
		// itself over and over.
		b := db.NewBatchWithSize(len(entries) * 2 * (len(entries[0].key) + 48))
		defer b.Close()
		written := entries[:0] // the entries that move, in place
		var val, dirtyKey []byte
		for _, e := range entries {
			dirtyKey = append(append(dirtyKey[:0], prefixDirty...), e.key[len(prefixAck):]...)
			if cur, found := s.storedPosition(it, e.key, dirtyKey); found {
				if _, moved := advance(cur, *e.pos); !moved {
					continue
				}
			}
			p := e.pos
			val = appendAck(val[:0], storedAck{Epoch: p.Epoch, Seq: p.Seq, UpdatedAt: p.UpdatedAt})
			// Batch.Set copies its arguments; it fails only on a closed or read-only batch.
			_ = b.Set(e.key, val, nil)
			_ = b.Set(dirtyKey, val, nil)
			written = append(written, e)
		}
		if err := it.Close(); err != nil {
			return fmt.Errorf("commit ack positions: read stored: %w", err)
		}
		if len(written) == 0 {
			return nil
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("commit %d ack positions: %w", len(written), err)
		}
		for _, e := range written {
			dirtyKey = append(append(dirtyKey[:0], prefixDirty...), e.key[len(prefixAck):]...)
			s.dirty.put(dirtyKey, *e.pos)
		}
		s.m.flushBatches.Inc()
		s.m.flushPositions.Add(float64(len(written)))
		s.m.unflushed.Set(float64(s.dirty.len()))
		return nil
	})
}

// storedPosition returns the epoch and seq stored under ackKey: from the
// dirty mirror if the position is dirty (its entry equals the stored value),
// else from disk.
func (s *Store) storedPosition(it *pebble.Iterator, ackKey, dirtyKey []byte) (AckPosition, bool) {
	if d, ok := s.dirty.get(dirtyKey); ok {
		return AckPosition{Epoch: d.epoch, Seq: d.seq}, true
	}
	cur, found := s.seekStored(it, ackKey)
	return AckPosition{Epoch: cur.Epoch, Seq: cur.Seq}, found
}

type keyedPosition struct {
	key []byte
	pos *AckPosition
}

// sortedEntries returns the positions of batch with their ACK keys, in key
// order. The keys share one buffer; the positions point into batch, which
// nobody changes while it is being committed.
func sortedEntries(batch pendingSet) []keyedPosition {
	out := make([]keyedPosition, 0, batch.n)
	size := 0
	for _, feeds := range batch.m {
		for i := range feeds {
			out = append(out, keyedPosition{pos: &feeds[i]})
			size += positionKeyLen(prefixAck, feeds[i].id())
		}
	}
	buf := make([]byte, 0, size)
	for i := range out {
		start := len(buf)
		buf = appendPositionKey(buf, prefixAck, out[i].pos.id())
		out[i].key = buf[start:len(buf):len(buf)]
	}
	slices.SortFunc(out, func(a, b keyedPosition) int { return bytes.Compare(a.key, b.key) })
	return out
}

// seekStored reads the stored value of key with an iterator moving forward.
// A corrupt value is logged and reported as absent, so the new position
// simply overwrites it.
func (s *Store) seekStored(it *pebble.Iterator, key []byte) (storedAck, bool) {
	if !it.SeekGE(key) || !bytes.Equal(it.Key(), key) {
		return storedAck{}, false
	}
	v, err := it.ValueAndErr()
	if err == nil {
		var a storedAck
		if a, err = decodeAck(v); err == nil {
			return a, true
		}
	}
	s.log.Error("overwrite unreadable ack position", attrErr, err)
	return storedAck{}, false
}
