package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// A target is the system under load: Herald (herald_target.go), or
// Centrifugo v6 with history off or on (centrifugo_target.go, from
// internal/loadtest/centrifugo), each implementing both halves below in a
// file of this command and listed in targets. The scenarios, the workers,
// the sampling and the reports only ever see these interfaces.
//
// The halves live in different processes: the coordinator holds a Target
// (deployment, publishing, processes to sample); each worker process
// rebuilds the client half (ClientSide) from WorkerArgs and WorkerEnv.

// Target is the coordinator's half.
type Target interface {
	// Name names the target in reports and in the workers' --target.
	Name() string
	// Open readies the deployment for a run. Herald's checks that the
	// deployment the script started answers; a target that runs its own
	// server starts it here. Close stops what Open started.
	Open(ctx context.Context) error
	Close(ctx context.Context) error
	// WorkerArgs are the flags from which a worker builds the client half
	// (targetSpec.client), WorkerEnv the variables it needs besides
	// (secrets, which do not belong on a command line).
	WorkerArgs() []string
	WorkerEnv() []string
	// PublishPersonal stores each event for its one user (Event.User), in
	// as few round trips as it can; stored[i] says whether event i was
	// stored. The error is the first failure, if any.
	PublishPersonal(ctx context.Context, evs []Event) (stored []bool, err error)
	// PublishBroadcast stores one event for every client of the run.
	PublishBroadcast(ctx context.Context, ev Event) error
	// Processes are the server's processes to sample: the ones that hold
	// the client connections (roleEdge), the rest of the server, Redis.
	Processes(ctx context.Context) ([]Process, error)
	// Traits are what the target's protocol offers, which the scenarios
	// and the reports judge by.
	Traits() Traits
}

// Traits are what a target's protocol offers.
type Traits struct {
	// Acks says clients ack what they read (Herald). Without acks the
	// reports say "n/a" for them.
	Acks bool
	// Resume says a reconnecting client gets what it missed (Herald;
	// Centrifugo with history). Without it a reconnect storm only
	// reconnects: what the clients miss meanwhile is "not recoverable",
	// not lost, and nobody resumes.
	Resume bool
	// Keys says the target stores events with their idempotency key
	// (Event.Key; Herald). Without it --idempotency changes nothing.
	Keys bool
}

// preparer is a Target that has slow work to do once before any run (a
// build): the compare command prepares every target before the first
// one runs, so that the work falls between no measured phases.
type preparer interface {
	Prepare(ctx context.Context) error
}

// Event is one load event. Data is the payload (payload.go) that comes
// back, byte for byte, in the client's notification; Key the idempotency
// key ("" for none); User the user's index (personal events only).
type Event struct {
	User int
	Key  string
	Data []byte
}

// Process roles.
const (
	roleEdge  = "edge"  // holds the client connections
	roleRedis = "redis" // the deployment's Redis
	roleOther = "other" // the rest of the server (Herald's dispatcher)
)

// Process is one server process as the sampler sees it. Every field but
// Name and Role may be empty: the sampler reads what there is.
type Process struct {
	Name string
	Role string
	// PID is the process id on this machine: /proc/<pid> gives CPU
	// seconds, RSS and open descriptors when there is no Metrics.
	PID int
	// Metrics is a Prometheus text endpoint: process_cpu_seconds_total,
	// process_resident_memory_bytes, process_open_fds, go_goroutines,
	// go_memstats_*, herald_edge_sessions.
	Metrics string
	// DataDir is the process's on-disk state, whose size is reported.
	DataDir string
	// Read, when set, reads the process's figures itself, under the
	// names the Metrics endpoint would use (Herald reads Redis's CPU
	// seconds and RSS from INFO).
	Read func(ctx context.Context) (map[string]float64, error)
}

// ClientSide is a worker's half: it makes the protocol state of each
// simulated client.
type ClientSide interface {
	Client(user int) Protocol
}

// Protocol is the client side of the target's wire protocol for one
// simulated client, kept across its connections (where to resume from).
// One goroutine at a time calls it; the client serializes.
type Protocol interface {
	// Dial is the URL and headers of a new WebSocket connection.
	Dial() (url string, header http.Header, err error)
	// Hello is what to send as soon as the WebSocket is open (Centrifugo's
	// connect command with the positions to recover from); nil for none.
	Hello() [][]byte
	// Read takes one server message and says what it held.
	Read(msg []byte) (Msg, error)
	// Acks returns the frames that ack everything read and not yet acked:
	// called after every notification (--acks each) or on a timer
	// (batched). Nil when there is nothing to ack or the protocol has no
	// acks.
	Acks() [][]byte
	// Terminal says a close code (-1: no connection) means reconnecting
	// cannot help.
	Terminal(code int) bool
}

// Msg is what one server message held.
type Msg struct {
	// Welcome says the session is up (Herald's welcome, Centrifugo's
	// connect reply); Resumed that the client asked to resume from
	// positions it held (Herald: it sent a resume frame).
	Welcome, Resumed bool
	// Payloads are the data of every new notification, in order;
	// Duplicates counts the ones dropped as seen before.
	Payloads   [][]byte
	Duplicates int
	// Reply is what to send back at once (Herald's resume after a welcome,
	// Centrifugo's pongs).
	Reply [][]byte
	// Problem describes an error or reset frame; "" for none.
	Problem string
}

// targetSpec is how the command builds one target: its flags on the
// coordinator's command line, the Target from them, and the client half
// from the workers' arguments.
type targetSpec struct {
	flags  func(f *flags) targetFlags
	client func(args []string) (ClientSide, error)
}

// targetFlags are one target's settings as parsed; open builds the
// Target once the common settings are known.
type targetFlags interface {
	open(common targetCommon) (Target, error)
}

// targetCommon are the settings every target takes from the run.
type targetCommon struct {
	tenant  string // Herald's tenant; a namespace or prefix for others
	users   int    // clients u0..u<users-1> of the run, the idle ones included
	clients int    // clients held through the run (u0..u<clients-1>): a broadcast's audience
}

var targets = map[string]targetSpec{
	"herald":             heraldSpec,
	"centrifugo":         centrifugoSpec(false),
	"centrifugo-history": centrifugoSpec(true),
}

func targetNames() string {
	names := make([]string, 0, len(targets))
	for n := range targets {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func lookupTarget(name string) (targetSpec, error) {
	t, ok := targets[name]
	if !ok {
		return targetSpec{}, fmt.Errorf("%w: --target %q: want one of %s", errUsage, name, targetNames())
	}
	return t, nil
}
