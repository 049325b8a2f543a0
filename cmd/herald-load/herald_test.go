package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/leakcheck"
	"github.com/heraldrt/herald/internal/redistest"
)

// heraldBin is the herald binary TestMain built for this run ("" when the
// build failed: buildErr says why).
var (
	heraldBin string
	buildErr  error
)

// testSecret is the edges' HS256 secret in these tests.
const testSecret = "load-test-secret-0123456789abcdef0123"

func TestMain(m *testing.M) {
	if os.Getenv("HERALD_LOAD_TEST_WORKER") == "1" {
		os.Exit(m.Run()) // a worker process: TestWorkerProcess only
	}
	dir, err := os.MkdirTemp("", "herald-load-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	heraldBin, buildErr = buildHerald(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildHerald builds cmd/herald into dir, without -race: the processes
// under load are the release binary.
func buildHerald(dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "herald")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/heraldrt/herald/cmd/herald")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build herald: %w\n%s", err, out)
	}
	return bin, nil
}

// deployment is a herald dev process (a dispatcher and an edge in one)
// on its own redis-server.
type deployment struct {
	ws, metrics, redisURL, dataDir string
	pid                            int
}

// startHerald runs `herald dev` on its own redis-server and returns its
// addresses once it logs "edge ready". The process is stopped (SIGTERM,
// then SIGKILL after 10 s) when the test ends.
func startHerald(t *testing.T) deployment {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	srv := redistest.Start(t)
	d := deployment{redisURL: srv.URL(), dataDir: t.TempDir()}
	cmd := exec.Command(heraldBin, "dev", "--redis-url", d.redisURL, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--data-dir", d.dataDir, "--log-format", "json", "--drain-timeout", "5s", "--jwt-hs256-secret", testSecret)
	cmd.Env = append(os.Environ(), "HERALD_CONNECT_RATE_PER_IP=0", "HERALD_MAX_CONNS_PER_USER=100000", "HERALD_PPROF_WITHOUT_TOKEN=true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	ready := make(chan [2]string, 1)
	go func() {
		defer close(exited)
		readyLines(logs, ready, t.Output())
		cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case a := <-ready:
		d.ws, d.metrics, d.pid = "ws://"+a[0]+"/ws", "http://"+a[1]+"/metrics", cmd.Process.Pid
		return d
	case <-exited:
		t.Fatal("herald dev exited before it was ready")
	case <-time.After(30 * time.Second):
		t.Fatal("herald dev not ready within 30s")
	}
	return d
}

// TestWorkerProcess is not a test: it is the body of the worker processes
// that the tests start by running this test binary again (useTestWorkers),
// since `herald-load worker` needs the real binary.
func TestWorkerProcess(t *testing.T) {
	if os.Getenv("HERALD_LOAD_TEST_WORKER") != "1" {
		return
	}
	args := os.Args[slices.Index(os.Args, "--")+1:]
	if err := runWorker(context.Background(), args, os.Stdin, os.Stdout); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(0)
}

// useTestWorkers makes the coordinator start its workers from this test
// binary.
func useTestWorkers(t *testing.T) {
	old := spawnWorker
	spawnWorker = func(args []string) (*exec.Cmd, error) {
		cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestWorkerProcess$", "--"}, args...)...)
		cmd.Env = append(os.Environ(), "HERALD_LOAD_TEST_WORKER=1")
		return cmd, nil
	}
	t.Cleanup(func() { spawnWorker = old })
}

// verifyNoLeaks checks, after every other clean-up of the test, that no
// goroutine is left.
func verifyNoLeaks(t *testing.T) {
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		leakcheck.VerifyNone(t)
	})
}

// readyLines copies the JSON log to out and hands over the listen and
// admin addresses of its "edge ready" line.
func readyLines(r io.Reader, ready chan<- [2]string, out io.Writer) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var line struct{ Msg, Listen, Admin, Level string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "edge ready" {
			select {
			case ready <- [2]string{line.Listen, line.Admin}:
			default:
			}
		}
		if line.Level == "WARN" || line.Level == "ERROR" {
			fmt.Fprintf(out, "herald: %s\n", sc.Bytes())
		}
	}
}
