package ratelimit

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/alibaba/sentinel-golang/core/flow"
	"github.com/alibaba/sentinel-golang/core/hotspot"
)

// How a document becomes Sentinel rules.
//
// Per operation there is ONE enforcing resource, "herald.<op>", carrying a
// hotspot (parameter) rule for every enforced per-user and per-tenant rule:
// per-user rules first, then per-tenant ones (Sentinel checks them in
// order and a rule that passes keeps its token even when a later one
// blocks, so the most specific goes first). Each Sentinel rule reads its
// own positional argument (ParamIndex = its slot). A check passes, for each
// slot, the prefixed value ("u:<tenant>/<user>" or "t:<tenant>") when the
// rule's type glob matches the event, and nil otherwise; Sentinel skips a
// rule whose argument is nil. So one Entry checks exactly the matching
// rules, and no resource name ever holds a user or tenant.
//
// A per-user rule with "tenant:" overrides gets one more slot per such
// tenant (a Sentinel rule with that tenant's limit); a check fills the
// tenant's slot instead of the rule's base slot. "user:" and per-tenant
// overrides are SpecificItems (string keys, the prefixed values).
//
// A global rule is a flow rule. Global rules for every type sit on the
// enforcing resource itself (Sentinel checks flow rules before hotspot
// rules, and a flow rule only counts entries that passed every rule, so
// nothing is used up when a hotspot rule then blocks). Global rules with a
// type glob sit on one resource per distinct glob, "herald.<op>:<glob>",
// entered only for matching types, after the enforcing resource. A check
// thus enters one resource, plus one per distinct global glob that
// matches.
//
// A shadow rule gets its own resource "herald.shadow.<op>:<rule>", so it is
// evaluated on its own, never blocks, and only counts what it would limit.
//
// Resource names are bounded by the number of rules. Counters live in
// Sentinel per rule and value; when a reload keeps a rule unchanged (same
// resource, slot, limit, interval, overrides), Sentinel keeps its counters,
// and a changed rule inherits the counters of an old rule with the same
// resource, interval and capacity.

var ops = [...]Op{OpPush, OpPub, OpConnect}

func opIndex(op Op) int {
	switch op {
	case OpPub:
		return 1
	case OpConnect:
		return 2
	}
	return 0
}

// ruleState is one document rule at run time.
type ruleState struct {
	rule     *Rule
	c        ruleCounters
	interval time.Duration
}

// retry estimates when a notification held by this rule could pass: one
// token's worth of the interval.
func (s *ruleState) retry(limit int64) time.Duration {
	return max(s.interval/time.Duration(max(limit, 1)), time.Millisecond)
}

// hotRule is a per-user or per-tenant rule on a gate.
type hotRule struct {
	st       *ruleState
	per      Per
	base     int            // slot for everyone without a tenant override
	byTenant map[string]int // slot of a tenant override (per-user rules)
}

func (r *hotRule) slot(tenant string) int {
	if r.byTenant != nil {
		if i, ok := r.byTenant[tenant]; ok {
			return i
		}
	}
	return r.base
}

// gate is one Sentinel resource.
type gate struct {
	resource string
	hot      []*hotRule
	slots    []*hotspot.Rule // slot → Sentinel rule
	owner    []*hotRule      // slot → its rule
	flows    []flowRule      // global rules, all with the same glob
	args     sync.Pool       // *[]any of len(slots)
}

// flowRule is a global rule on a gate.
type flowRule struct {
	st *ruleState
	r  *flow.Rule
}

func newGate(resource string) *gate {
	g := &gate{resource: resource}
	g.args.New = func() any { a := make([]any, len(g.slots)); return &a }
	return g
}

// addHot adds a per-user or per-tenant rule with its slots.
func (g *gate) addHot(st *ruleState, capacity int64) *hotRule {
	r := st.rule
	hr := &hotRule{st: st, per: r.Per}
	newSlot := func(threshold int64) int {
		i := len(g.slots)
		g.slots = append(g.slots, &hotspot.Rule{
			ID: r.Name, Resource: g.resource, MetricType: hotspot.QPS, ControlBehavior: hotspot.Reject,
			ParamIndex: i, Threshold: threshold, DurationInSec: int64(r.Interval / time.Second),
			ParamsMaxCapacity: capacity, SpecificItems: map[any]int64{},
		})
		g.owner = append(g.owner, hr)
		return i
	}
	hr.base = newSlot(r.Limit)
	users := map[overrideKey]int64{}
	for _, k := range sortedKeys(r.Overrides) {
		key, _ := parseOverrideKey(k) // validated
		switch {
		case key.user != "":
			users[key] = r.Overrides[k]
		case r.Per == PerTenant:
			g.slots[hr.base].SpecificItems["t:"+key.tenant] = r.Overrides[k]
		default:
			if hr.byTenant == nil {
				hr.byTenant = map[string]int{}
			}
			hr.byTenant[key.tenant] = newSlot(r.Overrides[k])
		}
	}
	for key, n := range users {
		g.slots[hr.slot(key.tenant)].SpecificItems["u:"+key.tenant+"/"+key.user] = n
	}
	g.hot = append(g.hot, hr)
	return hr
}

// step is a gate and the hotspot rules on it that match one type (its
// flow rules match when the step exists).
type step struct {
	g     *gate
	rules []*hotRule
}

// plan is what one check of one type does.
type plan struct {
	enforce []step
	shadow  []step
	// enforced lists the matching enforced rules, counted as passed when
	// the check passes.
	enforced []*ruleState
}

func (p *plan) empty() bool { return len(p.enforce) == 0 && len(p.shadow) == 0 }

// maxCachedPlans bounds the per-type plan cache; types past it are planned
// on every check.
const maxCachedPlans = 4096

// opRules are the gates of one operation.
type opRules struct {
	enforce []*gate // the hotspot gate (if any) first, then flow gates
	shadow  []*gate
	plans   sync.Map // type → *plan
	nplans  atomic.Int32
}

func (o *opRules) plan(typ string) *plan {
	if p, ok := o.plans.Load(typ); ok {
		return p.(*plan)
	}
	p := o.makePlan(typ)
	if o.nplans.Load() < maxCachedPlans {
		if _, loaded := o.plans.LoadOrStore(typ, p); !loaded {
			o.nplans.Add(1)
		}
	}
	return p
}

func (o *opRules) makePlan(typ string) *plan {
	p := &plan{}
	add := func(gates []*gate, shadow bool) {
		for _, g := range gates {
			s := step{g: g}
			var matched []*ruleState
			if len(g.flows) > 0 && g.flows[0].st.rule.Matches(typ) {
				for _, f := range g.flows {
					matched = append(matched, f.st)
				}
			}
			for _, hr := range g.hot {
				if hr.st.rule.Matches(typ) {
					s.rules = append(s.rules, hr)
					matched = append(matched, hr.st)
				}
			}
			switch {
			case len(matched) == 0:
			case shadow:
				p.shadow = append(p.shadow, s)
			default:
				p.enforce = append(p.enforce, s)
				p.enforced = append(p.enforced, matched...)
			}
		}
	}
	add(o.enforce, false)
	add(o.shadow, true)
	return p
}

// ruleSet is a compiled document: what the Limiter swaps atomically.
type ruleSet struct {
	doc    *Document
	ops    [len(ops)]*opRules
	states map[string]*ruleState
	hot    []*hotspot.Rule
	flows  []*flow.Rule
}

// capacities are the values tracked per Sentinel rule.
type capacities struct{ users, tenants int64 }

func compile(doc *Document, m *Metrics, caps capacities) *ruleSet {
	rs := &ruleSet{doc: doc, states: make(map[string]*ruleState, len(doc.Rules))}
	for i := range doc.Rules {
		r := &doc.Rules[i]
		rs.states[r.Name] = &ruleState{rule: r, c: m.forRule(r.Name), interval: r.Interval}
	}
	for i, op := range ops {
		rs.ops[i] = rs.compileOp(op, caps)
	}
	return rs
}

func (rs *ruleSet) compileOp(op Op, caps capacities) *opRules {
	o := &opRules{}
	main := newGate("herald." + string(op))
	byGlob := map[string]*gate{}
	var globs []*gate
	rules := rs.doc.Rules
	// Enforced per-user rules, then per-tenant ones, in document order.
	for _, per := range []Per{PerUser, PerTenant} {
		for i := range rules {
			if r := &rules[i]; r.Applies(op) && r.Mode == ModeEnforce && r.Per == per {
				main.addHot(rs.states[r.Name], caps.of(per))
			}
		}
	}
	for i := range rules {
		r := &rules[i]
		if !r.Applies(op) {
			continue
		}
		switch {
		case r.Mode == ModeEnforce && r.Per == PerGlobal && (r.Type == "" || r.Type == "*"):
			rs.addFlow(main, r)
		case r.Mode == ModeEnforce && r.Per == PerGlobal:
			g := byGlob[r.Type]
			if g == nil {
				g = newGate("herald." + string(op) + ":" + r.Type)
				byGlob[r.Type] = g
				globs = append(globs, g)
			}
			rs.addFlow(g, r)
		case r.Mode == ModeShadow:
			g := newGate("herald.shadow." + string(op) + ":" + r.Name)
			if r.Per == PerGlobal {
				rs.addFlow(g, r)
			} else {
				g.addHot(rs.states[r.Name], caps.of(r.Per))
				rs.hot = append(rs.hot, g.slots...)
			}
			o.shadow = append(o.shadow, g)
		}
	}
	if len(main.slots) > 0 || len(main.flows) > 0 {
		o.enforce = append(o.enforce, main)
		rs.hot = append(rs.hot, main.slots...)
	}
	o.enforce = append(o.enforce, globs...)
	return o
}

func (c capacities) of(per Per) int64 {
	if per == PerUser {
		return c.users
	}
	return c.tenants
}

// addFlow puts a global rule on g as a flow rule: at most limit entries
// that passed in any interval (a sliding window up to 10s, a window of
// the whole interval beyond).
func (rs *ruleSet) addFlow(g *gate, r *Rule) {
	fr := &flow.Rule{
		ID: r.Name, Resource: g.resource, TokenCalculateStrategy: flow.Direct, ControlBehavior: flow.Reject,
		Threshold: float64(r.Limit), StatIntervalInMs: uint32(r.Interval / time.Millisecond),
	}
	g.flows = append(g.flows, flowRule{st: rs.states[r.Name], r: fr})
	rs.flows = append(rs.flows, fr)
}
