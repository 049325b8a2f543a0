package pubsub_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/leakcheck"
	"github.com/heraldrt/herald/internal/pubsub"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// channels returns n channels with a hash tag each, spread over the slots
// as feed channels are.
func channels(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("herald:ch:{t1:u%d}", i)
	}
	return out
}

// collector reads a Subscriber in the background into counts.
type collector struct {
	confirmed chan string // channel of every (s)subscribe confirmation
	left      chan string // channel of every (s)unsubscribe confirmation
	messages  chan *redis.Message
	done      chan struct{}
}

func collect(t *testing.T, sub pubsub.Subscriber) *collector {
	t.Helper()
	c := &collector{confirmed: make(chan string, 10000), left: make(chan string, 10000), messages: make(chan *redis.Message, 10000), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(c.done)
		for {
			m, err := sub.Receive(ctx)
			if err != nil {
				return
			}
			switch v := m.(type) {
			case *redis.Message:
				c.messages <- v
			case *redis.Subscription:
				switch v.Kind {
				case "subscribe", "ssubscribe":
					c.confirmed <- v.Channel
				case "unsubscribe", "sunsubscribe":
					c.left <- v.Channel
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); _ = sub.Close(); <-c.done })
	return c
}

// await takes n values from ch, or fails after 40 s (a failover on a busy
// machine takes a while to show in the slot map).
func await[T any](t *testing.T, ch chan T, n int, what string) []T {
	t.Helper()
	out := make([]T, 0, n)
	timeout := time.After(40 * time.Second)
	for len(out) < n {
		select {
		case v := <-ch:
			out = append(out, v)
		case <-timeout:
			t.Fatalf("%s: %d of %d after 40s", what, len(out), n)
		}
	}
	return out
}

// publishAll publishes "<round>:<channel>" on every channel, retrying each
// until the cluster takes it (a failover in progress refuses writes).
func publishAll(t *testing.T, rdb redis.UniversalClient, chs []string, round int) {
	t.Helper()
	ctx := context.Background()
	for _, ch := range chs {
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := pubsub.Publish(ctx, rdb, ch, fmt.Sprintf("%d:%s", round, ch))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %s: %v", ch, err)
			}
			time.Sleep(50 * time.Millisecond) // the cluster is electing a master
		}
	}
}

// expectRound checks that every channel got its message of round once.
func expectRound(t *testing.T, c *collector, chs []string, round int) {
	t.Helper()
	got := map[string]int{}
	for _, m := range await(t, c.messages, len(chs), fmt.Sprintf("round %d messages", round)) {
		if !strings.HasPrefix(m.Payload, fmt.Sprint(round)+":") {
			continue
		}
		got[m.Channel]++
	}
	for _, ch := range chs {
		if got[ch] != 1 {
			t.Fatalf("round %d: channel %s got %d messages, want 1", round, ch, got[ch])
		}
	}
}

func pubsubClients(t *testing.T, srv *redistest.Server) int {
	t.Helper()
	list, err := srv.Client(t).ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for l := range strings.SplitSeq(list, "\n") {
		if strings.Contains(l, "flags=P") {
			n++
		}
	}
	return n
}

func TestPlainRedis(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	if pubsub.Sharded(rdb) {
		t.Fatal("a single Redis is not sharded")
	}
	sub := pubsub.NewSubscriber(rdb, pubsub.Config{})
	c := collect(t, sub)
	chs := channels(20)
	if err := sub.Subscribe(context.Background(), chs...); err != nil {
		t.Fatal(err)
	}
	await(t, c.confirmed, len(chs), "confirmations")
	publishAll(t, rdb, chs, 1)
	expectRound(t, c, chs, 1)
}

func TestShardedOneConnectionPerMaster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	rdb := cl.Client(t)
	if !pubsub.Sharded(rdb) {
		t.Fatal("a cluster client is sharded")
	}
	sub := pubsub.NewSubscriber(rdb, pubsub.Config{})
	c := collect(t, sub)
	chs := channels(300)
	ctx := context.Background()
	for _, ch := range chs {
		if err := sub.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	await(t, c.confirmed, len(chs), "confirmations")
	for i, n := range cl.Nodes {
		if got := pubsubClients(t, n); got != 1 {
			t.Errorf("master %d has %d Pub/Sub connections, want 1", i, got)
		}
	}
	publishAll(t, rdb, chs, 1)
	expectRound(t, c, chs, 1)
	// SPUBLISH reaches only the owner: the other masters saw no message
	// (a plain PUBLISH would have been copied to all three).
	if err := sub.Unsubscribe(ctx, chs[:150]...); err != nil {
		t.Fatal(err)
	}
	await(t, c.left, 150, "unsubscribe confirmations")
	publishAll(t, rdb, chs, 2)
	expectRound(t, c, chs[150:], 2)
	select {
	case m := <-c.messages:
		t.Fatalf("a message after unsubscribing: %s on %s", m.Payload, m.Channel)
	default:
	}
}

// TestShardedMasterKilled kills a master; once its replica is promoted,
// the channels it served are subscribed again there, confirmed again, and
// get their messages.
func TestShardedMasterKilled(t *testing.T) {
	cl := redistest.StartCluster(t, 3, redistest.WithReplicas(1))
	rdb := cl.Client(t)
	var lost atomic.Int32
	sub := pubsub.NewSubscriber(rdb, pubsub.Config{OnShardError: func(error) { lost.Add(1) }})
	c := collect(t, sub)
	chs := channels(300)
	if err := sub.Subscribe(context.Background(), chs...); err != nil {
		t.Fatal(err)
	}
	await(t, c.confirmed, len(chs), "confirmations")
	publishAll(t, rdb, chs, 1)
	expectRound(t, c, chs, 1)

	onZero := map[string]bool{}
	for _, ch := range chs {
		m, err := rdb.MasterForKey(context.Background(), ch)
		if err != nil {
			t.Fatal(err)
		}
		if m.Options().Addr == cl.Nodes[0].Addr() {
			onZero[ch] = true
		}
	}
	if err := cl.Nodes[0].Kill(); err != nil {
		t.Fatal(err)
	}
	// the channels that lived on master 0 are each confirmed again once
	// its replica (node 3) has taken over
	for _, ch := range await(t, c.confirmed, len(onZero), "confirmations after the failover") {
		if !onZero[ch] {
			t.Errorf("channel %s was confirmed again but did not live on the killed master", ch)
		}
	}
	if lost.Load() == 0 {
		t.Error("no shard error reported for the killed master")
	}
	publishAll(t, rdb, chs, 2)
	// messages of round 2 for every channel; a channel confirmed twice
	// (moved, then its shard reloaded) still gets one message per publish
	expectRound(t, c, chs, 2)
	t.Logf("%d channels confirmed again after the SIGKILL, %d shard errors", len(onZero), lost.Load())
}

// TestShardedSlotMoved moves a slot to another master, as resharding does:
// Redis tells the subscriber with an unasked sunsubscribe, and the channel
// is subscribed again on the new owner.
func TestShardedSlotMoved(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	rdb := cl.Client(t)
	sub := pubsub.NewSubscriber(rdb, pubsub.Config{})
	c := collect(t, sub)
	ch := channels(1)[0]
	ctx := context.Background()
	if err := sub.Subscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	await(t, c.confirmed, 1, "confirmation")
	// a second client whose view of the slots is taken now, before the move
	stale := cl.Client(t)
	if _, err := stale.MasterForKey(ctx, ch); err != nil {
		t.Fatal(err)
	}
	var movedErrs atomic.Int32
	sub2 := pubsub.NewSubscriber(stale, pubsub.Config{OnShardError: func(error) { movedErrs.Add(1) }})
	c2 := collect(t, sub2)
	slot, err := rdb.ClusterKeySlot(ctx, ch).Result()
	if err != nil {
		t.Fatal(err)
	}
	owner, err := rdb.MasterForKey(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	var target *redis.Client
	var targetID string
	for _, n := range cl.Nodes {
		if n.Addr() != owner.Options().Addr {
			target = n.Client(t)
			targetID = target.Do(ctx, "CLUSTER", "MYID").Val().(string)
			break
		}
	}
	// the slot holds no keys: assigning it is enough; the new owner first,
	// then the old one, then the third
	for _, n := range []*redis.Client{target, owner} {
		if err := n.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", targetID).Err(); err != nil {
			t.Fatalf("SETSLOT on %s: %v", n.Options().Addr, err)
		}
	}
	await(t, c.confirmed, 1, "confirmation on the new owner")
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := target.SPublish(ctx, ch, "after").Result()
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SPUBLISH on the new owner reached %d subscribers (err %v), want 1", n, err)
		}
		time.Sleep(50 * time.Millisecond) // gossip of the new slot owner
	}
	m := await(t, c.messages, 1, "message after the move")[0]
	if m.Payload != "after" {
		t.Fatalf("got %q", m.Payload)
	}

	// The second client's subscriber, by its stale view, sends SSUBSCRIBE
	// to the old owner, which answers MOVED: it asks the cluster again and
	// subscribes the channel on the new owner.
	other := "herald:other:{t1:u0}"
	if s, _ := rdb.ClusterKeySlot(ctx, other).Result(); s != slot {
		t.Fatalf("%s is in slot %d, not %d", other, s, slot)
	}
	if err := sub2.Subscribe(ctx, other); err != nil {
		t.Fatal(err)
	}
	if got := await(t, c2.confirmed, 1, "confirmation of a channel sent to the old owner")[0]; got != other {
		t.Fatalf("confirmed %s", got)
	}
	if movedErrs.Load() == 0 {
		t.Fatal("no MOVED reported: the subscription did not go to the old owner first")
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		n, err := target.SPublish(ctx, other, "other").Result()
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SPUBLISH of %s on the new owner reached %d subscribers (err %v), want 1", other, n, err)
		}
		time.Sleep(50 * time.Millisecond) // the subscription is being moved
	}
	if m := await(t, c2.messages, 1, "message on the second channel")[0]; m.Payload != "other" {
		t.Fatalf("got %q on %s", m.Payload, m.Channel)
	}
}

// TestShardedMasterFrozen freezes a master with SIGSTOP, as a host that
// vanished without closing its connections: the subscriber hears no PING
// answer, gives the shard up, and once the replica is promoted subscribes
// the channels there.
func TestShardedMasterFrozen(t *testing.T) {
	cl := redistest.StartCluster(t, 3, redistest.WithReplicas(1))
	rdb := cl.Client(t)
	var lost atomic.Int32
	sub := pubsub.NewSubscriber(rdb, pubsub.Config{PingInterval: 200 * time.Millisecond, OnShardError: func(error) { lost.Add(1) }})
	c := collect(t, sub)
	chs := channels(60)
	if err := sub.Subscribe(context.Background(), chs...); err != nil {
		t.Fatal(err)
	}
	await(t, c.confirmed, len(chs), "confirmations")
	onZero := 0
	for _, ch := range chs {
		m, err := rdb.MasterForKey(context.Background(), ch)
		if err != nil {
			t.Fatal(err)
		}
		if m.Options().Addr == cl.Nodes[0].Addr() {
			onZero++
		}
	}
	if err := cl.Nodes[0].Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Nodes[0].Resume() })
	await(t, c.confirmed, onZero, "confirmations after the frozen master's replica took over")
	if lost.Load() == 0 {
		t.Error("no shard given up for the frozen master")
	}
	publishAll(t, rdb, chs, 1)
	expectRound(t, c, chs, 1)
}

// TestShardedSlowConsumerKeepsShards: a consumer that stops reading for
// several ping intervals (each shard's reader then waits to hand over a
// message, reading nothing, PONGs included) does not get healthy shards
// given up, and loses no message.
func TestShardedSlowConsumerKeepsShards(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	rdb := cl.Client(t)
	var lost atomic.Int32
	sub := pubsub.NewSubscriber(rdb, pubsub.Config{PingInterval: 50 * time.Millisecond,
		OnShardError: func(error) { lost.Add(1) }})
	t.Cleanup(func() { sub.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	chs := channels(30)
	if err := sub.Subscribe(ctx, chs...); err != nil {
		t.Fatal(err)
	}
	receive := func() any {
		m, err := sub.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for n := 0; n < len(chs); {
		if v, ok := receive().(*redis.Subscription); ok && v.Kind == "ssubscribe" {
			n++
		}
	}
	for round := range 10 { // 300 messages: more than the subscriber holds
		publishAll(t, rdb, chs, round)
	}
	time.Sleep(500 * time.Millisecond) // the slow consumer is the condition under test: ten ping intervals without reading
	for got := 0; got < 10*len(chs); {
		switch v := receive().(type) {
		case *redis.Message:
			got++
		case *redis.Subscription:
			t.Fatalf("%s %s while the consumer was slow: a shard was given up", v.Kind, v.Channel)
		}
	}
	if n := lost.Load(); n != 0 {
		t.Fatalf("%d shards given up for a slow consumer", n)
	}
}
