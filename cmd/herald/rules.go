package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/progress"
	"github.com/heraldrt/herald/ratelimit"
	"github.com/heraldrt/herald/wsedge"
)

func init() {
	register(command{name: "rules", summary: "show, validate, diff or apply the rate rules", run: runRules})
}

const rulesHelp = `Manages the rate rules document (YAML, see docs/operations.md) stored in
Redis, which every edge applies within a second or two.
  herald rules get                  print the stored document (version, who and when on stderr)
  herald rules validate FILE        check a document; print its rules, or every problem with its line
  herald rules diff FILE            show what apply would change
  herald rules apply FILE [--yes] [--by NAME]
                                    validate, show the diff, ask, then store it as the next version
FILE may be - for stdin. apply asks for confirmation on a terminal; without
one it needs --yes. It refuses if someone else applied a document meanwhile.
A single-node edge that reads HERALD_RULES (a file) does not use Redis:
edit the file instead (validate it first).`

// rulesIO is where the rules command talks; stdin answers the
// confirmation when interactive is true.
type rulesIO struct {
	stdin       io.Reader
	stdout      io.Writer
	stderr      io.Writer
	interactive bool
}

type rulesFlags struct {
	redis redisOptions
	yes   bool
	by    string
	file  string
}

func runRules(ctx context.Context, args []string) error {
	return rulesCmd(ctx, args, rulesIO{os.Stdin, os.Stdout, os.Stderr, progress.IsTerminal(os.Stdin)})
}

func rulesCmd(ctx context.Context, args []string, cio rulesIO) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(cio.stderr, rulesHelp)
			return nil
		}
		return fmt.Errorf("%w: want a subcommand: get, validate, diff or apply (see herald rules --help)", errUsage)
	}
	sub := args[0]
	if !slices.Contains([]string{"get", "validate", "diff", "apply"}, sub) {
		return fmt.Errorf("%w: unknown subcommand %q: want get, validate, diff or apply", errUsage, sub)
	}
	o, err := parseRulesFlags(sub, args[1:])
	if err != nil {
		return err
	}
	if sub == "validate" {
		return rulesValidate(o, cio)
	}
	rdb, err := o.redis.client(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	store := ratelimit.NewStore(rdb, keys.Space{Prefix: o.redis.prefix})
	switch sub {
	case "get":
		return rulesGet(ctx, store, cio)
	case "diff":
		return rulesDiff(ctx, store, o, cio)
	default:
		return rulesApply(ctx, store, o, cio)
	}
}

func parseRulesFlags(sub string, args []string) (*rulesFlags, error) {
	o := new(rulesFlags)
	f := newFlags("rules "+sub, rulesHelp)
	if sub != "validate" {
		f.redis(&o.redis)
	}
	if sub == "apply" {
		f.BoolVar(&o.yes, "yes", false, "do not ask for confirmation")
		f.String(&o.by, "by", defaultBy(), "who applies, recorded as updated_by")
	}
	var files []string
	for rest := args; ; { // flags and the file may be mixed
		if err := f.parse(rest); err != nil {
			return nil, err
		}
		if f.NArg() == 0 {
			break
		}
		files = append(files, f.Arg(0))
		rest = f.Args()[1:]
	}
	switch {
	case sub == "get" && len(files) > 0:
		return nil, fmt.Errorf("%w: get takes no file", errUsage)
	case sub != "get" && len(files) != 1:
		return nil, fmt.Errorf("%w: %s takes one FILE (or - for stdin)", errUsage, sub)
	case sub != "get":
		o.file = files[0]
	}
	return o, nil
}

// defaultBy is user@host.
func defaultBy() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, _ := os.Hostname()
	return strings.Trim(name+"@"+host, "@")
}

// readRules reads FILE (or stdin for -) and validates it.
func readRules(file string, stdin io.Reader) ([]byte, *ratelimit.Document, error) {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, ratelimit.MaxDocumentSize+1))
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read rules: %w", err)
	}
	doc, err := ratelimit.ParseRules(data)
	if err != nil {
		var lines []string
		for _, p := range ratelimit.Problems(err) {
			lines = append(lines, p.Error())
		}
		return nil, nil, fmt.Errorf("%s is invalid; nothing was applied:\n  %s", file, strings.Join(lines, "\n  "))
	}
	return data, doc, nil
}

func rulesValidate(o *rulesFlags, cio rulesIO) error {
	_, doc, err := readRules(o.file, cio.stdin)
	if err != nil {
		return err
	}
	fmt.Fprintf(cio.stdout, "%s is valid: %d rules\n", o.file, len(doc.Rules))
	for i := range doc.Rules {
		fmt.Fprintf(cio.stdout, "  %s\n", doc.Rules[i].String())
	}
	return nil
}

// stored returns the stored document; none yet is version 0 and empty.
func stored(ctx context.Context, store *ratelimit.Store) (ratelimit.Stored, error) {
	st, err := store.Get(ctx)
	if errors.Is(err, ratelimit.ErrNotFound) {
		return ratelimit.Stored{}, nil
	}
	return st, err
}

func describe(m ratelimit.Meta) string {
	if m.Version == 0 {
		return "none stored yet"
	}
	return fmt.Sprintf("version %d, by %s at %s", m.Version, m.UpdatedBy, m.UpdatedAt.Local().Format(time.DateTime))
}

func rulesGet(ctx context.Context, store *ratelimit.Store, cio rulesIO) error {
	st, err := store.Get(ctx)
	if errors.Is(err, ratelimit.ErrNotFound) {
		return errors.New("no rules stored yet (apply a document with herald rules apply FILE)")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cio.stderr, "# %s\n", describe(st.Meta))
	_, err = cio.stdout.Write(st.YAML)
	return err
}

// proposal is a rules file next to the stored document.
type proposal struct {
	data []byte
	doc  *ratelimit.Document
	st   ratelimit.Stored
	diff string // "" when the file is the stored document
}

// propose reads and validates FILE and diffs it against what is stored.
func propose(ctx context.Context, store *ratelimit.Store, o *rulesFlags, cio rulesIO) (proposal, error) {
	data, doc, err := readRules(o.file, cio.stdin)
	if err != nil {
		return proposal{}, err
	}
	st, err := stored(ctx, store)
	if err != nil {
		return proposal{}, err
	}
	p := proposal{data: data, doc: doc, st: st}
	if string(st.YAML) != string(data) {
		p.diff = unifiedDiff("stored ("+describe(st.Meta)+")", o.file, string(st.YAML), string(data))
	}
	return p, nil
}

func rulesDiff(ctx context.Context, store *ratelimit.Store, o *rulesFlags, cio rulesIO) error {
	p, err := propose(ctx, store, o, cio)
	if err != nil {
		return err
	}
	if p.diff == "" {
		fmt.Fprintf(cio.stdout, "no changes: the stored document (%s) is the same\n", describe(p.st.Meta))
		return nil
	}
	_, err = io.WriteString(cio.stdout, p.diff)
	return err
}

func rulesApply(ctx context.Context, store *ratelimit.Store, o *rulesFlags, cio rulesIO) error {
	p, err := propose(ctx, store, o, cio)
	if err != nil {
		return err
	}
	data, doc, st := p.data, p.doc, p.st
	if p.diff == "" {
		fmt.Fprintf(cio.stdout, "no changes: the stored document (%s) is the same; nothing applied\n", describe(st.Meta))
		return nil
	}
	fmt.Fprint(cio.stdout, p.diff)
	interactive := cio.interactive && o.file != "-"
	action := fmt.Sprintf("apply these %d rules as version %d to every edge", len(doc.Rules), st.Meta.Version+1)
	if err := confirm(dlqIO{cio.stdin, cio.stdout, cio.stderr, interactive}, o.yes, action); err != nil {
		return err
	}
	meta, err := store.PutIf(ctx, data, o.by, st.Meta.Version)
	var conflict *ratelimit.ConflictError
	if errors.As(err, &conflict) {
		return fmt.Errorf("the rules changed while you looked (now version %d); nothing applied: run herald rules diff again", conflict.Current)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cio.stdout, "applied version %d (by %s); edges pick it up within a second or two\n", meta.Version, meta.UpdatedBy)
	return nil
}

// gateAdapter lets the edge ask a Limiter: it turns Verdicts into
// wsedge.Decisions, so that ratelimit never imports wsedge.
type gateAdapter struct{ *ratelimit.Limiter }

var _ wsedge.Gate = gateAdapter{}

func (g gateAdapter) AllowPush(tenant, user, typ string) wsedge.Decision {
	v := g.Push(tenant, user, typ)
	return wsedge.Decision{Allow: v.Allow, Drop: v.Drop, Retry: v.Retry, MaxWait: v.MaxWait}
}

func (g gateAdapter) AllowPub(tenant, user, typ string) bool { return g.Pub(tenant, user, typ) }

func (g gateAdapter) AllowConnect(tenant string) bool { return g.Connect(tenant) }

// unifiedDiff returns a unified diff of two texts by lines, with three
// lines of context ("" when they are equal). Past about 4M line pairs it
// shows the whole old text removed and the new one added.
func unifiedDiff(oldName, newName, a, b string) string {
	if a == b {
		return ""
	}
	x, y := splitLines(a), splitLines(b)
	ops := diffLines(x, y)
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", oldName, newName)
	const ctx = 3
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		// A hunk: changes no more than 2*ctx unchanged lines apart.
		last := i
		for j := i + 1; j < len(ops); j++ {
			if ops[j].kind != ' ' {
				if j-last-1 > 2*ctx {
					break
				}
				last = j
			}
		}
		hunk := ops[max(i-ctx, 0):min(last+ctx+1, len(ops))]
		var na, nb int
		for _, op := range hunk {
			if op.kind != '+' {
				na++
			}
			if op.kind != '-' {
				nb++
			}
		}
		fmt.Fprintf(&out, "@@ -%d,%d +%d,%d @@\n", hunk[0].ai+1, na, hunk[0].bi+1, nb)
		for _, op := range hunk {
			out.WriteByte(op.kind)
			out.WriteString(op.line)
			out.WriteByte('\n')
		}
		i = last + 1
	}
	return out.String()
}

type diffOp struct {
	kind   byte // ' ', '-' or '+'
	line   string
	ai, bi int // positions in the old and new texts before this op
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// diffLines is a longest-common-subsequence diff.
func diffLines(x, y []string) []diffOp {
	n, m := len(x), len(y)
	var ops []diffOp
	if n*m > 4_000_000 {
		for i, l := range x {
			ops = append(ops, diffOp{'-', l, i, 0})
		}
		for j, l := range y {
			ops = append(ops, diffOp{'+', l, n, j})
		}
		return ops
	}
	lcs := make([][]int32, n+1) // lcs[i][j]: LCS of x[i:] and y[j:]
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && x[i] == y[j]:
			ops = append(ops, diffOp{' ', x[i], i, j})
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, diffOp{'-', x[i], i, j})
			i++
		default:
			ops = append(ops, diffOp{'+', y[j], i, j})
			j++
		}
	}
	return ops
}
