package keys

import "strings"

// FeedKind says whose feed it is.
type FeedKind uint8

const (
	FeedUser   FeedKind = iota + 1 // one user's own feed
	FeedTenant                     // everyone in the tenant
	FeedTopic                      // subscribers of a topic
)

// Feed names one feed. Name is the user id for FeedUser, the topic name for
// FeedTopic and empty for FeedTenant.
type Feed struct {
	Tenant string
	Kind   FeedKind
	Name   string
}

// UserFeed, TenantFeed and TopicFeed build feeds.
func UserFeed(tenant, user string) Feed   { return Feed{Tenant: tenant, Kind: FeedUser, Name: user} }
func TenantFeed(tenant string) Feed       { return Feed{Tenant: tenant, Kind: FeedTenant} }
func TopicFeed(tenant, topic string) Feed { return Feed{Tenant: tenant, Kind: FeedTopic, Name: topic} }

// ClientName is the feed's name on the WebSocket protocol, from the point of
// view of a connected user: "user", "tenant" or "topic:<name>".
func (f Feed) ClientName() string {
	switch f.Kind {
	case FeedUser:
		return "user"
	case FeedTenant:
		return "tenant"
	case FeedTopic:
		return "topic:" + f.Name
	}
	return ""
}

// ParseClientName is the inverse of ClientName for a connected user.
func ParseClientName(tenant, user, name string) (Feed, bool) {
	switch {
	case name == "user":
		return UserFeed(tenant, user), true
	case name == "tenant":
		return TenantFeed(tenant), true
	case strings.HasPrefix(name, "topic:") && len(name) > len("topic:"):
		return TopicFeed(tenant, name[len("topic:"):]), true
	}
	return Feed{}, false
}

// Tag is the feed's hash tag content, e.g. "acme:u:42".
func (f Feed) Tag() string {
	switch f.Kind {
	case FeedUser:
		return f.Tenant + ":u:" + f.Name
	case FeedTenant:
		return f.Tenant + ":t"
	case FeedTopic:
		return f.Tenant + ":topic:" + f.Name
	}
	return f.Tenant + ":?"
}

// FeedStream is the feed's stream: herald:feed:{acme:u:42}.
func (s Space) FeedStream(f Feed) string { return s.p() + "feed:{" + f.Tag() + "}" }

// FeedMeta is the feed's hash: seq, epoch, last source ids.
func (s Space) FeedMeta(f Feed) string { return s.p() + "feed:{" + f.Tag() + "}:meta" }

// FeedChannel is the Pub/Sub channel where new entries of the feed appear.
func (s Space) FeedChannel(f Feed) string { return s.p() + "ch:{" + f.Tag() + "}" }
