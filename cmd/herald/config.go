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
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: herald config <command> [flags]: prints the settings the command would run with", errUsage)
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == args[0] })
	if i < 0 || args[0] == "config" {
		return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	printConfig = os.Stdout
	defer func() { printConfig = nil }()
	err := commands[i].run(ctx, args[1:])
	if errors.Is(err, errConfigPrinted) {
		return nil
	}
	return err
}

// printSettings writes every flag with its effective value and source.
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
		if set[fl.Name] {
			from = "--" + fl.Name
		}
		v := fl.Value.String()
		if env, ok := f.env(fl.Name); ok && v == "" {
			v = env // secrets are read from the environment after parsing
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", fl.Name, redactSetting(fl.Name, v), from)
	})
	tw.Flush()
}

// redactSetting hides secrets and passwords in printed settings.
func redactSetting(name, v string) string {
	switch {
	case v == "":
		return `""`
	case strings.Contains(name, "secret") || strings.Contains(name, "token"):
		return "(set, hidden)"
	case strings.Contains(name, "url"):
		return redact(v)
	}
	return v
}
