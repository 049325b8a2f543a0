package dispatcher

import (
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Errors of this package.
var (
	ErrConfig    = errors.New("dispatcher: bad config")
	ErrClosed    = errors.New("dispatcher: closed")
	ErrRunning   = errors.New("dispatcher: already running")
	ErrCrossSlot = errors.New("dispatcher: ingest stream and its lease are in different cluster slots")
	ErrLeaseLost = errors.New("dispatcher: stream lease lost")
	ErrNotFound  = errors.New("dispatcher: no such dead letter")
	ErrBadDLQID  = errors.New("dispatcher: malformed dead-letter id")
	ErrInvalid   = errors.New("dispatcher: dead letter still breaks the contract")
)

// transientPrefixes are Redis error replies that say "try again later":
// the server is loading, failing over, full or busy. A batch that fails with
// one of them is retried as it is; its entries' delivery counts do not grow.
var transientPrefixes = []string{
	"LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY",
	"NOREPLICAS", "OOM", "MOVED", "ASK", "NOSCRIPT",
}

// transient reports whether err is worth retrying unchanged: anything that
// is not an error reply from Redis (a network error, a timeout, a full
// pool), or a reply from transientPrefixes. Other replies (WRONGTYPE, a
// script error) come from the data and count as a failed delivery.
func transient(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return true
	}
	for _, p := range transientPrefixes {
		if strings.HasPrefix(re.Error(), p) {
			return true
		}
	}
	return false
}

// isNoGroup reports a missing consumer group (the stream was deleted).
func isNoGroup(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "NOGROUP")
}
