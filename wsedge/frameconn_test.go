package wsedge_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
)

// TestFramesOfEverySize: the edge encodes its data frames itself, so every
// payload length encoding (7-bit, 16-bit and 64-bit, RFC 6455 5.2) must
// reach a standard client intact and in order.
func TestFramesOfEverySize(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	c := v.connect(e, "ann", "phone")
	var sizes []int
	for n := 0; n <= 160; n++ { // frames from under to over 125 bytes
		sizes = append(sizes, n)
	}
	sizes = append(sizes, 1000, 65000, 65400, 65430, 65500, events.DefaultMaxData-20) // around 65535
	i := 0
	v.publish(keys.UserFeed("acme", "ann"), len(sizes), func(r *feed.Request) {
		r.Data = fmt.Appendf(nil, `{"s":"%s"}`, strings.Repeat("x", sizes[i]))
		i++
	})
	got := c.notifications(len(sizes))
	assertConsecutive(t, got, 1)
	for i, n := range got {
		if want := fmt.Sprintf(`{"s":"%s"}`, strings.Repeat("x", sizes[i])); string(n.Data) != want {
			t.Fatalf("notification %d: data of %d bytes, want %d", i, len(n.Data), len(want))
		}
	}
}

// TestControlFramesBetweenDataFrames: the library's control frames (here
// pongs to the client's pings) share the socket with the edge's own data
// frames; they must never interleave inside one another.
func TestControlFramesBetweenDataFrames(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	c := v.connect(e, "bob", "phone")
	const rounds, each = 60, 50
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var pings atomic.Int64
	for range 4 { // several pings in flight: pongs land between data frames
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
				err := c.conn.Ping(pctx)
				pcancel()
				if err != nil {
					return
				}
				pings.Add(1)
			}
		}()
	}
	var got []events.Notification
	for range rounds {
		v.publish(keys.UserFeed("acme", "bob"), each, nil)
		got = append(got, c.notifications(each)...)
	}
	cancel()
	wg.Wait()
	assertConsecutive(t, got, 1)
	if pings.Load() == 0 {
		t.Fatal("no ping was answered while the notifications arrived")
	}
	t.Logf("%d pings answered during %d notifications", pings.Load(), len(got))
}
