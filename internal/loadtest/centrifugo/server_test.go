package centrifugo_test

import (
	"errors"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/loadtest/centrifugo"
	"github.com/heraldrt/herald/internal/redistest"
)

var users = []string{"u1", "u2", "u3"}

// TestDelivery connects three clients to each variant and checks that every
// client gets exactly its personal publications and the broadcast, in
// order, published one at a time, in a batch and as a broadcast.
func TestDelivery(t *testing.T) {
	for _, tc := range []struct {
		name    string
		history bool
	}{{"history off", false}, {"history on", true}} {
		t.Run(tc.name, func(t *testing.T) {
			rds := redistest.Start(t)
			srv := startServer(t, rds.Addr(), centrifugo.Config{History: tc.history})
			clients := map[string]*client{}
			for _, u := range users {
				clients[u] = dial(t, srv, u, nil, false)
				checkConnectReply(t, clients[u].connectReply(), u, tc.history)
			}

			api := srv.API()
			want := map[string][]string{}
			for _, u := range users {
				ch := centrifugo.PersonalChannel(u)
				if _, err := api.Publish(t.Context(), ch, msg(u, 1)); err != nil {
					t.Fatal(err)
				}
				want[u] = append(want[u], string(msg(u, 1)))
			}
			var chans []string
			for _, u := range users {
				chans = append(chans, centrifugo.PersonalChannel(u))
			}
			if err := api.Broadcast(t.Context(), chans, msg("all", 2)); err != nil {
				t.Fatal(err)
			}
			var batch []centrifugo.Command
			for _, u := range users {
				want[u] = append(want[u], string(msg("all", 2)))
				for n := 3; n <= 4; n++ {
					batch = append(batch, centrifugo.Command{Channel: centrifugo.PersonalChannel(u), Data: msg(u, n)})
					want[u] = append(want[u], string(msg(u, n)))
				}
			}
			// The fence goes last into every channel: once a client has it,
			// everything before it has arrived too (a channel keeps its order).
			batch = append(batch, centrifugo.Command{Channels: chans, Data: msg("fence", 5)})
			if failed, err := api.Batch(t.Context(), batch); err != nil || failed != 0 {
				t.Fatalf("batch: %d failed: %v", failed, err)
			}
			for _, u := range users {
				want[u] = append(want[u], string(msg("fence", 5)))
				c := clients[u]
				waitFor(t, u+" fence", func() bool { return slices.Contains(c.data(), string(msg("fence", 5))) })
				if got := c.data(); !slices.Equal(got, want[u]) {
					t.Errorf("%s got\n%q\nwant\n%q", u, got, want[u])
				}
				checkPublications(t, c.publications(), u, tc.history)
			}
		})
	}
}

func checkConnectReply(t *testing.T, r *centrifugo.ConnectReply, user string, history bool) {
	t.Helper()
	sub, ok := r.Subs[centrifugo.PersonalChannel(user)]
	if !ok {
		t.Fatalf("connect reply of %s has no personal channel: %+v", user, r)
	}
	if sub.Recoverable != history {
		t.Errorf("%s: recoverable = %v with history %v", user, sub.Recoverable, history)
	}
	// The token expires in an hour, so the reply asks for a refresh by then.
	if r.Version != "6.9.1 OSS" || !r.Pong || r.Ping != 25 || !r.Expires || r.TTL < 3590 || r.TTL > 3600 {
		t.Errorf("%s: connect reply %+v, want version 6.9.1 OSS, ping 25, pong, expiring in 3600s", user, r)
	}
}

// checkPublications checks channels and offsets: consecutive from 1 in a
// fresh history stream, absent without history.
func checkPublications(t *testing.T, pubs []centrifugo.Publication, user string, history bool) {
	t.Helper()
	for i, p := range pubs {
		var want uint64
		if history {
			want = uint64(i + 1)
		}
		if p.Channel != centrifugo.PersonalChannel(user) || p.Offset != want || p.Recovered {
			t.Errorf("%s publication %d: %+v, want channel %s offset %d", user, i, p, centrifugo.PersonalChannel(user), want)
		}
	}
}

// TestRecovery disconnects a client of the history variant, publishes three
// more, and checks that reconnecting from its position brings exactly those
// three back in the connect reply, then live ones as usual.
func TestRecovery(t *testing.T) {
	rds := redistest.Start(t)
	srv := startServer(t, rds.Addr(), centrifugo.Config{History: true})
	api := srv.API()
	ch := centrifugo.PersonalChannel("u1")

	c := dial(t, srv, "u1", nil, false)
	for n := 1; n <= 2; n++ {
		if _, err := api.Publish(t.Context(), ch, msg("live", n)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two publications", func() bool { return len(c.data()) == 2 })
	saved := c.savedPositions()
	c.close()
	if got := saved[ch].Offset; got != 2 || saved[ch].Epoch == "" {
		t.Fatalf("position before disconnect: %+v, want offset 2 and an epoch", saved[ch])
	}

	var missed []string
	for n := 3; n <= 5; n++ {
		pos, err := api.Publish(t.Context(), ch, msg("missed", n))
		if err != nil {
			t.Fatal(err)
		}
		if pos.Offset != uint64(n) || pos.Epoch != saved[ch].Epoch {
			t.Errorf("publish %d: position %+v, want offset %d epoch %s", n, pos, n, saved[ch].Epoch)
		}
		missed = append(missed, string(msg("missed", n)))
	}

	again := dial(t, srv, "u1", saved, false)
	sub := again.connectReply().Subs[ch]
	if !sub.WasRecovering || !sub.Recovered {
		t.Errorf("reconnect: %+v, want recovered", sub)
	}
	if got := again.data(); !slices.Equal(got, missed) {
		t.Errorf("recovered %q, want %q", got, missed)
	}
	for i, p := range again.publications() {
		if !p.Recovered || p.Offset != uint64(i+3) || p.Channel != ch {
			t.Errorf("recovered publication %d: %+v", i, p)
		}
	}
	if _, err := api.Publish(t.Context(), ch, msg("live", 6)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "live publication after recovery", func() bool { return len(again.data()) == 4 })
	if p := again.publications()[3]; p.Recovered || p.Offset != 6 {
		t.Errorf("live publication after recovery: %+v", p)
	}
	if got := again.savedPositions()[ch]; got.Offset != 6 || got.Epoch != saved[ch].Epoch {
		t.Errorf("position after recovery: %+v", got)
	}
}

// TestPingPong checks the ping rule with a short interval: a client that
// answers every {} with {} stays connected, one that does not is closed with
// 3012 (no pong), a code to reconnect on.
func TestPingPong(t *testing.T) {
	rds := redistest.Start(t)
	srv := startServer(t, rds.Addr(), centrifugo.Config{PingInterval: time.Second, PongTimeout: 500 * time.Millisecond})
	polite := dial(t, srv, "u1", nil, false)
	mute := dial(t, srv, "u2", nil, true)
	if r := polite.connectReply(); r.Ping != 1 || !r.Pong {
		t.Fatalf("connect reply %+v, want ping 1 and pong", r)
	}

	waitFor(t, "mute client closed", func() bool {
		select {
		case <-mute.done:
			return true
		default:
			return false
		}
	})
	if mute.closeCode != 3012 || !centrifugo.ShouldReconnect(int(mute.closeCode)) {
		t.Errorf("mute client: close code %d (%v), want 3012", mute.closeCode, mute.readErr)
	}

	waitFor(t, "three pings", func() bool { return polite.pingCount() >= 3 })
	if _, err := srv.API().Publish(t.Context(), centrifugo.PersonalChannel("u1"), msg("still", 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "publication after pings", func() bool { return len(polite.data()) == 1 })
}

// TestStop checks that Stop ends the process, leaves nothing behind and
// removes its directory, and that a second Stop says the same.
func TestStop(t *testing.T) {
	rds := redistest.Start(t)
	srv, err := centrifugo.Start(t.Context(), centrifugo.TestBinary(t), rds.Addr(), centrifugo.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pid := srv.PID()
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("pid %d before Stop: %v", pid, err)
	}
	c := dial(t, srv, "u1", nil, false)
	if err := srv.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	select {
	case <-srv.Done():
	default:
		t.Fatal("Done is open after Stop")
	}
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Errorf("pid %d after Stop: %v, want ESRCH", pid, err)
	}
	if _, err := os.Stat(srv.ConfigFile()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("config file after Stop: %v, want it removed", err)
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("second stop: %v", err)
	}
	<-c.done
	if c.closeCode != 3001 || !centrifugo.ShouldReconnect(int(c.closeCode)) {
		t.Errorf("client at shutdown: close code %d (%v), want 3001 (shutdown)", c.closeCode, c.readErr)
	}
}

// TestParallelBatch sends a parallel batch with one publication per
// channel, the safe way to use it.
func TestParallelBatch(t *testing.T) {
	rds := redistest.Start(t)
	srv := startServer(t, rds.Addr(), centrifugo.Config{})
	api := centrifugo.NewAPI(srv.APIURL(), srv.Config().APIKey, centrifugo.APIConfig{ParallelBatch: true})
	defer api.Close()
	var cmds []centrifugo.Command
	clients := map[string]*client{}
	for _, u := range users {
		clients[u] = dial(t, srv, u, nil, false)
		cmds = append(cmds, centrifugo.Command{Channel: centrifugo.PersonalChannel(u), Data: msg(u, 1)})
	}
	if failed, err := api.Batch(t.Context(), cmds); err != nil || failed != 0 {
		t.Fatalf("parallel batch: %d failed: %v", failed, err)
	}
	for _, u := range users {
		c := clients[u]
		waitFor(t, u+" publication", func() bool { return len(c.data()) == 1 })
		if got := c.data()[0]; got != string(msg(u, 1)) {
			t.Errorf("%s got %s", u, got)
		}
	}
}

// TestStopAfterCrash checks that Stop reports a server that died during the
// run.
func TestStopAfterCrash(t *testing.T) {
	rds := redistest.Start(t)
	srv, err := centrifugo.Start(t.Context(), centrifugo.TestBinary(t), rds.Addr(), centrifugo.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(srv.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-srv.Done()
	if err := srv.Stop(); !errors.Is(err, centrifugo.ErrDied) {
		t.Errorf("stop after a crash: %v, want ErrDied", err)
	}
}

// TestAPIErrors checks that the API's refusals come back as errors.
func TestAPIErrors(t *testing.T) {
	rds := redistest.Start(t)
	srv := startServer(t, rds.Addr(), centrifugo.Config{})
	api := srv.API()

	_, err := api.Publish(t.Context(), "nope:x", msg("x", 1))
	var apiErr *centrifugo.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 102 {
		t.Errorf("publish into an unknown namespace: %v, want api error 102", err)
	}
	if _, err := api.Publish(t.Context(), centrifugo.PersonalChannel("u1"), []byte("not json")); !errors.Is(err, centrifugo.ErrDataNotJSON) {
		t.Errorf("publish of non-JSON data: %v, want ErrDataNotJSON", err)
	}
	err = api.Broadcast(t.Context(), []string{centrifugo.PersonalChannel("u1"), "nope:x"}, msg("x", 1))
	if !errors.As(err, &apiErr) || apiErr.Code != 102 {
		t.Errorf("broadcast with an unknown channel: %v, want api error 102", err)
	}
	failed, err := api.Batch(t.Context(), []centrifugo.Command{
		{Channel: centrifugo.PersonalChannel("u1"), Data: msg("x", 1)},
		{Channel: "nope:x", Data: msg("x", 2)},
	})
	if failed != 1 || !errors.As(err, &apiErr) {
		t.Errorf("batch with one bad command: %d failed, %v", failed, err)
	}
	if _, err := api.Batch(t.Context(), []centrifugo.Command{{Data: msg("x", 1)}}); !errors.Is(err, centrifugo.ErrNoCommand) {
		t.Errorf("batch command without a channel: %v", err)
	}

	wrong := centrifugo.NewAPI(srv.APIURL(), "wrong key", centrifugo.APIConfig{})
	defer wrong.Close()
	if _, err := wrong.Publish(t.Context(), centrifugo.PersonalChannel("u1"), msg("x", 1)); err == nil {
		t.Error("publish with a wrong API key succeeded")
	}
}

// TestTokenRefused checks that a token signed with another secret is
// refused at connect, with a terminal close code.
func TestTokenRefused(t *testing.T) {
	rds := redistest.Start(t)
	srv := startServer(t, rds.Addr(), centrifugo.Config{})
	conn, _, err := websocket.Dial(t.Context(), srv.ConnectURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	tok, err := centrifugo.SignToken("another secret", "u1", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Write(t.Context(), websocket.MessageText, centrifugo.ConnectCommand(1, tok, nil)); err != nil {
		t.Fatal(err)
	}
	_, _, err = conn.Read(t.Context())
	if code := websocket.CloseStatus(err); code != 3500 || centrifugo.ShouldReconnect(int(code)) {
		t.Errorf("connect with a bad token: %v (code %d), want 3500 invalid token", err, code)
	}
}

// TestStartRejectsPongTimeout checks that Start refuses a pong timeout that
// is not below the ping interval before it runs anything.
func TestStartRejectsPongTimeout(t *testing.T) {
	_, err := centrifugo.Start(t.Context(), "/nonexistent/centrifugo", "127.0.0.1:1",
		centrifugo.Config{PingInterval: time.Second, PongTimeout: time.Second})
	if err == nil {
		t.Fatal("Start accepted a pong timeout equal to the ping interval")
	}
}

// TestIdempotencyKey sends each publication twice with the same key, as a
// retrying publisher would, and checks that the client gets it once: the
// key reaches Centrifugo and it keeps it in Redis.
func TestIdempotencyKey(t *testing.T) {
	rds := redistest.Start(t)
	srv := startServer(t, rds.Addr(), centrifugo.Config{History: true})
	c := dial(t, srv, "u1", nil, false)
	checkConnectReply(t, c.connectReply(), "u1", true)
	api := srv.API()
	ch := centrifugo.PersonalChannel("u1")
	chans := []string{ch}
	var want []string
	for n := 1; n <= 3; n++ {
		key := "k" + string(rune('0'+n))
		for range 2 {
			if failed, err := api.Batch(t.Context(), []centrifugo.Command{{Channel: ch, Data: msg("u1", n), IdempotencyKey: key}}); err != nil || failed != 0 {
				t.Fatalf("publish %d: %d failed: %v", n, failed, err)
			}
		}
		want = append(want, string(msg("u1", n)))
	}
	for range 2 {
		if failed, err := api.Batch(t.Context(), []centrifugo.Command{{Channels: chans, Data: msg("all", 4), IdempotencyKey: "b4"}}); err != nil || failed != 0 {
			t.Fatalf("broadcast: %d failed: %v", failed, err)
		}
	}
	want = append(want, string(msg("all", 4)))
	// The fence has no key: once it is there, every duplicate would be too.
	if _, err := api.Publish(t.Context(), ch, msg("fence", 5)); err != nil {
		t.Fatal(err)
	}
	want = append(want, string(msg("fence", 5)))
	waitFor(t, "fence", func() bool { return slices.Contains(c.data(), string(msg("fence", 5))) })
	if got := c.data(); !slices.Equal(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}
