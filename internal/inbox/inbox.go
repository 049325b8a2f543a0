package inbox

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/pubsub"
	"github.com/redis/go-redis/v9"
)

// Errors of this package. Input errors are *ValidationError wrapping
// ErrInvalid.
var (
	ErrInvalid = errors.New("inbox: invalid input")
	// ErrEpochChurn: a mark met read state of yet another epoch in every
	// round of MarkRead (feeds losing their history again and again).
	ErrEpochChurn = errors.New("inbox: read state keeps changing epoch")
)

// ValidationError names the input field at fault.
type ValidationError struct {
	Field   string // "limit", "before", "ids", "up_to"
	Problem string
}

func (e *ValidationError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Problem) }
func (e *ValidationError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Feed names on the client protocol that an inbox covers.
const (
	FeedUser   = "user"
	FeedTenant = "tenant"
)

// Config tunes an Inbox. The zero value is the default.
type Config struct {
	// StateTTL is how long a user's read state lives after its last
	// change. 0 means 30 days (like the devices' ACK positions).
	StateTTL time.Duration
	// MaxReadSet bounds the seqs kept read above a feed's watermark; past
	// it the oldest are folded into the watermark. 0 means 10,000.
	MaxReadSet int
	// Now is the clock (expiry of notifications). nil means time.Now.
	Now func() time.Time
}

// Inbox reads inboxes and keeps read state. Safe for concurrent use.
type Inbox struct {
	rdb    redis.UniversalClient
	space  keys.Space
	reader *feed.Reader
	cfg    Config
}

// New returns an Inbox over the feeds under space.
func New(rdb redis.UniversalClient, space keys.Space, cfg Config) *Inbox {
	if cfg.StateTTL <= 0 {
		cfg.StateTTL = 30 * 24 * time.Hour
	}
	if cfg.MaxReadSet <= 0 {
		cfg.MaxReadSet = 10000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Inbox{rdb: rdb, space: space, reader: feed.NewReader(rdb, space), cfg: cfg}
}

// User names whose inbox, as seen from one device.
type User struct {
	Tenant, User, Device string
}

func (u User) feed(name string) keys.Feed {
	if name == FeedTenant {
		return keys.TenantFeed(u.Tenant)
	}
	return keys.UserFeed(u.Tenant, u.User)
}

// feedNames are the inbox's feeds in the order they are read.
var feedNames = [2]string{FeedUser, FeedTenant}

//go:embed unread.lua
var unreadSrc string

//go:embed mark.lua
var markSrc string

var (
	unreadScript = redis.NewScript(unreadSrc)
	markScript   = redis.NewScript(markSrc)
)

// Unread returns how many notifications of u's inbox are unread.
func (ib *Inbox) Unread(ctx context.Context, u User) (int, error) {
	st, err := ib.state(ctx, u)
	if err != nil {
		return 0, err
	}
	return ib.unread(ctx, u, st)
}

// unread counts with read state st, one script call per feed in one
// pipeline.
func (ib *Inbox) unread(ctx context.Context, u User, st readState) (int, error) {
	now := ib.cfg.Now().UnixMilli()
	var cmds [2]*redis.Cmd
	err := ib.pipelined(ctx, func(p redis.Pipeliner) {
		for i, name := range feedNames {
			f := u.feed(name)
			fs := st[name]
			cmds[i] = unreadScript.EvalSha(ctx, p,
				[]string{ib.space.FeedStream(f), ib.space.FeedMeta(f)},
				fs.epoch, fs.mark, u.Device, now, fs.setText())
		}
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("count unread of %s/%s: %w", u.Tenant, u.User, err)
	}
	n := 0
	for _, c := range cmds {
		v, err := c.Int()
		if err != nil {
			return 0, fmt.Errorf("count unread of %s/%s: %w", u.Tenant, u.User, err)
		}
		n += v
	}
	return n, nil
}

// pipelined sends the script calls fn queues in one pipeline, by SHA; if
// Redis does not know the scripts (a restart, a new node) it loads them and
// sends the pipeline again, once.
func (ib *Inbox) pipelined(ctx context.Context, fn func(p redis.Pipeliner)) error {
	for attempt := 0; ; attempt++ {
		_, err := ib.rdb.Pipelined(ctx, func(p redis.Pipeliner) error { fn(p); return nil })
		if attempt > 0 || !redis.HasErrorPrefix(err, "NOSCRIPT") {
			return err
		}
		for _, s := range []*redis.Script{unreadScript, markScript} {
			if err := s.Load(ctx, ib.rdb).Err(); err != nil {
				return err
			}
		}
	}
}

// state reads u's read state.
func (ib *Inbox) state(ctx context.Context, u User) (readState, error) {
	m, err := ib.rdb.HGetAll(ctx, ib.space.ReadState(u.Tenant, u.User)).Result()
	if err != nil {
		return nil, fmt.Errorf("read state of %s/%s: %w", u.Tenant, u.User, err)
	}
	return parseState(m), nil
}

// controlUnread starts the edges' control message that says a user's read
// state changed: "unread\0<tenant>\0<user>".
const controlUnread = "unread"

// Announce tells every edge that u's read state changed, on the edges'
// control channel, so that each sends its sessions of the user an unread
// frame.
func (ib *Inbox) Announce(ctx context.Context, tenant, user string) error {
	msg := controlUnread + "\x00" + tenant + "\x00" + user
	if err := pubsub.Publish(ctx, ib.rdb, ib.space.EdgeControl(), msg); err != nil {
		return fmt.Errorf("announce read state of %s/%s: %w", tenant, user, err)
	}
	return nil
}

// ParseAnnouncement reads a control message written by Announce.
func ParseAnnouncement(parts []string) (tenant, user string, ok bool) {
	if len(parts) != 3 || parts[0] != controlUnread {
		return "", "", false
	}
	return parts[1], parts[2], true
}
