package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// AckPosition is how far one device has acknowledged one feed.
type AckPosition struct {
	Tenant string
	User   string
	Device string
	Feed   string // client-visible feed name: "user", "tenant", "topic:news"

	Epoch     string
	Seq       uint64
	UpdatedAt time.Time // set to time.Now() by Ack and AckSync when zero
}

// id is the part of p that forms its key.
func (p AckPosition) id() posID {
	return posID{p.Tenant, p.User, p.Device, p.Feed}
}

func (p AckPosition) validate() error {
	switch {
	case p.Tenant == "":
		return fmt.Errorf("ack position: %w: empty tenant", ErrInvalid)
	case p.User == "":
		return fmt.Errorf("ack position: %w: empty user", ErrInvalid)
	case p.Device == "":
		return fmt.Errorf("ack position: %w: empty device", ErrInvalid)
	case p.Feed == "":
		return fmt.Errorf("ack position: %w: empty feed", ErrInvalid)
	}
	return nil
}

// advance applies next on top of cur, the position it follows in time: a
// position only moves forward within an epoch (a lower or equal seq is
// ignored), and a different epoch replaces it whatever its seq. It reports
// whether the result differs from cur.
func advance(cur, next AckPosition) (AckPosition, bool) {
	if cur.Epoch == next.Epoch && next.Seq <= cur.Seq {
		return cur, false
	}
	return next, true
}

// Ack records pos asynchronously: it joins the pending set (coalescing with
// any pending position of the same tenant, user, device and feed) and the
// background writer commits it within FlushInterval.
//
// Ack does not wait for the disk. Policy when the pending set is full
// (MaxPending distinct positions): Ack asks the writer to commit at once and
// blocks until that commit frees room; it never drops a position. It returns
// ErrClosed once Close has begun and ErrInvalid for empty ids.
func (s *Store) Ack(pos AckPosition) error {
	if err := pos.validate(); err != nil {
		return err
	}
	if pos.UpdatedAt.IsZero() {
		pos.UpdatedAt = time.Now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.enqueueLocked(pos)
	return err
}

// AckSync records pos like Ack, asks for an immediate commit and returns once
// the position is durable (synced to disk). Concurrent callers share one
// commit. A position that does not move the stored one forward is ignored
// and AckSync returns nil. A cancelled ctx stops the wait, not the write. If
// the commit fails, AckSync returns its error and the position stays pending
// and is retried by the writer.
func (s *Store) AckSync(ctx context.Context, pos AckPosition) error {
	if err := pos.validate(); err != nil {
		return err
	}
	if pos.UpdatedAt.IsZero() {
		pos.UpdatedAt = time.Now()
	}
	s.mu.Lock()
	g, err := s.enqueueLocked(pos)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	signal(s.urgent)
	return g.wait(ctx)
}

// Flush commits every position accepted so far and waits until it is durable.
func (s *Store) Flush(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	var g *flushGen
	switch {
	case s.pending.n > 0:
		g = s.cur // committed after any inflight set, so it covers both
	case s.inflightGen != nil:
		g = s.inflightGen
	}
	s.mu.Unlock()
	if g == nil {
		return nil
	}
	signal(s.urgent)
	return g.wait(ctx)
}

// enqueueLocked adds pos to the pending set, waiting for room if it is full.
// It returns the generation whose commit will include pos.
func (s *Store) enqueueLocked(pos AckPosition) (*flushGen, error) {
	dk := deviceKey{pos.Tenant, pos.User, pos.Device}
	blocked := false
	for {
		if s.closed {
			return nil, ErrClosed
		}
		if s.pending.n < s.cfg.MaxPending || s.pending.has(dk, pos.Feed) {
			break
		}
		if !blocked {
			blocked = true
			s.m.ackBlocked.Inc()
		}
		signal(s.urgent)
		s.space.Wait()
	}
	wasEmpty := s.pending.n == 0
	if s.pending.put(dk, pos) {
		s.m.ackCoalesced.Inc()
	}
	s.m.ackWrites.Inc()
	if wasEmpty {
		signal(s.kick)
	}
	return s.cur, nil
}

// Acks returns the position of every feed of one device, keyed by feed. It
// includes positions accepted by Ack but not yet on disk (read-your-writes).
func (s *Store) Acks(tenant, user, device string) (map[string]AckPosition, error) {
	dk := deviceKey{tenant, user, device}
	for attempt := 0; ; attempt++ {
		// Take the in-memory overlay, read the disk, and retry if a commit
		// finished in between (the disk may then be newer than the overlay).
		// After two misses, hold mu across the read so no commit can finish.
		locked := attempt >= 2
		s.mu.Lock()
		overlay := s.overlayLocked(dk)
		before := s.commits
		if !locked {
			s.mu.Unlock()
		}
		got, err := s.readDevice(dk)
		if !locked {
			s.mu.Lock()
		}
		stable := s.commits == before
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if !stable {
			continue
		}
		for feed, p := range overlay {
			if cur, ok := got[feed]; ok {
				p, _ = advance(cur, p)
			}
			got[feed] = p
		}
		return got, nil
	}
}

// overlayLocked returns the in-memory positions of one device: the set being
// committed, then the newer pending set on top.
func (s *Store) overlayLocked(dk deviceKey) map[string]AckPosition {
	a, b := s.inflight.m[dk], s.pending.m[dk]
	if len(a) == 0 && len(b) == 0 {
		return nil
	}
	out := make(map[string]AckPosition, len(a)+len(b))
	for _, p := range slices.Concat(a, b) {
		if cur, ok := out[p.Feed]; ok {
			p, _ = advance(cur, p)
		}
		out[p.Feed] = p
	}
	return out
}

// readDevice reads one device's stored positions with a bounded prefix scan.
func (s *Store) readDevice(dk deviceKey) (map[string]AckPosition, error) {
	got := make(map[string]AckPosition)
	prefix := devicePrefix(prefixAck, dk.tenant, dk.user, dk.device)
	err := s.withDB(func(db *pebble.DB) error {
		return scan(db, prefix, prefixEnd(prefix), false, func(k, v []byte) (bool, error) {
			p, err := decodePosition(prefixAck, k, v)
			if err != nil {
				s.log.Error("skip corrupt ack position", attrErr, err)
				return true, nil
			}
			got[p.Feed] = p
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read ack positions of %s/%s/%s: %w", dk.tenant, dk.user, dk.device, err)
	}
	return got, nil
}

// decodePosition rebuilds an AckPosition from a key in namespace ns and its value.
func decodePosition(ns, k, v []byte) (AckPosition, error) {
	id, err := parsePositionKey(ns, k)
	if err != nil {
		return AckPosition{}, err
	}
	a, err := decodeAck(v)
	if err != nil {
		return AckPosition{}, err
	}
	return AckPosition{
		Tenant: id.Tenant, User: id.User, Device: id.Device, Feed: id.Feed,
		Epoch: a.Epoch, Seq: a.Seq, UpdatedAt: a.UpdatedAt,
	}, nil
}

// deviceKey names one device; pending positions are grouped by it so Acks can
// overlay them without scanning the whole pending set.
type deviceKey struct {
	tenant, user, device string
}

// pendingSet holds coalesced positions: one per (device, feed). A device's
// positions are a short slice searched in order: between two commits a
// device acks a few feeds. A device's first position is carved from slab,
// and the store reuses a committed set (reset), so in a steady stream of
// acks the set allocates nothing.
type pendingSet struct {
	m    map[deviceKey][]AckPosition
	n    int           // number of positions
	slab []AckPosition // backs the one-position slices of m
}

// newPendingSet returns an empty set with room for devices devices.
func newPendingSet(devices int) pendingSet {
	return pendingSet{m: make(map[deviceKey][]AckPosition, devices), slab: make([]AckPosition, 0, devices)}
}

// reset empties the set for reuse, keeping its map and slab.
func (p *pendingSet) reset() {
	clear(p.m)
	clear(p.slab) // drop the strings
	p.slab, p.n = p.slab[:0], 0
}

// add appends pos for a device with no position of its feed yet.
func (p *pendingSet) add(dk deviceKey, feeds []AckPosition, pos AckPosition) {
	if len(feeds) == 0 && len(p.slab) < cap(p.slab) {
		i := len(p.slab)
		p.slab = append(p.slab, pos)
		p.m[dk] = p.slab[i : i+1 : i+1] // a second feed reallocates, not overwrites
	} else {
		p.m[dk] = append(feeds, pos)
	}
	p.n++
}

// feedIndex returns the index of feed in feeds, or -1.
func feedIndex(feeds []AckPosition, feed string) int {
	for i := range feeds {
		if feeds[i].Feed == feed {
			return i
		}
	}
	return -1
}

func (p *pendingSet) has(dk deviceKey, feed string) bool {
	return feedIndex(p.m[dk], feed) >= 0
}

// put merges pos into the set and reports whether it coalesced with a
// position already there.
func (p *pendingSet) put(dk deviceKey, pos AckPosition) bool {
	feeds := p.m[dk]
	if i := feedIndex(feeds, pos.Feed); i >= 0 {
		feeds[i], _ = advance(feeds[i], pos)
		return true
	}
	p.add(dk, feeds, pos)
	return false
}

// putUnder merges pos into the set as the older position: one already there
// is applied on top of it.
func (p *pendingSet) putUnder(dk deviceKey, pos AckPosition) {
	feeds := p.m[dk]
	if i := feedIndex(feeds, pos.Feed); i >= 0 {
		feeds[i], _ = advance(pos, feeds[i])
		return
	}
	p.add(dk, feeds, pos)
}

// flushGen is one commit of the pending set; waiters block on done.
type flushGen struct {
	done chan struct{}
	err  error // written before done is closed
}

func newFlushGen() *flushGen {
	return &flushGen{done: make(chan struct{})}
}

func (g *flushGen) wait(ctx context.Context) error {
	select {
	case <-g.done:
		return g.err
	case <-ctx.Done():
		return fmt.Errorf("wait for ack commit: %w", ctx.Err())
	}
}
