package httpapi

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPIDescribesEveryRoute checks that openapi.json is valid JSON
// and describes exactly the routes the API serves, with the methods it
// serves them with, and every error status of the contract.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"GET /v1/inbox", "GET /v1/inbox/unread", "POST /v1/inbox/read", "POST /v1/publish",
		"POST /v1/publish/batch", "GET /v1/presence", "GET /v1/online", "GET /v1/openapi.json",
	}
	var got []string
	for path, ops := range doc.Paths {
		for method := range ops {
			got = append(got, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %s paths %v, want %v", doc.OpenAPI, got, want)
	}
	for _, code := range []string{`"400"`, `"401"`, `"403"`, `"404"`, `"413"`, `"429"`, `"503"`} {
		if !strings.Contains(string(openAPI), code) {
			t.Errorf("no %s answer described", code)
		}
	}
}
