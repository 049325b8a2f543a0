package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// tracer writes every frame a worker's clients read and write, and every
// drop, one line each: unix µs, user, direction (< read, > written, ! an
// event) and the frame. It is for finding out why a client lost something
// (run --trace DIR); a run of 1000 clients writes megabytes. Safe for
// concurrent use; a nil *tracer does nothing.
type tracer struct {
	mu sync.Mutex
	f  *os.File
	w  *bufio.Writer
}

func openTracer(file string) (*tracer, error) {
	if file == "" {
		return nil, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	return &tracer{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

func (t *tracer) line(user int, dir string, b []byte) {
	if t == nil {
		return
	}
	now := time.Now().UnixMicro()
	t.mu.Lock()
	defer t.mu.Unlock()
	var num [24]byte
	t.w.Write(strconv.AppendInt(num[:0], now, 10))
	t.w.WriteString(" u")
	t.w.Write(strconv.AppendInt(num[:0], int64(user), 10))
	t.w.WriteString(" " + dir + " ")
	t.w.Write(b)
	t.w.WriteByte('\n')
}

func (t *tracer) close() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.w.Flush()
	return t.f.Close()
}
