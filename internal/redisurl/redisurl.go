package redisurl

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ErrBadURL is wrapped by the errors of a URL that does not parse.
var ErrBadURL = errors.New("bad Redis URL")

// Open builds a client for rawURL and checks within 5 s that Redis
// answers, so that a command that cannot reach Redis at start says so in
// one line.
func Open(ctx context.Context, rawURL string) (redis.UniversalClient, error) {
	rdb, err := New(rawURL)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis at %s is unreachable: %w", Redact(rawURL), err)
	}
	return rdb, nil
}

// New builds a client for rawURL without connecting: a ClusterClient for
// redis+cluster://, a Client otherwise.
func New(rawURL string) (redis.UniversalClient, error) {
	// Neither CLIENT SETINFO nor CLIENT MAINT_NOTIFICATIONS on connect:
	// Redis before 7.2 answers each with an error on every new connection,
	// one only labels the connection and the other is for managed Redis
	// services' maintenance events.
	noMaint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if rest, ok := strings.CutPrefix(rawURL, "redis+cluster://"); ok {
		u, err := url.Parse("redis://" + rest)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadURL, err)
		}
		opts := &redis.ClusterOptions{Addrs: strings.Split(u.Host, ","), DisableIdentity: true, MaintNotificationsConfig: noMaint}
		if u.User != nil {
			opts.Username = u.User.Username()
			opts.Password, _ = u.User.Password()
		}
		return redis.NewClusterClient(opts), nil
	}
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrBadURL, Redact(rawURL), err)
	}
	opts.DisableIdentity = true
	opts.MaintNotificationsConfig = noMaint
	return redis.NewClient(opts), nil
}

// Redact hides a password in a URL, for messages.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
