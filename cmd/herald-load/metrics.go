package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The metrics the bench samples from every Herald process's /metrics.
const (
	metricRSS        = "process_resident_memory_bytes"
	metricCPU        = "process_cpu_seconds_total"
	metricGoroutines = "go_goroutines"
	metricSessions   = "herald_edge_sessions"
	metricHeapInuse  = "go_memstats_heap_inuse_bytes"
	metricStackInuse = "go_memstats_stack_inuse_bytes"
)

var sampledMetrics = []string{metricRSS, metricCPU, metricGoroutines, metricSessions, metricHeapInuse, metricStackInuse}

// endpoint is one Herald process's /metrics, named "name=url" on the
// command line (the name defaults to the URL's host:port).
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

// sample is one scrape of every endpoint (missing metrics are absent), plus
// Redis's CPU seconds and the machine's load average.
type sample struct {
	At       time.Time
	Procs    []map[string]float64 // by endpoint index
	Errs     []string             // by endpoint index; "" when the scrape worked
	RedisCPU float64              // used_cpu_user + used_cpu_sys; -1 when unknown
	Load     [3]float64
	Busy     float64 // CPU seconds all cores have been busy since boot; -1 when unknown
}

// takeSample scrapes every endpoint and Redis at once (each at most 5 s).
func takeSample(ctx context.Context, eps []endpoint, rdb redis.UniversalClient) sample {
	s := sample{At: time.Now(), Procs: make([]map[string]float64, len(eps)), Errs: make([]string, len(eps)), RedisCPU: -1}
	done := make(chan struct{}, len(eps))
	for i, ep := range eps {
		go func() {
			defer func() { done <- struct{}{} }()
			m, err := scrape(ctx, ep.URL, sampledMetrics)
			s.Procs[i] = m
			if err != nil {
				s.Errs[i] = err.Error()
			}
		}()
	}
	if rdb != nil {
		s.RedisCPU = redisCPU(ctx, rdb)
	}
	for range eps {
		<-done
	}
	s.Load = loadAverage()
	s.Busy = machineBusy()
	return s
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

// redisCPU is the server's CPU seconds so far, -1 if INFO cannot tell.
func redisCPU(ctx context.Context, rdb redis.UniversalClient) float64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return -1
	}
	total := 0.0
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return total
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

// profileAll takes a CPU profile of `seconds` from every endpoint's
// /debug/pprof/profile (the admin listener's, beside /metrics) after a
// delay, into dir/<name>-<scenario>.pprof. wait returns the files written and
// the errors met.
func profileAll(ctx context.Context, eps []endpoint, dir, scenario string, delay, seconds time.Duration) (wait func() ([]string, []string)) {
	type result struct{ file, err string }
	results := make(chan result, len(eps))
	for _, ep := range eps {
		go func() {
			if sleepUntil(ctx, time.Now().Add(delay)) != nil {
				results <- result{err: ep.Name + ": profile not taken: " + ctx.Err().Error()}
				return
			}
			file := filepath.Join(dir, ep.Name+"-"+scenario+".pprof")
			base, _ := strings.CutSuffix(ep.URL, "/metrics")
			url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, max(1, int(seconds.Seconds())))
			if err := fetchTo(ctx, url, file, seconds+15*time.Second); err != nil {
				results <- result{err: ep.Name + ": " + err.Error()}
				return
			}
			results <- result{file: file}
		}()
	}
	return func() (files, errs []string) {
		for range eps {
			r := <-results
			if r.err != "" {
				errs = append(errs, r.err)
			} else {
				files = append(files, r.file)
			}
		}
		return files, errs
	}
}

// fetchTo saves the body of a GET of url to file.
func fetchTo(ctx context.Context, url, file string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", url, err)
	}
	return f.Close()
}
