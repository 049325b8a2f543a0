package centrifugo_test

import (
	"context"
	"fmt"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/loadtest/centrifugo"
)

// Start runs the history variant against a Redis; a client connects, reads
// its personal channel, and keeps its position to resume from.
func ExampleStart() {
	ctx := context.Background()
	bin, err := centrifugo.Install(ctx, "bin")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv, err := centrifugo.Start(ctx, bin, "127.0.0.1:6379", centrifugo.Config{History: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()

	conn, _, err := websocket.Dial(ctx, srv.ConnectURL(), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.CloseNow()
	tok, _ := srv.Token("u1", time.Now().Add(24*time.Hour))
	positions := centrifugo.Positions{} // from the last connection, if any
	_ = conn.Write(ctx, websocket.MessageText, centrifugo.ConnectCommand(1, tok, positions))

	_, _ = srv.API().Publish(ctx, centrifugo.PersonalChannel("u1"), []byte(`{"seq":1}`))

	var f centrifugo.Frame
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			return // reconnect if centrifugo.ShouldReconnect(int(websocket.CloseStatus(err)))
		}
		if err := f.Parse(msg); err != nil {
			return
		}
		for range f.Pings {
			_ = conn.Write(ctx, websocket.MessageText, []byte(centrifugo.Pong))
		}
		positions.Update(&f)
		for _, p := range f.Publications {
			fmt.Printf("%s %s\n", p.Channel, p.Data)
		}
	}
}

// A message from Centrifugo may hold several replies: here two publications
// and a ping.
func ExampleFrame_Parse() {
	msg := `{"push":{"channel":"personal:#u1","pub":{"data":{"seq":1},"offset":7}}}
{"push":{"channel":"personal:#u1","pub":{"data":{"seq":2},"offset":8}}}
{}`
	var f centrifugo.Frame
	if err := f.Parse([]byte(msg)); err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range f.Publications {
		fmt.Printf("%s offset %d: %s\n", p.Channel, p.Offset, p.Data)
	}
	fmt.Println("pongs to send:", f.Pings)
	// Output:
	// personal:#u1 offset 7: {"seq":1}
	// personal:#u1 offset 8: {"seq":2}
	// pongs to send: 1
}
