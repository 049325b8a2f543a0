package ratelimit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFileWatcherLoadRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	rec := &recorder{}
	path := filepath.Join(dir, "rules.yaml")
	if err := NewFileWatcher(path, rec.apply, FileConfig{}).Load(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	writeFile(t, path, rulesBad)
	err := NewFileWatcher(path, rec.apply, FileConfig{}).Load()
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `line 7: rule "per-user": field interval: "0s" must be positive`) {
		t.Fatalf("invalid file: %v", err)
	}
	if rec.count() != 0 {
		t.Fatal("an invalid file was applied")
	}
}

func TestFileWatcherReloadsAndKeepsOldRulesOnBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, path, rulesV1)
	l := newLimiter(t, "")
	m := l.Metrics()
	rec := &recorder{next: l.Apply}
	fw := NewFileWatcher(path, rec.apply, FileConfig{Logger: testLogger(t), Metrics: m, Interval: 20 * time.Millisecond})
	if err := fw.Load(); err != nil {
		t.Fatal(err)
	}
	if _, meta := l.Current(); meta.Version != 1 || meta.Origin != "file:"+path {
		t.Fatalf("after Load: %+v", meta)
	}
	runWatcher(t, fw.Run)

	writeFile(t, path, rulesV2)
	eventually(t, 2*time.Second, "the changed file applied", func() bool { return rec.version() == 2 })
	if n, _ := pushes(l, 5, "acme", "1", "x"); n != 4 {
		t.Fatalf("file version 2 (limit 4): %d of 5", n)
	}

	for _, bad := range []string{rulesBad, "", "version: 1\nrules:\n  - name: half"} {
		before := value(m.reloadErrors)
		writeFile(t, path, bad)
		eventually(t, 2*time.Second, "the bad file counted", func() bool { return value(m.reloadErrors) == before+1 })
		if rec.version() != 2 || rec.count() != 2 {
			t.Fatalf("bad file %q was applied", bad)
		}
	}
	if n, _ := pushes(l, 5, "acme", "2", "x"); n != 4 {
		t.Fatalf("old rules no longer in force: %d of 5", n)
	}

	// Removed (an editor's rename) and back, fixed: applied again.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	before := value(m.reloadErrors)
	eventually(t, 2*time.Second, "the missing file counted", func() bool { return value(m.reloadErrors) == before+1 })
	tmp := path + ".tmp"
	writeFile(t, tmp, rulesV1)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "the restored file applied", func() bool { return rec.version() == 3 })
	if doc, _ := l.Current(); doc.Rules[0].Limit != 2 {
		t.Fatalf("limit %d, want 2", doc.Rules[0].Limit)
	}
}
