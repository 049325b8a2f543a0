package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// flags is a flag.FlagSet whose every flag may also come from a
// HERALD_LOAD_* environment variable. The variable sets the default; the
// flag wins. (A small copy of cmd/herald's: commands do not share code.)
type flags struct {
	*flag.FlagSet
	envErrs []string
	made    map[string]any // by shared
}

func newFlags(cmd, summary string) *flags {
	fs := flag.NewFlagSet("herald-load "+cmd, flag.ContinueOnError)
	f := &flags{FlagSet: fs, made: make(map[string]any)}
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "usage: herald-load %s [flags]\n\n%s\n\nflags (flag wins over environment):\n", cmd, summary)
		fs.PrintDefaults()
	}
	return f
}

func envName(flagName string) string {
	return "HERALD_LOAD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// env returns the flag's variable and whether it is set; a bad value is
// noted as a usage error for parse.
func (f *flags) env(name string, check func(string) error) (string, bool) {
	v, ok := os.LookupEnv(envName(name))
	if !ok || v == "" {
		return "", false
	}
	if err := check(v); err != nil {
		f.envErrs = append(f.envErrs, fmt.Sprintf("%s=%q: %v", envName(name), v, err))
		return "", false
	}
	return v, true
}

func usageText(name, usage string) string { return usage + " (env " + envName(name) + ")" }

func noCheck(string) error { return nil }

func (f *flags) String(p *string, name, def, usage string) {
	if v, ok := f.env(name, noCheck); ok {
		def = v
	}
	f.StringVar(p, name, def, usageText(name, usage))
}

func (f *flags) Int(p *int, name string, def int, usage string) {
	if v, ok := f.env(name, func(s string) error { _, err := strconv.Atoi(s); return err }); ok {
		def, _ = strconv.Atoi(v)
	}
	f.IntVar(p, name, def, usageText(name, usage))
}

func (f *flags) Float(p *float64, name string, def float64, usage string) {
	if v, ok := f.env(name, func(s string) error { _, err := strconv.ParseFloat(s, 64); return err }); ok {
		def, _ = strconv.ParseFloat(v, 64)
	}
	f.Float64Var(p, name, def, usageText(name, usage))
}

func (f *flags) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	if v, ok := f.env(name, func(s string) error { _, err := time.ParseDuration(s); return err }); ok {
		def, _ = time.ParseDuration(v)
	}
	f.DurationVar(p, name, def, usageText(name, usage))
}

func (f *flags) Bool(p *bool, name string, def bool, usage string) {
	if v, ok := f.env(name, func(s string) error { _, err := strconv.ParseBool(s); return err }); ok {
		def, _ = strconv.ParseBool(v)
	}
	f.BoolVar(p, name, def, usageText(name, usage))
}

// shared returns the value make registered under key, calling make the
// first time: flags that several targets share are defined once.
func (f *flags) shared(key string, make func() any) any {
	v, ok := f.made[key]
	if !ok {
		v = make()
		f.made[key] = v
	}
	return v
}

// parse parses args; a bad environment variable or flag is a usage error.
func (f *flags) parse(args []string) error {
	f.SetOutput(io.Discard)
	err := f.Parse(args)
	f.SetOutput(os.Stderr)
	if err == flag.ErrHelp {
		f.Usage()
		return err
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if len(f.envErrs) > 0 {
		return fmt.Errorf("%w: %s", errUsage, strings.Join(f.envErrs, "; "))
	}
	return nil
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// setGCPercent sets the Go GC target unless the GOGC variable does (it
// wins).
func setGCPercent(pct int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(pct)
	}
}
