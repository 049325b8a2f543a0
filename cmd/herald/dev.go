package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/heraldrt/herald/dispatcher"
	"github.com/heraldrt/herald/internal/keys"
)

func init() {
	register(command{name: "dev", summary: "dispatcher and edge in one process: the embedded default for trying Herald", run: runDev})
}

const devHelp = `Runs a dispatcher and an edge in one process, with a local data directory.
Without --jwt-hs256-secret, --jwt-keys or --jwt-jwks-url it generates a
random secret for the run (tokens from herald token or herald listen will
not verify: set HERALD_JWT_HS256_SECRET for those). With --dev-console it
also serves a browser console and a token endpoint (/dev/token) that sign
tokens for any user, on a loopback listener of their own, and only with a
generated secret.`

const (
	// devSecretBytes is the size of a generated secret.
	devSecretBytes = 32
	// devConsoleListen is --dev-console-listen's default.
	devConsoleListen = "127.0.0.1:8081"
)

func runDev(ctx context.Context, args []string) error {
	return devMain(ctx, args, os.Stderr)
}

// devMain runs herald dev until ctx ends, logging to logs.
func devMain(ctx context.Context, args []string, logs io.Writer) error {
	o := new(edgeFlags)
	var (
		console     bool
		consoleAddr string
	)
	f := newFlags("dev", devHelp)
	f.redis(&o.redis)
	f.logging(&o.log)
	f.admin(&o.admin, &o.srv)
	f.edge(o)
	f.Bool(&console, "dev-console", false, "serve the browser console and /dev/token, which sign tokens for any user, on --dev-console-listen; "+
		"refused with --jwt-hs256-secret, --jwt-keys or --jwt-jwks-url, whose tokens would be real")
	f.String(&consoleAddr, "dev-console-listen", devConsoleListen, "the console's listener; loopback only: 127.0.0.0/8, [::1] or localhost")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := o.check(); err != nil {
		return err
	}
	log, err := o.log.logger(logs)
	if err != nil {
		return err
	}
	operatorKeys := o.secret != "" || o.keyFiles != "" || o.jwksURL != ""
	if console && operatorKeys {
		return fmt.Errorf("%w: --dev-console signs tokens for any user, so it runs only with a secret generated for this run: "+
			"unset --jwt-hs256-secret (%s), --jwt-keys and --jwt-jwks-url", errUsage, secretEnv)
	}
	if !operatorKeys {
		o.secret = newDevSecret()
		log.Warn("no token secret configured: generated a random one for this run", "bytes", devSecretBytes, "env", secretEnv)
	}
	if console {
		if o.console, err = openDevConsole(consoleAddr, o.secret); err != nil {
			return err
		}
		defer o.console.Close()
	}
	return serveDev(ctx, o, o.partitions, log)
}

// newDevSecret returns devSecretBytes random bytes, hex-encoded.
func newDevSecret() string {
	b := make([]byte, devSecretBytes)
	rand.Read(b) // never fails; it crashes the program if the system's source does
	return hex.EncodeToString(b)
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
