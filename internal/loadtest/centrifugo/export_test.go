package centrifugo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestBinary returns the centrifugo binary for the package's tests.
var TestBinary = testBinary

// installTimeout bounds a cold `go install` of centrifugo (a few minutes on
// two cores).
const installTimeout = 15 * time.Minute

// installed installs centrifugo once for the whole test binary, into the
// module's gitignored bin/.
var installed = sync.OnceValues(func() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	return Install(ctx, filepath.Join(root, "bin"))
})

// testBinary returns the centrifugo binary, skipping the test when it
// cannot be installed (no module proxy, no go command): the only reason
// these tests skip.
func testBinary(t *testing.T) string {
	t.Helper()
	bin, err := installed()
	if err != nil {
		t.Skipf("SKIP: centrifugo %s cannot be installed, so it cannot be tested: %v", Version, err)
	}
	return bin
}

// moduleRoot returns the directory of the go.mod above the working
// directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
