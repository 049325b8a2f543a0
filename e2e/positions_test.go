package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/producer"
	"github.com/heraldrt/herald/wsedge/auth"
)

// TestNewDeviceMovedBeforeFirstFlush: a device connects for the first
// time (a plain client: no resume frame, it relies on the server's ACK
// positions), is welcomed by edge e1 at the feed's head, and e1 dies at
// once, before its ACK flusher (every second) would have copied the
// device's position to Redis. Events are published for the user; then the
// device connects to e2. The contract says a plain client that only acks
// never misses a notification published after its welcome, so e2 must
// replay them. (Found by this suite; fixed in wsedge, which now writes a
// device's first positions to Redis before the welcome.)
func TestNewDeviceMovedBeforeFirstFlush(t *testing.T) {
	c := startCluster(t, clusterConfig{})
	ctx := context.Background()
	rdb := c.redis.Client(t)
	prod := producer.New(rdb)
	const user = "a-new"
	userFeed := keys.UserFeed("acme", user)
	publish := func(n int) {
		t.Helper()
		for range n {
			env := events.Envelope{Type: "e2e.event", Tenant: "acme", To: events.ToUser(user), Data: json.RawMessage(`{"e":0}`)}
			if _, err := prod.PublishEnvelope(ctx, env); err != nil {
				t.Fatal(err)
			}
		}
	}
	feedLen := func() int64 { return rdb.XLen(ctx, c.space.FeedStream(userFeed)).Val() }
	publish(3) // the user had notifications before this device existed
	eventually(t, 10*time.Second, "the feed to hold 3 entries", func() bool { return feedLen() == 3 })

	e1, e2 := c.edges[0], c.edges[1]
	device := "dev1"
	tok, _ := auth.Mint(secret, auth.Claims{Subject: user, Tenant: "acme", Device: device}, time.Hour)
	p, err := dialProbe(ctx, e1.url(), tok, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f, err := p.next(10 * time.Second); err != nil || f.T != "welcome" {
		t.Fatalf("first frame %+v, %v", f, err)
	}
	// The edge writes a new device's first position to Redis before its
	// welcome, so it is there even if the edge dies at once.
	if !rdb.HExists(ctx, c.space.Acks("acme", user, device), "user").Val() {
		t.Fatal("the first position is not in Redis when the welcome arrives")
	}
	e1.kill()
	p.close()
	before := feedLen()
	publish(5)
	eventually(t, 10*time.Second, "the feed to hold 5 more entries", func() bool { return feedLen() == before+5 })

	p2, err := dialProbe(ctx, e2.url(), tok, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.close()
	if f, err := p2.next(10 * time.Second); err != nil || f.T != "welcome" {
		t.Fatalf("first frame on e2 %+v, %v", f, err)
	}
	var seqs []uint64
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		f, _, err := p2.read(time.Until(end))
		if err != nil {
			break
		}
		if f.T == "n" {
			seqs = append(seqs, f.Seq)
		}
	}
	if len(seqs) != 5 {
		t.Fatalf("device %s, welcomed by e1 at seq %d, got seqs %v from e2 after e1 died; want the 5 published after its welcome (%d..%d)",
			device, before, seqs, before+1, before+5)
	}
}
