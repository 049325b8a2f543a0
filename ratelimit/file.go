package ratelimit

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// FileConfig configures a FileWatcher. Zero values are the documented
// defaults.
type FileConfig struct {
	Logger  *slog.Logger // nil discards
	Metrics *Metrics     // nil means NewMetrics(); share the Limiter's
	// Interval is how often the file is looked at; 0 means 500ms.
	Interval time.Duration
}

// FileWatcher applies a rules file (HERALD_RULES, single-node
// deployments). Every Interval it compares the file's mtime and size, and
// every tenth time its SHA-256 too, with what it saw last. A changed file
// is applied once its content has stayed the same for one more Interval,
// so an editor's half-written file is never applied (a change takes at
// most two Intervals). A file that is invalid, empty or missing is logged
// with its problems (line and field) and counted, once per content, and
// the rules in force stay.
//
// It polls rather than using Sentinel's file datasource, which clears
// every rule when it reads a file mid-rewrite and stops for good after an
// atomic rename.
type FileWatcher struct {
	path  string
	apply ApplyFunc
	cfg   FileConfig

	// Owned by Load and Run.
	mtime   time.Time
	size    int64
	ticks   int
	applied [sha256.Size]byte
	pending [sha256.Size]byte
	bad     [sha256.Size]byte
	reloads int64
	missing bool
}

// NewFileWatcher returns a FileWatcher that passes the file's documents to
// apply.
func NewFileWatcher(path string, apply ApplyFunc, cfg FileConfig) *FileWatcher {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 500 * time.Millisecond
	}
	return &FileWatcher{path: path, apply: apply, cfg: cfg}
}

// Load reads, validates and applies the file now. Call it once at start:
// a missing or invalid file is an error then (the process should not
// start), whereas Run keeps the old rules.
func (f *FileWatcher) Load() error {
	fi, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("rules file: %w", err)
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("rules file: %w", err)
	}
	f.mtime, f.size = fi.ModTime(), fi.Size()
	sum := sha256.Sum256(data)
	if err := f.use(data, sum, fi.ModTime()); err != nil {
		return fmt.Errorf("rules file %s: %w", f.path, err)
	}
	return nil
}

// Run polls the file until ctx ends, then returns nil. It is not safe to
// call concurrently with Load.
func (f *FileWatcher) Run(ctx context.Context) error {
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			f.poll()
		}
	}
}

func (f *FileWatcher) poll() {
	f.ticks++
	fi, err := os.Stat(f.path)
	if err != nil {
		if !f.missing {
			f.cfg.Metrics.reloadErrors.Inc()
			f.cfg.Logger.Error("rules file unreadable; keeping the rules in force", "path", f.path, "err", err)
			f.missing = true
		}
		return
	}
	f.missing = false
	changed := !fi.ModTime().Equal(f.mtime) || fi.Size() != f.size
	if !changed && f.pending == [sha256.Size]byte{} && f.ticks%10 != 0 {
		return
	}
	f.mtime, f.size = fi.ModTime(), fi.Size()
	data, err := os.ReadFile(f.path)
	if err != nil {
		return // gone between Stat and ReadFile: the next poll says so
	}
	sum := sha256.Sum256(data)
	switch {
	case sum == f.applied:
		f.pending = [sha256.Size]byte{}
	case sum != f.pending:
		f.pending = sum // apply it if it is still the same next time
	default:
		f.pending = [sha256.Size]byte{}
		if sum == f.bad {
			return // already reported
		}
		if err := f.use(data, sum, fi.ModTime()); err != nil {
			f.bad = sum
			f.cfg.Metrics.reloadErrors.Inc()
			f.cfg.Logger.Error("rules file refused; keeping the rules in force", "path", f.path, "err", err)
		}
	}
}

// use parses and applies data.
func (f *FileWatcher) use(data []byte, sum [sha256.Size]byte, mtime time.Time) error {
	doc, err := ParseRules(data)
	if err != nil {
		return err
	}
	doc.Meta = Meta{Version: f.reloads + 1, UpdatedBy: "file", UpdatedAt: mtime, Origin: "file:" + f.path}
	if err := f.apply(doc); err != nil {
		return err
	}
	f.reloads++
	f.applied = sum
	return nil
}
