package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Session is the metadata of one WebSocket connection.
type Session struct {
	ID          string    `json:"id"`
	Tenant      string    `json:"tenant"`
	User        string    `json:"user"`
	Device      string    `json:"device"`
	Edge        string    `json:"edge,omitempty"`
	RemoteAddr  string    `json:"remote_addr,omitempty"`
	ConnectedAt time.Time `json:"connected_at"`
	ClosedAt    time.Time `json:"closed_at,omitzero"`
	CloseCode   int       `json:"close_code,omitempty"`
	CloseReason string    `json:"close_reason,omitempty"`
}

// Session writes use pebble.NoSync: session records are rebuildable
// bookkeeping (presence in Redis expires on its own, closed sessions are
// diagnostics), so a connect or disconnect must not pay an fsync. A process
// crash can lose only the last unsynced writes, and the next synced ACK
// commit (the WAL is one sequential log) makes earlier session writes durable.

// PutSession records s as live, replacing any live session with its ID.
func (s *Store) PutSession(sess Session) error {
	if sess.ID == "" {
		return fmt.Errorf("put session: %w: empty id", ErrInvalid)
	}
	val, err := encodeSession(sess)
	if err != nil {
		return err
	}
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	err = s.withDB(func(db *pebble.DB) error {
		return db.Set(liveKey(sess.ID), val, pebble.NoSync)
	})
	if err != nil {
		return fmt.Errorf("put session %q: %w", sess.ID, err)
	}
	return nil
}

// CloseSession moves the live session id to the recently closed list with
// its close code, reason and time (zero at means now). It returns an error
// wrapping ErrNotFound if no live session has that id.
func (s *Store) CloseSession(id string, code int, reason string, at time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	err := s.withDB(func(db *pebble.DB) error {
		v, closer, err := db.Get(liveKey(id))
		if errors.Is(err, pebble.ErrNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		sess, err := decodeSession(v)
		_ = closer.Close()
		if err != nil {
			return err
		}
		sess.ClosedAt, sess.CloseCode, sess.CloseReason = at, code, reason
		val, err := encodeSession(sess)
		if err != nil {
			return err
		}
		b := db.NewBatch()
		defer b.Close()
		if err := b.Delete(liveKey(id), nil); err != nil {
			return err
		}
		if err := b.Set(closedKey(at, id), val, nil); err != nil {
			return err
		}
		return b.Commit(pebble.NoSync)
	})
	if err != nil {
		return fmt.Errorf("close session %q: %w", id, err)
	}
	return nil
}

// LiveSessions lists the sessions recorded live, in key order. Right after
// Open these are the connections that were open when the process last
// stopped without closing them (a crash): the edge uses them to clean up
// presence.
func (s *Store) LiveSessions() ([]Session, error) {
	out, err := s.scanSessions(prefixLive, false, 0)
	if err != nil {
		return nil, fmt.Errorf("list live sessions: %w", err)
	}
	return out, nil
}

// RecentlyClosed lists up to limit closed sessions, newest first
// (limit <= 0 means all).
func (s *Store) RecentlyClosed(limit int) ([]Session, error) {
	out, err := s.scanSessions(prefixClosed, true, limit)
	if err != nil {
		return nil, fmt.Errorf("list closed sessions: %w", err)
	}
	return out, nil
}

// PruneClosed deletes closed sessions whose ClosedAt is before olderThan and
// returns how many it deleted. The records are ordered by ClosedAt, so
// they go with one range deletion, whose batch is the same size however
// many sessions closed since the last prune; they are counted first, under
// the lock CloseSession takes, so that none is deleted uncounted.
func (s *Store) PruneClosed(olderThan time.Time) (int, error) {
	n := 0
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	err := s.withDB(func(db *pebble.DB) error {
		end := closedTimePrefix(olderThan)
		err := scan(db, prefixClosed, end, false, func(_, _ []byte) (bool, error) {
			n++
			return true, nil
		})
		if err != nil || n == 0 {
			return err
		}
		return db.DeleteRange(prefixClosed, end, pebble.NoSync)
	})
	if err != nil {
		return 0, fmt.Errorf("prune closed sessions: %w", err)
	}
	return n, nil
}

func (s *Store) scanSessions(prefix []byte, reverse bool, limit int) ([]Session, error) {
	var out []Session
	err := s.withDB(func(db *pebble.DB) error {
		return scan(db, prefix, prefixEnd(prefix), reverse, func(_, v []byte) (bool, error) {
			sess, err := decodeSession(v)
			if err != nil {
				s.log.Error("skip corrupt session record", attrErr, err)
				return true, nil
			}
			out = append(out, sess)
			return limit <= 0 || len(out) < limit, nil
		})
	})
	return out, err
}
