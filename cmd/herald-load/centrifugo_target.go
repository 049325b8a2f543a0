package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/heraldrt/herald/internal/loadtest/centrifugo"
	"github.com/redis/go-redis/v9"
)

// The Centrifugo targets: Centrifugo v6 (internal/loadtest/centrifugo) as
// a Herald user would otherwise deploy it for notifications. One node with
// the Redis engine; every connection of user u subscribed on the server
// side to its personal channel "personal:#u" (presence on); "centrifugo"
// keeps no history, "centrifugo-history" keeps it for the personal
// channels (a Redis stream per channel, recovery forced on).
//
//   - Personal events: the server API's batch method, parallel, at most one
//     publication per channel in a request (a pass of the publisher with
//     more events than users is split into consecutive requests).
//     Each publication carries the event's idempotency key (Centrifugo's
//     idempotency_key, kept in its Redis for 5 minutes), as Herald's do.
//   - Broadcast: one broadcast API call into the personal channel of every
//     client of the run (--clients). That is what a Centrifugo user does
//     when every user must find the notification in the channel it
//     follows and recovers from; Centrifugo publishes into the channels
//     with up to 1,024 at once. A channel every client is subscribed to
//     would be one publication instead of one per user, but it needs a
//     namespace of its own and a channels claim in every token, which the
//     package's configuration does not have, and with history its misses
//     would be recovered from a stream apart from the personal one.
//   - Clients: the connect command, pongs, no acks (the protocol has
//     none); with history a reconnecting client names its position in the
//     connect command and the connect reply recovers what it missed.
//
// Each variant starts its own redis-server in Open (unless
// --centrifugo-redis names one: the variants then share it under
// different key prefixes), so that Redis's CPU per notification is
// Centrifugo's own.

// centrifugoTokenEnv carries the token secret to the workers (Centrifugo's
// own name for the setting; centrifugo itself never sees the workers'
// environment).
const centrifugoTokenEnv = "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY"

// installTimeout bounds a cold build of centrifugo (a few minutes on two
// busy cores).
const installTimeout = 15 * time.Minute

// tokenTTL is how long a client's token lives: longer than any run, since
// Centrifugo asks for a refresh before a token expires and the clients do
// not refresh.
const tokenTTL = 48 * time.Hour

// centrifugoFlags are the settings the Centrifugo targets share.
type centrifugoFlags struct {
	bin    string
	binDir string
	redis  string

	once       sync.Once // Install runs once for both variants
	installed  string
	installErr error
}

// centrifugoSpec is the target spec of one variant.
func centrifugoSpec(history bool) targetSpec {
	return targetSpec{
		flags: func(f *flags) targetFlags {
			shared := f.shared("centrifugo", func() any { return centrifugoFlagSet(f) }).(*centrifugoFlags)
			return &centrifugoVariant{shared: shared, history: history}
		},
		client: centrifugoClientSide,
	}
}

func centrifugoFlagSet(f *flags) *centrifugoFlags {
	o := new(centrifugoFlags)
	f.String(&o.bin, "centrifugo-bin", "", "centrifugo: the centrifugo "+centrifugo.Version+" binary (\"\": build it into --centrifugo-bin-dir once)")
	f.String(&o.binDir, "centrifugo-bin-dir", "bin", "centrifugo: where the binary is built (gitignored bin/ of the module)")
	f.String(&o.redis, "centrifugo-redis", "", "centrifugo: host:port or redis:// URL of a Redis for Centrifugo (\"\": each variant starts its own redis-server)")
	return o
}

// binary returns the centrifugo binary, building it the first time.
func (o *centrifugoFlags) binary(ctx context.Context) (string, error) {
	if o.bin != "" {
		// centrifugo runs in a directory of its own: the path must not be relative
		return filepath.Abs(o.bin)
	}
	o.once.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, installTimeout)
		defer cancel()
		o.installed, o.installErr = centrifugo.Install(ctx, o.binDir)
	})
	return o.installed, o.installErr
}

// redisAddr is --centrifugo-redis as host:port.
func (o *centrifugoFlags) redisAddr() (string, error) {
	if u, err := url.Parse(o.redis); err == nil && u.Scheme != "" {
		if u.Scheme != "redis" || u.Host == "" {
			return "", fmt.Errorf("%w: --centrifugo-redis %q: want host:port or redis://host:port", errUsage, o.redis)
		}
		return u.Host, nil
	}
	if _, _, err := net.SplitHostPort(o.redis); err != nil {
		return "", fmt.Errorf("%w: --centrifugo-redis %q: want host:port or redis://host:port", errUsage, o.redis)
	}
	return o.redis, nil
}

// centrifugoVariant is one variant's settings.
type centrifugoVariant struct {
	shared  *centrifugoFlags
	history bool
}

func (v *centrifugoVariant) open(c targetCommon) (Target, error) {
	if v.shared.redis != "" {
		if _, err := v.shared.redisAddr(); err != nil {
			return nil, err
		}
	}
	return &centrifugoTarget{o: v.shared, history: v.history, c: c}, nil
}

// centrifugoTarget is a Centrifugo node and its Redis, started by Open
// and stopped by Close.
type centrifugoTarget struct {
	o       *centrifugoFlags
	history bool
	c       targetCommon

	redis *redisServer // ours, or nil
	rdb   redis.UniversalClient
	srv   *centrifugo.Server
	api   *centrifugo.API
	chans []string // the broadcast's channels: every client's personal channel
}

func (t *centrifugoTarget) Name() string {
	if t.history {
		return "centrifugo-history"
	}
	return "centrifugo"
}

func (t *centrifugoTarget) Traits() Traits { return Traits{Acks: false, Resume: t.history, Keys: true} }

func (t *centrifugoTarget) Prepare(ctx context.Context) error {
	_, err := t.o.binary(ctx)
	return err
}

// Open builds the binary if need be, starts a redis-server (unless one is
// given) and the Centrifugo node.
func (t *centrifugoTarget) Open(ctx context.Context) error {
	bin, err := t.o.binary(ctx)
	if err != nil {
		return err
	}
	addr := t.o.redis
	if addr == "" {
		if t.redis, err = startRedisServer(ctx); err != nil {
			return err
		}
		addr = t.redis.addr
	} else if addr, err = t.o.redisAddr(); err != nil {
		return err
	}
	rdb, err := redisOptions{url: "redis://" + addr}.client(ctx)
	if err != nil {
		t.Close(ctx)
		return err
	}
	t.rdb = rdb
	cfg := centrifugo.Config{History: t.history, RedisPrefix: "herald-load-" + t.Name()}
	if t.srv, err = centrifugo.Start(ctx, bin, addr, cfg); err != nil {
		t.Close(ctx)
		return fmt.Errorf("%s: %w", t.Name(), err)
	}
	t.api = centrifugo.NewAPI(t.srv.APIURL(), t.srv.Config().APIKey, centrifugo.APIConfig{ParallelBatch: true})
	t.chans = make([]string, t.c.clients)
	for u := range t.chans {
		t.chans[u] = centrifugo.PersonalChannel("u" + strconv.Itoa(u))
	}
	return nil
}

// Close stops the node, then its Redis; the error is the node's
// (Centrifugo's Stop reports a process that had to be killed or died).
func (t *centrifugoTarget) Close(context.Context) error {
	var err error
	if t.api != nil {
		t.api.Close()
	}
	if t.srv != nil {
		err = t.srv.Stop()
		t.srv = nil
	}
	if t.rdb != nil {
		t.rdb.Close()
	}
	if t.redis != nil {
		t.redis.stop()
		t.redis = nil
	}
	return err
}

func (t *centrifugoTarget) WorkerArgs() []string {
	return []string{"--url", t.srv.ConnectURL(), "--history=" + strconv.FormatBool(t.history)}
}

func (t *centrifugoTarget) WorkerEnv() []string {
	return []string{centrifugoTokenEnv + "=" + t.srv.Config().Secret}
}

// PublishPersonal sends the events in batch requests that Centrifugo runs
// in parallel, each with at most one publication per channel (two into
// one channel could swap), one request after the other.
func (t *centrifugoTarget) PublishPersonal(ctx context.Context, evs []Event) ([]bool, error) {
	stored := make([]bool, len(evs))
	var first error
	for start := 0; start < len(evs); {
		end := distinctUsers(evs, start)
		cmds := make([]centrifugo.Command, end-start)
		for i, ev := range evs[start:end] {
			cmds[i] = centrifugo.Command{Channel: centrifugo.PersonalChannel("u" + strconv.Itoa(ev.User)), Data: ev.Data, IdempotencyKey: ev.Key}
		}
		failed, err := t.api.Batch(ctx, cmds)
		// A partial failure does not say which commands failed: all of
		// the request count as not stored (what did arrive shows as extra).
		for i := start; i < end; i++ {
			stored[i] = failed == 0
		}
		if err != nil && first == nil {
			first = fmt.Errorf("%d of %d publications failed: %w", failed, len(cmds), err)
		}
		start = end
	}
	return stored, first
}

// distinctUsers returns the end of the longest run of events from start
// whose users all differ.
func distinctUsers(evs []Event, start int) int {
	seen := make(map[int]bool, len(evs)-start)
	for i := start; i < len(evs); i++ {
		if seen[evs[i].User] {
			return i
		}
		seen[evs[i].User] = true
	}
	return len(evs)
}

// PublishBroadcast publishes the event into every client's personal
// channel in one broadcast call.
func (t *centrifugoTarget) PublishBroadcast(ctx context.Context, ev Event) error {
	if len(t.chans) == 0 {
		return errors.New("broadcast: no clients")
	}
	if ev.Key == "" {
		return t.api.Broadcast(ctx, t.chans, ev.Data)
	}
	failed, err := t.api.Batch(ctx, []centrifugo.Command{{Channels: t.chans, Data: ev.Data, IdempotencyKey: ev.Key}})
	if failed > 0 {
		return err
	}
	return nil
}

// Processes are the centrifugo node (it holds the connections: role
// edge) and its Redis; /proc gives the node's CPU, RSS and descriptors,
// INFO Redis's.
func (t *centrifugoTarget) Processes(ctx context.Context) ([]Process, error) {
	ps := []Process{{Name: "centrifugo", Role: roleEdge, PID: t.srv.PID()}}
	pid, err := redisPID(ctx, t.rdb)
	if err != nil {
		return ps, err
	}
	rdb := t.rdb
	read := func(ctx context.Context) (map[string]float64, error) { return redisInfo(ctx, rdb) }
	return append(ps, Process{Name: "redis", Role: roleRedis, PID: pid, Read: read}), nil
}
