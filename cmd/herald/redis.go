package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// redisOptions are the Redis flags shared by every command.
type redisOptions struct {
	url    string
	prefix string
}

func (f *flags) redis(o *redisOptions) {
	f.String(&o.url, "redis-url", "redis://127.0.0.1:6379/0", "Redis URL (redis://, rediss://, or redis+cluster://host:port,host:port)")
	f.String(&o.prefix, "prefix", "herald:", "key prefix of every Herald key")
}

// client connects and checks that Redis answers, so a command that cannot
// reach Redis at start says so in one line.
func (o redisOptions) client(ctx context.Context) (redis.UniversalClient, error) {
	rdb, err := o.newClient()
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis at %s is unreachable: %w", redact(o.url), err)
	}
	return rdb, nil
}

func (o redisOptions) newClient() (redis.UniversalClient, error) {
	if rest, ok := strings.CutPrefix(o.url, "redis+cluster://"); ok {
		u, err := url.Parse("redis://" + rest)
		if err != nil {
			return nil, fmt.Errorf("%w: --redis-url: %v", errUsage, err)
		}
		opts := &redis.ClusterOptions{Addrs: strings.Split(u.Host, ","), DisableIdentity: true,
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}}
		if u.User != nil {
			opts.Username = u.User.Username()
			opts.Password, _ = u.User.Password()
		}
		return redis.NewClusterClient(opts), nil
	}
	opts, err := redis.ParseURL(o.url)
	if err != nil {
		return nil, fmt.Errorf("%w: --redis-url %q: %v", errUsage, redact(o.url), err)
	}
	// Neither CLIENT SETINFO nor CLIENT MAINT_NOTIFICATIONS on connect:
	// Redis before 7.2 answers each with an error on every new connection,
	// one only labels the connection and the other is for managed Redis
	// services' maintenance events.
	opts.DisableIdentity = true
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return redis.NewClient(opts), nil
}

// redisLog routes go-redis's own messages (pool dial failures while Redis
// is down, for example) into the command's structured log at WARN, where
// go-redis would print them to stderr.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// redact hides a password in a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
