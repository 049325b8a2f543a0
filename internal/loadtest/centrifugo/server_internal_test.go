package centrifugo

import (
	"net"
	"os"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/redistest"
)

// TestStartRetriesTakenPort gives Start a port someone else holds first:
// centrifugo cannot bind it, and Start tries another.
func TestStartRetriesTakenPort(t *testing.T) {
	bin := testBinary(t)
	rds := redistest.Start(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	var picked []int
	choosePort = func() (int, error) {
		if len(picked) == 0 {
			picked = append(picked, taken)
			return taken, nil
		}
		p, err := freePort()
		picked = append(picked, p)
		return p, err
	}
	defer func() { choosePort = freePort }()

	srv, err := Start(t.Context(), bin, rds.Addr(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	}()
	if len(picked) != 2 || srv.port != picked[1] {
		t.Errorf("ports picked %v, server on %d", picked, srv.port)
	}
	log, err := readFile(srv.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log, "address already in use") {
		t.Errorf("the log does not show the failed bind:\n%s", log)
	}
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
