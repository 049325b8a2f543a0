package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// newsTopic is the topic some devices of every tenant subscribe to.
const newsTopic = "news"

// tenantSpec is one tenant of the fleet.
type tenantSpec struct {
	name  string
	users int
}

// fleetConfig shapes the clients. Zero values are the defaults.
type fleetConfig struct {
	tenants     []tenantSpec  // nil means acme with 140 users and globex with 40
	webEvery    int           // every n-th user has a "web" device besides its "phone"; 0 means 4
	topicEvery  int           // every n-th device subscribes to newsTopic; 0 means 3
	resumeEvery int           // every n-th device sends resume frames; 0 means 2
	v2Every     int           // every n-th device speaks protocol 2 with permessage-deflate (the rest protocol 1 uncompressed); 0 means 2, <0 none
	tokenTTL    time.Duration // life of the clients' tokens; 0 means an hour
}

// user is one user of the fleet and its devices.
type user struct {
	tenant, name string
	devices      []*wsClient
}

// fleet is every client of a scenario and who receives what.
type fleet struct {
	t       *testing.T
	c       *cluster
	clients []*wsClient
	users   []*user
	byUser  map[string]*user       // "tenant/user"
	tenants map[string][]*wsClient // every device of the tenant
	topics  map[string][]*wsClient // "tenant/topic": its subscribers
	ghosts  map[string][]string    // tenant: users with no device (events to them reach no one)

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

func newFleet(t *testing.T, c *cluster, cfg fleetConfig) *fleet {
	if cfg.tenants == nil {
		cfg.tenants = []tenantSpec{{"acme", 140}, {"globex", 40}}
	}
	webEvery, topicEvery, resumeEvery, v2Every := or(cfg.webEvery, 4), or(cfg.topicEvery, 3), or(cfg.resumeEvery, 2), or(cfg.v2Every, 2)
	f := &fleet{t: t, c: c, byUser: map[string]*user{}, tenants: map[string][]*wsClient{},
		topics: map[string][]*wsClient{}, ghosts: map[string][]string{}}
	for _, ts := range cfg.tenants {
		for i := range ts.users {
			name := fmt.Sprintf("%s-u%d", ts.name[:1], i)
			devices := []string{"phone"}
			if i%webEvery == 0 {
				devices = append(devices, "web")
			}
			for _, d := range devices {
				n := len(f.clients)
				spec := clientSpec{tenant: ts.name, user: name, device: d, urls: c.urls(n), resume: n%resumeEvery == 0,
					tokenTTL: cfg.tokenTTL, v2: v2Every > 0 && n%v2Every == 1%v2Every}
				if n%topicEvery == 0 {
					spec.topics = []string{newsTopic}
				}
				f.add(spec)
			}
		}
		for i := range 5 {
			f.ghosts[ts.name] = append(f.ghosts[ts.name], fmt.Sprintf("%s-ghost%d", ts.name[:1], i))
		}
	}
	t.Cleanup(f.stop)
	return f
}

func or(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// add adds a device before start.
func (f *fleet) add(spec clientSpec) *wsClient {
	c := newClient(len(f.clients), spec)
	f.clients = append(f.clients, c)
	uk := spec.tenant + "/" + spec.user
	u := f.byUser[uk]
	if u == nil {
		u = &user{tenant: spec.tenant, name: spec.user}
		f.byUser[uk] = u
		f.users = append(f.users, u)
	}
	u.devices = append(u.devices, c)
	f.tenants[spec.tenant] = append(f.tenants[spec.tenant], c)
	for _, t := range spec.topics {
		f.topics[spec.tenant+"/"+t] = append(f.topics[spec.tenant+"/"+t], c)
	}
	return c
}

// start connects every client and waits until all are ready: welcomed
// and subscribed. By then every device's first ACK positions must be in
// Redis (the edge writes them before the welcome, and before it handles
// the frame after a sub), so that any edge can resume any of them.
func (f *fleet) start() {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	for _, c := range f.clients {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			c.run(ctx)
		}()
	}
	eventually(f.t, 60*time.Second, "every client welcomed", func() bool {
		for _, c := range f.clients {
			if !c.isReady() {
				return false
			}
		}
		return true
	})
	if !f.positionsStored() {
		f.t.Fatal("welcomed devices without their first ACK positions in Redis")
	}
}

// positionsStored reports whether every device has a position in Redis
// for each of its feeds (user, tenant and its topics).
func (f *fleet) positionsStored() bool {
	ctx := context.Background()
	cmds := make([]*redis.IntCmd, len(f.clients))
	_, err := f.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range f.clients {
			cmds[i] = p.HLen(ctx, f.c.space.Acks(c.tenant, c.user, c.device))
		}
		return nil
	})
	if err != nil {
		return false
	}
	for i, c := range f.clients {
		if cmds[i].Val() < int64(2+len(c.topics)) {
			return false
		}
	}
	return true
}

// stop disconnects every client and waits for their goroutines.
func (f *fleet) stop() {
	f.once.Do(func() {
		if f.cancel != nil {
			f.cancel()
		}
		f.wg.Wait()
	})
}

// spawn runs fn on a goroutine that stop waits for (a graceful drop, say).
func (f *fleet) spawn(fn func()) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		fn()
	}()
}

// targets returns the indexes of the devices an event is meant for.
func (f *fleet) targets(s spec) []int32 {
	var out []int32
	add := func(cs []*wsClient) {
		for _, c := range cs {
			if s.device == "" || c.device == s.device {
				out = append(out, int32(c.idx))
			}
		}
	}
	switch {
	case s.tenantWide:
		add(f.tenants[s.tenant])
	case s.topic != "":
		add(f.topics[s.tenant+"/"+s.topic])
	default:
		for _, u := range s.users {
			if du := f.byUser[s.tenant+"/"+u]; du != nil {
				add(du.devices)
			}
		}
	}
	return out
}

// caughtUp reports whether every device accepted at least what the ledger
// expects of it.
func (f *fleet) caughtUp(l *ledger) bool {
	want := l.expectedCounts(len(f.clients))
	for i, c := range f.clients {
		if c.accepted.Load() < want[i] {
			return false
		}
	}
	return true
}

// closes counts the sessions of every client that ended with code.
func (f *fleet) closes(code int) int {
	n := 0
	for _, c := range f.clients {
		n += c.closeCount(code)
	}
	return n
}

// behind describes the devices that have fewer events than the ledger
// expects, for failure messages.
func (f *fleet) behind(l *ledger) []string {
	want := l.expectedCounts(len(f.clients))
	var out []string
	for i, c := range f.clients {
		if got := c.accepted.Load(); got < want[i] {
			out = append(out, fmt.Sprintf("%s has %d of %d", c.key(), got, want[i]))
		}
	}
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("and %d more", len(out)-10))
	}
	return out
}

// disturbed lists the clients that reconnected, failed to dial or got an
// error frame.
func (f *fleet) disturbed() []string {
	var out []string
	for _, c := range f.clients {
		c.mu.Lock()
		closes, errs := len(c.closes), len(c.errs)
		c.mu.Unlock()
		if n := c.connects.Load(); n != 1 || closes > 0 || errs > 0 || c.dialFails.Load() > 0 {
			out = append(out, fmt.Sprintf("%s: %d welcomes, closes %v, error frames %v, %d failed dials",
				c.key(), n, c.closes, c.errs, c.dialFails.Load()))
		}
	}
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("and %d more", len(out)-10))
	}
	return out
}
