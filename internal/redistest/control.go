package redistest

import (
	"context"
	"fmt"
	"syscall"
	"time"
)

const (
	// stopGrace is how long Stop waits for a graceful shutdown before it
	// kills the server.
	stopGrace = 10 * time.Second
	// pauseTimeout bounds how long Pause waits for the kernel to stop the
	// process.
	pauseTimeout = 5 * time.Second
)

// running returns the live process, or why there is none. Callers hold s.mu.
func (s *Server) running() (*process, error) {
	if s.closed {
		return nil, ErrClosed
	}
	p := s.live()
	if p == nil {
		return nil, ErrNotRunning
	}
	return p, nil
}

// control runs f on the live process under s.mu and names op in its error.
func (s *Server) control(op string, f func(*process) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.running()
	if err != nil {
		return err
	}
	if err := f(p); err != nil {
		return fmt.Errorf("redistest: %s %s: %w", op, s.Addr(), err)
	}
	return nil
}

// Kill crashes the server: SIGKILL to its process group, then waits until it
// is gone. Writes that were not yet on disk are lost, as in a real crash.
func (s *Server) Kill() error {
	return s.control("kill", func(p *process) error {
		s.proc = nil
		return p.kill()
	})
}

// Stop shuts the server down gracefully (SIGTERM, which redis-server handles
// like SHUTDOWN) and waits until it is gone. A server that does not exit
// within 10s is killed, and Stop says so.
func (s *Server) Stop() error {
	return s.control("stop", func(p *process) error {
		s.proc = nil
		return p.terminate(stopGrace)
	})
}

// Restart starts the server again after Kill, Stop or a crash, on the same
// port and data directory, and waits until it answers PING. With AOF the
// data set survives; without it the server comes back empty. ctx bounds the
// start. Restart fails if the port was taken in the meantime.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.live() != nil {
		return ErrRunning
	}
	if err := s.start(ctx); err != nil {
		return fmt.Errorf("redistest: restart %s: %w", s.Addr(), err)
	}
	return nil
}

// Pause freezes the server with SIGSTOP. When Pause returns the process is
// stopped: connections stay open but nothing is answered, so clients time
// out. Resume thaws it.
func (s *Server) Pause() error {
	return s.control("pause", func(p *process) error {
		if err := p.signalGroup(syscall.SIGSTOP); err != nil {
			return err
		}
		return waitStopped(p.pid, pauseTimeout)
	})
}

// Resume thaws a paused server with SIGCONT. It answers what clients sent
// while it was paused, in order.
func (s *Server) Resume() error {
	return s.control("resume", func(p *process) error { return p.signalGroup(syscall.SIGCONT) })
}

// Close kills the server if it is running, waits until it is gone and
// removes the data directory if Launch created it. It is safe to call more
// than once; later calls return nil.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if p := s.proc; p != nil {
		s.proc = nil
		if err := p.kill(); err != nil {
			return fmt.Errorf("redistest: close %s: %w", s.Addr(), err)
		}
	}
	return s.removeDir()
}
