package dispatcher_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/heraldrt/herald/dispatcher"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// A dispatcher over 8 partitions that stops gracefully on SIGTERM.
func ExampleNew() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	d, err := dispatcher.New(rdb, dispatcher.Config{
		Partitions: 8, // as the producers use
		Logger:     slog.New(slog.NewJSONHandler(os.Stderr, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	prometheus.MustRegister(d.Collectors()...)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := d.Run(ctx); err != nil { // returns once the batches in flight are acknowledged
		log.Fatal(err)
	}
}

// Replay the dead letters whose audience was wrong, with a fix.
func ExampleDLQ_Replay() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	ctx := context.Background()
	q := dispatcher.NewDLQ(rdb, dispatcher.DLQConfig{Space: keys.Space{}, Partitions: 8})
	dls, err := q.List(ctx, 100, "")
	if err != nil {
		log.Fatal(err)
	}
	var ids []string
	for _, dl := range dls {
		if dl.Fields["to"] == "user" { // a producer forgot the id: the data has it
			ids = append(ids, dl.ID)
		}
	}
	res, err := q.Replay(ctx, ids, func(dl *dispatcher.DeadLetter) error {
		dl.Fields["to"] = "user:" + dl.Fields["x-user"]
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res {
		fmt.Println(r.ID, r.NewID, r.Err)
	}
}
