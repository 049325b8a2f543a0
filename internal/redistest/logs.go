package redistest

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
)

const (
	tailLines = 20
	tailBytes = 8 << 10
)

// logMarks are the sizes of the log files when a run started, so that an
// error shows what this run wrote and not what earlier runs in the same
// directory did.
type logMarks map[string]int64

func markLogs(dir string) logMarks {
	m := logMarks{}
	for _, name := range []string{logName, outName} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
			m[name] = fi.Size()
		}
	}
	return m
}

// tail returns the last lines each log file in dir got since the marks were
// taken, formatted to be appended to an error message.
func (m logMarks) tail(dir string) string {
	var b strings.Builder
	for _, name := range []string{logName, outName} {
		path := filepath.Join(dir, name)
		if lines := tailFile(path, m[name]); lines != "" {
			b.WriteString("\n--- last lines of " + path + " ---\n" + lines)
		}
	}
	return b.String()
}

// tailFile returns the last tailLines lines of path after offset from, and
// "" if there are none or the file cannot be read.
func tailFile(path string, from int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	if from >= fi.Size() {
		return ""
	}
	from = max(from, fi.Size()-tailBytes)
	b, err := io.ReadAll(io.NewSectionReader(f, from, fi.Size()-from))
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return string(bytes.TrimSpace(bytes.Join(lines, []byte("\n"))))
}
