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

	fills     sync.WaitGroup // the fill goroutines; run waits for them
	fillSlots chan struct{}  // one token per fill reading now, maxFills at most
	// fillMu orders fills.Add (from run, or from a session's settle)
	// against run's final fills.Wait: after fillsDone no fill starts
	fillMu    sync.Mutex
	fillsDone bool
	// ctx is the context run gets (the edge's): a fill that start asks for
	// runs under it
	ctx context.Context
}

// maxFills bounds the feeds the hub fills at once.
const maxFills = 32

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
	// filling: a fill of this feed runs; refill: a fill was asked for
	// meanwhile, so it reads again when it ends; fillOnStart: one was asked
	// for before the feed's position was known (a resubscription while it
	// was pending), so start runs it
	filling, refill, fillOnStart bool
}

func newHub(rdb redis.UniversalClient, space keys.Space, log *slog.Logger, m *metrics, ring int) *hub {
	return &hub{
		rdb: rdb, space: space, reader: feed.NewReader(rdb, space), log: log, m: m, ring: ring,
		feeds: make(map[keys.Feed]*feedState), byChannel: make(map[string]*feedState), fillSlots: make(chan struct{}, maxFills),
		ps:  pubsub.NewSubscriber(rdb, pubsub.Config{Logger: log, OnShardError: func(error) { m.pubsubErrors.Inc() }}),
		ctx: context.Background(),
	}
}

// run receives from Pub/Sub until ctx ends. go-redis reconnects and
// resubscribes on the next Receive after an error; a subscribe confirmation
// for a feed that is already live means messages may have been lost, so the
// feed is filled from the stream.
func (h *hub) run(ctx context.Context) error {
	defer func() { // they end with ctx
		h.fillMu.Lock()
		h.fillsDone = true
		h.fillMu.Unlock()
		h.fills.Wait()
	}()
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
		h.requestFill(ctx, fs)
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
	h.requestFill(ctx, fs) // e is in the stream (appended before it was published): the fill reads it
}

// requestFill fills fs from its stream on a goroutine of its own, so that
// the hub goes on with every other feed meanwhile: a feed whose master does
// not answer (frozen, failing over) must not hold up the rest. One fill per
// feed runs at a time; one asked for during it makes it read again when it
// ends, so that it covers everything published before the request.
func (h *hub) requestFill(ctx context.Context, fs *feedState) {
	fs.mu.Lock()
	if !fs.inited {
		// what was missed is read from the position start gets, once known
		fs.fillOnStart = true
		fs.mu.Unlock()
		return
	}
	if fs.filling {
		fs.refill = true
		fs.mu.Unlock()
		return
	}
	fs.filling = true
	fs.mu.Unlock()
	h.fillMu.Lock()
	if h.fillsDone { // the hub has stopped
		h.fillMu.Unlock()
		return
	}
	h.fills.Add(1)
	h.fillMu.Unlock()
	go func() {
		defer h.fills.Done()
		for {
			h.fill(ctx, fs)
			fs.mu.Lock()
			again := fs.refill && ctx.Err() == nil
			fs.refill, fs.filling = false, again
			fs.mu.Unlock()
			if !again {
				return
			}
		}
	}()
}

// fill reads the feed from the last seen seq to its end and adds it. When
// the feed's epoch changed, it reads the new history from its start.
func (h *hub) fill(ctx context.Context, fs *feedState) {
	const batch = 512
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		fs.mu.Lock()
		after, known, released := fs.last, fs.epoch, fs.refs == 0
		fs.mu.Unlock()
		if released {
			return // no session needs it any more
		}
		var epoch string
		var entries []feed.Entry
		// At most maxFills read at once (after a reconnect every live feed
		// asks for a fill); a fill waiting to try again holds no slot.
		select {
		case h.fillSlots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		err := h.call(ctx, "feed.read", func(ctx context.Context) (err error) {
			epoch, entries, err = h.reader.Range(ctx, fs.feed, after, batch)
			if err == nil && epoch != known && after > 0 {
				epoch, entries, err = h.reader.Range(ctx, fs.feed, 0, batch)
			}
			return noFeedOK(err)
		})
		<-h.fillSlots
		if err == nil && epoch == "" {
			return // the feed does not exist
		}
		if err != nil {
			h.log.Warn("fill feed failed", "feed", fs.feed.Tag(), "err", err)
			sleepCtx(ctx, backoff)
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		fs.mu.Lock()
		if fs.epoch != known {
			// a message of a newer epoch came while this read ran: what it
			// read may be of the older one, read again
			fs.mu.Unlock()
			continue
		}
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
	fs, _, err := h.acquireFor(ctx, f, false)
	return fs, err
}

// acquirePending is acquire for a caller that reads the feed's newest
// position itself, in a round trip it makes anyway (the connect's, for the
// user feed): if this call subscribes to the feed, it returns pending once
// the subscription is confirmed, and the feed is not ready (other callers
// of acquire wait) until the caller calls settle, with the position it
// read after that or the error that stopped it. Otherwise it is acquire.
func (h *hub) acquirePending(ctx context.Context, f keys.Feed) (fs *feedState, pending bool, err error) {
	return h.acquireFor(ctx, f, true)
}

func (h *hub) acquireFor(ctx context.Context, f keys.Feed, deferTip bool) (*feedState, bool, error) {
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
		err := h.subscribe(ctx, fs)
		if err == nil && deferTip {
			return fs, true, nil
		}
		if err == nil {
			err = h.readTip(ctx, fs)
		}
		fs.initErr = err
		close(fs.ready)
	}
	select {
	case <-fs.ready:
	case <-ctx.Done():
		h.release(fs)
		return nil, false, ctx.Err()
	}
	if fs.initErr != nil {
		h.release(fs)
		return nil, false, fs.initErr
	}
	return fs, false, nil
}

// settle ends a pending acquire: with err nil the feed starts from tip (an
// empty epoch: the feed does not exist yet) and is ready. With an error
// (the caller's connect failed, and it releases its reference) the hub
// reads the position itself, so that the user's other sessions waiting on
// the feed are not failed by one session's failure; only if that read
// fails too does every waiting acquire fail.
func (h *hub) settle(fs *feedState, tip events.Position, err error) {
	if err == nil {
		h.start(fs, tip.Epoch, tip.Seq)
	} else {
		ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
		err = h.readTip(ctx, fs)
		cancel()
	}
	fs.initErr = err
	close(fs.ready)
}

// subscribe subscribes to the feed's channel and waits for Redis to
// confirm it: what is published from then on reaches the hub.
func (h *hub) subscribe(ctx context.Context, fs *feedState) error {
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
		return nil
	case <-wctx.Done():
		return fmt.Errorf("subscribe to feed %s: no confirmation: %w", fs.feed.Tag(), wctx.Err())
	}
}

// readTip reads the feed's newest position, after subscribe, and starts
// the feed from it.
func (h *hub) readTip(ctx context.Context, fs *feedState) error {
	var epoch string
	var last uint64
	err := h.call(ctx, "feed.head", func(ctx context.Context) (err error) {
		epoch, last, err = h.reader.Tip(ctx, fs.feed)
		return noFeedOK(err)
	})
	if err != nil {
		return err
	}
	h.start(fs, epoch, last)
	return nil
}

// start sets the feed's position, read after its subscription was
// confirmed, and takes in what was published meanwhile.
func (h *hub) start(fs *feedState, epoch string, last uint64) {
	fs.mu.Lock()
	fs.epoch, fs.last, fs.inited = epoch, last, true
	early := fs.early
	fs.early = nil
	h.addLocked(fs, early)
	fill := fs.fillOnStart
	fs.fillOnStart = false
	fs.mu.Unlock()
	if fill {
		h.requestFill(h.ctx, fs)
	}
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
