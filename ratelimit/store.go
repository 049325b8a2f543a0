package ratelimit

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldrt/herald/internal/keys"
)

//go:embed put.lua
var putSrc string

var putScript = redis.NewScript(putSrc)

// Store keeps the rules document in Redis: a hash at Space.Rules() with
// the fields yaml (the text as written, comments included), version (bumped
// by every Put), updated_by and updated_at. Every Put publishes the new
// version on Space.RulesChannel(). A Store is safe for concurrent use.
type Store struct {
	rdb   redis.UniversalClient
	space keys.Space
}

// NewStore returns a Store on rdb under space's prefix.
func NewStore(rdb redis.UniversalClient, space keys.Space) *Store {
	return &Store{rdb: rdb, space: space}
}

// Stored is one revision of the document as stored.
type Stored struct {
	YAML []byte
	Meta Meta
}

// Get returns the stored document, or ErrNotFound.
func (s *Store) Get(ctx context.Context) (Stored, error) {
	h, err := s.rdb.HGetAll(ctx, s.space.Rules()).Result()
	if err != nil {
		return Stored{}, fmt.Errorf("read rules from %s: %w", s.space.Rules(), err)
	}
	if len(h) == 0 {
		return Stored{}, ErrNotFound
	}
	v, err := strconv.ParseInt(h["version"], 10, 64)
	if err != nil {
		return Stored{}, fmt.Errorf("read rules from %s: version %q is not a number", s.space.Rules(), h["version"])
	}
	at, _ := time.Parse(time.RFC3339Nano, h["updated_at"])
	return Stored{YAML: []byte(h["yaml"]), Meta: Meta{Version: v, UpdatedBy: h["updated_by"], UpdatedAt: at, Origin: "redis"}}, nil
}

// Load returns the stored document parsed, with its Meta.
func (s *Store) Load(ctx context.Context) (*Document, error) {
	st, err := s.Get(ctx)
	if err != nil {
		return nil, err
	}
	doc, err := ParseRules(st.YAML)
	if err != nil {
		return nil, fmt.Errorf("stored rules version %d: %w", st.Meta.Version, err)
	}
	doc.Meta = st.Meta
	return doc, nil
}

// AnyVersion makes PutIf replace whatever is stored.
const AnyVersion = -1

// Put validates the document and, when it is valid, stores it as the next
// version and announces it. who is recorded as updated_by. An invalid
// document is refused whole (errors.Is(err, ErrInvalid)) and nothing
// changes.
func (s *Store) Put(ctx context.Context, yaml []byte, who string) (Meta, error) {
	return s.PutIf(ctx, yaml, who, AnyVersion)
}

// PutIf is Put that only succeeds when the stored version is still
// version (0: nothing stored yet); otherwise it returns a *ConflictError
// (errors.Is(err, ErrConflict)).
func (s *Store) PutIf(ctx context.Context, yaml []byte, who string, version int64) (Meta, error) {
	if _, err := ParseRules(yaml); err != nil {
		return Meta{}, err
	}
	who = cleanWho(who)
	expect := ""
	if version != AnyVersion {
		expect = strconv.FormatInt(version, 10)
	}
	now := time.Now().UTC()
	v, err := putScript.Run(ctx, s.rdb, []string{s.space.Rules()},
		string(yaml), who, now.Format(time.RFC3339Nano), expect, s.space.RulesChannel()).Int64()
	if err != nil {
		if cur, ok := strings.CutPrefix(err.Error(), "CONFLICT "); ok {
			n, _ := strconv.ParseInt(cur, 10, 64)
			return Meta{}, &ConflictError{Expected: version, Current: n}
		}
		return Meta{}, fmt.Errorf("store rules in %s: %w", s.space.Rules(), err)
	}
	return Meta{Version: v, UpdatedBy: who, UpdatedAt: now, Origin: "redis"}, nil
}

// cleanWho makes updated_by a short printable line.
func cleanWho(who string) string {
	who = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, strings.TrimSpace(who))
	if len(who) > 128 {
		who = strings.ToValidUTF8(who[:128], "")
	}
	if who == "" {
		return "unknown"
	}
	return who
}
