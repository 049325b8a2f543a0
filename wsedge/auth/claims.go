package auth

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/events"
)

// Claims are what a verified token says about the connection.
type Claims struct {
	Subject   string    // sub: the user id
	Tenant    string    // tenant
	Device    string    // device; empty when the token names none
	Topics    []string  // topics: names or path.Match globs the user may subscribe to
	Expires   time.Time // exp
	IssuedAt  time.Time // iat; zero when absent
	NotBefore time.Time // nbf; zero when absent
	Issuer    string    // iss; empty when absent
}

// MayTopic reports whether topic is a valid topic name that one of the
// topics claim's names or globs (path.Match) allows.
func (c Claims) MayTopic(topic string) bool {
	if !events.ValidID(topic) {
		return false
	}
	for _, g := range c.Topics {
		if ok, _ := path.Match(g, topic); ok {
			return true
		}
	}
	return false
}

// wireClaims is the token payload as JSON.
type wireClaims struct {
	jwt.RegisteredClaims
	Tenant string   `json:"tenant"`
	Device string   `json:"device,omitempty"`
	Topics []string `json:"topics,omitempty"`
}

// checkClaims validates a signed payload: the shape first (so a token that
// is both expired and malformed is invalid, which a fresh token would not
// fix), then issuer and audience, then time.
func (v *Verifier) checkClaims(wc *wireClaims) (Claims, error) {
	if err := checkShape(wc); err != nil {
		return Claims{}, err
	}
	if wc.ExpiresAt == nil {
		return Claims{}, invalid(jwt.ErrTokenRequiredClaimMissing, "claim exp is missing")
	}
	if err := v.checkIssuerAudience(wc); err != nil {
		return Claims{}, err
	}
	now := v.cfg.Now()
	if nbf := wc.NotBefore; nbf != nil && now.Before(nbf.Add(-v.cfg.Leeway)) {
		return Claims{}, invalid(jwt.ErrTokenNotValidYet, "token not valid yet (nbf %s)", stamp(nbf.Time))
	}
	if exp := wc.ExpiresAt.Time; !now.Before(exp.Add(v.cfg.Leeway)) {
		return Claims{}, &tokenError{kind: ErrExpired, msg: "token expired at " + stamp(exp), cause: jwt.ErrTokenExpired}
	}
	return wc.claims(), nil
}

func (v *Verifier) checkIssuerAudience(wc *wireClaims) error {
	if want := v.cfg.Issuer; want != "" {
		if wc.Issuer == "" {
			return invalid(jwt.ErrTokenRequiredClaimMissing, "claim iss is missing (want %q)", want)
		}
		if wc.Issuer != want {
			return invalid(jwt.ErrTokenInvalidIssuer, "claim iss is %.64q, want %q", wc.Issuer, want)
		}
	}
	if want := v.cfg.Audience; want != "" {
		if len(wc.Audience) == 0 {
			return invalid(jwt.ErrTokenRequiredClaimMissing, "claim aud is missing (want %q)", want)
		}
		if !slices.Contains(wc.Audience, want) {
			return invalid(jwt.ErrTokenInvalidAudience, "claim aud does not include %q", want)
		}
	}
	return nil
}

// checkShape checks the Herald claims: sub, tenant, device and topics.
func checkShape(wc *wireClaims) error {
	switch {
	case wc.Subject == "":
		return invalid(jwt.ErrTokenRequiredClaimMissing, "claim sub is missing")
	case !events.ValidID(wc.Subject):
		return invalid(jwt.ErrTokenInvalidSubject, "claim sub %.64q is not a user id ([A-Za-z0-9_.@-]{1,128})", wc.Subject)
	case wc.Tenant == "":
		return invalid(jwt.ErrTokenRequiredClaimMissing, "claim tenant is missing")
	case !events.ValidTenant(wc.Tenant):
		return invalid(jwt.ErrTokenInvalidClaims, "claim tenant %.64q is not a tenant id ([A-Za-z0-9_-]{1,64})", wc.Tenant)
	case wc.Device != "" && !events.ValidID(wc.Device):
		return invalid(jwt.ErrTokenInvalidClaims, "claim device %.64q is not a device id ([A-Za-z0-9_.@-]{1,128})", wc.Device)
	case len(wc.Topics) > MaxTopics:
		return invalid(jwt.ErrTokenInvalidClaims, "claim topics has %d entries, at most %d", len(wc.Topics), MaxTopics)
	}
	for _, t := range wc.Topics {
		if !validTopicPattern(t) {
			return invalid(jwt.ErrTokenInvalidClaims, "claim topics entry %.64q is not a topic name or glob", t)
		}
	}
	return nil
}

// globMeta are the path.Match characters a topics entry may hold besides
// those of a topic name.
const globMeta = `*?[]^\`

// validTopicPattern reports whether p is a topic name or a well-formed
// path.Match pattern made of topic-name characters and glob syntax.
func validTopicPattern(p string) bool {
	if len(p) == 0 || len(p) > 128 {
		return false
	}
	meta := false
	for i := 0; i < len(p); i++ {
		if strings.IndexByte(globMeta, p[i]) >= 0 {
			meta = true
		} else if !events.ValidID(p[i : i+1]) {
			return false
		}
	}
	if !meta {
		return true
	}
	_, err := path.Match(p, "") // path.Match checks the whole pattern
	return err == nil
}

func (wc *wireClaims) claims() Claims {
	c := Claims{
		Subject: wc.Subject,
		Tenant:  wc.Tenant,
		Device:  wc.Device,
		Topics:  wc.Topics,
		Expires: wc.ExpiresAt.UTC(),
		Issuer:  wc.Issuer,
	}
	if wc.IssuedAt != nil {
		c.IssuedAt = wc.IssuedAt.UTC()
	}
	if wc.NotBefore != nil {
		c.NotBefore = wc.NotBefore.UTC()
	}
	return c
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// String describes the claims for logs.
func (c Claims) String() string {
	return fmt.Sprintf("sub=%s tenant=%s device=%s topics=%v exp=%s", c.Subject, c.Tenant, c.Device, c.Topics, stamp(c.Expires))
}
