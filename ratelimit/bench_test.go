package ratelimit

import (
	"strconv"
	"testing"
)

// tenRules mixes per-user, per-tenant and global rules, scoped by type
// globs, with limits high enough that checks pass (the common path).
const tenRules = `version: 1
rules:
  - {name: marketing-user, match: {type: "marketing.*"}, per: user, limit: 1000000, interval: 1m, action: queue, max_wait: 30s}
  - {name: chat-user, match: {type: "chat.*"}, per: user, limit: 1000000, interval: 1s, action: drop}
  - {name: order-user, match: {type: "order.*"}, per: user, limit: 1000000, interval: 1s, action: drop}
  - {name: any-user, per: user, limit: 1000000, interval: 1s, action: drop, overrides: {"tenant:t7": 2000000}}
  - {name: any-tenant, per: tenant, limit: 100000000, interval: 1s, action: drop, overrides: {"tenant:t1": 200000000}}
  - {name: marketing-tenant, match: {type: "marketing.*"}, per: tenant, limit: 100000000, interval: 1m, action: queue, max_wait: 10s}
  - {name: order-tenant, match: {type: "order.*"}, per: tenant, limit: 100000000, interval: 1s, action: drop}
  - {name: any-global, per: global, limit: 1000000000, interval: 1s, action: drop}
  - {name: marketing-global, match: {type: "marketing.*"}, per: global, limit: 1000000000, interval: 1m, action: drop}
  - {name: chat-global, match: {type: "chat.*"}, per: global, limit: 1000000000, interval: 1s, action: drop}
`

// tenRulesExact are the same rules with limits under 400 a second (over an
// hour, never reached here): checked exactly, one Entry per gate, no
// leases.
const tenRulesExact = `version: 1
rules:
  - {name: marketing-user, match: {type: "marketing.*"}, per: user, limit: 1000000, interval: 1h, action: queue, max_wait: 30s}
  - {name: chat-user, match: {type: "chat.*"}, per: user, limit: 1000000, interval: 1h, action: drop}
  - {name: order-user, match: {type: "order.*"}, per: user, limit: 1000000, interval: 1h, action: drop}
  - {name: any-user, per: user, limit: 1000000, interval: 1h, action: drop, overrides: {"tenant:t7": 1400000}}
  - {name: any-tenant, per: tenant, limit: 1000000, interval: 1h, action: drop, overrides: {"tenant:t1": 1400000}}
  - {name: marketing-tenant, match: {type: "marketing.*"}, per: tenant, limit: 1000000, interval: 1h, action: queue, max_wait: 10s}
  - {name: order-tenant, match: {type: "order.*"}, per: tenant, limit: 1000000, interval: 1h, action: drop}
  - {name: any-global, per: global, limit: 1400000, interval: 1h, action: drop}
  - {name: marketing-global, match: {type: "marketing.*"}, per: global, limit: 1400000, interval: 1h, action: drop}
  - {name: chat-global, match: {type: "chat.*"}, per: global, limit: 1400000, interval: 1h, action: drop}
`

type benchUser struct{ tenant, user string }

// benchUsers are 10k users in 100 tenants.
func benchUsers() []benchUser {
	users := make([]benchUser, 10000)
	for i := range users {
		users[i] = benchUser{tenant: "t" + strconv.Itoa(i%100), user: strconv.Itoa(i)}
	}
	return users
}

var benchTypes = []string{"marketing.promo", "order.placed", "chat.message", "system.alert"}

func benchPush(b *testing.B, yaml string) {
	l := newLimiter(b, yaml)
	users := benchUsers()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		u := users[i%len(users)]
		if v := l.Push(u.tenant, u.user, benchTypes[i%len(benchTypes)]); !v.Allow {
			b.Fatalf("limited: %+v", v)
		}
		i++
	}
}

func BenchmarkPushNoRules(b *testing.B) { benchPush(b, "") }

func BenchmarkPush10Rules(b *testing.B) { benchPush(b, tenRules) }

func BenchmarkPush10RulesExact(b *testing.B) { benchPush(b, tenRulesExact) }

func BenchmarkPush10RulesParallel(b *testing.B) {
	l := newLimiter(b, tenRules)
	users := benchUsers()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			u := users[i%len(users)]
			l.Push(u.tenant, u.user, benchTypes[i%len(benchTypes)])
			i++
		}
	})
}

// BenchmarkPushLimited is the refused path: one user over a per-user limit.
func BenchmarkPushLimited(b *testing.B) {
	l := newLimiter(b, `version: 1
rules:
  - {name: per-user, per: user, limit: 1, interval: 1h, action: queue, max_wait: 30s}
`)
	l.Push("t", "u", "x")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if l.Push("t", "u", "x").Allow {
			b.Fatal("allowed")
		}
	}
}
