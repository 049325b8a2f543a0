package pubsub

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Sharded reports whether rdb is a Redis Cluster client, whose channels are
// sharded.
func Sharded(rdb redis.UniversalClient) bool {
	_, ok := rdb.(*redis.ClusterClient)
	return ok
}

// Publish sends msg on channel: SPUBLISH on a cluster, PUBLISH otherwise.
func Publish(ctx context.Context, rdb redis.UniversalClient, channel string, msg any) error {
	if Sharded(rdb) {
		return rdb.SPublish(ctx, channel, msg).Err()
	}
	return rdb.Publish(ctx, channel, msg).Err()
}
