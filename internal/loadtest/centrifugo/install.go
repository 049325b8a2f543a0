package centrifugo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

const (
	// Version is the Centrifugo release Install provides and this package's
	// configuration and protocol are written for.
	Version = "v6.9.1"

	// Module is Centrifugo's Go module path.
	Module = "github.com/centrifugal/centrifugo/v6"

	// versionVar is the variable Centrifugo's release builds set to their
	// version; a plain `go install` leaves it "0.0.0".
	versionVar = Module + "/internal/build.Version"

	versionTimeout = 10 * time.Second
)

// installMu serializes Installs within the process: two of them would write
// the same file.
var installMu sync.Mutex

// Install returns the path of a centrifugo Version binary in binDir, building
// it first with `go install` (GOBIN=binDir) unless one is there already. The
// build needs the Go module proxy and takes a few minutes when the build cache
// is cold; ctx bounds it. The binary is stamped with its version (the
// `-X` flag Centrifugo's releases use), so `centrifugo version` and the
// connect reply say v6.9.1 rather than 0.0.0.
//
// Centrifugo never enters Herald's go.mod: `go install module@version`
// builds it in module mode of its own.
//
// Install is safe for concurrent use within a process, but two processes
// installing into the same binDir at once may race.
func Install(ctx context.Context, binDir string) (string, error) {
	installMu.Lock()
	defer installMu.Unlock()
	dir, err := filepath.Abs(binDir)
	if err != nil {
		return "", fmt.Errorf("install centrifugo: resolve %s: %w", binDir, err)
	}
	path := filepath.Join(dir, "centrifugo")
	if haveVersion(ctx, path) {
		return path, nil
	}
	if err := goInstall(ctx, dir); err != nil {
		return "", err
	}
	if !haveVersion(ctx, path) {
		return "", fmt.Errorf("install centrifugo into %s: %w", dir, ErrWrongVersion)
	}
	return path, nil
}

// goInstall builds centrifugo Version into dir.
func goInstall(ctx context.Context, dir string) error {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("install centrifugo: %w: %w", ErrNoGo, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("install centrifugo: create %s: %w", dir, err)
	}
	cmd := exec.CommandContext(ctx, gocmd, "install",
		"-ldflags=-X="+versionVar+"="+strings.TrimPrefix(Version, "v"),
		Module+"@"+Version)
	cmd.Dir = dir
	// GOFLAGS of the caller (-mod=vendor, -race...) must not reach this build.
	cmd.Env = append(withoutEnv(os.Environ(), "GOBIN=", "GOFLAGS="), "GOBIN="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("install centrifugo: go install %s@%s: %w\n%s",
			Module, Version, err, lastLines(out.String(), 20))
	}
	return nil
}

// haveVersion reports whether path is a centrifugo binary whose `version`
// names Version. A plain `go install` of Version says v0.0.0 (the version
// is stamped by the linker), so Install builds its own stamped one then.
func haveVersion(ctx context.Context, path string) bool {
	if _, err := os.Stat(path); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "version").Output()
	return err == nil && bytes.HasPrefix(out, []byte("Centrifugo "+Version+" "))
}

// withoutEnv returns env without the variables that start with any prefix.
func withoutEnv(env []string, prefixes ...string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !hasAnyPrefix(kv, prefixes) {
			out = append(out, kv)
		}
	}
	return out
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
