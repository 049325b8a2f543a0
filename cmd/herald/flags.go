package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// flags is a flag.FlagSet whose every flag may also come from a HERALD_*
// environment variable. The variable sets the default; the flag wins.
// Secrets may also come from files (see secrets.go).
type flags struct {
	*flag.FlagSet
	envErrs []string
	from    map[string]string // flag name: where parse found its value, when not the usual
}

func newFlags(cmd, summary string) *flags {
	fs := flag.NewFlagSet("herald "+cmd, flag.ContinueOnError)
	f := &flags{FlagSet: fs, from: map[string]string{}}
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "usage: herald %s [flags]\n\n%s\n\nflags (flag wins over environment):\n", cmd, summary)
		fs.PrintDefaults()
	}
	return f
}

func envName(flagName string) string {
	return "HERALD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (f *flags) env(name string) (string, bool) {
	v, ok := os.LookupEnv(envName(name))
	return v, ok && v != ""
}

func (f *flags) usageText(name, usage string) string {
	return usage + " (env " + envName(name) + ")"
}

func (f *flags) String(p *string, name, def, usage string) {
	if v, ok := f.env(name); ok {
		def = v
	}
	f.StringVar(p, name, def, f.usageText(name, usage))
}

func (f *flags) Int(p *int, name string, def int, usage string) {
	if v, ok := f.env(name); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Sprintf("%s=%q: not a whole number", envName(name), v))
		}
		def = n
	}
	f.IntVar(p, name, def, f.usageText(name, usage))
}

func (f *flags) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	if v, ok := f.env(name); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Sprintf("%s=%q: not a duration like 5s", envName(name), v))
		}
		def = d
	}
	f.DurationVar(p, name, def, f.usageText(name, usage))
}

func (f *flags) Bool(p *bool, name string, def bool, usage string) {
	if v, ok := f.env(name); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Sprintf("%s=%q: not true or false", envName(name), v))
		}
		def = b
	}
	f.BoolVar(p, name, def, f.usageText(name, usage))
}

// parse parses args and reads secrets from their variables and files; a
// bad environment variable, flag or secret file is a usage error.
func (f *flags) parse(args []string) error {
	f.addSecretFileFlags()
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
	if err := f.resolveSecrets(); err != nil {
		return err
	}
	if printConfig != nil {
		f.printSettings(printConfig)
		return errConfigPrinted
	}
	return nil
}

// logOptions are the logging flags every long-running command has.
type logOptions struct {
	level  string
	format string
}

func (f *flags) logging(o *logOptions) {
	f.String(&o.level, "log-level", "info", "log level: debug, info, warn or error")
	f.String(&o.format, "log-format", "text", "log format: text or json")
}

func (o logOptions) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", errUsage, o.level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var log *slog.Logger
	switch o.format {
	case "text":
		log = slog.New(slog.NewTextHandler(w, opts))
	case "json":
		log = slog.New(slog.NewJSONHandler(w, opts))
	default:
		return nil, fmt.Errorf("%w: --log-format %q: want text or json", errUsage, o.format)
	}
	redis.SetLogger(redisLog{log.With("component", "go-redis")}) // one logger per process
	return log, nil
}

func (f *flags) Float(p *float64, name string, def float64, usage string) {
	if v, ok := f.env(name); ok {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Sprintf("%s=%q: not a number", envName(name), v))
		}
		def = x
	}
	f.Float64Var(p, name, def, f.usageText(name, usage))
}

// setGCPercent sets the Go GC target unless the GOGC variable does (it
// wins) or pct is 0 (the runtime's default).
func setGCPercent(pct int) {
	if os.Getenv("GOGC") == "" && pct > 0 {
		debug.SetGCPercent(pct)
	}
}
