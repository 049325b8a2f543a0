package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/heraldrt/herald/dispatcher"
	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/progress"
)

func init() {
	register(command{name: "dlq", summary: "list, show, replay or purge dead-lettered events", run: runDLQ})
}

const dlqHelp = `Inspects the dead-letter stream, where the dispatcher puts entries that
break the ingest contract or failed too often, with the reason.
  herald dlq list [--count N] [--after ID]
  herald dlq show ID
  herald dlq replay [--set field=value]... [--unset field]... ID...
  herald dlq replay --all [--yes]
  herald dlq purge [--yes]
replay checks each entry against the contract (after --set/--unset), adds it
to the ingest stream of its tenant and deletes it from the dead-letter
stream; entries still malformed stay. replay --all and purge ask for
confirmation on a terminal; without one they need --yes.`

// dlqIO is where the dlq command talks: stdin answers confirmations when
// interactive is true.
type dlqIO struct {
	stdin       io.Reader
	stdout      io.Writer
	stderr      io.Writer
	interactive bool
}

// dlqFlags are the settings of one dlq run.
type dlqFlags struct {
	redis      redisOptions
	partitions int
	maxData    int
	count      int
	after      string
	all        bool
	yes        bool
	set        multiFlag
	unset      multiFlag
	ids        []string
}

// multiFlag is a flag that may be given more than once.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func runDLQ(ctx context.Context, args []string) error {
	return dlq(ctx, args, dlqIO{os.Stdin, os.Stdout, os.Stderr, progress.IsTerminal(os.Stdin)})
}

func dlq(ctx context.Context, args []string, cio dlqIO) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(cio.stderr, dlqHelp)
			return nil
		}
		return fmt.Errorf("%w: want a subcommand: list, show, replay or purge (see herald dlq --help)", errUsage)
	}
	sub := args[0]
	if !slices.Contains([]string{"list", "show", "replay", "purge"}, sub) {
		return fmt.Errorf("%w: unknown subcommand %q: want list, show, replay or purge", errUsage, sub)
	}
	o, err := parseDLQFlags(sub, args[1:])
	if err != nil {
		return err
	}
	rdb, err := o.redis.client(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	q := dispatcher.NewDLQ(rdb, dispatcher.DLQConfig{
		Space: keys.Space{Prefix: o.redis.prefix}, Partitions: o.partitions, Limits: events.Limits{MaxData: o.maxData},
	})
	switch sub {
	case "list":
		return dlqList(ctx, q, o, cio.stdout)
	case "show":
		return dlqShow(ctx, q, o, cio.stdout)
	case "replay":
		return dlqReplay(ctx, q, o, cio)
	default:
		return dlqPurge(ctx, q, o, cio)
	}
}

func parseDLQFlags(sub string, args []string) (*dlqFlags, error) {
	o := new(dlqFlags)
	f := newFlags("dlq "+sub, dlqHelp)
	f.redis(&o.redis)
	f.Int(&o.partitions, "partitions", 0, "ingest partitions replays are routed by; must match the dispatchers")
	f.Int(&o.maxData, "max-data", events.DefaultMaxData, "largest data field a replayed entry may have, in bytes")
	switch sub {
	case "list":
		f.IntVar(&o.count, "count", 20, "entries to list")
		f.StringVar(&o.after, "after", "", "list entries after this id")
	case "replay":
		f.BoolVar(&o.all, "all", false, "replay every dead letter")
		f.BoolVar(&o.yes, "yes", false, "do not ask for confirmation")
		f.Var(&o.set, "set", "field=value to set before replaying (repeatable)")
		f.Var(&o.unset, "unset", "field to remove before replaying (repeatable)")
	case "purge":
		f.BoolVar(&o.yes, "yes", false, "do not ask for confirmation")
	}
	// Flags and ids may be mixed: parse, take an id, parse the rest.
	for rest := args; ; {
		if err := f.parse(rest); err != nil {
			return nil, err
		}
		if f.NArg() == 0 {
			break
		}
		o.ids = append(o.ids, f.Arg(0))
		rest = f.Args()[1:]
	}
	return o, o.check(sub)
}

func (o *dlqFlags) check(sub string) error {
	switch {
	case sub == "show" && len(o.ids) != 1:
		return fmt.Errorf("%w: show takes one dead-letter id", errUsage)
	case sub == "replay" && o.all == (len(o.ids) > 0):
		return fmt.Errorf("%w: replay takes dead-letter ids or --all, not both or neither", errUsage)
	case (sub == "list" || sub == "purge") && len(o.ids) > 0:
		return fmt.Errorf("%w: %s takes no ids", errUsage, sub)
	case o.count < 1 && sub == "list":
		return fmt.Errorf("%w: --count %d must be at least 1", errUsage, o.count)
	}
	for _, kv := range o.set {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("%w: --set %q: want field=value", errUsage, kv)
		}
	}
	return nil
}

func dlqList(ctx context.Context, q *dispatcher.DLQ, o *dlqFlags, out io.Writer) error {
	total, err := q.Len(ctx)
	if err != nil {
		return err
	}
	dls, err := q.List(ctx, int64(o.count), o.after)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFAILED AT\tDELIVERIES\tSOURCE\tTENANT\tTYPE\tREASON")
	for _, dl := range dls {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s %s\t%s\t%s\t%s\n", dl.ID, dl.FailedAt.UTC().Format(time.RFC3339),
			dl.Deliveries, dl.SourceStream, dl.SourceID, clipField(dl.Fields[events.FieldTenant]),
			clipField(dl.Fields[events.FieldType]), dl.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(dls) > 0 && int64(len(dls)) < total {
		fmt.Fprintf(out, "%d dead letters in all; next page: --after %s\n", total, dls[len(dls)-1].ID)
	} else {
		fmt.Fprintf(out, "%d dead letters in all\n", total)
	}
	return nil
}

func clipField(s string) string {
	if len(s) > 24 {
		return s[:24] + "..."
	}
	return s
}

func dlqShow(ctx context.Context, q *dispatcher.DLQ, o *dlqFlags, out io.Writer) error {
	dl, err := q.Show(ctx, o.ids[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "id:          %s\nreason:      %s\nsource:      %s %s\nfailed at:   %s\ndeliveries:  %d\nfields:\n",
		dl.ID, dl.Reason, dl.SourceStream, dl.SourceID, dl.FailedAt.UTC().Format(time.RFC3339Nano), dl.Deliveries)
	names := make([]string, 0, len(dl.Fields))
	for k := range dl.Fields {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		fmt.Fprintf(out, "  %s: %s\n", k, dl.Fields[k])
	}
	return nil
}

func dlqReplay(ctx context.Context, q *dispatcher.DLQ, o *dlqFlags, cio dlqIO) error {
	fix := o.fix()
	var res []dispatcher.Replayed
	var err error
	if o.all {
		n, lerr := q.Len(ctx)
		if lerr != nil {
			return lerr
		}
		if err := confirm(cio, o.yes, fmt.Sprintf("replay all %d dead letters", n)); err != nil {
			return err
		}
		res, err = q.ReplayAll(ctx, fix)
	} else {
		res, err = q.Replay(ctx, o.ids, fix)
	}
	failed := 0
	for _, r := range res {
		if r.Err != nil {
			failed++
			fmt.Fprintf(cio.stdout, "kept     %s: %v\n", r.ID, r.Err)
			continue
		}
		fmt.Fprintf(cio.stdout, "replayed %s -> %s %s\n", r.ID, r.Stream, r.NewID)
	}
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d dead letters not replayed", failed, len(res))
	}
	return nil
}

// fix applies --unset and then --set to a dead letter's fields.
func (o *dlqFlags) fix() dispatcher.FixFunc {
	if len(o.set) == 0 && len(o.unset) == 0 {
		return nil
	}
	return func(dl *dispatcher.DeadLetter) error {
		for _, k := range o.unset {
			delete(dl.Fields, k)
		}
		for _, kv := range o.set {
			k, v, _ := strings.Cut(kv, "=")
			dl.Fields[k] = v
		}
		return nil
	}
}

func dlqPurge(ctx context.Context, q *dispatcher.DLQ, o *dlqFlags, cio dlqIO) error {
	n, err := q.Len(ctx)
	if err != nil {
		return err
	}
	if err := confirm(cio, o.yes, fmt.Sprintf("delete all %d dead letters", n)); err != nil {
		return err
	}
	purged, err := q.Purge(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(cio.stdout, "purged %d dead letters\n", purged)
	return nil
}

// errNotConfirmed is returned when a destructive action was not confirmed.
var errNotConfirmed = errors.New("not confirmed; nothing changed")

// confirm asks on the terminal before a bulk action, unless yes. Without a
// terminal it refuses: a script must say --yes.
func confirm(cio dlqIO, yes bool, action string) error {
	if yes {
		return nil
	}
	if !cio.interactive {
		return fmt.Errorf("%w: %s needs --yes when stdin is not a terminal", errUsage, action)
	}
	fmt.Fprintf(cio.stderr, "%s? [y/N] ", action)
	line, err := bufio.NewReader(cio.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read confirmation: %w", err)
	}
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return errNotConfirmed
	}
	return nil
}
