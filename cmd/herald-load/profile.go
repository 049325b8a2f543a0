package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// profileAll takes a CPU profile of `seconds` from every process with a
// Metrics endpoint, at /debug/pprof/profile beside it (Herald's admin
// listener), after a delay, into dir/<name>-<scenario>.pprof. wait returns
// the files written and the errors met.
func profileAll(ctx context.Context, procs []Process, dir, scenario string, delay, seconds time.Duration) (wait func() ([]string, []string)) {
	type result struct{ file, err string }
	var targets []Process
	for _, p := range procs {
		if p.Metrics != "" {
			targets = append(targets, p)
		}
	}
	results := make(chan result, len(targets))
	for _, p := range targets {
		go func() {
			if sleepUntil(ctx, time.Now().Add(delay)) != nil {
				results <- result{err: p.Name + ": profile not taken: " + ctx.Err().Error()}
				return
			}
			file := filepath.Join(dir, p.Name+"-"+scenario+".pprof")
			base, _ := strings.CutSuffix(p.Metrics, "/metrics")
			url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, max(1, int(seconds.Seconds())))
			if err := fetchTo(ctx, url, file, seconds+15*time.Second); err != nil {
				results <- result{err: p.Name + ": " + err.Error()}
				return
			}
			results <- result{file: file}
		}()
	}
	return func() (files, errs []string) {
		for range targets {
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
