package ratelimit

import (
	"github.com/alibaba/sentinel-golang/api"
	"github.com/alibaba/sentinel-golang/core/flow"
	"github.com/alibaba/sentinel-golang/core/hotspot"
)

// argKeys are one check's values, boxed once each and only when an Entry
// needs them.
type argKeys struct {
	tenant, user string
	now          int64 // Sentinel's clock, unix ms
	u, t         any
}

func (k *argKeys) value(per Per) any {
	if per == PerUser {
		if k.u == nil {
			k.u = userKey{k.tenant, k.user}
		}
		return k.u
	}
	if k.t == nil {
		k.t = tenantKey(k.tenant)
	}
	return k.t
}

// lease names whose lease a gate of the dimension per spends.
func (k *argKeys) lease(per Per) leaseKey {
	switch per {
	case PerUser:
		return leaseKey{k.tenant, k.user}
	case PerTenant:
		return leaseKey{tenant: k.tenant}
	}
	return leaseKey{}
}

// run checks the enforced steps in order until one refuses, then every
// shadow step, and counts. It returns the enforced rule that limited (nil
// when the check passes) and the limit it applied.
func (p *plan) run(tenant, user string) (hit *ruleState, limit int64) {
	k := argKeys{tenant: tenant, user: user, now: nowMs()}
	for _, s := range p.enforce {
		if hit, limit = s.check(&k); hit != nil {
			break
		}
	}
	for _, s := range p.shadow {
		if st, _ := s.enter(&k, false); st != nil {
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
	p.countPass()
	return nil, 0
}

// check asks the step's gate for one token: from the key's lease when the
// step has leases and it holds one, else from Sentinel (a batch to lease
// from, or, after a refused batch and for low limits, just the one).
func (s *step) check(k *argKeys) (*ruleState, int64) {
	if s.leases == nil {
		return s.enter(k, false)
	}
	now := k.now
	key := k.lease(s.g.per)
	ok, exact := s.leases.take(key, now)
	if ok {
		return nil, 0
	}
	if !exact {
		if st, _ := s.enter(k, true); st == nil {
			s.leases.grant(key, now, s.batch)
			return nil, 0
		}
		s.leases.refused(key, now)
	}
	return s.enter(k, false)
}

// entryArgs is a pooled argument slice with its Entry option, made once:
// the option copies the slice's contents at each Entry.
type entryArgs struct {
	args []any
	opt  api.EntryOption
}

// enter enters the step's gate once, for one token or a batch.
func (s *step) enter(k *argKeys, batch bool) (*ruleState, int64) {
	g := s.g
	var opts [2]api.EntryOption
	n := 0
	if batch {
		opts[n] = s.batchOpt
		n++
	}
	if len(g.slots) == 0 {
		e, b := api.Entry(g.resource, opts[:n]...)
		if b != nil {
			return g.blockedBy(b.TriggeredRule(), nil)
		}
		e.Exit()
		return nil, 0
	}
	ea := s.args.Get().(*entryArgs)
	args := ea.args
	for _, r := range s.rules {
		args[r.slot(k.tenant)] = k.value(r.per)
	}
	opts[n] = ea.opt
	var (
		hit   *ruleState
		limit int64
	)
	e, b := api.Entry(g.resource, opts[:n+1]...)
	if b != nil {
		hit, limit = g.blockedBy(b.TriggeredRule(), args)
	} else {
		e.Exit()
	}
	clear(args)
	s.args.Put(ea)
	return hit, limit
}

// blockedBy maps the Sentinel rule that blocked to its document rule and
// the limit it applied to the value it saw.
func (g *gate) blockedBy(tr any, args []any) (*ruleState, int64) {
	switch r := tr.(type) {
	case *hotspot.Rule:
		if i := r.ParamIndex; i >= 0 && i < len(g.owner) && i < len(args) && g.owner[i] != nil {
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
	if len(g.hot) > 0 {
		return g.hot[0].st, g.slots[0].Threshold // slots[0] is hot[0]'s base
	}
	return g.flows[0].st, int64(g.flows[0].r.Threshold)
}
