package centrifugo

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// docConfig renders the file doc.go shows: placeholders for what differs
// per run.
func docConfig(t *testing.T, c Config) string {
	t.Helper()
	c.Secret, c.APIKey = "SECRET", "API_KEY"
	b, err := renderConfig(c.withDefaults(), "127.0.0.1:6379", 8000, "herald-cf-NODE")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docBlocks returns the indented blocks of doc.go's package comment,
// without the comment markers.
func docBlocks(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur strings.Builder
	for line := range strings.SplitSeq(string(src), "\n") {
		if code, ok := strings.CutPrefix(line, "//\t"); ok {
			cur.WriteString(code + "\n")
			continue
		}
		if cur.Len() > 0 {
			blocks = append(blocks, cur.String())
			cur.Reset()
		}
	}
	return blocks
}

// TestDocShowsConfig keeps doc.go's configuration the one Start writes.
func TestDocShowsConfig(t *testing.T) {
	blocks := docBlocks(t)
	on := docConfig(t, Config{History: true})
	if !contains(blocks, on) {
		t.Errorf("doc.go does not show the history-on configuration:\n%s", on)
	}
	off := docConfig(t, Config{})
	var f fileConfig
	if err := json.Unmarshal([]byte(off), &f); err != nil {
		t.Fatal(err)
	}
	ns, err := json.MarshalIndent(f.Channel.Namespaces[0], "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if !contains(blocks, string(ns)+"\n") {
		t.Errorf("doc.go does not show the history-off namespace:\n%s", ns)
	}
	f.Channel.Namespaces[0] = namespace{Name: PersonalNamespace, Presence: true, HistorySize: 20, HistoryTTL: "300s", ForceRecovery: true}
	b, _ := json.MarshalIndent(f, "", "  ")
	if string(b)+"\n" != on {
		t.Errorf("the variants differ in more than the namespace:\n%s", b)
	}
}

func contains(blocks []string, s string) bool {
	for _, b := range blocks {
		if b == s {
			return true
		}
	}
	return false
}

func TestRenderConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // substrings of the file
	}{
		{"durations", Config{PingInterval: 1500 * time.Millisecond, PongTimeout: time.Second, ShutdownTimeout: 2 * time.Second},
			[]string{`"ping_interval": "1500ms"`, `"pong_timeout": "1s"`, `"timeout": "2s"`}},
		{"no presence", Config{NoPresence: true}, []string{`"presence": false`}},
		{"history size", Config{History: true, HistorySize: 1000, HistoryTTL: 7 * 24 * time.Hour},
			[]string{`"history_size": 1000`, `"history_ttl": "604800s"`, `"force_recovery": true`}},
		{"prefix", Config{RedisPrefix: "cf2"}, []string{`"prefix": "cf2"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := docConfig(t, tc.cfg)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("config lacks %s:\n%s", w, got)
				}
			}
		})
	}
}

func TestRenderConfigRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		redis string
	}{
		{"pong not below ping", Config{PingInterval: time.Second, PongTimeout: time.Second}, "127.0.0.1:6379"},
		{"redis address without port", Config{}, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := renderConfig(tc.cfg.withDefaults(), tc.redis, 8000, "n"); err == nil {
				t.Error("renderConfig accepted it")
			}
		})
	}
}
