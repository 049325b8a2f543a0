package redistest

import "errors"

var (
	// ErrNotFound means no redis-server executable was found. The error
	// returned with it lists the directories searched and names
	// `go tool task setup`, which installs it.
	ErrNotFound = errors.New("redis-server not found")

	// ErrNotRunning is returned by Kill, Stop, Pause and Resume when the
	// server was already killed or stopped.
	ErrNotRunning = errors.New("redis-server is not running")

	// ErrRunning is returned by Restart when the server is still running.
	ErrRunning = errors.New("redis-server is already running")

	// ErrClosed is returned by every control method after Close.
	ErrClosed = errors.New("redistest server is closed")

	// errExited means redis-server exited before it answered.
	errExited = errors.New("redis-server exited before answering")
)
