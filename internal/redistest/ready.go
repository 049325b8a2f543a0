package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

const (
	pollInterval = 10 * time.Millisecond
	probeTimeout = time.Second
)

// waitReady polls addr until the server p started answers PING, p exits, or
// timeout (or ctx) runs out. Checking the pid that answers makes sure that
// another server which took the port in the meantime is not mistaken for p.
func waitReady(ctx context.Context, p *process, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// A probe stuck on whoever holds the port must not outlive p.
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		pid, err := probe(ctx, addr)
		if err == nil && pid == p.pid {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("%s is answered by process %d, not %d", addr, pid, p.pid)
		}
		select {
		case <-tick.C:
			continue
		case <-p.done:
		case <-ctx.Done():
		}
		if p.exited() { // ctx is also cancelled when p exits
			return fmt.Errorf("%w: %v", errExited, p.err)
		}
		return fmt.Errorf("redis-server %d did not answer PING on %s within %v: %w (last try: %v)",
			p.pid, addr, timeout, ctx.Err(), err)
	}
}

// probeRequest is PING followed by INFO server, in RESP. PING only answers
// +PONG once the data set is loaded; INFO tells whose process answered.
const probeRequest = "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"

// probe sends probeRequest to addr and returns the process_id of the server
// that answered PONG.
func probe(ctx context.Context, addr string) (int, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	deadline := time.Now().Add(probeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return 0, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := io.WriteString(conn, probeRequest); err != nil {
		return 0, err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if line != "+PONG\r\n" {
		return 0, fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	info, err := readBulk(r)
	if err != nil {
		return 0, fmt.Errorf("read INFO server: %w", err)
	}
	for l := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO server has no process_id")
}

// readBulk reads one RESP bulk string.
func readBulk(r *bufio.Reader) (string, error) {
	head, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(head, "$") {
		return "", fmt.Errorf("want a bulk string, got %q", strings.TrimSpace(head))
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil || n < 0 {
		return "", fmt.Errorf("bad bulk length %q", strings.TrimSpace(head))
	}
	body := make([]byte, n+2) // with the trailing CRLF
	if _, err := io.ReadFull(r, body); err != nil {
		return "", err
	}
	return string(body[:n]), nil
}
