package store_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/heraldrt/herald/store"
)

func Example() {
	dir, err := os.MkdirTemp("", "herald-store-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := store.Open(dir, store.Config{}) // zero Config: 5ms flushes, 2 MiB cache
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	at := func(feed, epoch string, seq uint64) store.AckPosition {
		return store.AckPosition{Tenant: "acme", User: "u42", Device: "phone", Feed: feed, Epoch: epoch, Seq: seq}
	}
	// The hot path: asynchronous, coalesced, forward-only.
	_ = s.Ack(at("user", "e1", 41))
	_ = s.Ack(at("user", "e1", 42))
	_ = s.Ack(at("user", "e1", 40)) // behind: ignored
	// Drain: wait until durable.
	if err := s.AckSync(context.Background(), at("topic:news", "n7", 3)); err != nil {
		log.Fatal(err)
	}

	acks, err := s.Acks("acme", "u42", "phone") // sees pending positions too
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(acks["user"].Epoch, acks["user"].Seq)
	fmt.Println(acks["topic:news"].Epoch, acks["topic:news"].Seq)
	// Output:
	// e1 42
	// n7 3
}
