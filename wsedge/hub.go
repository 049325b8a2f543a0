package wsedge

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/proto2"
	"github.com/heraldrt/herald/internal/pubsub"
	"github.com/redis/go-redis/v9"
)

// hub owns the edge's Redis Pub/Sub connection and the live state of every
// feed a local session needs.
type hub struct {
	rdb    redis.UniversalClient
	space  keys.Space
	reader *feed.Reader
	log    *slog.Logger
	m      *metrics
	ring   int
	call   func(ctx context.Context, name string, fn func(context.Context) error) error

	ps pubsub.Subscriber
	// psMu orders SUBSCRIBE and UNSUBSCRIBE commands as the feed map
	// changes: a feed released by its last session and acquired again at
	// once (a device that reconnects within milliseconds) must have its
	// UNSUBSCRIBE written before the new SUBSCRIBE, or Redis (and
	// go-redis's resubscription list) would end with the channel
	// unsubscribed, and the new session would hear nothing. release takes
	// it before it lets go of mu, and init takes it to subscribe, so the
	// commands go out in the order of the map's changes.
	psMu sync.Mutex
	// control is the edges' control channel; its messages go to onControl.
	control   string
	onControl func(payload string)

	mu        sync.Mutex
	feeds     map[keys.Feed]*feedState
	byChannel map[string]*feedState // the same feeds by Pub/Sub channel, for each message
}

// ringEntry is a feed entry with its notification frame encoded once for
// every session that gets it: in protocol 1 at once, in protocol 2 when a
// session of protocol 2 first needs it. Entry.Data is nil: the frame holds
// it, as its last dataLen bytes but one.
type ringEntry struct {
	feed.Entry
	frame   []byte
	frame2  []byte
	dataLen int
}

// frameFor is the entry's frame in protocol 2 or 1 (fs.mu held).
func (r *ringEntry) frameFor(v2 bool, name string) []byte {
	if !v2 {
		return r.frame
	}
	if r.frame2 == nil {
		data := r.frame[len(r.frame)-1-r.dataLen : len(r.frame)-1]
		r.frame2 = proto2.AppendNotification(nil, feed.NotificationID(r.Epoch, r.Seq, name), name, r.Seq, r.Type, r.TS, data)
	}
	return r.frame2
}

// feedState is the hub's view of one feed. Lock order: feedState.mu before
// session.mu.
type feedState struct {
	feed       keys.Feed
	name       string // client-visible name
	channel    string
	subscribed chan struct{} // closed at the first subscribe confirmation
	ready      chan struct{} // closed once the head is known
	initErr    error

	mu     sync.Mutex
	refs   int
	epoch  string
	last   uint64      // highest seq seen; ring ends here
	ring   []ringEntry // contiguous seqs ending at last
	early  []feed.Entry
	inited bool
	subs   []*cursor // live and catching cursors of local sessions; cursor.sub is the index
}

func newHub(rdb redis.UniversalClient, space keys.Space, log *slog.Logger, m *metrics, ring int) *hub {
	return &hub{
		rdb: rdb, space: space, reader: feed.NewReader(rdb, space), log: log, m: m, ring: ring,
		feeds: make(map[keys.Feed]*feedState), byChannel: make(map[string]*feedState),
		ps: pubsub.NewSubscriber(rdb, pubsub.Config{Logger: log, OnShardError: func(error) { m.pubsubErrors.Inc() }}),
	}
}

// run receives from Pub/Sub until ctx ends. go-redis reconnects and
// resubscribes on the next Receive after an error; a subscribe confirmation
// for a feed that is already live means messages may have been lost, so the
// feed is filled from the stream.
func (h *hub) run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { h.ps.Close() }) // unblocks Receive
	defer stop()
	defer h.ps.Close()
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		msg, err := h.ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			h.m.pubsubErrors.Inc()
			h.log.Warn("pubsub receive failed; reconnecting", "err", err)
			sleepCtx(ctx, backoff)
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		switch v := msg.(type) {
		case *redis.Message:
			if v.Channel == h.control {
				h.onControl(v.Payload)
				continue
			}
			h.onMessage(ctx, v)
		case *redis.Subscription:
			if v.Kind == "subscribe" || v.Kind == "ssubscribe" {
				h.onSubscribed(ctx, v.Channel)
			}
		}
	}
	return nil
}

func (h *hub) lookup(channel string) *feedState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byChannel[channel]
}

func (h *hub) onSubscribed(ctx context.Context, channel string) {
	fs := h.lookup(channel)
	if fs == nil {
		return
	}
	select {
	case <-fs.subscribed:
		// A resubscription after a reconnect: fill what was missed.
		h.m.resubscribes.Inc()
		h.fill(ctx, fs)
	default:
		close(fs.subscribed)
	}
}

func (h *hub) onMessage(ctx context.Context, msg *redis.Message) {
	fs := h.lookup(msg.Channel)
	if fs == nil {
		return
	}
	e, err := feed.DecodePayload([]byte(msg.Payload))
	if err != nil {
		h.log.Error("bad feed payload", "channel", msg.Channel, "err", err)
		return
	}
	fs.mu.Lock()
	if !fs.inited {
		fs.early = append(fs.early, e)
		fs.mu.Unlock()
		return
	}
	gap := e.Epoch == fs.epoch && e.Seq > fs.last+1 || e.Epoch != fs.epoch && e.Seq > 1
	if !gap {
		h.addLocked(fs, []feed.Entry{e})
		fs.mu.Unlock()
		return
	}
	fs.mu.Unlock()
	h.m.gaps.Inc()
	h.fill(ctx, fs)
	fs.mu.Lock()
	h.addLocked(fs, []feed.Entry{e}) // a no-op when the fill already had it
	fs.mu.Unlock()
}

// fill reads the feed from the last seen seq to its end and adds it. When
// the feed's epoch changed, it reads the new history from its start.
func (h *hub) fill(ctx context.Context, fs *feedState) {
	const batch = 512
	for ctx.Err() == nil {
		fs.mu.Lock()
		after, known := fs.last, fs.epoch
		fs.mu.Unlock()
		var epoch string
		var entries []feed.Entry
		err := h.call(ctx, "feed.read", func(ctx context.Context) (err error) {
			epoch, entries, err = h.reader.Range(ctx, fs.feed, after, batch)
			if err == nil && epoch != known && after > 0 {
				epoch, entries, err = h.reader.Range(ctx, fs.feed, 0, batch)
			}
			return noFeedOK(err)
		})
		if err == nil && epoch == "" {
			return // the feed does not exist
		}
		if err != nil {
			h.log.Warn("fill feed failed", "feed", fs.feed.Tag(), "err", err)
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		fs.mu.Lock()
		h.addLocked(fs, entries)
		fs.mu.Unlock()
		h.m.filled.Add(float64(len(entries)))
		if len(entries) < batch {
			return
		}
	}
}

// addLocked appends entries to the ring and offers them to every session.
func (h *hub) addLocked(fs *feedState, entries []feed.Entry) {
	added := false
	for _, e := range entries {
		if e.Epoch != fs.epoch {
			// History was lost and the feed restarted: start over.
			fs.epoch, fs.last, fs.ring = e.Epoch, 0, fs.ring[:0]
		}
		if e.Seq <= fs.last {
			continue
		}
		if e.Seq != fs.last+1 {
			fs.ring = fs.ring[:0] // not contiguous: sessions catch up from the stream
		}
		fs.last = e.Seq
		if size := h.ringSize(fs); len(fs.ring) >= size {
			n := copy(fs.ring, fs.ring[len(fs.ring)-size+1:])
			clear(fs.ring[n:])
			fs.ring = fs.ring[:n]
		}
		frame := events.AppendNotification(nil, feed.NotificationID(e.Epoch, e.Seq, fs.name), fs.name, e.Seq, e.Type, e.TS, e.Data)
		n := len(e.Data)
		e.Data = nil // the frame holds it
		fs.ring = append(fs.ring, ringEntry{Entry: e, frame: frame, dataLen: n})
		added = true
	}
	if !added {
		return
	}
	for _, c := range fs.subs {
		c.s.offer(fs, c)
	}
}

// ringSize is how many recent entries a feed keeps for sessions that join
// or fall slightly behind: a user's feed has a few sessions, all live at the
// same point, so a short ring does; tenant and topic feeds fan out to many.
func (h *hub) ringSize(fs *feedState) int {
	if fs.feed.Kind == keys.FeedUser {
		return min(h.ring, 8)
	}
	return h.ring
}

// acquire returns the live state of a feed, subscribing on first use and
// waiting until its head is known.
func (h *hub) acquire(ctx context.Context, f keys.Feed) (*feedState, error) {
	h.mu.Lock()
	fs := h.feeds[f]
	first := fs == nil
	if first {
		fs = &feedState{
			feed: f, name: f.ClientName(), channel: h.space.FeedChannel(f),
			subscribed: make(chan struct{}), ready: make(chan struct{}),
		}
		h.feeds[f] = fs
		h.byChannel[fs.channel] = fs
	}
	fs.mu.Lock()
	fs.refs++
	fs.mu.Unlock()
	h.mu.Unlock()
	if first {
		fs.initErr = h.init(ctx, fs)
		close(fs.ready)
	}
	select {
	case <-fs.ready:
	case <-ctx.Done():
		h.release(fs)
		return nil, ctx.Err()
	}
	if fs.initErr != nil {
		h.release(fs)
		return nil, fs.initErr
	}
	return fs, nil
}

func (h *hub) init(ctx context.Context, fs *feedState) error {
	h.psMu.Lock()
	err := h.ps.Subscribe(ctx, fs.channel)
	h.psMu.Unlock()
	if err != nil {
		return fmt.Errorf("subscribe to feed %s: %w", fs.feed.Tag(), err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	select {
	case <-fs.subscribed:
	case <-wctx.Done():
		return fmt.Errorf("subscribe to feed %s: no confirmation: %w", fs.feed.Tag(), wctx.Err())
	}
	var head feed.Head
	err = h.call(ctx, "feed.head", func(ctx context.Context) (err error) {
		head, err = h.reader.Head(ctx, fs.feed)
		return noFeedOK(err)
	})
	if err != nil {
		return err
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.epoch, fs.last, fs.inited = head.Epoch, head.LastSeq, true
	early := fs.early
	fs.early = nil
	h.addLocked(fs, early)
	return nil
}

// release drops one reference; the last one unsubscribes.
func (h *hub) release(fs *feedState) {
	h.mu.Lock()
	fs.mu.Lock()
	fs.refs--
	last := fs.refs == 0
	fs.mu.Unlock()
	if last && h.feeds[fs.feed] == fs {
		delete(h.feeds, fs.feed)
		delete(h.byChannel, fs.channel)
	}
	if !last {
		h.mu.Unlock()
		return
	}
	h.psMu.Lock() // before mu is let go: see psMu
	h.mu.Unlock()
	defer h.psMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.ps.Unsubscribe(ctx, fs.channel); err != nil {
		h.log.Debug("unsubscribe failed", "feed", fs.feed.Tag(), "err", err)
	}
}

// feedCount is the number of feeds the hub follows.
func (h *hub) feedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.feeds)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// addSubLocked and removeSubLocked keep fs.subs (fs.mu held): a slice, not a
// map, because most feeds (a user's) have one or two sessions.
func (fs *feedState) addSubLocked(c *cursor) {
	c.sub = len(fs.subs)
	fs.subs = append(fs.subs, c)
}

func (fs *feedState) removeSubLocked(c *cursor) {
	i := c.sub
	if i < 0 || i >= len(fs.subs) || fs.subs[i] != c {
		return
	}
	last := len(fs.subs) - 1
	fs.subs[i] = fs.subs[last]
	fs.subs[i].sub = i
	fs.subs[last] = nil
	fs.subs = fs.subs[:last]
	c.sub = -1
	if len(fs.subs) == 0 {
		fs.subs = nil
	}
}
