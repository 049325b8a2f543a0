package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The figures sampled from every server process, under the names of the
// Prometheus process and Go collectors (and Herald's edge gauge).
const (
	metricRSS        = "process_resident_memory_bytes"
	metricCPU        = "process_cpu_seconds_total"
	metricFDs        = "process_open_fds"
	metricGoroutines = "go_goroutines"
	metricSessions   = "herald_edge_sessions"
	metricHeapInuse  = "go_memstats_heap_inuse_bytes"
	metricStackInuse = "go_memstats_stack_inuse_bytes"
	metricStoreBytes = "store_bytes" // du of Process.DataDir; not a Prometheus name
	metricWireBytes  = "herald_edge_written_bytes_total"
)

var sampledMetrics = []string{metricRSS, metricCPU, metricFDs, metricGoroutines, metricSessions, metricHeapInuse, metricStackInuse, metricWireBytes}

// endpoint is one process's /metrics, named "name=url" on the command
// line (the name defaults to the URL's host:port).
type endpoint struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

func parseEndpoints(list string) ([]endpoint, error) {
	var eps []endpoint
	for _, item := range splitList(list) {
		name, u, ok := strings.Cut(item, "=")
		if !ok || strings.Contains(name, "/") {
			name, u = "", item
		}
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, fmt.Errorf("%w: --metrics %q: want [name=]http://host:port/metrics", errUsage, item)
		}
		if name == "" {
			name = strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
			name, _, _ = strings.Cut(name, "/")
		}
		eps = append(eps, endpoint{Name: name, URL: u})
	}
	return eps, nil
}

// sample is one reading of every process (by index in the target's
// Processes; a missing figure is absent) and of the machine.
type sample struct {
	At    time.Time
	Procs []map[string]float64
	Errs  []string // by process; "" when the reading worked
	Load  [3]float64
	Busy  float64 // CPU seconds all cores have been busy since boot; -1 when unknown
}

// get is one figure of process i, 0 when absent.
func (s sample) get(i int, name string) float64 {
	if i < len(s.Procs) && s.Procs[i] != nil {
		return s.Procs[i][name]
	}
	return 0
}

// has reports whether process i's reading holds name.
func (s sample) has(i int, name string) bool {
	if i < len(s.Procs) && s.Procs[i] != nil {
		_, ok := s.Procs[i][name]
		return ok
	}
	return false
}

// takeSample reads every process at once (each at most 5 s).
func takeSample(ctx context.Context, procs []Process) sample {
	s := sample{At: time.Now(), Procs: make([]map[string]float64, len(procs)), Errs: make([]string, len(procs))}
	done := make(chan struct{}, len(procs))
	for i, p := range procs {
		go func() {
			defer func() { done <- struct{}{} }()
			m, err := readProcess(ctx, p)
			s.Procs[i] = m
			if err != nil {
				s.Errs[i] = err.Error()
			}
		}()
	}
	for range procs {
		<-done
	}
	s.Load = loadAverage()
	s.Busy = machineBusy()
	return s
}

// readProcess reads one process: its Read, its /metrics, /proc/<pid> for
// what neither gave, and the size of its data directory.
func readProcess(ctx context.Context, p Process) (map[string]float64, error) {
	m := make(map[string]float64)
	var errs []string
	if p.Read != nil {
		got, err := p.Read(ctx)
		if err != nil {
			errs = append(errs, err.Error())
		}
		for k, v := range got {
			m[k] = v
		}
	}
	if p.Metrics != "" {
		got, err := scrape(ctx, p.Metrics, sampledMetrics)
		if err != nil {
			errs = append(errs, err.Error())
		}
		for k, v := range got {
			m[k] = v
		}
	}
	if p.PID > 0 {
		procStat(p.PID, m)
	}
	if p.DataDir != "" {
		if n, err := dirBytes(p.DataDir); err == nil {
			m[metricStoreBytes] = float64(n)
		} else {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return m, fmt.Errorf("%s: %s", p.Name, strings.Join(errs, "; "))
	}
	return m, nil
}

// scrape reads the Prometheus text exposition at url and returns the named
// metrics, each summed over its label sets.
func scrape(ctx context.Context, url string, names []string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body, names)
}

// parseMetrics reads the text exposition format: "name{labels} value".
func parseMetrics(r io.Reader, names []string) (map[string]float64, error) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 || !want[line[:end]] {
			continue
		}
		rest := line[end:]
		if rest[0] == '{' {
			close := strings.LastIndexByte(rest, '}')
			if close < 0 {
				continue
			}
			rest = rest[close+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		out[line[:end]] += v
	}
	return out, sc.Err()
}

// procStat fills what m lacks of CPU seconds (utime + stime of
// /proc/<pid>/stat, in USER_HZ: 100 a second on Linux), RSS (VmRSS of
// /proc/<pid>/status) and open descriptors (/proc/<pid>/fd).
func procStat(pid int, m map[string]float64) {
	dir := "/proc/" + strconv.Itoa(pid)
	if _, ok := m[metricCPU]; !ok {
		if b, err := os.ReadFile(dir + "/stat"); err == nil {
			// The command name is in parentheses and may hold spaces: the
			// fields after it start at the last ')'.
			if i := strings.LastIndexByte(string(b), ')'); i > 0 {
				f := strings.Fields(string(b[i+1:]))
				if len(f) > 12 { // state is f[0]; utime and stime are fields 14 and 15
					u, _ := strconv.ParseFloat(f[11], 64)
					s, _ := strconv.ParseFloat(f[12], 64)
					m[metricCPU] = (u + s) / 100
				}
			}
		}
	}
	if _, ok := m[metricRSS]; !ok {
		if b, err := os.ReadFile(dir + "/status"); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
					kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
					m[metricRSS] = kb * 1024
				}
			}
		}
	}
	if _, ok := m[metricFDs]; !ok {
		if ents, err := os.ReadDir(dir + "/fd"); err == nil {
			m[metricFDs] = float64(len(ents))
		}
	}
}

// dirBytes is the size of the regular files under dir, as du counts
// apparent sizes.
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // a file the store removed meanwhile
			}
			return err
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dir, err)
	}
	return n, nil
}

// machineBusy is the CPU seconds the machine's cores have spent busy since
// boot, from /proc/stat (user, nice, system, irq, softirq, steal in
// USER_HZ, 100 a second on Linux); -1 where it cannot tell.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return -1
	}
	busy := 0.0
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseFloat(f[i], 64)
		busy += v
	}
	return busy / 100
}

// loadAverage reads /proc/loadavg; zeros where it cannot.
func loadAverage() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	for i, f := range strings.Fields(string(b)) {
		if i == 3 {
			break
		}
		l[i], _ = strconv.ParseFloat(f, 64)
	}
	return l
}
