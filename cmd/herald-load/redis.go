package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// redisOptions are the Redis flags: where the deployment's Redis is.
type redisOptions struct {
	url    string
	prefix string
}

func (f *flags) redis(o *redisOptions) {
	f.String(&o.url, "redis-url", "redis://127.0.0.1:6379/0", "Redis URL of the deployment (redis://, rediss://, or redis+cluster://host:port,host:port)")
	f.String(&o.prefix, "prefix", "herald:", "key prefix of every Herald key")
}

// client connects and checks that Redis answers.
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
	noMaint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if rest, ok := strings.CutPrefix(o.url, "redis+cluster://"); ok {
		u, err := url.Parse("redis://" + rest)
		if err != nil {
			return nil, fmt.Errorf("%w: --redis-url: %v", errUsage, err)
		}
		opts := &redis.ClusterOptions{Addrs: strings.Split(u.Host, ","), DisableIdentity: true, MaintNotificationsConfig: noMaint}
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
	// Redis before 7.2 answers each with an error.
	opts.DisableIdentity = true
	opts.MaintNotificationsConfig = noMaint
	return redis.NewClient(opts), nil
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
