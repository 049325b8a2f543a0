package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// adminTokenEnv holds the admin token.
const adminTokenEnv = "HERALD_ADMIN_TOKEN"

// secretEnvs names the flags whose values are secrets, with the variable
// each is read from. Whichever command registers one of them, its value may
// also come from a file: --<flag>-file or <VARIABLE>_FILE, one trailing
// newline trimmed (Docker and Kubernetes secrets). `herald config` prints
// them redacted. Precedence: --<flag>, --<flag>-file, <VARIABLE>,
// <VARIABLE>_FILE, the default; a value and its file at the same level
// are refused.
var secretEnvs = map[string]string{
	"jwt-hs256-secret": secretEnv,
	"secret":           secretEnv, // token, listen and bench mint with the edge's secret
	"admin-token":      adminTokenEnv,
	"redis-url":        "HERALD_REDIS_URL", // its password
	"token":            "HERALD_TOKEN",     // herald listen's JWT
}

// addSecretFileFlags adds --<flag>-file for every secret flag the command
// has; parse calls it before parsing.
func (f *flags) addSecretFileFlags() {
	var names []string
	f.VisitAll(func(fl *flag.Flag) {
		if _, ok := secretEnvs[fl.Name]; ok && f.Lookup(fl.Name+"-file") == nil {
			names = append(names, fl.Name)
		}
	})
	for _, name := range names {
		f.FlagSet.String(name+"-file", "", fmt.Sprintf("read --%s from this file, one trailing newline trimmed (env %s_FILE)", name, secretEnvs[name]))
	}
}

// resolveSecrets sets every secret flag not given on the command line from
// its file flag, its variable or its variable's file, and notes where each
// came from for printSettings.
func (f *flags) resolveSecrets() error {
	given := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	for name, env := range secretEnvs {
		fl, file := f.Lookup(name), f.Lookup(name+"-file")
		if fl == nil || file == nil {
			continue
		}
		v, from, path, err := secretValue(name, env, given, file.Value.String())
		if err != nil && from != "" {
			return fmt.Errorf("%w: %s: %v", errUsage, from, err)
		}
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if from == "" {
			continue // the flag or its default
		}
		if err := fl.Value.Set(v); err != nil {
			return fmt.Errorf("%w: %s: %v", errUsage, from, err)
		}
		f.from[name] = from
		if from == env+"_FILE" {
			_ = file.Value.Set(path) // a string flag: never fails
			f.from[name+"-file"] = from
		}
	}
	return nil
}

// secretValue returns the value of secret flag name, its source and the
// file it was read from, if any. The source is "" when the value is the
// command line flag itself or the default.
func secretValue(name, env string, given map[string]bool, filePath string) (v, from, path string, err error) {
	envVal, envSet := os.LookupEnv(env)
	envFile, envFileSet := os.LookupEnv(env + "_FILE")
	envSet, envFileSet = envSet && envVal != "", envFileSet && envFile != ""
	switch {
	case given[name] && given[name+"-file"]:
		return "", "", "", fmt.Errorf("--%s and --%s-file are both given: pass one", name, name)
	case given[name]:
		return "", "", "", nil
	case given[name+"-file"]:
		v, err = readSecretFile(filePath)
		return v, "--" + name + "-file", filePath, err
	case envSet && envFileSet:
		return "", "", "", fmt.Errorf("%s and %s_FILE are both set: set one", env, env)
	case envSet:
		return envVal, env, "", nil
	case envFileSet:
		v, err = readSecretFile(envFile)
		return v, env + "_FILE", envFile, err
	}
	return "", "", "", nil
}

// readSecretFile reads a secret from path, trimming one trailing newline.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return s, nil
}

// isSecretFlag reports whether a flag's value must not be printed: a
// secret flag, or any other whose name says secret, token or password
// (a switch like --metrics-require-token or a file path is not one).
func isSecretFlag(fl *flag.Flag) bool {
	if _, ok := secretEnvs[fl.Name]; ok {
		return true
	}
	if b, ok := fl.Value.(interface{ IsBoolFlag() bool }); (ok && b.IsBoolFlag()) || strings.HasSuffix(fl.Name, "-file") {
		return false
	}
	return strings.Contains(fl.Name, "secret") || strings.Contains(fl.Name, "token") || strings.Contains(fl.Name, "password")
}

// redactSetting is what herald config prints for a flag's value.
func redactSetting(fl *flag.Flag, v string) string {
	switch {
	case v == "":
		return `""`
	case strings.HasSuffix(fl.Name, "-url"):
		return redactURL(v)
	case isSecretFlag(fl):
		return fmt.Sprintf("<redacted, %d bytes>", len(v))
	}
	return v
}

// redactURL replaces the password of a URL's userinfo with ***, whether or
// not the rest parses (a redis+cluster:// URL lists several hosts).
func redactURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		if strings.Contains(raw, "@") {
			return fmt.Sprintf("<redacted, %d bytes>", len(raw))
		}
		return raw
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return raw
	}
	user, _, hasPassword := strings.Cut(authority[:at], ":")
	if !hasPassword {
		return raw
	}
	return scheme + "://" + user + ":***@" + rest[at+1:]
}
