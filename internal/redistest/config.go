package redistest

import (
	"path/filepath"
	"strconv"
	"time"
)

// Config describes a redis-server to launch. The zero value is a throwaway,
// non-persistent server on a free loopback port in a new temporary directory.
type Config struct {
	// Binary is the redis-server executable to run. "" means search
	// SearchDirs for "redis-server".
	Binary string

	// SearchDirs are the directories searched for redis-server when Binary
	// is empty. nil means the directories of $PATH, then /usr/bin, /usr/sbin
	// and /usr/local/bin. A non-nil empty slice searches nowhere.
	SearchDirs []string

	// Port is the TCP port on 127.0.0.1. 0 means a free port picked at
	// launch, picked again if redis-server cannot bind it. A fixed port is
	// never retried.
	Port int

	// Dir is the data directory (AOF files and logs). "" means a new
	// temporary directory, removed by Close.
	Dir string

	// AOF turns on the append-only file with appendfsync always, so every
	// acknowledged write survives Kill and Restart. Without it the server
	// keeps nothing on disk and restarts empty.
	AOF bool

	// Args are extra redis-server arguments, appended after the defaults so
	// they win, e.g. "--maxmemory", "64mb".
	Args []string

	// StartTimeout bounds how long Launch and Restart wait for the server to
	// answer PING. 0 means 10s.
	StartTimeout time.Duration
}

// Option changes a Config; Start applies them in order.
type Option func(*Config)

// WithAOF turns on the append-only file with appendfsync always.
func WithAOF() Option { return func(c *Config) { c.AOF = true } }

// WithArgs appends extra redis-server arguments.
func WithArgs(args ...string) Option {
	return func(c *Config) { c.Args = append(c.Args, args...) }
}

// WithPort listens on a fixed port instead of a free one.
func WithPort(port int) Option { return func(c *Config) { c.Port = port } }

// WithDir uses dir as the data directory instead of a new temporary one, for
// example to start a second Server on the data a first one left behind.
func WithDir(dir string) Option { return func(c *Config) { c.Dir = dir } }

const (
	defaultStartTimeout = 10 * time.Second
	logName             = "redis.log"    // redis-server's own log
	outName             = "redis.output" // stdout and stderr: fatal config errors land here
)

// defaultSearchDirs are searched after $PATH: Debian puts redis-server in
// /usr/bin, other packagings in /usr/sbin or /usr/local/bin.
var defaultSearchDirs = []string{"/usr/bin", "/usr/sbin", "/usr/local/bin"}

// serverArgs returns the redis-server command line for a server on port
// with its data in dir. Later arguments override earlier ones.
func serverArgs(port int, dir string, aof bool, extra []string) []string {
	appendonly := []string{"--appendonly", "no"}
	if aof {
		appendonly = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--protected-mode", "no",
		"--daemonize", "no",
		"--logfile", filepath.Join(dir, logName),
	}
	args = append(args, appendonly...)
	return append(args, extra...)
}
