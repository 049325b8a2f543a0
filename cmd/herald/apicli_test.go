package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAPIClientSendsTheCredentialAndPrintsTheAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Header.Get("Authorization") != "Bearer k-0123456789abcdef":
			w.WriteHeader(401)
			w.Write([]byte(`{"error":{"code":"unauthorized","message":"unknown service key"}}`))
		case r.URL.Path == "/v1/online" && r.URL.Query().Get("tenant") == "acme":
			w.Write([]byte(`{"tenant":"acme","users":2,"connections":3}`))
		default:
			w.WriteHeader(404)
			w.Write([]byte(`{"error":{"code":"not_found","message":"no such endpoint"}}`))
		}
	}))
	defer srv.Close()
	var out bytes.Buffer
	c := &apiClient{url: srv.URL + "/", credential: "k-0123456789abcdef", out: &out}
	if err := c.do(context.Background(), "GET", "/v1/online?tenant=acme", nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "\"connections\": 3") {
		t.Fatalf("printed %q", out.String())
	}
	c.credential = "wrong"
	err := c.do(context.Background(), "GET", "/v1/online?tenant=acme", nil)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "unknown service key") {
		t.Fatalf("error %v", err)
	}
}
