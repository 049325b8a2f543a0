package wsedge_test

import "github.com/redis/go-redis/v9"

type redisXAdd struct {
	Stream string
	ID     string
	Values []any
}

func (x redisXAdd) args() *redis.XAddArgs {
	return &redis.XAddArgs{Stream: x.Stream, ID: x.ID, Values: x.Values}
}
