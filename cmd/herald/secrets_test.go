package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// writeSecret writes content to a fresh file and returns its path.
func writeSecret(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSecretsFromFiles(t *testing.T) {
	const url = "redis://:pw-from-a-file@127.0.0.1:6399/0"
	for _, tc := range []struct {
		name, file string
		env        map[string]string // "FILE" is replaced by the file's path
		args       []string          // likewise
		want       string
	}{
		{"flag file", url + "\n", nil, []string{"--redis-url-file", "FILE"}, url},
		{"variable file", url + "\r\n", map[string]string{"HERALD_REDIS_URL_FILE": "FILE"}, nil, url},
		{"flag file beats variable", url, map[string]string{"HERALD_REDIS_URL": "redis://env:6379"}, []string{"--redis-url-file", "FILE"}, url},
		{"flag beats variable file", url, map[string]string{"HERALD_REDIS_URL_FILE": "FILE"}, []string{"--redis-url", "redis://flag:6379"}, "redis://flag:6379"},
		{"one newline trimmed", url + " \n\n", nil, []string{"--redis-url-file", "FILE"}, url + " \n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeSecret(t, tc.file)
			for k, v := range tc.env {
				t.Setenv(k, strings.ReplaceAll(v, "FILE", path))
			}
			args := slices.Clone(tc.args)
			for i := range args {
				args[i] = strings.ReplaceAll(args[i], "FILE", path)
			}
			o, err := parseDispatcherFlags(args)
			if err != nil || o.redis.url != tc.want {
				t.Fatalf("redis URL %q, %v; want %q", o.redis.url, err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"flag and its file", nil, []string{"--redis-url", "redis://x", "--redis-url-file", "/dev/null"}, "both given"},
		{"variable and its file", map[string]string{"HERALD_REDIS_URL": "redis://x", "HERALD_REDIS_URL_FILE": "/dev/null"}, nil, "both set"},
		{"missing file", nil, []string{"--redis-url-file", "/nonexistent/herald-url"}, "--redis-url-file"},
		{"empty file", map[string]string{"HERALD_REDIS_URL_FILE": "/dev/null"}, nil, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := parseDispatcherFlags(tc.args)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want a usage error saying %q", err, tc.want)
			}
		})
	}
}

func TestAdminTokenFromFile(t *testing.T) {
	const token = "admin-token-from-a-file"
	o, err := parseDispatcherFlags([]string{"--admin-token-file", writeSecret(t, token+"\n")})
	if err != nil || o.srv.adminToken != token {
		t.Fatalf("--admin-token-file: token %q, %v; want %q", o.srv.adminToken, err, token)
	}
	t.Setenv(adminTokenEnv+"_FILE", writeSecret(t, token+"\n"))
	o, err = parseDispatcherFlags(nil)
	if err != nil || o.srv.adminToken != token {
		t.Fatalf("%s_FILE: token %q, %v; want %q", adminTokenEnv, o.srv.adminToken, err, token)
	}
}

func TestConfigRedactsSecrets(t *testing.T) {
	const (
		hs256    = "hs256-secret-from-a-file-0123456789abcdef"
		admin    = "admin-token-from-the-environment"
		password = "redis-password-on-the-command-line"
		cli      = "hs256-secret-on-the-command-line-0123456789"
	)
	t.Setenv("HERALD_JWT_HS256_SECRET_FILE", writeSecret(t, hs256+"\n"))
	t.Setenv("HERALD_ADMIN_TOKEN", admin)
	for _, tc := range []struct {
		args  []string
		wants []string // regular expressions
	}{
		{[]string{"edge", "--redis-url", "redis://herald:" + password + "@127.0.0.1:6379/0"}, []string{
			`redis://herald:\*\*\*@127\.0\.0\.1:6379/0\s`,
			`<redacted, 41 bytes>\s+HERALD_JWT_HS256_SECRET_FILE\n`,
			`<redacted, 32 bytes>\s+HERALD_ADMIN_TOKEN\n`,
		}},
		{[]string{"dispatcher", "--redis-url", "redis+cluster://:" + password + "@10.0.0.1:6379,10.0.0.2:6379"}, []string{
			`redis\+cluster://:\*\*\*@10\.0\.0\.1:6379,10\.0\.0\.2:6379\s`,
		}},
		{[]string{"dev", "--jwt-hs256-secret", cli}, []string{`<redacted, 43 bytes>\s+--jwt-hs256-secret\n`}},
		{[]string{"token", "--secret", cli}, []string{`<redacted, 43 bytes>\s+--secret\n`}},
	} {
		var out bytes.Buffer
		if err := configMain(t.Context(), tc.args, &out); err != nil {
			t.Fatalf("herald config %s: %v", strings.Join(tc.args, " "), err)
		}
		for _, secret := range []string{hs256, admin, password, cli} {
			if strings.Contains(out.String(), secret) {
				t.Errorf("herald config %s prints the secret %q:\n%s", tc.args[0], secret, out.String())
			}
		}
		for _, want := range tc.wants {
			if !regexp.MustCompile(want).MatchString(out.String()) {
				t.Errorf("herald config %s: no %q in\n%s", tc.args[0], want, out.String())
			}
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"redis://127.0.0.1:6379/0":               "redis://127.0.0.1:6379/0",
		"redis://user@host:6379":                 "redis://user@host:6379",
		"redis://:pw@host:6379/0":                "redis://:***@host:6379/0",
		"rediss://u:p@ss:w@host/0?x=1":           "rediss://u:***@host/0?x=1",
		"redis://u:pw@host/path@with-at":         "redis://u:***@host/path@with-at",
		"u:pw@host":                              "<redacted, 9 bytes>",
		"redis+cluster://:pw@h1:6379,h2:6379/0 ": "redis+cluster://:***@h1:6379,h2:6379/0 ",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
