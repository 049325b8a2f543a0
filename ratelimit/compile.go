package ratelimit

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alibaba/sentinel-golang/api"
	"github.com/alibaba/sentinel-golang/core/flow"
	"github.com/alibaba/sentinel-golang/core/hotspot"
)

// How a document becomes Sentinel rules.
//
// Rules with limits under 400 a second (lease.go) are checked exactly, one
// Entry per notification, on ONE enforcing resource per operation,
// "herald.<op>": a hotspot (parameter) rule for every such per-user rule,
// then for every such per-tenant rule (Sentinel checks them in order and a
// rule that passes keeps its token even when a later one blocks, so the
// most specific goes first), and a flow rule for every such global rule
// for every type (Sentinel checks flow rules before hotspot rules, and a
// flow rule only counts entries that passed every rule, so nothing is used
// up when a hotspot rule then blocks). Such global rules with a type glob
// sit on one resource per distinct glob, "herald.<op>:<glob>", entered
// only for matching types, after the enforcing resource.
//
// Rules with higher limits are taken in leases, per dimension: per-user
// ones on "herald.<op>.user", per-tenant ones on "herald.<op>.tenant",
// global ones for every type on "herald.<op>.global" and global ones with
// a glob on "herald.<op>.lease:<glob>". A check goes per user (leased),
// the exact resource, per tenant (leased), then global (leased, then each
// glob), and stops at the first that refuses, so a rule that refuses never
// uses up the allowance of a rule of a later dimension. (So when there are
// leased per-tenant rules, exact global rules for every type leave the
// exact resource for "herald.<op>:*", entered after the per-tenant one.)
//
// Each hotspot rule reads its own positional argument (ParamIndex = its
// slot). A check passes, for each slot, the rule's key (a userKey or a
// tenantKey) when the rule's type glob matches the event, and nil
// otherwise; Sentinel skips a rule whose argument is nil. So one Entry
// checks exactly the matching rules of a resource, and no resource name
// ever holds a user or tenant.
//
// A per-user rule with "tenant:" overrides gets one more slot per such
// tenant (a Sentinel rule with that tenant's limit); a check fills the
// tenant's slot instead of the rule's base slot. "user:" and per-tenant
// overrides are SpecificItems.
//
// A shadow rule gets its own resource "herald.shadow.<op>:<rule>", so it is
// evaluated on its own (exactly), never blocks, and only counts what it
// would limit.
//
// Resource names are bounded by the number of rules. Counters live in
// Sentinel per rule and value; a rule keeps its slot across reloads, so
// when a reload keeps it unchanged (same resource, limit, interval,
// overrides) Sentinel keeps its counters, and a changed rule may inherit
// the counters of its own slot when the interval stays (gate.place).

var ops = [...]Op{OpPush, OpPub, OpConnect, OpPublish}

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

// userKey and tenantKey are the values per-user and per-tenant rules
// count; distinct types keep a user's counters apart from a tenant's even
// when Sentinel hands one rule's counters to another.
type (
	userKey   struct{ tenant, user string }
	tenantKey string
)

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

// gate is one Sentinel resource. The rules of a leased gate all count the
// same dimension: per user or per tenant (hotspot rules), or in all (flow
// rules); the exact gate has per-user, per-tenant and global rules.
type gate struct {
	resource string
	per      Per  // a leased gate's dimension
	leased   bool // its rules have high limits: steps take leases
	hot      []*hotRule
	slots    []*hotspot.Rule // Sentinel rules, in the order Sentinel checks them
	keys     []string        // each slot's key: its rule's name, and the tenant of an override
	owner    []*hotRule      // ParamIndex → its rule (nil: unused); by position until placed
	index    map[string]int  // slot key → ParamIndex, once placed
	flows    []flowRule      // global rules, all with the same glob
}

// flowRule is a global rule on a gate.
type flowRule struct {
	st *ruleState
	r  *flow.Rule
}

// addHot adds a per-user or per-tenant rule with its slots.
func (g *gate) addHot(st *ruleState, capacity int64) *hotRule {
	r := st.rule
	hr := &hotRule{st: st, per: r.Per}
	tenant := "" // of the override a slot is for
	newSlot := func(threshold int64) int {
		i := len(g.slots)
		g.slots = append(g.slots, &hotspot.Rule{
			ID: r.Name, Resource: g.resource, MetricType: hotspot.QPS, ControlBehavior: hotspot.Reject,
			ParamIndex: i, Threshold: threshold, DurationInSec: int64(r.Interval / time.Second),
			ParamsMaxCapacity: capacity, SpecificItems: map[any]int64{},
		})
		g.owner = append(g.owner, hr)
		g.keys = append(g.keys, r.Name+"\x00"+tenant)
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
			g.slots[hr.base].SpecificItems[tenantKey(key.tenant)] = r.Overrides[k]
		default:
			if hr.byTenant == nil {
				hr.byTenant = map[string]int{}
			}
			tenant = key.tenant
			hr.byTenant[key.tenant] = newSlot(r.Overrides[k])
		}
	}
	for key, n := range users {
		g.slots[hr.slot(key.tenant)].SpecificItems[userKey{key.tenant, key.user}] = n
	}
	g.hot = append(g.hot, hr)
	return hr
}

// place gives the gate's slots their ParamIndex. A slot that was on the
// same resource in the rule set before (prev, nil for none) keeps its
// index, others take the lowest free ones, and each slot's ParamsMaxCapacity
// is raised by its index. Sentinel keeps a rule's counters only when the
// new rule equals the old one, ParamIndex included, and otherwise hands a
// new rule the counters of the first old rule with the same resource,
// interval and capacity. With indices kept and capacities apart, a rule
// that stays the same keeps its counters when a rule before it is added or
// removed, and a changed rule can only inherit those of its own slot.
func (g *gate) place(prev *gate) {
	at := make([]int, len(g.slots)) // position → ParamIndex
	used := map[int]bool{}
	for i, k := range g.keys {
		at[i] = -1
		if prev == nil {
			continue
		}
		if j, ok := prev.index[k]; ok && !used[j] {
			at[i], used[j] = j, true
		}
	}
	n, free := 0, 0
	for i := range at {
		if at[i] < 0 {
			for used[free] {
				free++
			}
			at[i], used[free] = free, true
		}
		n = max(n, at[i]+1)
	}
	owner := make([]*hotRule, n)
	g.index = make(map[string]int, len(g.slots))
	for i, r := range g.slots {
		r.ParamIndex = at[i]
		r.ParamsMaxCapacity += int64(at[i])
		owner[at[i]] = g.owner[i]
		g.index[g.keys[i]] = at[i]
	}
	g.owner = owner
	for _, hr := range g.hot {
		hr.base = at[hr.base]
		for t, i := range hr.byTenant {
			hr.byTenant[t] = at[i]
		}
	}
}

// step is a gate and the hotspot rules on it that match a type (its flow
// rules match when the step exists). Plans of types that match the same
// rules of a gate share one step, and so its leases.
type step struct {
	g     *gate
	rules []*hotRule
	// batch is how many tokens a lease takes; 1 means no leases: every
	// check enters Sentinel.
	batch    int64
	batchOpt api.EntryOption // api.WithBatchCount(batch)
	leases   leases          // nil: no leases
	args     sync.Pool       // *entryArgs of len(g.owner)
}

// plan is what one check of one type does.
type plan struct {
	enforce []*step
	shadow  []*step
	// enforced lists the matching enforced rules, counted as passed when
	// the check passes.
	enforced []*ruleState
	// batchPasses (a cached plan whose steps are all leased) counts passes
	// in passes and adds them to the rules' counters every passFlush and
	// when the metrics are collected, instead of once per rule per check.
	batchPasses bool
	passes      atomic.Int64
}

// passFlush is how many passes a plan holds back from the counters at most.
const passFlush = 256

// countPass counts a check that passed every rule.
func (p *plan) countPass() {
	if !p.batchPasses {
		for _, st := range p.enforced {
			st.c.passed.Inc()
		}
		return
	}
	if p.passes.Add(1) >= passFlush {
		p.flush()
	}
}

// flush adds the passes held back to the rules' counters.
func (p *plan) flush() {
	if n := p.passes.Swap(0); n > 0 {
		for _, st := range p.enforced {
			st.c.passed.Add(float64(n))
		}
	}
}

func (p *plan) empty() bool { return len(p.enforce) == 0 && len(p.shadow) == 0 }

// maxCachedPlans bounds the per-type plan cache; types past it are planned
// on every check.
const maxCachedPlans = 4096

// opRules are the gates of one operation.
type opRules struct {
	enforce []*gate // per user, per tenant, global for every type, then one per global glob
	shadow  []*gate
	plans   sync.Map // type → *plan
	nplans  atomic.Int32

	mu    sync.Mutex
	steps map[string]*step // gate and matching rules → step
}

func (o *opRules) plan(typ string) *plan {
	if p, ok := o.plans.Load(typ); ok {
		return p.(*plan)
	}
	p := o.makePlan(typ)
	if o.nplans.Load() >= maxCachedPlans {
		return p // used once: passes counted at once
	}
	p.batchPasses = len(p.enforce) > 0
	for _, s := range p.enforce {
		p.batchPasses = p.batchPasses && s.leases != nil
	}
	v, loaded := o.plans.LoadOrStore(typ, p)
	if !loaded {
		o.nplans.Add(1)
	}
	return v.(*plan)
}

// flushPasses adds every plan's held-back passes to the counters.
func (rs *ruleSet) flushPasses() {
	for _, o := range rs.ops {
		o.plans.Range(func(_, v any) bool {
			v.(*plan).flush()
			return true
		})
	}
}

func (o *opRules) makePlan(typ string) *plan {
	p := &plan{}
	add := func(gates []*gate, shadow bool) {
		for _, g := range gates {
			var rules []*hotRule
			var matched []*ruleState
			if len(g.flows) > 0 && g.flows[0].st.rule.Matches(typ) {
				for _, f := range g.flows {
					matched = append(matched, f.st)
				}
			}
			for _, hr := range g.hot {
				if hr.st.rule.Matches(typ) {
					rules = append(rules, hr)
					matched = append(matched, hr.st)
				}
			}
			switch {
			case len(matched) == 0:
			case shadow:
				p.shadow = append(p.shadow, o.step(g, rules, false))
			default:
				p.enforce = append(p.enforce, o.step(g, rules, true))
				p.enforced = append(p.enforced, matched...)
			}
		}
	}
	add(o.enforce, false)
	add(o.shadow, true)
	return p
}

// step returns the shared step for g with rules.
func (o *opRules) step(g *gate, rules []*hotRule, enforce bool) *step {
	key := g.resource
	for _, r := range rules {
		key += "\x00" + strconv.Itoa(r.base)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if s := o.steps[key]; s != nil {
		return s
	}
	s := &step{g: g, rules: rules, batch: 1}
	if enforce && g.leased {
		s.batch = leaseBatch(g, rules)
	}
	if s.batch > 1 {
		s.leases = newLeases(g.per)
		s.batchOpt = api.WithBatchCount(uint32(s.batch))
	}
	n := len(g.owner)
	s.args.New = func() any { a := make([]any, n); return &entryArgs{args: a, opt: api.WithArgs(a...)} }
	if o.steps == nil {
		o.steps = map[string]*step{}
	}
	o.steps[key] = s
	return s
}

// ruleSet is a compiled document: what the Limiter swaps atomically.
type ruleSet struct {
	doc    *Document
	ops    [len(ops)]*opRules
	states map[string]*ruleState
	hot    []*hotspot.Rule
	flows  []*flow.Rule
	prev   map[string]*gate // resource → gate of the set replaced, while compiling
}

// capacities are the values tracked per Sentinel rule.
type capacities struct{ users, tenants int64 }

func compile(doc *Document, m *Metrics, caps capacities) *ruleSet {
	return recompile(nil, doc, m, caps)
}

// recompile compiles doc to replace prev (nil for none): see gate.place.
func recompile(prev *ruleSet, doc *Document, m *Metrics, caps capacities) *ruleSet {
	rs := &ruleSet{doc: doc, states: make(map[string]*ruleState, len(doc.Rules))}
	if prev != nil {
		rs.prev = map[string]*gate{}
		for _, o := range prev.ops {
			for _, g := range append(o.enforce[:len(o.enforce):len(o.enforce)], o.shadow...) {
				rs.prev[g.resource] = g
			}
		}
	}
	for i := range doc.Rules {
		r := &doc.Rules[i]
		rs.states[r.Name] = &ruleState{rule: r, c: m.forRule(r.Name), interval: r.Interval}
	}
	for i, op := range ops {
		rs.ops[i] = rs.compileOp(op, caps)
	}
	rs.prev = nil // not kept: a chain of replaced sets would never be freed
	return rs
}

func (rs *ruleSet) compileOp(op Op, caps capacities) *opRules {
	o := &opRules{}
	res := "herald." + string(op)
	exact := &gate{resource: res}
	users := &gate{resource: res + ".user", per: PerUser, leased: true}
	tenants := &gate{resource: res + ".tenant", per: PerTenant, leased: true}
	global := &gate{resource: res + ".global", per: PerGlobal, leased: true}
	byGlob := map[string]*gate{}
	var globs []*gate
	rules := rs.doc.Rules
	// The exact gate's per-user rules go before its per-tenant ones.
	for _, per := range []Per{PerUser, PerTenant} {
		for i := range rules {
			if r := &rules[i]; r.Applies(op) && r.Mode == ModeEnforce && r.Per == per && !leased(r) {
				exact.addHot(rs.states[r.Name], caps.of(per))
			}
		}
	}
	for i := range rules {
		r := &rules[i]
		if !r.Applies(op) {
			continue
		}
		switch {
		case r.Mode == ModeShadow:
			g := &gate{resource: "herald.shadow." + string(op) + ":" + r.Name, per: r.Per}
			if r.Per == PerGlobal {
				rs.addFlow(g, r)
			} else {
				g.addHot(rs.states[r.Name], caps.of(r.Per))
				g.place(rs.prev[g.resource])
				rs.hot = append(rs.hot, g.slots...)
			}
			o.shadow = append(o.shadow, g)
		case r.Per == PerUser && leased(r):
			users.addHot(rs.states[r.Name], caps.users)
		case r.Per == PerTenant && leased(r):
			tenants.addHot(rs.states[r.Name], caps.tenants)
		case r.Per != PerGlobal:
			// on the exact gate, above
		case r.Type == "" || r.Type == "*":
			if leased(r) {
				rs.addFlow(global, r)
			} else {
				rs.addFlow(exact, r)
			}
		default:
			name := res + ":" + r.Type
			if leased(r) {
				name = res + ".lease:" + r.Type
			}
			g := byGlob[name]
			if g == nil {
				g = &gate{resource: name, per: PerGlobal, leased: leased(r)}
				byGlob[name] = g
				globs = append(globs, g)
			}
			rs.addFlow(g, r)
		}
	}
	// Global rules on the exact gate count what passed its Entry, which
	// comes before the leased per-tenant gate: a tenant that a leased rule
	// refuses would use up the global allowance. Then they go on a gate of
	// their own after it.
	everyType := &gate{resource: res + ":*", per: PerGlobal}
	if len(tenants.slots) > 0 && len(exact.flows) > 0 {
		everyType.flows, exact.flows = exact.flows, nil
		for _, f := range everyType.flows {
			f.r.Resource = everyType.resource
		}
	}
	for _, g := range append([]*gate{users, exact, tenants, everyType, global}, globs...) {
		if len(g.slots) > 0 || len(g.flows) > 0 {
			o.enforce = append(o.enforce, g)
			g.place(rs.prev[g.resource])
			rs.hot = append(rs.hot, g.slots...)
		}
	}
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
