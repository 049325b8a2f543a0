package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/producer"
	"github.com/redis/go-redis/v9"
)

const (
	// publishGiveUp bounds how long one batch is retried (Redis down).
	publishGiveUp = 60 * time.Second
	// maxBatch caps one pipelined batch (a catch-up after Redis was away).
	maxBatch = 500
)

// spec is one event to publish: its audience and how big it is.
type spec struct {
	tenant     string
	users      []string // user:<id> (one) or users:<id>,... (several)
	tenantWide bool     // to: tenant
	topic      string   // to: topic:<name>
	device     string   // deliver only to this device
	pad        int      // bytes of padding in data
}

func (s spec) audience() events.Audience {
	switch {
	case s.tenantWide:
		return events.ToTenant()
	case s.topic != "":
		return events.ToTopic(s.topic)
	case len(s.users) == 1:
		return events.ToUser(s.users[0])
	}
	return events.ToUsers(s.users...)
}

// mixFunc draws the next event.
type mixFunc func(rng *rand.Rand, f *fleet) spec

// defaultMix is mostly one user's events, with some for several users, a
// device, a topic, the whole tenant and users who have no device.
func defaultMix(rng *rand.Rand, f *fleet) spec {
	u := f.users[rng.IntN(len(f.users))]
	s := spec{tenant: u.tenant, users: []string{u.name}}
	switch r := rng.Float64(); {
	case r < 0.01:
		return spec{tenant: u.tenant, tenantWide: true}
	case r < 0.04:
		return spec{tenant: u.tenant, topic: newsTopic}
	case r < 0.06:
		ghosts := f.ghosts[u.tenant]
		s.users = []string{ghosts[rng.IntN(len(ghosts))]}
	case r < 0.16:
		for range 2 {
			if v := f.users[rng.IntN(len(f.users))]; v.tenant == u.tenant && !slices.Contains(s.users, v.name) {
				s.users = append(s.users, v.name)
			}
		}
	case r < 0.24:
		s.device = u.devices[rng.IntN(len(u.devices))].device
	}
	return s
}

// broadcastMix sends a tenant-wide event with probability p and the
// default mix otherwise.
func broadcastMix(p float64) mixFunc {
	return func(rng *rand.Rand, f *fleet) spec {
		if rng.Float64() < p {
			return spec{tenant: f.users[rng.IntN(len(f.users))].tenant, tenantWide: true}
		}
		return defaultMix(rng, f)
	}
}

// publisher sends paced batches through package producer and records each
// event in the ledger once Redis has stored it. Every event has an
// idempotency key, so a batch retried after an error of unknown outcome
// (Redis killed, frozen) is delivered once.
type publisher struct {
	rdb   redis.UniversalClient
	prod  *producer.Producer
	led   *ledger
	fleet *fleet
	rng   *rand.Rand
	mix   atomic.Pointer[mixFunc]
	next  int64 // event number of the next event; the first is 1

	quit     chan struct{} // closed by stop
	quitOnce sync.Once
	retries  atomic.Int64 // batches sent again after an error
	duration time.Duration
}

func newPublisher(c *cluster, f *fleet, led *ledger, mix mixFunc) *publisher {
	// No retries inside go-redis and short timeouts: the publisher retries
	// whole batches itself, and the idempotency keys make that safe.
	var rdb redis.UniversalClient
	var opts []producer.Option
	if c.rc != nil {
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.rc.Addrs(), MaxRetries: -1,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
		opts = append(opts, producer.WithPartitions(clusterPartitions))
		if c.cfg.replicas > 0 {
			opts = append(opts, producer.WithReplicaAcks(1, 500*time.Millisecond))
		}
	} else {
		rdb = redis.NewClient(&redis.Options{Addr: c.redis.Addr(), MaxRetries: -1,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	}
	p := &publisher{rdb: rdb, prod: producer.New(rdb, opts...), led: led, fleet: f, rng: rand.New(rand.NewPCG(1, 2)), next: 1,
		quit: make(chan struct{})}
	p.setMix(mix)
	return p
}

func (p *publisher) setMix(m mixFunc) { p.mix.Store(&m) }

func (p *publisher) close() { p.rdb.Close() }

// stop makes run return early (a test that failed half way).
func (p *publisher) stop() { p.quitOnce.Do(func() { close(p.quit) }) }

// errStopped is run's error after stop.
var errStopped = errors.New("publisher stopped")

// run publishes rate events per second for d: every 10ms it sends what
// is due, so after a stall (Redis frozen) it catches up and the total is
// rate×d. It returns once every event is stored, or with an error if a
// batch could not be stored within publishGiveUp.
func (p *publisher) run(rate int, d time.Duration) error {
	start := time.Now()
	total := int64(float64(rate) * d.Seconds())
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for sent := int64(0); sent < total; {
		due := min(total, int64(float64(rate)*time.Since(start).Seconds()))
		if due <= sent {
			select { // pacing, not synchronisation
			case <-tick.C:
			case <-p.quit:
				return errStopped
			}
			continue
		}
		n := min(due-sent, maxBatch)
		if err := p.batch(int(n)); err != nil {
			return err
		}
		sent += n
	}
	p.duration = time.Since(start)
	return nil
}

// batch publishes n events, retrying the whole batch until Redis took it.
func (p *publisher) batch(n int) error {
	mix := *p.mix.Load()
	specs := make([]spec, n)
	msgs := make([]producer.Message, n)
	for i := range n {
		s := mix(p.rng, p.fleet)
		e := p.next + int64(i)
		data := fmt.Sprintf(`{"e":%d}`, e)
		if s.pad > 0 {
			data = fmt.Sprintf(`{"e":%d,"pad":%q}`, e, strings.Repeat("x", s.pad))
		}
		env := events.Envelope{Type: "e2e.event", Tenant: s.tenant, To: s.audience(), Data: json.RawMessage(data),
			ID: fmt.Sprintf("e2e-%d", e), Device: s.device}
		specs[i], msgs[i] = s, producer.Envelope(env)
	}
	start := time.Now()
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, 500*time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := p.prod.PublishBatch(ctx, msgs)
		cancel()
		if err == nil {
			break
		}
		var ve *events.ValidationError
		if errors.As(err, &ve) {
			return fmt.Errorf("publisher built an invalid event: %w", err)
		}
		if time.Since(start) > publishGiveUp {
			return fmt.Errorf("batch of %d events not stored after %v: %w", n, publishGiveUp, err)
		}
		p.retries.Add(1)
		select { // retry backoff
		case <-time.After(backoff):
		case <-p.quit:
			return errStopped
		}
	}
	for i, s := range specs {
		p.led.add(p.next+int64(i), s, p.fleet.targets(s))
	}
	p.next += int64(n)
	return nil
}

// publishRaw adds one raw entry to the ingest stream (bad input), returning
// its entry id.
func publishRaw(ctx context.Context, rdb redis.UniversalClient, stream string, fields ...string) (string, error) {
	vals := make([]any, len(fields))
	for i, f := range fields {
		vals[i] = f
	}
	return rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: vals}).Result()
}
