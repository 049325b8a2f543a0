package events

import (
	"strings"
)

// AudienceKind says who an event is for.
type AudienceKind uint8

const (
	AudienceUser   AudienceKind = iota + 1 // "user:<id>"
	AudienceUsers                          // "users:<id>,<id>,..."
	AudienceTenant                         // "tenant"
	AudienceTopic                          // "topic:<name>"
)

// MaxUsers is the most user ids one "users:" audience may list.
const MaxUsers = 1000

// Audience is the parsed "to" field of an entry.
type Audience struct {
	Kind  AudienceKind
	Users []string // AudienceUser (one) and AudienceUsers (one or more, no repeats)
	Topic string   // AudienceTopic
}

// ToUser addresses one user.
func ToUser(id string) Audience { return Audience{Kind: AudienceUser, Users: []string{id}} }

// ToUsers addresses several users.
func ToUsers(ids ...string) Audience { return Audience{Kind: AudienceUsers, Users: ids} }

// ToTenant addresses everyone in the tenant.
func ToTenant() Audience { return Audience{Kind: AudienceTenant} }

// ToTopic addresses the subscribers of a topic.
func ToTopic(name string) Audience { return Audience{Kind: AudienceTopic, Topic: name} }

// ParseAudience parses the "to" field. Repeated ids in a "users:" list are
// kept once, in first-seen order.
func ParseAudience(s string) (Audience, error) {
	switch {
	case s == "":
		return Audience{}, missing("to")
	case s == "tenant":
		return ToTenant(), nil
	case strings.HasPrefix(s, "user:"):
		id := s[len("user:"):]
		if !ValidID(id) {
			return Audience{}, invalid("to", "user id %q must match [A-Za-z0-9_.@-]{1,128}", clip(id))
		}
		return ToUser(id), nil
	case strings.HasPrefix(s, "users:"):
		return parseUsers(s[len("users:"):])
	case strings.HasPrefix(s, "topic:"):
		name := s[len("topic:"):]
		if !ValidID(name) {
			return Audience{}, invalid("to", "topic name %q must match [A-Za-z0-9_.@-]{1,128}", clip(name))
		}
		return ToTopic(name), nil
	}
	return Audience{}, invalid("to", "%q is not user:<id>, users:<id>,..., tenant or topic:<name>", clip(s))
}

func parseUsers(list string) (Audience, error) {
	if list == "" {
		return Audience{}, invalid("to", "users: needs at least one user id")
	}
	n := strings.Count(list, ",") + 1
	if n > MaxUsers {
		return Audience{}, &ValidationError{Field: "to", Problem: "users: lists more than 1000 user ids", Err: ErrTooLarge}
	}
	ids := make([]string, 0, n)
	seen := make(map[string]struct{}, n)
	for id := range strings.SplitSeq(list, ",") {
		if !ValidID(id) {
			return Audience{}, invalid("to", "user id %q must match [A-Za-z0-9_.@-]{1,128}", clip(id))
		}
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		ids = append(ids, id)
	}
	return ToUsers(ids...), nil
}

// String writes the audience back in the contract's syntax.
func (a Audience) String() string {
	switch a.Kind {
	case AudienceUser:
		if len(a.Users) == 1 {
			return "user:" + a.Users[0]
		}
	case AudienceUsers:
		return "users:" + strings.Join(a.Users, ",")
	case AudienceTenant:
		return "tenant"
	case AudienceTopic:
		return "topic:" + a.Topic
	}
	return ""
}

// Validate checks an audience built in code (ToUser and friends).
func (a Audience) Validate() error {
	s := a.String()
	if s == "" {
		return invalid("to", "audience is empty")
	}
	_, err := ParseAudience(s)
	return err
}

// clip shortens a value quoted in an error message.
func clip(s string) string {
	const max = 48
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
