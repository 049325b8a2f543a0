package wsedge_test

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/wsedge"
)

// A device that reconnects at once, while the edge is still letting go of
// its previous session (the last one on its feeds), and resumes from its
// own position, gets everything published afterwards, in order: the old
// session's UNSUBSCRIBE must not overtake the new session's SUBSCRIBE of the
// same channel, and a resume during the catch-up must not lose anything. Many devices do it at the same time, as in a reconnect storm.
func TestImmediateReconnectKeepsReceiving(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	var wg sync.WaitGroup
	for g := range 40 {
		wg.Go(func() {
			user := "r" + strconv.Itoa(g)
			var epoch string
			var seq uint64
			for round := range 15 {
				_, tcp := rawDial(t, e.url, v.token(user, "d", time.Hour))
				tcp.SetLinger(0)
				tcp.Close()                                             // vanish; the edge ends the session while ...
				c, err := dial(t, e.url, v.token(user, "d", time.Hour)) // ... the device is back
				if err != nil {
					t.Errorf("%s round %d: %v", user, round, err)
					return
				}
				if m, err := c.read(10 * time.Second); err != nil || m["t"] != "welcome" {
					t.Errorf("%s round %d: first frame %v, %v", user, round, m, err)
					return
				}
				if epoch != "" {
					c.conn.Write(t.Context(), 1, fmt.Appendf(nil, `{"t":"resume","feeds":{"user":{"epoch":%q,"seq":%d}}}`, epoch, seq))
				}
				v.publish(keys.UserFeed("acme", user), 1, nil)
				for {
					m, err := c.read(5 * time.Second)
					if err != nil || m["t"] != "n" {
						t.Errorf("%s round %d: after an immediate reconnect got %v, %v; want notification %d", user, round, m, err, seq+1)
						return
					}
					got := uint64(m["seq"].(float64))
					if got <= seq {
						// At least once on the wire: the ack of seq may not
						// have reached the edge before the client vanished,
						// and the replay can start before the resume
						// arrives. The client drops what it has seen.
						continue
					}
					if got != seq+1 {
						t.Errorf("%s round %d: notification %d after %d: a gap", user, round, got, seq)
						return
					}
					epoch, seq = strings.SplitN(m["id"].(string), "-", 2)[0], got
					c.send(`{"t":"ack","id":"` + m["id"].(string) + `"}`)
					if got == uint64(round+1) {
						break
					}
				}
				c.conn.CloseNow()
			}
		})
	}
	wg.Wait()
}

// A reconnect storm: every client drops at once and comes back at once.
// Every one gets its welcome (set-ups wait their turn instead of timing
// out) and what was published for it meanwhile, and the presence entries
// of the dropped sessions are removed in batches.
func TestReconnectStormEveryClientResumes(t *testing.T) {
	const n = 400
	v := newEnv(t)
	e := v.startEdge("", func(c *wsedge.Config) { c.MaxSetups = 8 })
	user := func(i int) string { return "s" + strconv.Itoa(i) }
	var wg sync.WaitGroup
	tcps := make([]*net.TCPConn, n)
	for i := range n {
		wg.Go(func() { _, tcps[i] = rawDial(t, e.url, v.token(user(i), "d", time.Hour)) })
	}
	wg.Wait()
	for _, c := range tcps {
		c.SetLinger(0)
		c.Close()
	}
	for i := range n {
		v.publish(keys.UserFeed("acme", user(i)), 1, nil)
	}
	for i := range n {
		wg.Go(func() {
			c, err := dial(t, e.url, v.token(user(i), "d", time.Hour))
			if err != nil {
				t.Errorf("%s: %v", user(i), err)
				return
			}
			for _, want := range []string{"welcome", "n"} {
				if m, err := c.read(20 * time.Second); err != nil || m["t"] != want {
					t.Errorf("%s: got %v, %v; want %s", user(i), m, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	eventually(t, "presence of the dropped sessions removed", func() bool {
		n, err := v.rdb.SCard(t.Context(), keys.Space{}.EdgeSessions(e.ID())).Result()
		return err == nil && n == int64(400)
	})
}

// A client that comes back and acks what it had from its previous session
// (that ack was lost when it left) is believed, not told bad_ack: the
// replay skips what it acked instead of pushing it again.
func TestAckFromAnEarlierSessionSkipsTheReplay(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	f := keys.UserFeed("acme", "u1")
	c := v.connect(e, "u1", "d")
	v.publish(f, 300, nil)
	ns := c.notifications(300)
	c.ack(ns[0]) // the acks of the others are lost with the connection
	eventually(t, "ack stored", func() bool {
		acks, err := e.store.Acks("acme", "u1", "d")
		return err == nil && acks["user"].Seq == 1
	})
	c.conn.CloseNow()
	awaitSessions(t, e, 0)
	e.stop() // the drain copies the position to Redis
	// The device comes back to an edge with a small send queue: its
	// replay pauses after 16 frames until the client reads, so the ack
	// below arrives while the replay is under way.
	e = v.startEdge("", func(c *wsedge.Config) { c.SendQueue = 16 })
	c = v.connect(e, "u1", "d")
	c.ack(ns[299])
	v.publish(f, 1, nil)
	replayed := 0
	for {
		m := c.next()
		if m["t"] != "n" {
			t.Fatalf("got %v after %d replayed; want notifications only", m, replayed)
		}
		if m["seq"].(float64) == 301 {
			break
		}
		replayed++
	}
	if replayed >= 299 {
		t.Fatalf("all %d acked notifications were replayed again", replayed)
	}
}
