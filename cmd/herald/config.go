package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

func init() {
	register(command{name: "config", summary: "print a command's effective settings and where each comes from", run: runConfig})
}

// printConfig, when set, makes flags.parse print the effective settings
// instead of letting the command run.
var printConfig io.Writer

// errConfigPrinted ends a command whose settings were printed.
var errConfigPrinted = errors.New("config printed")

func runConfig(ctx context.Context, args []string) error {
	return configMain(ctx, args, os.Stdout)
}

// configMain prints to w the settings that args (a command and its flags)
// would run with.
func configMain(ctx context.Context, args []string, w io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: herald config <command> [flags]: prints the settings the command would run with", errUsage)
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == args[0] })
	if i < 0 || args[0] == "config" {
		return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	printConfig = w
	defer func() { printConfig = nil }()
	err := commands[i].run(ctx, args[1:])
	if errors.Is(err, errConfigPrinted) {
		return nil
	}
	return err
}

// printSettings writes every flag with its effective value and source;
// secrets are redacted (see redactSetting).
func (f *flags) printSettings(w io.Writer) {
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tFROM")
	f.VisitAll(func(fl *flag.Flag) {
		from := "default"
		if _, ok := f.env(fl.Name); ok {
			from = envName(fl.Name)
		}
		if src, ok := f.from[fl.Name]; ok {
			from = src
		}
		if set[fl.Name] {
			from = "--" + fl.Name
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", fl.Name, redactSetting(fl, fl.Value.String()), from)
	})
	tw.Flush()
}
