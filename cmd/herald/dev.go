package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/heraldrt/herald/dispatcher"
	"github.com/heraldrt/herald/internal/keys"
)

func init() {
	register(command{name: "dev", summary: "dispatcher and edge in one process: the embedded default for trying Herald", run: runDev})
}

const devHelp = `Runs a dispatcher and an edge in one process, with a local data directory,
and serves a browser console at / that connects as any user of the tenant
(development only: it signs tokens for anyone). Without a secret it uses a
fixed development secret and says so.`

// devSecret signs tokens when herald dev is given none. Never use it in
// production: anyone who reads this file can mint tokens.
const devSecret = "herald-development-secret-do-not-use-in-production"

func runDev(ctx context.Context, args []string) error {
	o := &edgeFlags{console: true}
	var partitions int
	f := newFlags("dev", devHelp)
	f.redis(&o.redis)
	f.logging(&o.log)
	f.admin(&o.admin, &o.srv)
	f.edge(o)
	f.Int(&partitions, "partitions", 0, "ingest partitions (0 or 1: the single stream)")
	if err := f.parse(args); err != nil {
		return err
	}
	log, err := o.log.logger(os.Stderr)
	if err != nil {
		return err
	}
	if o.secret == "" && os.Getenv(secretEnv) == "" && o.keyFiles == "" {
		o.secret = devSecret
		log.Warn("no token secret configured: using the fixed development secret", "env", secretEnv)
	}
	return serveDev(ctx, o, partitions, log)
}

// serveDev runs a dispatcher and an edge until ctx ends.
func serveDev(ctx context.Context, o *edgeFlags, partitions int, log *slog.Logger) error {
	rdb, err := o.redis.client(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	d, err := dispatcher.New(rdb, dispatcher.Config{
		Space: keys.Space{Prefix: o.redis.prefix}, Partitions: partitions, Logger: log.With("component", "dispatcher"),
	})
	if err != nil {
		return err
	}
	defer d.Close()
	return serveEdge(ctx, o, rdb, log, &component{run: d.Run, collectors: d.Collectors()})
}
