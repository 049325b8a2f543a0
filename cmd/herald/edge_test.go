package main

import (
	"errors"
	"strings"
	"testing"
)

// TestEdgeRefusesDurationsItCannotUse: a duration flag of 0 or below is
// refused with its name (it used to become the default silently), before
// anything is opened or connected.
func TestEdgeRefusesDurationsItCannotUse(t *testing.T) {
	for _, flag := range []string{"jwt-leeway", "setup-timeout", "setup-queue-wait", "closed-retention", "upstream-max-age",
		"heartbeat", "write-timeout", "presence-ttl", "online-repair-interval", "drain-timeout", "store-sync-interval",
		"ack-flush-interval"} {
		for _, v := range []string{"0s", "-1s"} {
			args := []string{"--" + flag, v, "--data-dir", t.TempDir(), "--redis-url", "redis://127.0.0.1:1/0"}
			err := runEdge(t.Context(), args)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--"+flag+" ") {
				t.Errorf("edge --%s %s: %v, want a usage error naming the flag", flag, v, err)
			}
			if err := devMain(t.Context(), args, new(syncBuffer)); !errors.Is(err, errUsage) {
				t.Errorf("dev --%s %s: %v, want a usage error", flag, v, err)
			}
		}
	}
	if code := run([]string{"edge", "--online-repair-interval", "-1s"}); code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
}
