package main

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Redis's INFO commandstats, sampled with the process figures: for each
// command, metricCmdCalls+name and metricCmdUsec+name. A phase's
// difference says where Redis's time went: the profile behind the Redis
// CPU figures.
const (
	metricCmdCalls = "redis_cmd_calls:"
	metricCmdUsec  = "redis_cmd_usec:"
	metricCmdRead  = "redis_cmdstats" // 1: the reading holds the section
)

// parseCommandStats reads one INFO line such as
// "cmdstat_xadd:calls=12,usec=34,usec_per_call=2.83,..." into m and
// reports whether it was one.
func parseCommandStats(line string, m map[string]float64) bool {
	if line == "# Commandstats" {
		m[metricCmdRead] = 1
		return true
	}
	rest, ok := strings.CutPrefix(line, "cmdstat_")
	if !ok {
		return false
	}
	name, fields, ok := strings.Cut(rest, ":")
	if !ok || name == "" {
		return false
	}
	for f := range strings.SplitSeq(fields, ",") {
		k, v, _ := strings.Cut(f, "=")
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		switch k {
		case "calls":
			m[metricCmdCalls+name] = n
		case "usec":
			m[metricCmdUsec+name] = n
		}
	}
	return true
}

// cmdCost is one Redis command's share of a phase.
type cmdCost struct {
	Name  string  `json:"name"`
	Calls float64 `json:"calls"`
	Usec  float64 `json:"usec"`
}

// maxCmdCosts is how many commands a phase keeps, the costliest first.
const maxCmdCosts = 10

// commandCosts is what each command took between two readings of one
// Redis, the costliest first, at most maxCmdCosts of them; nil unless
// both readings hold the section (a reading that failed has none of it,
// and would count every command since Redis started).
func commandCosts(before, after map[string]float64) []cmdCost {
	if before[metricCmdRead] != 1 || after[metricCmdRead] != 1 {
		return nil
	}
	var out []cmdCost
	for k, usec := range after {
		name, ok := strings.CutPrefix(k, metricCmdUsec)
		if !ok {
			continue
		}
		c := cmdCost{Name: name, Calls: after[metricCmdCalls+name] - before[metricCmdCalls+name], Usec: usec - before[k]}
		if c.Calls > 0 && c.Usec > 0 {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b cmdCost) int {
		return cmp.Or(cmp.Compare(b.Usec, a.Usec), strings.Compare(a.Name, b.Name))
	})
	if len(out) > maxCmdCosts {
		out = out[:maxCmdCosts]
	}
	return out
}

// costsPer describes costs per one of n (notifications, connections):
// "evalsha 15.10 µs (0.030 calls), xadd 3.80 µs (2.010 calls), ...".
func costsPer(costs []cmdCost, n float64) string {
	if n <= 0 || len(costs) == 0 {
		return ""
	}
	parts := make([]string, len(costs))
	for i, c := range costs {
		parts[i] = strings.ToLower(c.Name) + " " + strconv.FormatFloat(c.Usec/n, 'f', 2, 64) +
			" µs (" + strconv.FormatFloat(c.Calls/n, 'f', 3, 64) + " calls)"
	}
	return strings.Join(parts, ", ")
}

// redisCommands is where the Redis processes' time went over the phase,
// per one of n (notifications, connections): "" when unknown.
func (p *phaseResult) redisCommands(n float64) string {
	var out []string
	for _, pp := range p.Processes {
		if s := costsPer(pp.Commands, n); s != "" {
			out = append(out, pp.Name+": "+s)
		}
	}
	return strings.Join(out, "; ")
}
