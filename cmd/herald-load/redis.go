package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/heraldrt/herald/internal/redisurl"
	"github.com/redis/go-redis/v9"
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

// client connects and checks that Redis answers, so a command that cannot
// reach Redis at start says so in one line.
func (o redisOptions) client(ctx context.Context) (redis.UniversalClient, error) {
	rdb, err := redisurl.Open(ctx, o.url)
	if errors.Is(err, redisurl.ErrBadURL) {
		return nil, fmt.Errorf("%w: --redis-url: %v", errUsage, err)
	}
	return rdb, err
}
