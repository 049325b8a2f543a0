package ratelimit

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// validator checks a decoded document field by field and collects every
// problem with its position.
type validator struct {
	pos  *docPos
	errs []error
	rule string // label of the rule being checked
	rp   rulePos
	skip map[string]bool // rule+"\x00"+field the decoder already reported
}

func (v *validator) add(line int, field, format string, args ...any) {
	if v.skip[v.rule+"\x00"+field] {
		return
	}
	v.errs = append(v.errs, &ValidationError{Line: line, Rule: v.rule, Field: field, Problem: fmt.Sprintf(format, args...)})
}

// at is the line of a field of the current rule, or the rule's own line
// when the field is absent.
func (v *validator) at(field string) int {
	if l, ok := v.rp.fields[field]; ok {
		return l
	}
	return v.rp.line
}

func (v *validator) has(field string) bool { _, ok := v.rp.fields[field]; return ok }

func (v *validator) document(raw *docYAML) *Document {
	doc := &Document{Version: FormatVersion}
	line, ok := v.pos.fields["version"]
	switch {
	case !ok:
		v.add(v.pos.line, "version", "missing: want version: 1")
	case raw.Version != strconv.Itoa(FormatVersion):
		v.add(line, "version", "%q is not supported: want 1", raw.Version)
	}
	line, ok = v.pos.fields["rules"]
	switch {
	case !ok:
		v.add(v.pos.line, "rules", "missing: list the rules (rules: [] turns every limit off)")
	case v.pos.rulesNull:
		v.add(line, "rules", "empty: list the rules, or write rules: [] to turn every limit off")
	case len(raw.Rules) > MaxRules:
		v.add(line, "rules", "%d rules, more than the %d allowed", len(raw.Rules), MaxRules)
		return nil
	}
	// yaml.v3 leaves an empty list item ("-", "- ~") out of raw.Rules
	// without a word, and an alias item ("- *base") decodes with no
	// position to check it by: name both, or the document would silently
	// lose rules. Items the decoder refused are skipped by add.
	for i, rp := range v.pos.rules {
		if !rp.mapping {
			v.rule = v.pos.ruleLabel(i)
			what := "empty"
			if !rp.null {
				what = "not a mapping"
			}
			v.add(rp.line, "", "%s where a mapping (one rule) is expected", what)
		}
	}
	v.rule = ""
	if len(raw.Rules) != len(v.pos.rules) {
		return doc // the decoder, or the loop above, reported why
	}
	names := map[string]int{}
	for i := range raw.Rules {
		v.rp = v.pos.rules[i]
		if !v.rp.mapping {
			continue
		}
		v.rule = v.pos.ruleLabel(i)
		r, ok := v.ruleOf(&raw.Rules[i])
		if !ok {
			continue
		}
		if first, dup := names[r.Name]; dup {
			v.add(v.at("name"), "name", "%q is also the name of the rule at line %d", r.Name, first)
			continue
		}
		names[r.Name] = r.Line
		doc.Rules = append(doc.Rules, r)
	}
	v.rule = ""
	return doc
}

// ruleOf validates one rule; ok is false when it had problems.
func (v *validator) ruleOf(y *ruleYAML) (r Rule, ok bool) {
	before := len(v.errs)
	r = Rule{Name: y.Name, Line: v.rp.line, Mode: ModeEnforce}
	switch {
	case !v.has("name") || y.Name == "":
		v.add(v.at("name"), "name", "missing: every rule needs a unique name, [a-z0-9_.-]{1,64}")
	case !validName(y.Name):
		v.add(v.at("name"), "name", "%q is not [a-z0-9_.-]{1,64}", y.Name)
	}
	r.Type = v.matchOf(y.Match)
	r.Per = v.perOf(y.Per)
	r.Limit = v.limitOf(y.Limit)
	r.Interval = v.intervalOf(y.Interval)
	r.AppliesTo = v.appliesOf(y.AppliesTo)
	r.Action, r.MaxWait = v.actionOf(y, r.AppliesTo)
	switch y.Mode {
	case "", string(ModeEnforce):
	case string(ModeShadow):
		r.Mode = ModeShadow
	default:
		v.add(v.at("mode"), "mode", "%q: want enforce or shadow", y.Mode)
	}
	r.Overrides = v.overridesOf(y.Overrides, r.Per)
	if slices.Contains(r.AppliesTo, OpPublish) && r.Per == PerUser {
		v.add(v.at("per"), "per", "a publish rule counts per tenant or global (the API key publishes for a tenant, not a user)")
	}
	if slices.Contains(r.AppliesTo, OpConnect) {
		if r.Per == PerUser {
			v.add(v.at("per"), "per", "a connect rule counts per tenant or global (a connection has no user yet)")
		}
		if r.Type != "" && r.Type != "*" {
			v.add(v.at("match.type"), "match.type", "a connection has no event type: omit match in a rule that applies to connect")
		}
	}
	return r, len(v.errs) == before
}

func (v *validator) matchOf(m *matchYAML) string {
	switch {
	case !v.has("match"):
		return ""
	case m == nil || !v.has("match.type"):
		v.add(v.at("match"), "match.type", "missing: omit match to match every type")
		return ""
	}
	if err := validGlob(m.Type); err != nil {
		v.add(v.at("match.type"), "match.type", "%v", err)
	}
	return m.Type
}

func (v *validator) perOf(s string) Per {
	switch p := Per(s); p {
	case PerUser, PerTenant, PerGlobal:
		return p
	case "":
		v.add(v.at("per"), "per", "missing: user, tenant or global")
	default:
		v.add(v.at("per"), "per", "%q: want user, tenant or global", s)
	}
	return ""
}

func (v *validator) limitOf(s string) int64 {
	if s == "" {
		v.add(v.at("limit"), "limit", "missing: how many per interval")
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case err != nil:
		v.add(v.at("limit"), "limit", "%q is not a whole number", s)
	case n <= 0:
		v.add(v.at("limit"), "limit", "%d must be positive", n)
	}
	return n
}

func (v *validator) intervalOf(s string) time.Duration {
	if s == "" {
		v.add(v.at("interval"), "interval", "missing: a duration like 1s, 1m or 1h")
		return 0
	}
	d, err := parseDuration(s)
	switch {
	case err != nil:
		v.add(v.at("interval"), "interval", "%v", err)
	case d <= 0:
		v.add(v.at("interval"), "interval", "%q must be positive", s)
	case d%time.Second != 0:
		v.add(v.at("interval"), "interval", "%q is not a whole number of seconds (Sentinel counts in seconds): "+
			"scale it up with the limit, e.g. limit 5 per 500ms is limit: 10, interval: 1s", s)
	case d > MaxInterval:
		v.add(v.at("interval"), "interval", "%q is longer than %v", s, MaxInterval)
	}
	return d
}

func (v *validator) appliesOf(list []string) []Op {
	if !v.has("applies_to") {
		return []Op{OpPush}
	}
	if len(list) == 0 {
		v.add(v.at("applies_to"), "applies_to", "empty: list push, pub, connect and/or publish (omit it for [push])")
		return []Op{OpPush} // for the checks of the other fields
	}
	var ops []Op
	for _, s := range list {
		op := Op(s)
		switch {
		case op != OpPush && op != OpPub && op != OpConnect && op != OpPublish:
			v.add(v.at("applies_to"), "applies_to", "%q: want push, pub, connect or publish", s)
		case slices.Contains(ops, op):
			v.add(v.at("applies_to"), "applies_to", "%q is listed twice", s)
		default:
			ops = append(ops, op)
		}
	}
	return ops
}

func (v *validator) actionOf(y *ruleYAML, ops []Op) (Action, time.Duration) {
	push := slices.Contains(ops, OpPush)
	a := Action(y.Action)
	switch {
	case a == ActionDrop || a == ActionQueue && push:
	case a == ActionQueue:
		v.add(v.at("action"), "action", "queue applies only to push; pub frames and connections over a limit are refused (use drop)")
	case a == "" && push:
		v.add(v.at("action"), "action", "missing: queue (push later, up to max_wait) or drop (do not push)")
	case a == "":
		a = ActionDrop
	default:
		v.add(v.at("action"), "action", "%q: want queue or drop", y.Action)
	}
	if a != ActionQueue {
		if v.has("max_wait") {
			v.add(v.at("max_wait"), "max_wait", "only with action: queue")
		}
		return a, 0
	}
	if y.MaxWait == "" {
		v.add(v.at("max_wait"), "max_wait", "missing: action queue needs how long a notification may wait, e.g. 30s")
		return a, 0
	}
	d, err := parseDuration(y.MaxWait)
	switch {
	case err != nil:
		v.add(v.at("max_wait"), "max_wait", "%v", err)
	case d <= 0:
		v.add(v.at("max_wait"), "max_wait", "%q must be positive", y.MaxWait)
	case d > MaxMaxWait:
		v.add(v.at("max_wait"), "max_wait", "%q is longer than %v (a queued notification holds back its whole feed)", y.MaxWait, MaxMaxWait)
	}
	return a, d
}

func (v *validator) overridesOf(m map[string]string, per Per) map[string]int64 {
	if !v.has("overrides") {
		return nil
	}
	if len(m) > MaxOverrides {
		v.add(v.at("overrides"), "overrides", "%d overrides, more than the %d allowed", len(m), MaxOverrides)
		return nil
	}
	if per == PerGlobal && len(m) > 0 {
		v.add(v.at("overrides"), "overrides", "a global limit has no per-tenant or per-user values")
		return nil
	}
	out := make(map[string]int64, len(m))
	tenants := 0
	for _, k := range sortedKeys(m) {
		line := v.rp.overrides[k]
		if line == 0 {
			line = v.at("overrides")
		}
		key, err := parseOverrideKey(k)
		if err != nil {
			v.add(line, "overrides", "%v", err)
			continue
		}
		if per == PerTenant && key.user != "" {
			v.add(line, "overrides", "key %q: a per-tenant rule takes only tenant:<tenant> keys", k)
			continue
		}
		n, err := strconv.ParseInt(m[k], 10, 64)
		if err != nil || n < 0 {
			v.add(line, "overrides", "key %q: %q is not a whole number, 0 or more", k, m[k])
			continue
		}
		if key.user == "" {
			tenants++
		}
		out[k] = n
	}
	if per == PerUser && tenants > MaxTenantOverridesPerUserRule {
		v.add(v.at("overrides"), "overrides", "%d tenant: keys in a per-user rule, more than the %d allowed (each is a Sentinel rule)",
			tenants, MaxTenantOverridesPerUserRule)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, strings.Compare)
	return keys
}
