package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

// command is one subcommand of herald-load.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

// commands lists the subcommands; worker is internal (the coordinator
// starts it) and not listed in the usage.
var commands = []command{
	{name: "run", summary: "scenarios (connect, personal ladder, broadcast, reconnect storm) against one deployment, the same clients throughout", run: runRun},
	{name: "compare", summary: "the run's scenarios against several targets in turn (herald, centrifugo, centrifugo-history), the same clients, every figure side by side and as a ratio", run: runCompare},
	{name: "soak", summary: "cycles of clients that connect, receive and vanish abruptly: the edge's descriptors, goroutines and RSS must come back", run: runSoak},
	{name: "worker", summary: "", run: func(ctx context.Context, args []string) error { return runWorker(ctx, args, os.Stdin, os.Stdout) }},
}

// errUsage marks an error caused by the command line; it exits with 2.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == args[0] })
	if i < 0 {
		fmt.Fprintf(os.Stderr, "herald-load: unknown command %q (see herald-load --help)\n", args[0])
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := commands[i].run(ctx, args[1:])
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "herald-load %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(os.Stderr, "herald-load %s: %v\n", args[0], err)
		return 1
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: herald-load <command> [flags]\n\ncommands:")
	for _, c := range commands {
		if c.summary != "" {
			fmt.Fprintf(os.Stderr, "  %-7s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprintln(os.Stderr, "\nrun 'herald-load <command> --help' for its flags (each also read from a HERALD_LOAD_* variable)")
}
