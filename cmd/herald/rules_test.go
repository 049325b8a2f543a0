package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/redistest"
	"github.com/heraldrt/herald/ratelimit"
	"github.com/heraldrt/herald/wsedge"
)

const rulesOne = `version: 1
rules:
  - name: marketing-per-user
    match: {type: "marketing.*"}
    per: user
    limit: 3
    interval: 1m
    action: queue
    max_wait: 30s
`

// rulesTwo changes the limit and adds a rule.
const rulesTwo = `version: 1
rules:
  - name: marketing-per-user
    match: {type: "marketing.*"}
    per: user
    limit: 5
    interval: 1m
    action: queue
    max_wait: 30s
  - name: per-tenant
    per: tenant
    limit: 1000
    interval: 1s
    action: drop
`

// rulesRun runs the rules command; interactive says whether stdin counts
// as a terminal.
func rulesRun(stdin string, interactive bool, args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	cio := rulesIO{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, interactive: interactive}
	err := rulesCmd(context.Background(), args, cio)
	return out.String(), errOut.String(), err
}

func writeRules(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRulesValidate(t *testing.T) {
	good := writeRules(t, rulesTwo)
	out, _, err := rulesRun("", false, "validate", good)
	if err != nil || !strings.Contains(out, "is valid: 2 rules") ||
		!strings.Contains(out, "marketing-per-user: marketing.* per user 5/1m0s queue (max_wait 30s) on push") {
		t.Fatalf("valid: %v\n%s", err, out)
	}
	bad := writeRules(t, strings.Replace(rulesOne, "interval: 1m", "interval: 0s", 1))
	_, _, err = rulesRun("", false, "validate", bad)
	if err == nil || !strings.Contains(err.Error(), `line 7: rule "marketing-per-user": field interval: "0s" must be positive`) {
		t.Fatalf("invalid: %v", err)
	}
	if out, _, err := rulesRun(rulesOne, false, "validate", "-"); err != nil || !strings.Contains(out, "- is valid: 1 rules") {
		t.Fatalf("stdin: %v %s", err, out)
	}
	if code := run([]string{"rules", "validate", bad}); code != 1 {
		t.Fatalf("exit code %d for an invalid file, want 1", code)
	}
	if code := run([]string{"rules", "validate"}); code != 2 {
		t.Fatalf("exit code %d without a file, want 2", code)
	}
}

func TestRulesApplyGetDiff(t *testing.T) {
	srv := redistest.Start(t)
	url := srv.URL()
	one, two := writeRules(t, rulesOne), writeRules(t, rulesTwo)

	if _, _, err := rulesRun("", false, "get", "--redis-url", url); err == nil || !strings.Contains(err.Error(), "no rules stored yet") {
		t.Fatalf("get before apply: %v", err)
	}
	// Without a terminal and without --yes, apply refuses.
	if _, _, err := rulesRun("", false, "apply", one, "--redis-url", url); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("non-interactive apply: %v", err)
	}
	out, _, err := rulesRun("", false, "apply", one, "--yes", "--by", "alice", "--redis-url", url)
	if err != nil || !strings.Contains(out, "applied version 1 (by alice)") || !strings.Contains(out, "+    limit: 3") {
		t.Fatalf("apply --yes: %v\n%s", err, out)
	}
	out, errOut, err := rulesRun("", false, "get", "--redis-url", url)
	if err != nil || out != rulesOne || !strings.Contains(errOut, "# version 1, by alice at ") {
		t.Fatalf("get: %v\n%s\n%s", err, out, errOut)
	}
	out, _, err = rulesRun("", false, "diff", two, "--redis-url", url)
	if err != nil || !strings.Contains(out, "--- stored (version 1, by alice") || !strings.Contains(out, "-    limit: 3\n+    limit: 5\n") ||
		!strings.Contains(out, "+  - name: per-tenant\n") {
		t.Fatalf("diff: %v\n%s", err, out)
	}
	// On a terminal: n keeps version 1, y applies version 2.
	if _, _, err := rulesRun("n\n", true, "apply", two, "--redis-url", url); !errors.Is(err, errNotConfirmed) {
		t.Fatalf("declined: %v", err)
	}
	out, errOut, err = rulesRun("y\n", true, "apply", "--by", "bob", two, "--redis-url", url)
	if err != nil || !strings.Contains(errOut, "apply these 2 rules as version 2 to every edge? [y/N]") || !strings.Contains(out, "applied version 2 (by bob)") {
		t.Fatalf("confirmed: %v\n%s\n%s", err, out, errOut)
	}
	if out, _, _ := rulesRun("", false, "apply", two, "--yes", "--redis-url", url); !strings.Contains(out, "no changes") {
		t.Fatalf("same again: %s", out)
	}
	// An invalid file is refused before anything is sent.
	bad := writeRules(t, "version: 1\nrules:\n  - name: x\n")
	if _, _, err := rulesRun("", false, "apply", bad, "--yes", "--redis-url", url); err == nil || !strings.Contains(err.Error(), "nothing was applied") {
		t.Fatalf("invalid apply: %v", err)
	}
	out, _, _ = rulesRun("", false, "get", "--redis-url", url)
	if out != rulesTwo {
		t.Fatalf("stored:\n%s", out)
	}
}

func TestUnifiedDiff(t *testing.T) {
	a := "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n"
	b := "1\n2\nthree\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n"
	want := "--- a\n+++ b\n@@ -1,6 +1,6 @@\n 1\n 2\n-3\n+three\n 4\n 5\n 6\n@@ -10,3 +10,4 @@\n 10\n 11\n 12\n+13\n"
	if got := unifiedDiff("a", "b", a, b); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	if unifiedDiff("a", "b", a, a) != "" {
		t.Fatal("equal texts differ")
	}
}

func TestGateAdapter(t *testing.T) {
	l, err := ratelimit.New(ratelimit.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() }) // clears Sentinel's global rules
	doc, err := ratelimit.ParseRules([]byte(rulesOne))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Apply(doc); err != nil {
		t.Fatal(err)
	}
	var g wsedge.Gate = gateAdapter{l}
	for range 3 {
		if d := g.AllowPush("acme", "1", "marketing.promo"); !d.Allow {
			t.Fatalf("within the limit: %+v", d)
		}
	}
	want := wsedge.Decision{Retry: 20 * time.Second, MaxWait: 30 * time.Second}
	if d := g.AllowPush("acme", "1", "marketing.promo"); d != want {
		t.Fatalf("over the limit: %+v, want %+v", d, want)
	}
	if !g.AllowPub("acme", "1", "chat.message") || !g.AllowConnect("acme") {
		t.Fatal("pub or connect refused without rules for them")
	}
}
