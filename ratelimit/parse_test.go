package ratelimit

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const contractExample = `version: 1
rules:
  - name: marketing-per-user
    match: {type: "marketing.*"}   # event-type glob; omitted = every type
    per: user                      # user | tenant | global
    limit: 3
    interval: 1m
    action: queue                  # queue (push later, up to max_wait) | drop (do not push)
    max_wait: 30s
    mode: enforce                  # enforce | shadow (count, do not block)
    overrides: {"tenant:acme": 10}
`

func TestParseContractExample(t *testing.T) {
	doc := mustParse(t, contractExample)
	want := Rule{Name: "marketing-per-user", Type: "marketing.*", Per: PerUser, Limit: 3, Interval: time.Minute,
		Action: ActionQueue, MaxWait: 30 * time.Second, Mode: ModeEnforce, Overrides: map[string]int64{"tenant:acme": 10},
		AppliesTo: []Op{OpPush}, Line: 3}
	if doc.Version != 1 || len(doc.Rules) != 1 {
		t.Fatalf("got %+v", doc)
	}
	got := doc.Rules[0]
	if got.String() != want.String() || got.Line != want.Line || got.Overrides["tenant:acme"] != 10 {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if !got.Matches("marketing.promo") || got.Matches("order.placed") {
		t.Fatal("glob does not match as path.Match does")
	}
}

func TestParseDefaults(t *testing.T) {
	doc := mustParse(t, rules(`
  - name: pubs
    per: user
    limit: 5
    interval: 1s
    applies_to: [pub]
  - name: conns
    per: tenant
    limit: 100
    interval: 1m
    applies_to: [connect]
    mode: shadow
  - name: all
    per: global
    limit: 1000
    interval: 1s
    action: drop
`))
	pubs, conns, all := doc.Rules[0], doc.Rules[1], doc.Rules[2]
	if pubs.Action != ActionDrop || pubs.Mode != ModeEnforce || pubs.Type != "" || !pubs.Matches("anything") {
		t.Errorf("pubs: %+v", pubs)
	}
	if conns.Mode != ModeShadow || !conns.Applies(OpConnect) || conns.Applies(OpPush) {
		t.Errorf("conns: %+v", conns)
	}
	if len(all.AppliesTo) != 1 || all.AppliesTo[0] != OpPush {
		t.Errorf("all: %+v", all)
	}
	if doc := mustParse(t, "version: 1\nrules: []\n"); len(doc.Rules) != 0 {
		t.Errorf("empty list: %+v", doc)
	}
}

// A rule body with every field valid; cases replace one line.
const goodRule = `  - name: r
    match: {type: "marketing.*"}
    per: user
    limit: 3
    interval: 1m
    action: queue
    max_wait: 30s
`

func TestParseProblemsNameLineRuleField(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string // each a whole problem, in order
	}{
		{"good", rules(goodRule), nil},
		{"empty", "", []string{`empty document: want "version: 1" and "rules:" (rules: [] turns every limit off)`}},
		{"comments only", "# nothing\n", []string{`empty document: want "version: 1" and "rules:" (rules: [] turns every limit off)`}},
		{"syntax", "version: 1\nrules: [\n", []string{`line 2: YAML syntax: did not find expected node content`}},
		{"not a mapping", "- a\n- b\n", []string{`line 1: the document must be a mapping with version and rules`}},
		{"two documents", "version: 1\nrules: []\n---\nversion: 1\nrules: []\n", []string{`line 3: more than one YAML document (---): want exactly one`}},
		{"no version", "rules: []\n", []string{`line 1: field version: missing: want version: 1`}},
		{"version 2", "version: 2\nrules: []\n", []string{`line 1: field version: "2" is not supported: want 1`}},
		{"no rules", "version: 1\n", []string{`line 1: field rules: missing: list the rules (rules: [] turns every limit off)`}},
		{"rules empty", "version: 1\nrules:\n", []string{`line 2: field rules: empty: list the rules, or write rules: [] to turn every limit off`}},
		{"rules not a list", "version: 1\nrules: {a: 1}\n", []string{`line 2: field rules: a mapping where a list of rules is expected`}},
		{"unknown top field", "version: 1\nrules: []\nextra: 1\n", []string{`line 3: field extra: unknown field; the known ones are version, rules`}},
		{"unknown rule field", rules(goodRule + "    burst: 2\n"), []string{
			`line 10: rule "r": field burst: unknown field; the known ones are name, match, per, limit, interval, action, max_wait, mode, overrides, applies_to`}},
		{"unknown match field", rules(strings.Replace(goodRule, "{type:", "{kind:", 1)), []string{
			`line 4: rule "r": field match.kind: unknown field; the known ones are type`,
			`line 4: rule "r": field match.type: missing: omit match to match every type`}},
		{"interval 0s", rules(strings.Replace(strings.Replace(goodRule, "1m", "0s", 1), "name: r", "name: marketing-per-user", 1)), []string{
			`line 7: rule "marketing-per-user": field interval: "0s" must be positive`}},
		{"interval sub-second", rules(strings.Replace(goodRule, "1m", "1500ms", 1)), []string{
			`line 7: rule "r": field interval: "1500ms" is not a whole number of seconds (Sentinel counts in seconds): scale it up with the limit, e.g. limit 5 per 500ms is limit: 10, interval: 1s`}},
		{"interval no unit", rules(strings.Replace(goodRule, "1m", "60", 1)), []string{
			`line 7: rule "r": field interval: "60" has no unit: write 60s or 60m`}},
		{"interval too long", rules(strings.Replace(goodRule, "1m", "48h", 1)), []string{
			`line 7: rule "r": field interval: "48h" is longer than 24h0m0s`}},
		{"interval list", rules(strings.Replace(goodRule, "1m", "[1m]", 1)), []string{
			`line 7: rule "r": field interval: a list where a single value is expected`}},
		{"limit float", rules(strings.Replace(goodRule, "limit: 3", "limit: 3.5", 1)), []string{
			`line 6: rule "r": field limit: "3.5" is not a whole number`}},
		{"limit zero", rules(strings.Replace(goodRule, "limit: 3", "limit: 0", 1)), []string{
			`line 6: rule "r": field limit: 0 must be positive`}},
		{"limit missing", rules(strings.Replace(goodRule, "    limit: 3\n", "", 1)), []string{
			`line 3: rule "r": field limit: missing: how many per interval`}},
		{"per", rules(strings.Replace(goodRule, "per: user", "per: device", 1)), []string{
			`line 5: rule "r": field per: "device": want user, tenant or global`}},
		{"name missing", rules(strings.Replace(goodRule, "name: r", "mode: enforce", 1)), []string{
			`line 3: rule #1: field name: missing: every rule needs a unique name, [a-z0-9_.-]{1,64}`}},
		{"name charset", rules(strings.Replace(goodRule, "name: r", "name: Marketing Rule", 1)), []string{
			`line 3: rule "Marketing Rule": field name: "Marketing Rule" is not [a-z0-9_.-]{1,64}`}},
		{"name duplicate", rules(goodRule, goodRule), []string{
			`line 10: rule "r": field name: "r" is also the name of the rule at line 3`}},
		{"glob bad", rules(strings.Replace(goodRule, `"marketing.*"`, `"marketing.["`, 1)), []string{
			`line 4: rule "r": field match.type: "marketing.[" is not a valid glob: syntax error in pattern`}},
		{"glob never matches", rules(strings.Replace(goodRule, `"marketing.*"`, `"Marketing.*"`, 1)), []string{
			`line 4: rule "r": field match.type: "Marketing.*": 'M' can never match (event types are [a-z0-9_.-])`}},
		{"action missing", rules(strings.Replace(goodRule, "    action: queue\n    max_wait: 30s\n", "", 1)), []string{
			`line 3: rule "r": field action: missing: queue (push later, up to max_wait) or drop (do not push)`}},
		{"action bad", rules(strings.Replace(goodRule, "action: queue", "action: delay", 1)), []string{
			`line 8: rule "r": field action: "delay": want queue or drop`,
			`line 9: rule "r": field max_wait: only with action: queue`}},
		{"max_wait missing", rules(strings.Replace(goodRule, "    max_wait: 30s\n", "", 1)), []string{
			`line 3: rule "r": field max_wait: missing: action queue needs how long a notification may wait, e.g. 30s`}},
		{"max_wait with drop", rules(strings.Replace(goodRule, "action: queue", "action: drop", 1)), []string{
			`line 9: rule "r": field max_wait: only with action: queue`}},
		{"max_wait negative", rules(strings.Replace(goodRule, "30s", "-1s", 1)), []string{
			`line 9: rule "r": field max_wait: "-1s" must be positive`}},
		{"max_wait too long", rules(strings.Replace(goodRule, "30s", "2h", 1)), []string{
			`line 9: rule "r": field max_wait: "2h" is longer than 1h0m0s (a queued notification holds back its whole feed)`}},
		{"mode", rules(goodRule + "    mode: dry-run\n"), []string{
			`line 10: rule "r": field mode: "dry-run": want enforce or shadow`}},
		{"applies_to bad", rules(goodRule + "    applies_to: [push, subscribe, push]\n"), []string{
			`line 10: rule "r": field applies_to: "subscribe": want push, pub, connect or publish`,
			`line 10: rule "r": field applies_to: "push" is listed twice`}},
		{"applies_to empty", rules(goodRule + "    applies_to: []\n"), []string{
			`line 10: rule "r": field applies_to: empty: list push, pub, connect and/or publish (omit it for [push])`}},
		{"connect per user", rules(goodRule + "    applies_to: [push, connect]\n"), []string{
			`line 4: rule "r": field match.type: a connection has no event type: omit match in a rule that applies to connect`,
			`line 5: rule "r": field per: a connect rule counts per tenant or global (a connection has no user yet)`}},
		{"queue on pub", rules(goodRule + "    applies_to: [pub]\n"), []string{
			`line 8: rule "r": field action: queue applies only to push; pub frames and connections over a limit are refused (use drop)`}},
		{"overrides", rules(goodRule + "    overrides:\n      \"user:42\": 5\n      \"tenant:acme\": x\n      \"team:a\": 1\n      \"user:acme/4 2\": 1\n"), []string{
			`line 11: rule "r": field overrides: key "user:42": name the tenant too, as user:<tenant>/<user> (user ids are per tenant)`,
			`line 12: rule "r": field overrides: key "tenant:acme": "x" is not a whole number, 0 or more`,
			`line 13: rule "r": field overrides: key "team:a": want tenant:<tenant> or user:<tenant>/<user>`,
			`line 14: rule "r": field overrides: key "user:acme/4 2": user "4 2" is not [A-Za-z0-9_.@-]{1,128}`}},
		{"overrides per tenant", rules(strings.Replace(goodRule, "per: user", "per: tenant", 1) + "    overrides: {\"user:acme/1\": 2}\n"), []string{
			`line 10: rule "r": field overrides: key "user:acme/1": a per-tenant rule takes only tenant:<tenant> keys`}},
		{"overrides global", rules(strings.Replace(goodRule, "per: user", "per: global", 1) + "    overrides: {\"tenant:acme\": 2}\n"), []string{
			`line 10: rule "r": field overrides: a global limit has no per-tenant or per-user values`}},
		{"duplicate key", rules(goodRule + "    limit: 4\n"), []string{
			`line 10: rule "r": field limit: given twice (first at line 6)`}},
		{"flow style rule", rules(`  - {name: f, per: user, limit: ten, interval: 1s, action: drop}` + "\n"), []string{
			`line 3: rule "f": field limit: "ten" is not a whole number`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseRules([]byte(c.doc))
			if c.want == nil {
				if err != nil {
					t.Fatalf("want valid, got\n%v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			var got []string
			for _, p := range Problems(err) {
				got = append(got, p.Error())
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Fatalf("problems:\n%s\nwant:\n%s\nin:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"), c.doc)
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	big := "version: 1\nrules: []\n#" + strings.Repeat("x", MaxDocumentSize)
	if _, err := ParseRules([]byte(big)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "more than the") {
		t.Fatalf("got %v", err)
	}
}

// FuzzParseRules checks that any input either parses into a document that
// the Limiter accepts, or is refused with ValidationErrors only.
func FuzzParseRules(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(contractExample))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := ParseRules(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || len(Problems(err)) == 0 {
				t.Fatalf("error %q is not made of ValidationErrors", err)
			}
			return
		}
		if err := sane(doc); err != nil {
			t.Fatalf("ParseRules returned a document Apply refuses: %v", err)
		}
		rs := compile(doc, NewMetrics(), capacities{users: 10, tenants: 10})
		for _, r := range rs.hot {
			if r.Threshold < 0 || r.DurationInSec <= 0 || r.ParamsMaxCapacity <= 0 {
				t.Fatalf("bad sentinel rule %v", r)
			}
		}
	})
}

func TestParseExampleFile(t *testing.T) {
	b, err := os.ReadFile("testdata/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := mustParse(t, string(b))
	var got []string
	for _, r := range doc.Rules {
		got = append(got, r.String())
	}
	want := []string{
		"marketing-per-user: marketing.* per user 3/1m0s queue (max_wait 30s), 2 overrides on push",
		"tenant-firehose: every type per tenant 1000/1s drop, 1 overrides on push",
		"global-cap: every type per global 20000/1s drop SHADOW on push",
		"chat-pub: chat.* per user 10/1s on pub",
		"connects: every type per tenant 200/1m0s on connect",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s", strings.Join(got, "\n"))
	}
}

// An empty list item used to vanish silently (yaml.v3 leaves it out), and
// with it every rule after the check on lengths: "rules: [-, a]" became
// "rules: []", turning every limit off.
func TestParseRefusesEmptyAndAliasRuleItems(t *testing.T) {
	const a = "  - {name: a, per: user, limit: 1, interval: 1s, action: drop}\n"
	cases := []struct {
		name, doc string
		want      []string
	}{
		{"empty item", "version: 1\nrules:\n  -\n" + a, []string{
			`line 3: rule #1: empty where a mapping (one rule) is expected`}},
		{"null item", "version: 1\nrules:\n" + a + "  - ~\n", []string{
			`line 4: rule #2: empty where a mapping (one rule) is expected`}},
		{"alias item", "version: 1\nrules:\n  - &x {name: a, per: user, limit: 1, interval: 1s, action: drop}\n  - *x\n", []string{
			`line 4: rule #2: not a mapping where a mapping (one rule) is expected`}},
		{"scalar item, reported once", "version: 1\nrules:\n  - foo\n", []string{
			`line 3: rule #1: "foo" where a mapping (one rule) is expected`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc, err := ParseRules([]byte(c.doc))
			if err == nil {
				t.Fatalf("accepted with %d rules", len(doc.Rules))
			}
			var got []string
			for _, p := range Problems(err) {
				got = append(got, p.Error())
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("problems\n%q\nwant\n%q", got, c.want)
			}
		})
	}
}
