package inbox

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/heraldrt/herald/internal/feed"
)

// Limits of a page.
const (
	DefaultLimit = 50
	MaxLimit     = 200
	// maxReads bounds the feed reads behind one page, so that a filter
	// that matches little (unread=true on a long, read history) costs a
	// bounded amount; the page is then shorter and its cursor goes on.
	maxReads = 16
)

// Item is one notification of an inbox.
type Item struct {
	ID   string          `json:"id"`
	Feed string          `json:"feed"`
	Seq  uint64          `json:"seq"`
	Type string          `json:"type"`
	TS   int64           `json:"ts"`
	Data json.RawMessage `json:"data"`
	Read bool            `json:"read"`
}

// Query selects a page.
type Query struct {
	Limit  int    // 1..MaxLimit; 0 means DefaultLimit
	Before string // a Page.Next; "" = from the newest
	Unread bool   // only unread notifications
}

// Page is one page of an inbox, newest first.
type Page struct {
	Items  []Item  `json:"items"`
	Next   *string `json:"next"`   // nil when there is nothing older
	Unread int     `json:"unread"` // the whole inbox's unread count
}

// cursor is where a listing stands in each feed: the next page has the
// entries with seq below before (0: from the newest; done: none left).
type cursor [2]feedPos

// feedPos is where a listing stands in one feed.
type feedPos struct {
	epoch  string
	before uint64
	done   bool
}

// encode writes the cursor as URL-safe base64 of
// "<epoch>:<before or ->;<epoch>:<before or ->".
func (c cursor) encode() string {
	parts := make([]string, len(c))
	for i, f := range c {
		b := strconv.FormatUint(f.before, 10)
		if f.done {
			b = "-"
		}
		parts[i] = f.epoch + ":" + b
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, ";")))
}

func parseCursor(s string) (cursor, error) {
	var c cursor
	if s == "" {
		return c, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	parts := strings.Split(string(raw), ";")
	if err != nil || len(parts) != len(c) {
		return c, invalid("before", "not a cursor from this API")
	}
	for i, p := range parts {
		ep, b, ok := strings.Cut(p, ":")
		if !ok {
			return c, invalid("before", "not a cursor from this API")
		}
		c[i].epoch = ep
		if b == "-" {
			c[i].done = true
			continue
		}
		if c[i].before, err = strconv.ParseUint(b, 10, 64); err != nil {
			return c, invalid("before", "not a cursor from this API")
		}
	}
	return c, nil
}

// source is one feed being listed: what was read and not yet consumed.
type source struct {
	name string
	buf  []feed.Entry
	last bool // buf holds the oldest entries of the feed
	pos  feedPos
}

// List returns a page of u's inbox: the entries of the user's feed and the
// tenant's feed meant for u.Device and not expired, merged newest first
// (by ts, then feed), each with its read flag.
func (ib *Inbox) List(ctx context.Context, u User, q Query) (Page, error) {
	switch {
	case q.Limit == 0:
		q.Limit = DefaultLimit
	case q.Limit < 1 || q.Limit > MaxLimit:
		return Page{}, invalid("limit", "%d: want 1 to %d", q.Limit, MaxLimit)
	}
	cur, err := parseCursor(q.Before)
	if err != nil {
		return Page{}, err
	}
	st, err := ib.state(ctx, u)
	if err != nil {
		return Page{}, err
	}
	srcs := [2]*source{}
	for i, name := range feedNames {
		srcs[i] = &source{name: name, pos: cur[i]}
	}
	l := lister{ib: ib, u: u, st: st, now: ib.cfg.Now().UnixMilli(), unread: q.Unread, chunk: int64(min(q.Limit+1, MaxLimit))}
	page := Page{Items: make([]Item, 0, q.Limit)}
	for len(page.Items) < q.Limit {
		s, err := l.next(ctx, srcs)
		if err != nil {
			return Page{}, err
		}
		if s == nil {
			break
		}
		page.Items = append(page.Items, l.take(s))
	}
	more, err := l.next(ctx, srcs) // is there anything older left?
	if err != nil {
		return Page{}, err
	}
	if more != nil || l.reads >= maxReads {
		for i, s := range srcs {
			cur[i] = s.pos
		}
		next := cur.encode()
		page.Next = &next
	}
	if page.Unread, err = ib.unread(ctx, u, st); err != nil {
		return Page{}, err
	}
	return page, nil
}

// lister merges the feeds of one page.
type lister struct {
	ib     *Inbox
	u      User
	st     readState
	now    int64
	unread bool
	chunk  int64
	reads  int
}

// next returns the source whose head is the newest entry to list (after
// dropping heads the page does not show), or nil when none is left.
func (l *lister) next(ctx context.Context, srcs [2]*source) (*source, error) {
	var best *source
	for _, s := range srcs {
		if err := l.head(ctx, s); err != nil {
			return nil, err
		}
		if len(s.buf) == 0 {
			if !s.pos.done && !s.last {
				return nil, nil // out of reads with this feed unknown: stop the page here, in order
			}
			continue
		}
		if best == nil || s.buf[0].TS > best.buf[0].TS {
			best = s
		}
	}
	return best, nil
}

// head makes s.buf start with an entry the page shows, reading more of the
// feed as needed; s.buf is empty when the feed has none left (or the page's
// reads are spent).
func (l *lister) head(ctx context.Context, s *source) error {
	for {
		for len(s.buf) > 0 && !l.shows(s, &s.buf[0]) {
			s.pos.before = s.buf[0].Seq
			s.buf = s.buf[1:]
		}
		switch {
		case len(s.buf) > 0 || s.pos.done:
			return nil
		case s.last:
			s.pos.done = true
			return nil
		case l.reads >= maxReads:
			return nil
		}
		l.reads++
		epoch, es, err := l.ib.reader.Newest(ctx, l.u.feed(s.name), s.pos.before, l.chunk)
		switch {
		case errors.Is(err, feed.ErrNoFeed):
			s.pos.done = true
			return nil
		case err != nil:
			return err
		}
		if s.pos.epoch != epoch && s.pos.before > 0 {
			// History was lost since the cursor was made: list the new
			// epoch from its newest entry.
			s.pos.epoch, s.pos.before = epoch, 0
			continue
		}
		if s.pos.before == 0 && len(es) > 0 {
			// The page starts from this snapshot: what arrives later is on
			// a new first page, never on an older one.
			s.pos.before = es[0].Seq + 1
		}
		s.pos.epoch = epoch
		s.buf, s.last = es, int64(len(es)) < l.chunk
	}
}

// shows reports whether the page lists e.
func (l *lister) shows(s *source, e *feed.Entry) bool {
	if !e.For(l.u.Device) || e.Expired(l.now) {
		return false
	}
	return !l.unread || !l.st[s.name].isRead(e.Epoch, e.Seq)
}

// take consumes s's head as an item.
func (l *lister) take(s *source) Item {
	e := s.buf[0]
	s.buf = s.buf[1:]
	s.pos.before = e.Seq
	return Item{
		ID: feed.NotificationID(e.Epoch, e.Seq, s.name), Feed: s.name, Seq: e.Seq,
		Type: e.Type, TS: e.TS, Data: json.RawMessage(e.Data), Read: l.st[s.name].isRead(e.Epoch, e.Seq),
	}
}
