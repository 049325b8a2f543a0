package replicas

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/redis/go-redis/v9"
)

// ErrNotReplicated is returned when fewer replicas than asked acknowledged
// the writes within the timeout. The writes were made on the master; the
// caller should send them again (they are idempotent in Herald) rather
// than report them stored.
var ErrNotReplicated = errors.New("not acknowledged by enough replicas")

// Policy says how many replicas must have a write before it counts as
// stored. The zero Policy waits for none.
type Policy struct {
	Replicas int // replicas that must acknowledge; 0 means none

	// Timeout is the longest wait for them; 0 means 1s. It may be as
	// long as or longer than the client's ReadTimeout: Exec reads the
	// WAIT's reply under a deadline of its own (see Exec).
	Timeout time.Duration
}

// On reports whether p waits for replicas.
func (p Policy) On() bool { return p.Replicas > 0 }

// Exec queues n commands (queue(pipe, i) queues command i, whose key is
// key(i)) in one pipeline per master (a MULTI transaction with tx), each
// followed by a write of its own and WAIT, and runs them. The commands
// carry their own results and errors; Exec returns an error wrapping
// ErrNotReplicated when a master's WAIT counted too few replicas, or the
// WAIT's own error.
//
// The write before WAIT (SET keys.WaitMark(<first key>), for a minute)
// makes WAIT cover everything the master did before it, not only this
// connection's writes: a retry whose commands change nothing (an append
// that is all duplicates) must still wait for the first attempt's writes
// to reach the replicas.
//
// go-redis reads a whole pipeline's replies under one read deadline, the
// client's ReadTimeout from when the pipeline was written, and ignores a
// command's own timeout there (that of pipe.Wait included). So Exec sends
// each master's pipeline through a copy of its *redis.Client whose
// ReadTimeout is ReadTimeout + p.Timeout + waitSlack: the commands before
// the WAIT have the whole ReadTimeout they would have without it, and the
// WAIT its timeout on top. Without that, a p.Timeout near ReadTimeout
// failed with an i/o timeout instead of ErrNotReplicated, and go-redis
// sent the whole pipeline again, up to MaxRetries times, before giving up.
// A client that is not a *redis.Client (a Ring, a wrapper) is used as it
// is: keep p.Timeout + waitSlack + the time its commands take below its
// ReadTimeout.
func Exec(ctx context.Context, rdb redis.UniversalClient, p Policy, n int, tx bool, key func(i int) string, queue func(pipe redis.Pipeliner, i int)) error {
	groups, clients, err := byMaster(ctx, rdb, n, key)
	if err != nil {
		return err
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	_, cluster := rdb.(*redis.ClusterClient)
	var first, redirected error
	noteRedirect := func(cmds []redis.Cmder) {
		for _, c := range cmds {
			if err := c.Err(); err != nil && redirected == nil && (strings.HasPrefix(err.Error(), "MOVED ") || strings.HasPrefix(err.Error(), "ASK ")) {
				redirected = err
			}
		}
	}
	for addr, idx := range groups {
		pipe := forWait(clients[addr], timeout).Pipeline()
		if tx {
			// The transactions first (one per slot on a cluster: one may
			// not span slots), then the mark and WAIT outside them: inside
			// MULTI, WAIT does not block.
			for _, part := range txParts(idx, key, cluster) {
				txp := clients[addr].TxPipeline()
				for _, i := range part {
					queue(txp, i)
				}
				cmds, _ := txp.Exec(ctx)
				noteRedirect(cmds)
			}
		} else {
			for _, i := range idx {
				queue(pipe, i)
			}
		}
		pipe.Set(ctx, keys.WaitMark(key(idx[0])), "1", time.Minute)
		wait := pipe.Do(ctx, "WAIT", p.Replicas, timeout.Milliseconds())
		cmds, _ := pipe.Exec(ctx) // each command carries its own error
		noteRedirect(cmds)
		got, err := wait.Int()
		switch {
		case err != nil && first == nil:
			first = fmt.Errorf("wait for replicas of %s: %w", addr, err)
		case err == nil && got < p.Replicas && first == nil:
			first = fmt.Errorf("wait for replicas of %s: %d of %d: %w", addr, got, p.Replicas, ErrNotReplicated)
		}
	}
	if first != nil || redirected != nil {
		if cl, ok := rdb.(*redis.ClusterClient); ok {
			cl.ReloadState(ctx) // a failover or a resharding moved slots: the caller retries
		}
	}
	if redirected != nil {
		// Ahead of the WAIT's error: after a failover the node asked may
		// be a replica now, whose WAIT fails with an error that is not
		// worth a failed delivery; the MOVED says "try again".
		return fmt.Errorf("commands redirected (the caller retries): %w", redirected)
	}
	return first
}

// waitSlack is how late Redis may answer a WAIT after its timeout: it
// times blocked clients out from its cron, every 1000/hz ms (100 ms at the
// default hz 10: measured up to 100 ms late on Redis 7.0; 1 s at hz 1).
const waitSlack = time.Second

// forWait returns c, for a pipeline that ends with a WAIT of timeout, with
// a read deadline that covers the WAIT: ReadTimeout + timeout + waitSlack
// (see Exec). A client without a read deadline, or that is not a
// *redis.Client, is returned as it is. The copy shares c's connections;
// it costs about a dozen small allocations, nothing next to the WAIT.
// Its WriteTimeout is the same as its ReadTimeout (go-redis sets both).
func forWait(c pipeliner, timeout time.Duration) pipeliner {
	cl, ok := c.(*redis.Client)
	if !ok {
		return c
	}
	read := cl.Options().ReadTimeout
	if read <= 0 { // 0: no deadline; -1: none set at all
		return c
	}
	return cl.WithTimeout(read + timeout + waitSlack)
}

// txParts splits one master's commands into the transactions they may
// share: all of them on one Redis, one per hash slot on a cluster.
func txParts(idx []int, key func(int) string, cluster bool) [][]int {
	if !cluster {
		return [][]int{idx}
	}
	var parts [][]int
	at := map[int]int{} // slot -> index in parts
	for _, i := range idx {
		slot := keys.Slot(key(i))
		j, ok := at[slot]
		if !ok {
			j = len(parts)
			at[slot] = j
			parts = append(parts, nil)
		}
		parts[j] = append(parts[j], i)
	}
	return parts
}

// pipeliner is what Exec needs of a client for one master.
type pipeliner interface {
	Pipeline() redis.Pipeliner
	TxPipeline() redis.Pipeliner
}

// byMaster groups the n commands by the master of their key: all in one
// group on a single Redis.
func byMaster(ctx context.Context, rdb redis.UniversalClient, n int, key func(int) string) (map[string][]int, map[string]pipeliner, error) {
	cl, ok := rdb.(*redis.ClusterClient)
	if !ok {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		return map[string][]int{"": all}, map[string]pipeliner{"": rdb}, nil
	}
	groups, clients := map[string][]int{}, map[string]pipeliner{}
	for i := range n {
		node, err := cl.MasterForKey(ctx, key(i))
		if err != nil {
			return nil, nil, fmt.Errorf("find the master of %s: %w", key(i), err)
		}
		addr := node.Options().Addr
		groups[addr] = append(groups[addr], i)
		clients[addr] = node
	}
	return groups, clients, nil
}
