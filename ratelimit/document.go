package ratelimit

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The values of the document's enumerated fields.
type (
	// Per is who a limit counts for: each user, each tenant, or everyone.
	Per string
	// Action is what happens to a notification over a push limit.
	Action string
	// Mode says whether a rule blocks (enforce) or only counts (shadow).
	Mode string
	// Op is an operation a rule can apply to.
	Op string
)

const (
	PerUser   Per = "user"
	PerTenant Per = "tenant"
	PerGlobal Per = "global"

	// ActionQueue holds the notification and pushes it later, in order, for
	// at most MaxWait; after that it is not pushed (it stays in the feed).
	ActionQueue Action = "queue"
	// ActionDrop does not push the notification (it stays in the feed).
	ActionDrop Action = "drop"

	ModeEnforce Mode = "enforce"
	ModeShadow  Mode = "shadow"

	// OpPush is pushing a notification to a device.
	OpPush Op = "push"
	// OpPub is a client's pub frame (upstream).
	OpPub Op = "pub"
	// OpConnect is opening a WebSocket connection.
	OpConnect Op = "connect"
	// OpPublish is an event published through the HTTP API
	// (POST /v1/publish): counted per tenant or in all, refused with 429.
	OpPublish Op = "publish"
)

// Bounds of a document. They keep Sentinel's rule set, and the work per
// check, small.
const (
	// FormatVersion is the only document version there is.
	FormatVersion = 1
	// MaxDocumentSize is the largest document accepted, in bytes.
	MaxDocumentSize = 1 << 20
	// MaxRules is the most rules a document may hold.
	MaxRules = 500
	// MaxOverrides is the most overrides one rule may hold.
	MaxOverrides = 10000
	// MaxTenantOverridesPerUserRule bounds "tenant:" overrides of a per-user
	// rule; each becomes a Sentinel rule of its own.
	MaxTenantOverridesPerUserRule = 100
	// MaxInterval is the longest interval.
	MaxInterval = 24 * time.Hour
	// MaxMaxWait is the longest max_wait: a queued notification holds back
	// everything after it in its feed.
	MaxMaxWait = time.Hour
)

// Document is a validated rules document.
type Document struct {
	// Version is the document format, always FormatVersion.
	Version int
	Rules   []Rule
	// Meta says where the document came from; ParseRules leaves it zero
	// and the Store, Watcher and FileWatcher fill it in.
	Meta Meta
}

// Meta describes one stored revision of the rules.
type Meta struct {
	// Version is the revision in the Store, bumped by every Put (for a file,
	// the count of reloads since start). 0 means none.
	Version   int64
	UpdatedBy string
	UpdatedAt time.Time
	// Origin is "redis" or "file:<path>".
	Origin string
}

// Rule is one validated rule.
type Rule struct {
	Name string
	// Type is the event-type glob (path.Match syntax); "" matches every
	// type.
	Type     string
	Per      Per
	Limit    int64
	Interval time.Duration // whole seconds, at least 1s
	Action   Action
	MaxWait  time.Duration // only with ActionQueue
	Mode     Mode
	// Overrides maps "tenant:<tenant>" or "user:<tenant>/<user>" to the
	// limit for that tenant (for a per-user rule: for each of its users) or
	// user. 0 lets nothing through.
	Overrides map[string]int64
	AppliesTo []Op
	// Line is where the rule starts in the document.
	Line int
}

// Applies reports whether the rule applies to op.
func (r *Rule) Applies(op Op) bool { return slices.Contains(r.AppliesTo, op) }

// Matches reports whether the rule's glob matches the event type.
func (r *Rule) Matches(typ string) bool {
	if r.Type == "" {
		return true
	}
	ok, _ := path.Match(r.Type, typ)
	return ok
}

// String summarises the rule on one line, e.g.
// "marketing-per-user: marketing.* per user 3/1m0s queue (max_wait 30s) on push".
func (r *Rule) String() string {
	var b strings.Builder
	typ := r.Type
	if typ == "" {
		typ = "every type"
	}
	fmt.Fprintf(&b, "%s: %s per %s %d/%v", r.Name, typ, r.Per, r.Limit, r.Interval)
	if r.Applies(OpPush) {
		b.WriteString(" " + string(r.Action))
		if r.Action == ActionQueue {
			fmt.Fprintf(&b, " (max_wait %v)", r.MaxWait)
		}
	}
	if r.Mode == ModeShadow {
		b.WriteString(" SHADOW")
	}
	if len(r.Overrides) > 0 {
		fmt.Fprintf(&b, ", %d overrides", len(r.Overrides))
	}
	ops := make([]string, len(r.AppliesTo))
	for i, op := range r.AppliesTo {
		ops[i] = string(op)
	}
	b.WriteString(" on " + strings.Join(ops, ", "))
	return b.String()
}

// overrideKey is a parsed override key.
type overrideKey struct {
	tenant string
	user   string // "" for a tenant override
}

// parseOverrideKey reads "tenant:<tenant>" or "user:<tenant>/<user>".
func parseOverrideKey(k string) (overrideKey, error) {
	if t, ok := strings.CutPrefix(k, "tenant:"); ok {
		if !validTenant(t) {
			return overrideKey{}, fmt.Errorf("key %q: tenant %q is not [A-Za-z0-9_-]{1,64}", k, t)
		}
		return overrideKey{tenant: t}, nil
	}
	if rest, ok := strings.CutPrefix(k, "user:"); ok {
		t, u, ok := strings.Cut(rest, "/")
		if !ok {
			return overrideKey{}, fmt.Errorf("key %q: name the tenant too, as user:<tenant>/<user> (user ids are per tenant)", k)
		}
		if !validTenant(t) {
			return overrideKey{}, fmt.Errorf("key %q: tenant %q is not [A-Za-z0-9_-]{1,64}", k, t)
		}
		if !validUser(u) {
			return overrideKey{}, fmt.Errorf("key %q: user %q is not [A-Za-z0-9_.@-]{1,128}", k, u)
		}
		return overrideKey{tenant: t, user: u}, nil
	}
	return overrideKey{}, fmt.Errorf("key %q: want tenant:<tenant> or user:<tenant>/<user>", k)
}

func validTenant(s string) bool {
	return validChars(s, 64, func(c byte) bool { return isAlnum(c) || c == '_' || c == '-' })
}

func validUser(s string) bool {
	return validChars(s, 128, func(c byte) bool { return isAlnum(c) || strings.IndexByte("_.@-", c) >= 0 })
}

func validName(s string) bool {
	return validChars(s, 64, func(c byte) bool { return isLowerAlnum(c) || strings.IndexByte("_.-", c) >= 0 })
}

// validGlob accepts path.Match patterns over the event-type alphabet
// [a-z0-9_.-].
func validGlob(s string) error {
	if s == "" {
		return fmt.Errorf("empty: omit match.type to match every type")
	}
	if len(s) > 128 {
		return fmt.Errorf("%q is longer than 128 characters", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLowerAlnum(c) && strings.IndexByte("_.-*?[]^!\\", c) < 0 {
			return fmt.Errorf("%q: %q can never match (event types are [a-z0-9_.-])", s, c)
		}
	}
	if _, err := path.Match(s, ""); err != nil {
		return fmt.Errorf("%q is not a valid glob: %v", s, err)
	}
	return nil
}

func validChars(s string, max int, ok func(byte) bool) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
func isAlnum(c byte) bool      { return isLowerAlnum(c) || c >= 'A' && c <= 'Z' }

// parseDuration reads a Go duration ("1m", "30s", "1h30m").
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.Atoi(s); nerr == nil {
			return 0, fmt.Errorf("%q has no unit: write %ss or %sm", s, s, s)
		}
		return 0, fmt.Errorf("%q is not a duration like 30s, 1m or 1h", s)
	}
	return d, nil
}
