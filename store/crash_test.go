package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashChildEnv, when set to a directory, turns TestCrashKeepsAckSync into
// the child: it writes crashPositions positions there with AckSync, prints
// "ready <n>" once Unflushed lists n > crashPositions positions, and keeps
// acking asynchronously until it is killed.
const crashChildEnv = "HERALD_STORE_CRASH_CHILD_DIR"

const crashPositions = 300

func crashPosition(i int) AckPosition {
	return pos("t1", fmt.Sprintf("u%d", i%17), fmt.Sprintf("d%d", i), "topic:x", "e"+strconv.Itoa(i%3), uint64(1000+i))
}

func TestCrashKeepsAckSync(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKeepsAckSync$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	cmd.Stderr = t.Output()
	stdin, err := cmd.StdinPipe() // the child exits if we vanish
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan error, 1)
	var listed int // positions the child's Unflushed listed before "ready"
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if n, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				listed, _ = strconv.Atoi(n)
				ready <- nil
				return
			}
		}
		ready <- fmt.Errorf("child exited before ready: %v", sc.Err())
	}()
	select {
	case err := <-ready:
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("child not ready after 30s")
	}

	// While the child holds the directory, another process cannot open it.
	if s, err := Open(dir, Config{}); !errors.Is(err, ErrLocked) {
		if s != nil {
			_ = s.Close()
		}
		t.Errorf("Open while the child holds the dir = %v, want ErrLocked", err)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	s := openTest(t, dir, Config{})
	dirty := make(map[string]AckPosition)
	all, err := s.Unflushed(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		dirty[p.User+"/"+p.Device] = p
	}
	for i := range crashPositions {
		want := crashPosition(i)
		got, ok := mustAcks(t, s, want.Tenant, want.User, want.Device)[want.Feed]
		if !ok || got.Epoch != want.Epoch || got.Seq != want.Seq {
			t.Fatalf("position %d after crash = %+v (found %v), want %s:%d", i, got, ok, want.Epoch, want.Seq)
		}
		if d, ok := dirty[want.User+"/"+want.Device]; !ok || !same(d, want) {
			t.Fatalf("position %d is not listed as unflushed after crash", i)
		}
	}
	// Every dirty index entry agrees with its position (batches are atomic).
	for _, d := range all {
		if got := mustAcks(t, s, d.Tenant, d.User, d.Device)[d.Feed]; !same(got, d) {
			t.Fatalf("dirty index %s disagrees with stored %s", fmtPositions([]AckPosition{d}), fmtPositions([]AckPosition{got}))
		}
	}
	if len(all) < listed || listed <= crashPositions {
		t.Errorf("after the kill %d positions are unflushed, but the child listed %d (want > %d)", len(all), listed, crashPositions)
	}
	t.Logf("after SIGKILL: %d synced positions intact, %d unflushed in total", crashPositions, len(all))
}

func crashChild(dir string) {
	s, err := Open(dir, Config{FlushInterval: time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	for i := range crashPositions {
		if err := s.AckSync(ctx, crashPosition(i)); err != nil {
			fmt.Fprintln(os.Stderr, "child AckSync:", err)
			os.Exit(2)
		}
	}
	go func() { // exit if the parent goes away without killing us
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		os.Exit(3)
	}()
	go func() { // keep the writer busy when the kill lands
		for seq := uint64(1); ; seq++ {
			_ = s.Ack(pos("t2", "noise", fmt.Sprintf("d%d", seq%1000), "user", "e", seq))
			if seq%100 == 0 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	// Ready once asynchronous acks are being committed too. Unflushed lists
	// only durable positions, so all n must survive the kill.
	n := 0
	for n <= crashPositions {
		ps, err := s.Unflushed(0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child Unflushed:", err)
			os.Exit(2)
		}
		n = len(ps)
		time.Sleep(time.Millisecond)
	}
	fmt.Println("ready", n)
	select {}
}
