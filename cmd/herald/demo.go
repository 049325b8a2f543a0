package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/heraldrt/herald/producer"
)

func init() {
	register(command{name: "demo", summary: "run a throwaway Redis, Herald, a shop producer and a listener, and watch", run: runDemo})
}

const demoHelp = `Starts a throwaway redis-server, herald dev (dispatcher + edge), a producer
that emits shop events for alice, bob and carol, and a listener connected as
alice that prints what she receives. Open the notification centre URL it
prints (a loopback listener of its own) in a browser, in two tabs with
different device names: a bell with the unread badge, the inbox with
mark-read, a "log in as" picker and an admin panel that publishes through
the HTTP API. Tokens
are signed with a secret generated for the run. Ctrl-C stops everything and
deletes the data.`

func runDemo(ctx context.Context, args []string) error {
	var (
		addr, consoleAddr string
		rate              float64
		duration          time.Duration
	)
	f := newFlags("demo", demoHelp)
	f.String(&addr, "listen", "127.0.0.1:8080", "edge listener (a free port is used if this one is taken)")
	f.String(&consoleAddr, "console-listen", devConsoleListen, "browser console listener, loopback only (a free port is used if this one is taken)")
	f.Float(&rate, "rate", 2, "shop events per second")
	f.Duration(&duration, "duration", 0, "stop after this long (0: run until Ctrl-C)")
	if err := f.parse(args); err != nil {
		return err
	}
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	dir, err := os.MkdirTemp("", "herald-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := redistest.Launch(ctx, redistest.Config{Dir: filepath.Join(dir, "redis")})
	if err != nil {
		return fmt.Errorf("start redis-server (run 'go tool task setup' to install it): %w", err)
	}
	defer srv.Close()
	addr, secret := freeOr(addr), newDevSecret()
	con, err := openDevConsole(freeOr(consoleAddr), secret)
	if err != nil {
		return err
	}
	defer con.Close()
	o := &edgeFlags{console: con, listen: addr, dataDir: filepath.Join(dir, "edge"), admin: adminOff,
		secret: secret, connRate: 0, drainTime: 5 * time.Second}
	o.redis.url, o.redis.prefix = srv.URL(), "herald:"
	logs, err := os.Create(filepath.Join(dir, "herald.log"))
	if err != nil {
		return err
	}
	defer logs.Close()
	log := slog.New(slog.NewTextHandler(logs, nil))
	banner(os.Stdout, srv.Addr(), addr, con.Addr())

	dctx, stopDev := context.WithCancel(ctx)
	devDone := make(chan error, 1)
	go func() { devDone <- serveDev(dctx, o, 0, log) }()
	if err := waitListening(ctx, addr); err != nil {
		stopDev()
		return fmt.Errorf("herald dev did not start: %w (log: %s)", err, logs.Name())
	}
	go shop(dctx, srv.URL(), rate)
	mint, _ := listenToken("", secret, "acme", "alice", "terminal", "")
	lerr := listen(dctx, os.Stdout, listenConfig{url: "ws://" + addr + "/ws", token: mint})
	stopDev()
	derr := <-devDone
	fmt.Println("-- demo stopped; its Redis and data are deleted")
	if lerr != nil {
		return lerr
	}
	return derr
}

func banner(w io.Writer, redisAddr, listen, console string) {
	fmt.Fprintf(w, `Herald demo
  redis-server   %s (throwaway)
  herald dev     ws://%s/ws  (dispatcher + edge)
  browser        http://%s/  (notification centre, this machine only: log in as alice, bob or carol; open two tabs)
  producer       shop events: order.placed, order.shipped, payment.failed, marketing.promotion
  below          what alice's terminal device receives, live; Ctrl-C to stop
`, redisAddr, listen, console)
}

// shop publishes a random shop event rate times a second until ctx ends.
func shop(ctx context.Context, redisURL string, rate float64) {
	rdb, err := redisOptions{url: redisURL}.client(ctx)
	if err != nil {
		return
	}
	defer rdb.Close()
	p := producer.New(rdb, producer.WithTenant("acme"))
	tick := time.NewTicker(time.Duration(float64(time.Second) / max(rate, 0.1)))
	defer tick.Stop()
	buyers := []string{"alice", "bob", "carol"}
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		buyer, order := buyers[rand.IntN(len(buyers))], fmt.Sprintf("o-%04d", n)
		var ev events.Event
		var opts []producer.PublishOption
		switch {
		case n%7 == 0:
			ev = &events.PromotionEvent{Campaign: "winter", Title: "Winter sale", Body: "20% off boots"}
			opts = append(opts, producer.To(events.ToTenant()))
		case n%5 == 0:
			ev = &events.PaymentFailedEvent{OrderID: order, BuyerID: buyer, AmountCents: 1999, Currency: "EUR", Reason: "card declined"}
		case n%3 == 0:
			ev = &events.OrderShippedEvent{OrderID: order, BuyerID: buyer, Carrier: "DHL", Tracking: fmt.Sprintf("JD%09d", n)}
		default:
			ev = &events.OrderPlacedEvent{OrderID: order, BuyerID: buyer, TotalCents: int64(1000 + rand.IntN(9000)), Currency: "EUR"}
		}
		_, _ = p.Publish(ctx, ev, opts...)
	}
}

// freeOr returns addr if it can be listened on, else a free port on its host.
func freeOr(addr string) string {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		ln.Close()
		return addr
	}
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return addr
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitListening(ctx context.Context, addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
