package inbox

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/redis/go-redis/v9"
)

// MaxIDs bounds the ids of one Mark.
const MaxIDs = 1000

// Mark says what to mark read: the notifications IDs, or everything up to
// and including UpTo (in its feed, and in the other feed what is not newer
// than it), or All. Exactly one of them is set.
type Mark struct {
	IDs  []string
	UpTo string
	All  bool
}

// MarkRead marks notifications of u's inbox read for every device of the
// user and returns the inbox's unread count for u.Device. Ids of history
// that is gone (another epoch) are ignored, and so is what a mark would
// write in a feed that loses its history while the mark is made: a mark
// never lowers or erases the read state of a feed's current epoch. Ids
// that are not an inbox's (a topic's, malformed) are refused with a
// *ValidationError.
func (ib *Inbox) MarkRead(ctx context.Context, u User, m Mark) (int, error) {
	set := 0
	if len(m.IDs) > 0 {
		set++
	}
	if m.UpTo != "" {
		set++
	}
	if m.All {
		set++
	}
	if set != 1 {
		return 0, invalid("ids", "give exactly one of ids, up_to or all")
	}
	if len(m.IDs) > MaxIDs {
		return 0, invalid("ids", "%d ids: at most %d", len(m.IDs), MaxIDs)
	}
	plan, err := ib.plan(ctx, u, m)
	if err != nil {
		return 0, err
	}
	if err := ib.apply(ctx, u, plan); err != nil {
		return 0, fmt.Errorf("mark read for %s/%s: %w", u.Tenant, u.User, err)
	}
	return ib.Unread(ctx, u)
}

// maxApply bounds the rounds of apply. Each round past the first needs
// the feed to change epoch again meanwhile.
const maxApply = 4

// apply writes plan, one mark.lua call per feed in one pipeline. The plan
// was made with the epochs read from the feeds' heads; read state found in
// another epoch may be newer (the feed lost its history since) or older.
// So such a feed's head is read again: if its epoch is still the plan's,
// the other epoch is older and the next round replaces its state; if not,
// the plan's epoch is gone and the feed's mark is dropped, like an id of
// another epoch.
func (ib *Inbox) apply(ctx context.Context, u User, plan map[string]feedMark) error {
	key := ib.space.ReadState(u.Tenant, u.User)
	ttl := strconv.FormatInt(int64(ib.cfg.StateTTL.Seconds()), 10)
	for round := 0; ; round++ {
		var cmds [len(feedNames)]*redis.Cmd
		err := ib.pipelined(ctx, func(p redis.Pipeliner) {
			for i, name := range feedNames {
				if fm := plan[name]; fm.epoch != "" {
					cmds[i] = markScript.EvalSha(ctx, p, []string{key}, name, fm.epoch, fm.first, fm.atLeast,
						ib.cfg.MaxReadSet, ttl, fm.seqText(), fm.replaces)
				}
			}
		})
		if err != nil {
			return err
		}
		next := map[string]feedMark{}
		for i, name := range feedNames {
			if cmds[i] == nil {
				continue
			}
			fm := plan[name]
			switch had, err := cmds[i].Text(); {
			case err != nil:
				return err
			case had == fm.epoch:
				continue // applied
			default:
				fm.replaces = had
			}
			epoch, _, err := ib.reader.Tip(ctx, u.feed(name))
			switch {
			case errors.Is(err, feed.ErrNoFeed):
				continue // gone: nothing to mark
			case err != nil:
				return err
			case epoch == fm.epoch:
				next[name] = fm
			}
		}
		if len(next) == 0 {
			return nil
		}
		if round+1 == maxApply {
			return ErrEpochChurn
		}
		plan = next
	}
}

// feedMark is what to mark in one feed.
type feedMark struct {
	epoch string // the feed's current epoch; "" when the feed is gone
	// replaces is an epoch known to be older than epoch, whose read
	// state the mark replaces ("" = none yet).
	replaces string
	first    uint64 // its oldest retained seq
	last     uint64 // its newest seq: nothing after it can be marked
	atLeast  uint64
	seqs     []uint64
}

func (fm feedMark) seqText() string { return feedRead{set: fm.seqs}.setText() }

// plan turns m into a feedMark per feed, reading the feeds' heads (and for
// UpTo the entries it covers).
func (ib *Inbox) plan(ctx context.Context, u User, m Mark) (map[string]feedMark, error) {
	plan := map[string]feedMark{}
	for _, name := range feedNames {
		h, err := ib.reader.Head(ctx, u.feed(name))
		switch {
		case errors.Is(err, feed.ErrNoFeed):
			plan[name] = feedMark{}
			continue
		case err != nil:
			return nil, err
		}
		fm := feedMark{epoch: h.Epoch, first: h.FirstSeq, last: h.LastSeq}
		if m.All {
			fm.atLeast = h.LastSeq
		}
		plan[name] = fm
	}
	switch {
	case len(m.IDs) > 0:
		for i, id := range m.IDs {
			epoch, seq, name, err := parseID(id)
			if err != nil {
				return nil, invalid("ids", "ids[%d]: %v", i, err)
			}
			if fm := plan[name]; fm.epoch == epoch && seq <= fm.last {
				fm.seqs = append(fm.seqs, seq)
				plan[name] = fm
			}
		}
	case m.UpTo != "":
		if err := ib.planUpTo(ctx, u, m.UpTo, plan); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// planUpTo marks everything up to id in its feed, and in the other feed
// every entry (above its watermark) whose ts is not after id's.
func (ib *Inbox) planUpTo(ctx context.Context, u User, id string, plan map[string]feedMark) error {
	epoch, seq, name, err := parseID(id)
	if err != nil {
		return invalid("up_to", "%v", err)
	}
	fm := plan[name]
	if fm.epoch != epoch {
		return nil // history of another epoch: nothing left to mark
	}
	fm.atLeast = min(seq, fm.last)
	plan[name] = fm
	ep, es, err := ib.reader.Range(ctx, u.feed(name), seq-1, 1)
	if err != nil || ep != epoch || len(es) == 0 || es[0].Seq != seq {
		// trimmed (or a new epoch since the head was read): its own feed
		// is marked, that is all
		return ignoreGone(err)
	}
	ts := es[0].TS
	other := FeedTenant
	if name == FeedTenant {
		other = FeedUser
	}
	st, err := ib.state(ctx, u)
	if err != nil {
		return err
	}
	ofm := plan[other]
	if ofm.epoch == "" {
		return nil
	}
	after := uint64(0)
	if fr := st[other]; fr.epoch == ofm.epoch {
		after = fr.mark
	}
	ep, rest, err := ib.reader.Range(ctx, u.feed(other), after, int64(ib.cfg.MaxReadSet))
	if err != nil || ep != ofm.epoch {
		return ignoreGone(err) // gone, or a new epoch since the head was read
	}
	for _, e := range rest {
		if e.TS <= ts {
			ofm.seqs = append(ofm.seqs, e.Seq)
		}
	}
	plan[other] = ofm
	return nil
}

func ignoreGone(err error) error {
	if errors.Is(err, feed.ErrNoFeed) {
		return nil
	}
	return err
}

// parseID reads a notification id of an inbox feed.
func parseID(id string) (epoch string, seq uint64, name string, err error) {
	epoch, seq, name, err = feed.ParseNotificationID(id)
	if err != nil {
		return "", 0, "", errors.New("not a notification id")
	}
	if name != FeedUser && name != FeedTenant {
		return "", 0, "", fmt.Errorf("feed %q is not in the inbox (user and tenant only)", name)
	}
	return epoch, seq, name, nil
}
