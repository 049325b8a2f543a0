package wsedge_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/wsedge"
)

// holdGate holds the first push of type "held" for retry, then answers
// every later one with then; every other push is allowed.
type holdGate struct {
	retry time.Duration
	then  wsedge.Decision
	calls atomic.Int64
}

func (g *holdGate) AllowPush(_, _, typ string) wsedge.Decision {
	if typ != "held" {
		return wsedge.Decision{Allow: true}
	}
	if g.calls.Add(1) == 1 {
		return wsedge.Decision{Retry: g.retry, MaxWait: 2 * time.Hour}
	}
	return g.then
}

func (g *holdGate) AllowPub(_, _, _ string) bool { return true }
func (g *holdGate) AllowConnect(_ string) bool   { return true }

// A topic notification held by a rate rule when the device unsubscribes is
// never pushed afterwards, and the position the unsub deleted does not
// come back (a drop would otherwise move it past the held entry).
func TestUnsubscribedHeldTopicStaysQuiet(t *testing.T) {
	for _, tc := range []struct {
		name string
		then wsedge.Decision
	}{
		{"allowed later", wsedge.Decision{Allow: true}},
		{"dropped later", wsedge.Decision{Drop: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newEnv(t)
			g := &holdGate{retry: 300 * time.Millisecond, then: tc.then}
			e := v.startEdge("", func(c *wsedge.Config) { c.Gate = g })
			c := v.connectTopics(e, "u1", "phone")
			c.send(`{"t":"sub","topic":"news"}`)
			c.pingPong()
			v.publishTypes(keys.TopicFeed("acme", "news"), "held")
			eventually(t, "the topic entry held", func() bool { return g.calls.Load() >= 1 })
			c.send(`{"t":"unsub","topic":"news"}`)
			c.pingPong()
			eventually(t, "no hold timer left", func() bool { return e.PendingTimers() == 0 })

			v.publish(keys.UserFeed("acme", "u1"), 1, nil) // a marker
			n := c.notifications(1)[0]
			if n.Feed != "user" {
				t.Fatalf("after the unsub got %s seq %d, want the user feed's marker", n.Feed, n.Seq)
			}
			ps, err := e.store.Acks("acme", "u1", "phone")
			if err != nil {
				t.Fatal(err)
			}
			if p, ok := ps["topic:news"]; ok {
				t.Errorf("store holds topic:news at %s:%d after the unsub", p.Epoch, p.Seq)
			}
		})
	}
}

// A session that ends while a rate rule holds one of its notifications
// leaves no timer behind (a hold may last up to an hour, and its timer
// keeps the whole session in memory).
func TestEndedSessionStopsItsHoldTimer(t *testing.T) {
	v := newEnv(t)
	g := &holdGate{retry: time.Hour, then: wsedge.Decision{Allow: true}}
	e := v.startEdge("", func(c *wsedge.Config) { c.Gate = g })
	c := v.connect(e, "u1", "phone")
	v.publishTypes(keys.UserFeed("acme", "u1"), "held")
	eventually(t, "the entry held", func() bool { return g.calls.Load() >= 1 && e.PendingTimers() == 1 })
	c.conn.CloseNow()
	awaitSessions(t, e, 0)
	eventually(t, "the hold timer stopped", func() bool { return e.PendingTimers() == 0 })
}
