package httpapi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKeysNamesLineAndField(t *testing.T) {
	for _, tc := range []struct {
		file, want string
	}{
		{"ops 0123456789abcdef *\n", ""},
		{"# comment\n\nops 0123456789abcdef acme\n", ""},
		{"ops short *\n", "line 1: field key: 5 characters: at least 16"},
		{"\nops 0123456789abcdef\n", "line 2: field line: 2 fields"},
		{"op$ 0123456789abcdef *\n", "line 1: field name"},
		{"ops 0123456789abcdef ac.me\n", "line 1: field tenant"},
		{"ops 0123456789abcdef *\nops 0123456789abcdeX *\n", `line 2: field name: "ops" is also on line 1`},
		{"# nothing\n", "holds no key"},
	} {
		_, err := parseKeys("keys", []byte(tc.file))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.file, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v, want %q", tc.file, err, tc.want)
		}
	}
}

func TestLookupAndReloadKeepsKeysOnError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte("a 0123456789abcdef *\nb fedcba9876543210 acme\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := LoadKeys(file)
	if err != nil {
		t.Fatal(err)
	}
	if k := ks.Lookup("fedcba9876543210"); k == nil || k.Name != "b" || !k.MayActOn("acme") || k.MayActOn("globex") {
		t.Fatalf("lookup b: %+v", k)
	}
	if k := ks.Lookup("0123456789abcdef"); k == nil || !k.MayActOn("globex") {
		t.Fatalf("lookup a: %+v", k)
	}
	for _, s := range []string{"", "0123456789abcde", "0123456789abcdefX"} {
		if k := ks.Lookup(s); k != nil {
			t.Fatalf("lookup %q: %+v", s, k)
		}
	}
	os.WriteFile(file, []byte("broken\n"), 0o600)
	if err := ks.Reload(); err == nil {
		t.Fatal("a broken file reloaded")
	}
	if ks.Lookup("0123456789abcdef") == nil {
		t.Fatal("the keys in use went with a bad reload")
	}
	os.WriteFile(file, []byte("c 0000000000000000c *\n"), 0o600)
	if err := ks.Reload(); err != nil || ks.Lookup("0123456789abcdef") != nil || ks.Lookup("0000000000000000c") == nil {
		t.Fatalf("reload: %v", err)
	}
}

func FuzzParseKeys(f *testing.F) {
	f.Add([]byte("ops 0123456789abcdef *\n"))
	f.Add([]byte("# c\nacme k-0123456789abcdef acme\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		set, err := parseKeys("f", raw)
		if err == nil && len(set) == 0 {
			t.Fatal("no error and no keys")
		}
		for _, k := range set {
			if k.Name == "" || k.Tenant == "" {
				t.Fatalf("empty key %+v", k)
			}
		}
	})
}

func TestFieldValue(t *testing.T) {
	for _, tc := range []struct {
		name, raw, want string
		ok              bool
	}{
		{"type", `"a.b"`, "a.b", true},
		{"type", `3`, "", false},
		{"ttl", `60`, "60", true},
		{"ttl", `"60"`, "60", true},
		{"ttl", `1.5`, "", false},
		{"data", ` {"a":1} `, `{"a":1}`, true},
	} {
		got, err := fieldValue(tc.name, []byte(tc.raw))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s %s: %q %v", tc.name, tc.raw, got, err)
		}
	}
}

// TestDuplicateKeyRefused: one secret on two lines binds it twice; Lookup
// answered with the last line, so a key copied from the acme line onto a
// "*" line silently acted on every tenant. Before the fix the file loaded
// and the acme key could act on globex.
func TestDuplicateKeyRefused(t *testing.T) {
	ks, err := ParseKeys("keys", []byte("acme 0123456789abcdef acme\nops 0123456789abcdef *\n"))
	if err == nil {
		k := ks.Lookup("0123456789abcdef")
		t.Fatalf("a key on two lines loaded: it is %q, tenant %q (acts on globex: %v)", k.Name, k.Tenant, k.MayActOn("globex"))
	}
	if !strings.Contains(err.Error(), "line 2: field key") || strings.Contains(err.Error(), "0123456789abcdef") {
		t.Errorf("error %q: want line 2, field key, and not the secret", err)
	}
}

// TestBadKeysLineDoesNotShowTheKey: with the columns in the wrong order a
// key lands where a name or a tenant goes; the error, which is logged,
// names the line and field without it.
func TestBadKeysLineDoesNotShowTheKey(t *testing.T) {
	const secret = "s3cr3t+K3y/abcdefgh=="
	for _, file := range []string{
		secret + " ops *\n",      // key first
		"ops * " + secret + "\n", // tenant and key swapped
	} {
		_, err := parseKeys("keys", []byte(file))
		if err == nil || !strings.Contains(err.Error(), "line 1: field ") {
			t.Fatalf("%q: %v, want the line and field named", file, err)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "s3cr3t") {
			t.Fatalf("the error shows the key: %v", err)
		}
	}
}
