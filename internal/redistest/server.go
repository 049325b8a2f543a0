package redistest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// portAttempts bounds how many free ports Launch tries when redis-server
// finds the one it was given already taken.
const portAttempts = 5

// errPortInUse marks a run that failed because its port was taken.
var errPortInUse = errors.New("port already in use")

// Server is a redis-server child process on 127.0.0.1. Its port and data
// directory stay the same across Restart.
type Server struct {
	bin     string
	port    int
	dir     string
	ownDir  bool // dir was created by Launch and is removed by Close
	aof     bool
	extra   []string
	timeout time.Duration

	mu     sync.Mutex
	proc   *process // nil when killed or stopped
	closed bool
}

// Launch starts a redis-server as cfg describes and waits until it answers
// PING. ctx bounds the start only, not the server's life: the caller must
// call Close. In tests, use Start instead.
func Launch(ctx context.Context, cfg Config) (*Server, error) {
	bin, err := findBinary(cfg)
	if err != nil {
		return nil, fmt.Errorf("redistest: %w", err)
	}
	s := &Server{
		bin:     bin,
		port:    cfg.Port,
		aof:     cfg.AOF,
		extra:   slices.Clone(cfg.Args),
		timeout: cmp.Or(cfg.StartTimeout, defaultStartTimeout),
	}
	if s.dir, s.ownDir, err = dataDir(cfg.Dir); err != nil {
		return nil, fmt.Errorf("redistest: %w", err)
	}
	if err := s.launch(ctx, cfg.Port == 0); err != nil {
		s.removeDir()
		return nil, fmt.Errorf("redistest: launch redis-server: %w", err)
	}
	return s, nil
}

// dataDir returns the absolute data directory for dir, creating it, and
// whether it is a new temporary directory.
func dataDir(dir string) (string, bool, error) {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "redistest-")
		if err != nil {
			return "", false, fmt.Errorf("create data directory: %w", err)
		}
		return tmp, true, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false, fmt.Errorf("resolve data directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", false, fmt.Errorf("create data directory: %w", err)
	}
	return abs, false, nil
}

// launch runs the first start. With pickPort it chooses a free port, and
// chooses another one when redis-server finds it taken.
func (s *Server) launch(ctx context.Context, pickPort bool) error {
	for attempt := 1; ; attempt++ {
		if pickPort {
			port, err := choosePort()
			if err != nil {
				return err
			}
			s.port = port
		}
		err := s.start(ctx)
		if err == nil || !pickPort || attempt == portAttempts || !errors.Is(err, errPortInUse) {
			return err
		}
	}
}

// choosePort picks the port for a launch; tests replace it to stage a race
// for the port.
var choosePort = freePort

// freePort asks the kernel for a free loopback port. Someone else may take it
// before redis-server binds it; launch then tries again.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs redis-server on s.port and waits until it answers. On failure
// the error carries the tail of the logs. Callers hold s.mu or own s alone.
func (s *Server) start(ctx context.Context) error {
	marks := markLogs(s.dir)
	p, err := startProcess(s.bin, serverArgs(s.port, s.dir, s.aof, s.extra), s.dir)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, p, s.Addr(), s.timeout); err != nil {
		_ = p.kill()
		logs := marks.tail(s.dir)
		if errors.Is(err, errExited) && strings.Contains(logs, "Address already in use") {
			err = fmt.Errorf("%w (%w: %d)", err, errPortInUse, s.port)
		}
		return fmt.Errorf("%w%s", err, logs)
	}
	s.proc = p
	return nil
}

func (s *Server) removeDir() error {
	if !s.ownDir {
		return nil
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("redistest: remove data directory: %w", err)
	}
	return nil
}

// Addr returns "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns "redis://127.0.0.1:port/0", the form HERALD_REDIS_URL takes.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Port returns the TCP port, the same across Restart.
func (s *Server) Port() int { return s.port }

// Dir returns the data directory, which holds the AOF files and the logs.
func (s *Server) Dir() string { return s.dir }

// PID returns the process id of the running redis-server, or 0 when it was
// killed or stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live() == nil {
		return 0
	}
	return s.proc.pid
}

// live returns the process if it is still running. Callers hold s.mu.
func (s *Server) live() *process {
	if s.proc == nil || s.proc.exited() {
		return nil
	}
	return s.proc
}
