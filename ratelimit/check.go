package ratelimit

import (
	"github.com/alibaba/sentinel-golang/api"
	"github.com/alibaba/sentinel-golang/core/flow"
	"github.com/alibaba/sentinel-golang/core/hotspot"
)

// argKeys builds the prefixed Sentinel values of one check, once each and
// only when a rule needs them. The prefixes keep a user's and a tenant's
// counters apart even when Sentinel hands one rule's counters to another.
type argKeys struct {
	tenant, user string
	u, t         any
}

func (k *argKeys) value(per Per) any {
	if per == PerUser {
		if k.u == nil {
			k.u = "u:" + k.tenant + "/" + k.user
		}
		return k.u
	}
	if k.t == nil {
		k.t = "t:" + k.tenant
	}
	return k.t
}

// run checks the enforced gates in order until one blocks, then every
// shadow gate, and counts. It returns the enforced rule that limited (nil
// when the check passes) and the limit it applied.
func (p *plan) run(tenant, user string) (hit *ruleState, limit int64) {
	k := argKeys{tenant: tenant, user: user}
	for i := range p.enforce {
		if hit, limit = p.enforce[i].check(&k); hit != nil {
			break
		}
	}
	for i := range p.shadow {
		s := &p.shadow[i]
		if st, _ := s.check(&k); st != nil {
			st.c.shadow.Inc()
		} else if len(s.g.flows) > 0 {
			s.g.flows[0].st.c.passed.Inc()
		} else {
			s.rules[0].st.c.passed.Inc()
		}
	}
	if hit != nil {
		hit.c.limited.Inc()
		return hit, limit
	}
	for _, st := range p.enforced {
		st.c.passed.Inc()
	}
	return nil, 0
}

// check enters the step's gate once.
func (s *step) check(k *argKeys) (*ruleState, int64) {
	g := s.g
	if len(g.slots) == 0 {
		e, b := api.Entry(g.resource)
		if b != nil {
			return g.blockedBy(b.TriggeredRule(), nil)
		}
		e.Exit()
		return nil, 0
	}
	ap := g.args.Get().(*[]any)
	args := *ap
	for _, r := range s.rules {
		args[r.slot(k.tenant)] = k.value(r.per)
	}
	var (
		hit   *ruleState
		limit int64
	)
	e, b := api.Entry(g.resource, api.WithArgs(args...))
	if b != nil {
		hit, limit = g.blockedBy(b.TriggeredRule(), args)
	} else {
		e.Exit()
	}
	clear(args)
	g.args.Put(ap)
	return hit, limit
}

// blockedBy maps the Sentinel rule that blocked to its document rule and
// the limit it applied to the value it saw.
func (g *gate) blockedBy(tr any, args []any) (*ruleState, int64) {
	switch r := tr.(type) {
	case *hotspot.Rule:
		if i := r.ParamIndex; i >= 0 && i < len(g.owner) && i < len(args) {
			limit := r.Threshold
			if n, ok := r.SpecificItems[args[i]]; ok {
				limit = n
			}
			return g.owner[i].st, limit
		}
	case *flow.Rule:
		// Sentinel keeps the old *flow.Rule of an unchanged rule, so match
		// by name, then by what it enforces.
		for _, f := range g.flows {
			if f.r == r || f.r.ID == r.ID {
				return f.st, int64(f.r.Threshold)
			}
		}
		for _, f := range g.flows {
			if f.r.Threshold == r.Threshold && f.r.StatIntervalInMs == r.StatIntervalInMs {
				return f.st, int64(f.r.Threshold)
			}
		}
	}
	// A rule from a set being swapped in: attribute it to the gate's first.
	if len(g.owner) > 0 {
		return g.owner[0].st, g.slots[0].Threshold
	}
	return g.flows[0].st, int64(g.flows[0].r.Threshold)
}
