package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/wsedge/auth"
)

// TestWatchReloadOnSIGHUP: a SIGHUP makes the edge's verifier re-read its
// key files; a bad file is logged and leaves the keys in use.
func TestWatchReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "key.pem")
	key1, tok1 := edKey(t)
	key2, tok2 := edKey(t)
	writeKey(t, file, key1)
	ver, err := auth.New(auth.Config{KeyFiles: []string{file}})
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	stop := watchReload(context.Background(), ver, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	defer stop()

	writeKey(t, file, key2)
	hangUp(t)
	waitUntil(t, "the new key to verify", func() bool { _, err := ver.Verify(tok2); return err == nil })
	if _, err := ver.Verify(tok1); err == nil {
		t.Error("the replaced key still verifies")
	}
	waitUntil(t, "the reload to be logged", func() bool { return strings.Contains(logs.String(), "token keys reloaded on SIGHUP") })

	if err := os.WriteFile(file, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	hangUp(t)
	waitUntil(t, "the bad file to be logged", func() bool {
		return strings.Contains(logs.String(), "token keys not reloaded on SIGHUP") && strings.Contains(logs.String(), file)
	})
	if _, err := ver.Verify(tok2); err != nil {
		t.Errorf("key in use dropped after a bad file: %v", err)
	}
	stop()
	stop()
}

func hangUp(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// edKey returns a public key and a token it verifies.
func edKey(t *testing.T) (ed25519.PublicKey, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"sub": "u1", "tenant": "acme", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pub, tok
}

func writeKey(t *testing.T, file string, pub ed25519.PublicKey) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitUntil polls cond until it holds or 10 s pass.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lockedBuffer is a log destination safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
