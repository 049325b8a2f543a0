package dispatcher_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/dispatcher"
	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/keys"
)

// An entry whose append always fails (its feed's meta key holds a string,
// so the script fails with WRONGTYPE) is dead-lettered after MaxDeliveries
// and the entries behind it are delivered.
func TestPoisonEntryGoesToDLQAfterMaxDeliveries(t *testing.T) {
	_, rdb := newServer(t)
	space := keys.Space{}
	ctx := context.Background()
	poisoned := keys.UserFeed("acme", "poison")
	if err := rdb.Set(ctx, space.FeedMeta(poisoned), "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, space, "c1")
	cfg.MaxDeliveries = 3
	d := startDispatcher(t, rdb, cfg)

	var envs []events.Envelope
	var want []string
	for i := range 20 {
		to := events.ToUser("ok")
		if i == 7 {
			to = events.ToUser("poison")
		} else {
			want = append(want, string(numbered("acme", to, i).Data))
		}
		envs = append(envs, numbered("acme", to, i))
	}
	publish(t, rdb, space, 0, envs)
	waitFor(t, 20*time.Second, "the group to drain", func() bool { return drained(t, rdb, space.IngestStreams(0)) })
	checkSequence(t, readFeed(t, rdb, space, keys.UserFeed("acme", "ok")), want)

	dls, err := dispatcher.NewDLQ(rdb, dispatcher.DLQConfig{Space: space}).List(ctx, 10, "")
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters: %v %+v", err, dls)
	}
	dl := dls[0]
	if !strings.HasPrefix(dl.Reason, "delivered 3 times without success: ") || !strings.Contains(dl.Reason, "WRONGTYPE") {
		t.Errorf("reason %q", dl.Reason)
	}
	if dl.Deliveries != 3 || dl.Fields["to"] != "user:poison" {
		t.Errorf("dead letter %+v", dl)
	}
	if got := metricValue(t, d.Dispatcher, "herald_dispatcher_dlq_total", "deliveries"); got != 1 {
		t.Errorf("dlq_total{deliveries} = %v", got)
	}
}
