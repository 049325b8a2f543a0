// Package redisurl turns a Redis URL (redis://, rediss://, or
// redis+cluster://host:port,host:port) into a go-redis client, the same way
// for every command (cmd/herald, cmd/herald-load). It imports only go-redis
// and the standard library; only the commands import it. Its functions are
// safe for concurrent use.
package redisurl
