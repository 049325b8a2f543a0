package centrifugo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	configName   = "config.json"
	portAttempts = 5
)

// Server is a running centrifugo process on 127.0.0.1, started by Start and
// ended by Stop. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config // defaults filled in
	port   int
	node   string
	dir    string
	ownDir bool
	proc   *process
	api    *API

	stopOnce sync.Once
	stopErr  error
}

// Start runs the centrifugo binary bin (see Install) against the Redis at
// redisAddr ("host:port") as cfg describes, and returns once it answers the
// server API as the node it was told to be. It first has `centrifugo
// checkconfig --strict` check the generated file, so a key Centrifugo does
// not know fails here instead of being ignored. ctx bounds the start only;
// the caller must call Stop.
func Start(ctx context.Context, bin, redisAddr string, cfg Config) (*Server, error) {
	s := &Server{cfg: cfg.withDefaults(), node: "herald-cf-" + randomHex(4)}
	var err error
	if s.dir, s.ownDir, err = workDir(cfg.Dir); err != nil {
		return nil, err
	}
	if err := s.launch(ctx, bin, redisAddr); err != nil {
		_ = s.removeDir()
		return nil, err
	}
	s.api = NewAPI(s.APIURL(), s.cfg.APIKey, APIConfig{})
	return s, nil
}

// launch writes the configuration and starts centrifugo, on another free
// port when the one it was given turns out to be taken.
func (s *Server) launch(ctx context.Context, bin, redisAddr string) error {
	for attempt := 1; ; attempt++ {
		port, err := choosePort()
		if err != nil {
			return err
		}
		file, err := renderConfig(s.cfg, redisAddr, port, s.node)
		if err != nil {
			return err
		}
		path := filepath.Join(s.dir, configName)
		if err := os.WriteFile(path, file, 0o600); err != nil {
			return fmt.Errorf("write centrifugo config: %w", err)
		}
		if attempt == 1 {
			if err := checkConfig(ctx, bin, path); err != nil {
				return err
			}
		}
		s.port = port
		err = s.start(ctx, bin, path)
		if err == nil || attempt == portAttempts || !errors.Is(err, errPortInUse) {
			return err
		}
	}
}

// start runs centrifugo with the configuration at path and waits until it
// is ready.
func (s *Server) start(ctx context.Context, bin, path string) error {
	mark := logSize(s.dir)
	p, err := startProcess(bin, []string{"--config", path}, s.dir)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, p, s.APIURL(), s.cfg.APIKey, s.node, s.cfg.StartTimeout); err != nil {
		p.kill()
		logs := logTail(s.dir, mark)
		if errors.Is(err, ErrExited) && strings.Contains(logs, "address already in use") {
			err = fmt.Errorf("%w (%w)", err, errPortInUse)
		}
		return fmt.Errorf("start centrifugo on port %d: %w%s", s.port, err, logs)
	}
	s.proc = p
	return nil
}

// checkConfig runs `centrifugo checkconfig --strict` on the file at path.
func checkConfig(ctx context.Context, bin, path string) error {
	cmd := exec.CommandContext(ctx, bin, "checkconfig", "--strict", "--config", path)
	cmd.Env = withoutEnv(os.Environ(), "CENTRIFUGO_")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s: %v: %s", ErrBadConfig, path, err, bytes.TrimSpace(out))
	}
	return nil
}

// Stop asks centrifugo to shut down (SIGTERM), kills its process group if it
// is still running ShutdownTimeout+5s later, checks that nothing of the
// group is left, and removes the temporary directory. It returns ErrDied,
// ErrKilled or ErrLeaked (wrapped), or the exit status, when the process
// did not go quietly. Calls after the first return the first one's result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.api.Close()
		s.stopErr = s.proc.terminate(s.cfg.ShutdownTimeout + killAfter)
		if err := s.removeDir(); err != nil {
			s.stopErr = errors.Join(s.stopErr, err)
		}
	})
	return s.stopErr
}

// PID returns the process id of centrifugo, for reading its CPU time and
// memory from /proc/<pid>/stat and /proc/<pid>/status.
func (s *Server) PID() int { return s.proc.pid }

// Done is closed once the centrifugo process has exited (after Stop, or if
// it died).
func (s *Server) Done() <-chan struct{} { return s.proc.done }

// Addr returns "127.0.0.1:port", where centrifugo serves WebSocket clients,
// the server API and /health.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// ConnectURL returns the WebSocket URL clients dial; the JSON protocol is
// the default there.
func (s *Server) ConnectURL() string { return "ws://" + s.Addr() + "/connection/websocket" }

// APIURL returns the base URL of the server HTTP API ("/publish" etc. go
// after it).
func (s *Server) APIURL() string { return "http://" + s.Addr() + "/api" }

// API returns the server's pooled API client, closed by Stop.
func (s *Server) API() *API { return s.api }

// Token returns a connection token for user expiring at exp, signed with
// the server's secret (see SignToken).
func (s *Server) Token(user string, exp time.Time) (string, error) {
	return SignToken(s.cfg.Secret, user, exp)
}

// ConfigFile returns the configuration file centrifugo runs with.
func (s *Server) ConfigFile() string { return filepath.Join(s.dir, configName) }

// LogFile returns the file centrifugo logs to.
func (s *Server) LogFile() string { return filepath.Join(s.dir, logName) }

// Config returns the configuration the server was started with, defaults
// and generated secrets filled in.
func (s *Server) Config() Config { return s.cfg }

func (s *Server) removeDir() error {
	if !s.ownDir {
		return nil
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove centrifugo directory: %w", err)
	}
	return nil
}

// workDir returns the absolute directory for dir, creating it, and whether
// it is a new temporary one.
func workDir(dir string) (string, bool, error) {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "centrifugo-")
		if err != nil {
			return "", false, fmt.Errorf("create centrifugo directory: %w", err)
		}
		return tmp, true, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false, fmt.Errorf("resolve centrifugo directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", false, fmt.Errorf("create centrifugo directory: %w", err)
	}
	return abs, false, nil
}

// choosePort picks the port for a launch; tests replace it to stage a race
// for the port.
var choosePort = freePort

// freePort asks the kernel for a free loopback port. Someone else may take
// it before centrifugo binds it; launch then tries another.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
