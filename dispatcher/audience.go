package dispatcher

import (
	"strconv"
	"strings"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
)

// appendRequests appends the feed appends of one ingest event to reqs and
// returns the new slice: one per user for user and users audiences, one to
// the tenant's feed, or one to the topic's feed.
//
// TS is the producer's ts, or else the time Redis gave the entry (its id),
// so that a retried append writes the same entry and a ttl counts from when
// the event was published, not from when a late dispatcher got to it.
func appendRequests(reqs []feed.Request, stream, id string, e *events.Envelope) []feed.Request {
	ts := e.TS
	if ts == 0 {
		ts = idMillis(id)
	}
	var exp int64
	if e.TTL > 0 {
		exp = ts + e.TTL.Milliseconds()
	}
	r := feed.Request{
		SourceStream: stream, SourceID: id, IdemKey: e.ID,
		Type: e.Type, TS: ts, Exp: exp, Device: e.Device, Data: e.Data,
	}
	switch e.To.Kind {
	case events.AudienceUser, events.AudienceUsers:
		for _, u := range e.To.Users {
			r.Feed = keys.UserFeed(e.Tenant, u)
			reqs = append(reqs, r)
		}
	case events.AudienceTenant:
		r.Feed = keys.TenantFeed(e.Tenant)
		reqs = append(reqs, r)
	case events.AudienceTopic:
		r.Feed = keys.TopicFeed(e.Tenant, e.To.Topic)
		reqs = append(reqs, r)
	}
	return reqs
}

// idMillis returns the milliseconds part of a stream id, 0 if malformed.
func idMillis(id string) int64 {
	ms, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseInt(ms, 10, 64)
	return n
}

// idLess reports whether stream id a comes before b. Malformed ids compare
// as "0-0".
func idLess(a, b string) bool {
	am, as := splitID(a)
	bm, bs := splitID(b)
	if am != bm {
		return am < bm
	}
	return as < bs
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m, s
}
