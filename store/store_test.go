package store

import (
	"errors"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)
	s, err := Open(dir, Config{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ps := []AckPosition{
		pos("t1", "u1", "d1", "user", "e1", 41),
		pos("t1", "u1", "d1", "topic:news", "n7", 3),
		pos("t1", "u2", "d1", "tenant", "t", 9),
	}
	for _, p := range ps {
		p.UpdatedAt = at
		if err := s.Ack(p); err != nil { // pending only: Close must commit them
			t.Fatal(err)
		}
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFlushed(ps[2:]); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(pos("t1", "u1", "d1", "user", "e1", 42)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"live", "gone"} {
		if err := s.PutSession(Session{ID: id, Tenant: "t1", User: "u1", Device: "d1", ConnectedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CloseSession("gone", 4001, "unauthorized", at); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir, Config{})
	acks := mustAcks(t, s, "t1", "u1", "d1")
	if len(acks) != 2 || acks["user"].Seq != 42 || acks["topic:news"].Epoch != "n7" || acks["topic:news"].Seq != 3 {
		t.Errorf("acks after reopen = %v", acks)
	}
	if got := mustAcks(t, s, "t1", "u2", "d1")["tenant"]; got.Seq != 9 || !got.UpdatedAt.Equal(at) {
		t.Errorf("u2 tenant = %+v, want seq 9 updated %v", got, at)
	}
	dirty := mustUnflushed(t, s, 0)
	if len(dirty) != 2 {
		t.Errorf("unflushed after reopen = %s, want the two u1 positions", fmtPositions(dirty))
	}
	if got := metricValue(t, s, "herald_store_unflushed_positions"); got != 2 {
		t.Errorf("unflushed gauge after reopen = %v, want 2", got)
	}
	if live := mustLive(t, s); len(live) != 1 || live[0].ID != "live" {
		t.Errorf("live after reopen = %+v", live)
	}
	if closed := mustClosed(t, s, 0); len(closed) != 1 || closed[0].ID != "gone" || closed[0].CloseCode != 4001 {
		t.Errorf("closed after reopen = %+v", closed)
	}
}

func TestCloseTwiceAndCallsAfterClose(t *testing.T) {
	s, err := Open(t.TempDir(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	p := pos("t", "u", "d", "f", "e", 1)
	calls := map[string]func() error{
		"Ack":         func() error { return s.Ack(p) },
		"AckSync":     func() error { return s.AckSync(t.Context(), p) },
		"Flush":       func() error { return s.Flush(t.Context()) },
		"Acks":        func() error { _, err := s.Acks("t", "u", "d"); return err },
		"Unflushed":   func() error { _, err := s.Unflushed(0); return err },
		"MarkFlushed": func() error { return s.MarkFlushed([]AckPosition{p}) },
		"PutSession":  func() error { return s.PutSession(Session{ID: "x"}) },
		"CloseSession": func() error {
			return s.CloseSession("x", 1000, "", time.Time{})
		},
		"LiveSessions":   func() error { _, err := s.LiveSessions(); return err },
		"RecentlyClosed": func() error { _, err := s.RecentlyClosed(0); return err },
		"PruneClosed":    func() error { _, err := s.PruneClosed(time.Now()); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

func TestOpenLockedDir(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if s2, err := Open(dir, Config{}); !errors.Is(err, ErrLocked) {
		if s2 != nil {
			_ = s2.Close()
		}
		t.Fatalf("second Open = %v, want ErrLocked", err)
	} else {
		t.Logf("second Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, Config{}) // the lock is released on Close
	if err := s.AckSync(t.Context(), pos("t", "u", "d", "f", "e", 1)); err != nil {
		t.Fatal(err)
	}
}

func TestCloseStopsGoroutines(t *testing.T) {
	before := len(goroutines())
	s, err := Open(t.TempDir(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := s.Ack(pos("t", "u", "d", "f", "e", uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if len(goroutines()) <= before {
		t.Fatalf("expected the writer and pebble goroutines to run")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := waitGoroutines(before, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestImports polices the package's dependency rule: the standard library,
// pebble and the Prometheus client only, never another Herald package.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	allowed := []string{"github.com/cockroachdb/pebble/v2", "github.com/prometheus/client_golang"}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !strings.Contains(strings.Split(path, "/")[0], ".") {
				continue // standard library
			}
			ok := false
			for _, a := range allowed {
				ok = ok || path == a || strings.HasPrefix(path, a+"/")
			}
			if !ok {
				t.Errorf("%s imports %s: store may import only the standard library, pebble and client_golang", name, path)
			}
		}
	}
}
