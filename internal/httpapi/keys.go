package httpapi

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sync/atomic"
)

// ErrNoKeys is returned by LoadKeys for a file without a single key.
var ErrNoKeys = errors.New("httpapi: the API keys file holds no key")

// MinKeyLen is the shortest service key accepted.
const MinKeyLen = 16

// Key is one service key: a name (for logs and metrics), the secret, and
// the tenant it may act on ("*" for every tenant).
type Key struct {
	Name   string
	Tenant string
	sum    [sha256.Size]byte
}

// MayActOn reports whether the key may act on tenant.
func (k *Key) MayActOn(tenant string) bool { return k.Tenant == "*" || k.Tenant == tenant }

// Keys is a set of service keys that can be replaced while in use.
type Keys struct {
	file string
	set  atomic.Pointer[[]Key]
}

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)
	tenantRE = regexp.MustCompile(`^([A-Za-z0-9_-]{1,64}|\*)$`)
)

// LoadKeys reads the keys file: one key per line, "<name> <key> <tenant or
// *>", blank lines and lines starting with # ignored. A bad line is refused
// with its number and field; nothing is loaded then.
func LoadKeys(file string) (*Keys, error) {
	k := &Keys{file: file}
	if err := k.Reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// ParseKeys reads keys in the file's format from raw, named source in
// errors; such a set has no file to Reload from.
func ParseKeys(source string, raw []byte) (*Keys, error) {
	set, err := parseKeys(source, raw)
	if err != nil {
		return nil, err
	}
	k := &Keys{}
	k.set.Store(&set)
	return k, nil
}

// Reload reads the file again; on any error the keys in use stay.
func (k *Keys) Reload() error {
	if k.file == "" {
		return errors.New("API keys: not read from a file")
	}
	raw, err := os.ReadFile(k.file)
	if err != nil {
		return fmt.Errorf("API keys: %w", err)
	}
	set, err := parseKeys(k.file, raw)
	if err != nil {
		return err
	}
	k.set.Store(&set)
	return nil
}

func parseKeys(file string, raw []byte) ([]Key, error) {
	var set []Key
	names := map[string]int{}
	secrets := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 || text[0] == '#' {
			continue
		}
		f := bytes.Fields(text)
		bad := func(field, format string, args ...any) error {
			return fmt.Errorf("API keys file %s line %d: field %s: %s", file, line, field, fmt.Sprintf(format, args...))
		}
		switch {
		case len(f) != 3:
			return nil, bad("line", "%d fields: want \"<name> <key> <tenant or *>\"", len(f))
		// A bad name or tenant is not quoted: with the columns in the wrong
		// order it may be a key, and this error goes to the log.
		case !nameRE.Match(f[0]):
			return nil, bad("name", "%d characters, not [A-Za-z0-9_.@-]{1,64} (not shown: it may be a key)", len(f[0]))
		case len(f[1]) < MinKeyLen:
			return nil, bad("key", "%d characters: at least %d", len(f[1]), MinKeyLen)
		case !tenantRE.Match(f[2]):
			return nil, bad("tenant", "%d characters, not a tenant id or * (not shown: it may be a key)", len(f[2]))
		}
		if prev, dup := names[string(f[0])]; dup {
			return nil, bad("name", "%q is also on line %d", f[0], prev)
		}
		names[string(f[0])] = line
		// One secret, one binding: Lookup would answer with the last line,
		// so a key repeated with another tenant (or *) would act for it.
		sum := sha256.Sum256(f[1])
		if prev, dup := secrets[sum]; dup {
			return nil, bad("key", "the same key is also on line %d", prev)
		}
		secrets[sum] = line
		set = append(set, Key{Name: string(f[0]), Tenant: string(f[2]), sum: sum})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("API keys file %s: %w", file, err)
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("API keys file %s: %w", file, ErrNoKeys)
	}
	return set, nil
}

// Lookup returns the key whose secret is secret, or nil. It compares with
// every key in constant time (of SHA-256 sums, so the secrets' lengths do
// not show either).
func (k *Keys) Lookup(secret string) *Key {
	sum := sha256.Sum256([]byte(secret))
	var found *Key
	set := *k.set.Load()
	for i := range set {
		if subtle.ConstantTimeCompare(sum[:], set[i].sum[:]) == 1 {
			found = &set[i]
		}
	}
	return found
}
