package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/client"
	"github.com/heraldrt/herald/wsedge/auth"
)

func init() {
	register(command{name: "listen", summary: "connect as a user over WebSocket and print notifications as they arrive", run: runListen})
}

func runListen(ctx context.Context, args []string) error {
	var (
		url, token, tenant, user, device, secret, topics string
		protocol                                         string
		count                                            int
		noAck, deflate                                   bool
	)
	f := newFlags("listen", "Connects to an edge like a real client (reconnects, resumes, acks) and prints\n"+
		"each notification. Example: herald listen --tenant acme --user 42")
	f.String(&url, "url", "ws://127.0.0.1:8080/ws", "edge WebSocket URL")
	f.String(&token, "token", "", "JWT to connect with; without it one is minted from --secret")
	f.String(&tenant, "tenant", "acme", "tenant of the minted token")
	f.String(&user, "user", "", "user of the minted token (required without --token)")
	f.String(&device, "device", "cli", "device id")
	f.String(&topics, "topics", "", "comma-separated topics to subscribe to (the minted token allows them)")
	f.StringVar(&secret, "secret", "", "HS256 secret for minting (env "+secretEnv+")")
	f.Int(&count, "count", 0, "exit after this many notifications (0 = run until interrupted)")
	f.Bool(&noAck, "no-ack", false, "do not acknowledge (the notifications will be replayed on the next connect)")
	f.String(&protocol, "protocol", "v1", "v1 (JSON text frames) or v2 (MessagePack binary frames, herald.v2)")
	f.Bool(&deflate, "deflate", false, "offer permessage-deflate (the edge compresses frames above its threshold)")
	if err := f.parse(args); err != nil {
		return err
	}
	if protocol != "v1" && protocol != "v2" {
		return fmt.Errorf("%w: --protocol %q: want v1 or v2", errUsage, protocol)
	}
	mint, err := listenToken(token, secret, tenant, user, device, topics)
	if err != nil {
		return err
	}
	return listen(ctx, os.Stdout, listenConfig{url: url, token: mint, topics: splitList(topics), count: count,
		noAck: noAck, protocol2: protocol == "v2", deflate: deflate})
}

// listenConfig is what herald listen connects with.
type listenConfig struct {
	url                       string
	token                     func() (string, error)
	topics                    []string
	count                     int // exit after this many notifications; 0 runs until ctx ends
	noAck, protocol2, deflate bool
}

func listenToken(token, secret, tenant, user, device, topics string) (func() (string, error), error) {
	if token != "" {
		return func() (string, error) { return token, nil }, nil
	}
	if secret == "" {
		secret = os.Getenv(secretEnv)
	}
	if secret == "" || user == "" {
		return nil, fmt.Errorf("%w: pass --token, or --user with --secret (or %s)", errUsage, secretEnv)
	}
	c := auth.Claims{Subject: user, Tenant: tenant, Device: device, Topics: splitList(topics)}
	if _, err := auth.Mint([]byte(secret), c, time.Hour); err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return func() (string, error) { return auth.Mint([]byte(secret), c, time.Hour) }, nil
}

// listen prints notifications until ctx ends or count is reached.
func listen(ctx context.Context, w io.Writer, lc listenConfig) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seen := 0
	cl := client.New(client.Config{
		URL: lc.url, Token: lc.token, NoAck: lc.noAck, Protocol2: lc.protocol2, Deflate: lc.deflate,
		OnEvent: func(kind, detail string) {
			switch kind {
			case "connected":
				fmt.Fprintf(w, "-- connected to %s (%s)\n", lc.url, detail)
			case "closed":
				fmt.Fprintf(w, "-- disconnected (%s); reconnecting\n", detail)
			case "reset", "error":
				fmt.Fprintf(w, "-- %s %s\n", kind, detail)
			}
		},
		Topics: lc.topics,
	})
	err := cl.Run(ctx, func(n events.Notification) {
		fmt.Fprintf(w, "%s  %-8s #%-5d %-20s %s\n", time.UnixMilli(n.TS).Format("15:04:05.000"), n.Feed, n.Seq, n.Type, n.Data)
		if seen++; lc.count > 0 && seen >= lc.count {
			cancel()
		}
	})
	if errors.Is(err, client.ErrTerminal) {
		return fmt.Errorf("the edge refused the connection: %v", strings.TrimPrefix(err.Error(), "client: terminal close: "))
	}
	return err
}
