package auth_test

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the package's dependencies to the standard library,
// golang-jwt and Herald's events package.
func TestImports(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"github.com/golang-jwt/jwt/v5": true, "github.com/heraldrt/herald/events": true}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(p, "/")
			if !allowed[p] && strings.Contains(first, ".") {
				t.Errorf("%s imports %s: only the standard library, golang-jwt/jwt/v5 and herald/events are allowed", name, p)
			}
		}
	}
}
