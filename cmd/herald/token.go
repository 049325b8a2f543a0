package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/heraldrt/herald/wsedge/auth"
)

func init() {
	register(command{name: "token", summary: "print an HS256 connection token for development", run: runToken})
}

// secretEnv holds the HS256 secret; the edge reads the same variable.
const secretEnv = "HERALD_JWT_HS256_SECRET"

func runToken(_ context.Context, args []string) error {
	var (
		tenant, user, device, topics, secret string
		ttl                                  time.Duration
	)
	f := newFlags("token", "Prints an HS256 JWT that the edge accepts when it has the same secret.\n"+
		"Example: herald token --tenant acme --user 42 --topics 'news,deals.*'")
	f.String(&tenant, "tenant", "", "tenant id (required)")
	f.String(&user, "user", "", "user id, the sub claim (required)")
	f.String(&device, "device", "", "device id (optional)")
	f.String(&topics, "topics", "", "comma-separated topic names or globs the user may subscribe to")
	f.Duration(&ttl, "ttl", time.Hour, "lifetime of the token")
	// Not f.String: the secret comes from HERALD_JWT_HS256_SECRET (or a
	// file), like the edge's, read after parsing (secrets.go), and --help
	// must not print it as a default.
	f.StringVar(&secret, "secret", "", "HS256 secret, at least 32 bytes (env "+secretEnv+"; or a file: --secret-file, "+secretEnv+"_FILE)")
	if err := f.parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, f.Arg(0))
	}
	switch {
	case secret == "":
		return fmt.Errorf("%w: no secret: pass --secret or --secret-file, or set %s or %s_FILE", errUsage, secretEnv, secretEnv)
	case tenant == "":
		return fmt.Errorf("%w: --tenant is required", errUsage)
	case user == "":
		return fmt.Errorf("%w: --user is required", errUsage)
	case ttl <= 0:
		return fmt.Errorf("%w: --ttl %v must be positive", errUsage, ttl)
	}
	c := auth.Claims{Subject: user, Tenant: tenant, Device: device, Topics: splitList(topics)}
	tok, err := auth.Mint([]byte(secret), c, ttl)
	if errors.Is(err, auth.ErrWeakSecret) || errors.Is(err, auth.ErrInvalid) {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Println(tok)
	return err
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
