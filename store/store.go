package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Errors returned by the store. Callers match them with errors.Is.
var (
	// ErrClosed is returned by every call made after Close.
	ErrClosed = errors.New("store: closed")
	// ErrLocked is returned by Open when another Store (in this process or
	// another one) holds the data directory.
	ErrLocked = errors.New("store: data directory is locked by another store")
	// ErrNotFound is returned when a named record (a live session) does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrInvalid is returned for arguments the store cannot key (empty ids).
	ErrInvalid = errors.New("store: invalid argument")
)

// Config tunes a Store. The zero value is ready to use.
type Config struct {
	// Logger receives the store's and pebble's log lines. Nil discards them.
	Logger *slog.Logger
	// FlushInterval is how long Ack positions may wait in memory before the
	// background writer commits them in one synced batch. 0 means 5ms.
	FlushInterval time.Duration
	// MaxPending bounds the distinct positions held in memory by Ack. When it
	// is reached, Ack blocks until the next commit frees room. 0 means 65536.
	MaxPending int
	// CacheSize is pebble's block cache in bytes. 0 means 2 MiB.
	CacheSize int64
	// MaxOpenFiles bounds pebble's open table files. 0 means 200.
	MaxOpenFiles int
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 5 * time.Millisecond
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 65536
	}
	if c.CacheSize <= 0 {
		c.CacheSize = 2 << 20
	}
	if c.MaxOpenFiles <= 0 {
		c.MaxOpenFiles = 200
	}
	return c
}

// Store is the durable local state of one edge node. It is safe for
// concurrent use; see the package documentation.
type Store struct {
	cfg  Config
	log  *slog.Logger
	m    *metrics
	lock *pebble.Lock

	// dbMu guards db against use after Close: every pebble call holds it for
	// reading, Close takes it for writing before closing pebble.
	dbMu     sync.RWMutex
	db       *pebble.DB
	dbClosed bool

	// mu guards the in-memory ACK state below.
	mu          sync.Mutex
	space       *sync.Cond // signalled when pending loses entries or on close
	pending     pendingSet // accepted by Ack, not yet handed to the writer
	cur         *flushGen  // completes when the current pending set is durable
	inflight    pendingSet // being committed by the writer
	inflightGen *flushGen
	spare       pendingSet // the last committed set, emptied, for the next one
	commits     uint64     // count of finished commits (read-your-writes check)
	closed      bool

	// writeMu serialises read-modify-write of ACK records (the writer's
	// commits and MarkFlushed) and guards dirty.
	writeMu sync.Mutex
	dirty   *dirtySet // mirror of the dirty index: positions not yet in Redis
	// sessMu serialises read-modify-write of session records.
	sessMu sync.Mutex

	kick   chan struct{} // pending went from empty to non-empty
	urgent chan struct{} // commit now: AckSync, Flush, pending full
	stop   chan struct{}
	done   chan struct{} // closed when the writer goroutine has exited

	finalErr  error // the writer's last flush result on exit
	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the store in dir and starts its background
// ACK writer. A directory held by another open Store gives an error wrapping
// ErrLocked.
func Open(dir string, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	lock, err := pebble.LockDirectory(dir, vfs.Default)
	if err != nil {
		return nil, lockError(dir, err)
	}
	db, err := pebble.Open(dir, &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		CacheSize:          cfg.CacheSize,
		MaxOpenFiles:       cfg.MaxOpenFiles,
		Logger:             pebbleLogger{log: cfg.Logger},
		Lock:               lock,
	})
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{
		cfg:    cfg,
		log:    cfg.Logger,
		lock:   lock,
		db:     db,
		cur:    newFlushGen(),
		kick:   make(chan struct{}, 1),
		urgent: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	s.space = sync.NewCond(&s.mu)
	s.pending = newPendingSet(0)
	s.m = newMetrics(s.pendingLen)
	if err := s.loadDirty(); err != nil {
		return nil, errors.Join(err, db.Close(), lock.Close())
	}
	go s.run()
	return s, nil
}

// lockError classifies a failure to take the directory lock: failing to
// create the LOCK file is an ordinary I/O error, anything else (fcntl
// refusing, or pebble's "held by current process") means someone holds it.
func lockError(dir string, err error) error {
	if _, ok := errors.AsType[*fs.PathError](err); ok {
		return fmt.Errorf("lock store %s: %w", dir, err)
	}
	return fmt.Errorf("open store %s: %w (%w)", dir, ErrLocked, err)
}

// Close commits every pending ACK position, stops the background writer and
// closes pebble. It waits for calls in progress to finish. It is safe to call
// more than once: later calls return the first call's result. Every other
// method returns ErrClosed once Close has begun (reads: once it has returned).
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Store) close() error {
	s.mu.Lock()
	s.closed = true
	s.space.Broadcast()
	s.mu.Unlock()

	close(s.stop)
	<-s.done // the writer flushed everything accepted before closed was set
	var errs []error
	if s.finalErr != nil {
		s.mu.Lock()
		lost := s.pending.n
		s.mu.Unlock()
		s.log.Error("store closed with ack positions not written",
			attrPositions, lost, attrErr, s.finalErr)
		errs = append(errs, fmt.Errorf("close store: final flush of %d positions: %w", lost, s.finalErr))
	}

	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	s.dbClosed = true
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close store: %w", err))
	}
	if err := s.lock.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close store: release lock: %w", err))
	}
	return errors.Join(errs...)
}

// withDB runs fn with the database held open, or returns ErrClosed.
func (s *Store) withDB(fn func(db *pebble.DB) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.dbClosed {
		return ErrClosed
	}
	return fn(s.db)
}

// scan calls fn for every key/value in [lower, upper), in order (or reverse
// order), until fn returns false.
func scan(db *pebble.DB, lower, upper []byte, reverse bool, fn func(k, v []byte) (bool, error)) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	first, next := it.First, it.Next
	if reverse {
		first, next = it.Last, it.Prev
	}
	for ok := first(); ok; ok = next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return errors.Join(err, it.Close())
		}
		more, err := fn(it.Key(), v)
		if err != nil || !more {
			return errors.Join(err, it.Close())
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// signal does a non-blocking send on a one-slot wake-up channel.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
