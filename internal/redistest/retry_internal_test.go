package redistest

import (
	"net"
	"testing"
)

// TestLaunchRetriesATakenPort stages the race Launch guards against: the
// free port it picked is taken before redis-server binds it.
func TestLaunchRetriesATakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port

	picks := 0
	choosePort = func() (int, error) {
		picks++
		if picks == 1 {
			return takenPort, nil
		}
		return freePort()
	}
	t.Cleanup(func() { choosePort = freePort })

	srv := Start(t)
	if picks != 2 || srv.Port() == takenPort {
		t.Fatalf("after %d picks the server is on port %d; want a second pick away from %d", picks, srv.Port(), takenPort)
	}
}
