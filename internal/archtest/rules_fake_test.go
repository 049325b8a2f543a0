package archtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fakeModule = "example.com/h"

// fakeGraph builds a graph of module packages (paths relative to the module)
// and standard packages (paths without a dot), with Deps equal to Imports.
func fakeGraph(pkgs ...*pkg) *graph {
	g := &graph{module: fakeModule, all: map[string]*pkg{}}
	for _, p := range pkgs {
		if p.Standard {
			g.all[p.ImportPath] = p
			continue
		}
		p.ImportPath = fakeModule + "/" + p.ImportPath
		if p.Name == "" {
			p.Name = filepath.Base(p.ImportPath)
		}
		g.all[p.ImportPath] = p
		g.own = append(g.own, p)
	}
	abs := func(imps []string) {
		for i, imp := range imps {
			if d := g.all[imp]; d == nil || !d.Standard {
				imps[i] = fakeModule + "/" + imp
			}
		}
	}
	for _, p := range g.own {
		abs(p.Imports)
		abs(p.TestImports)
		p.Deps = p.Imports
	}
	return g
}

func std(path string) *pkg { return &pkg{ImportPath: path, Standard: true} }

func TestRulesCatchViolations(t *testing.T) {
	tests := []struct {
		rule string
		pkgs []*pkg
		want string // in the single violation; "" means none
	}{
		{"events imports only the standard library", []*pkg{
			std("fmt"), {ImportPath: "internal/keys"},
			{ImportPath: "events", Imports: []string{"fmt", "internal/keys"}},
		}, "events depends on internal/keys"},
		{"events imports only the standard library", []*pkg{
			std("fmt"), {ImportPath: "events/wire", Imports: []string{"fmt"}},
			{ImportPath: "events", Imports: []string{"fmt", "events/wire"}},
		}, ""},
		{"stages do not depend on each other", []*pkg{
			{ImportPath: "wsedge/auth"}, {ImportPath: "producer", Imports: []string{"wsedge/auth"}},
		}, "producer depends on wsedge/auth"},
		{"stages do not depend on each other", []*pkg{
			{ImportPath: "events"}, {ImportPath: "dispatcher", Imports: []string{"events"}, TestImports: []string{"producer"}},
			{ImportPath: "producer", Imports: []string{"events"}},
		}, ""},
		{"store depends on no other herald package", []*pkg{
			{ImportPath: "events"}, {ImportPath: "store", Imports: []string{"events"}},
		}, "store depends on events"},
		{"nothing imports cmd", []*pkg{
			{ImportPath: "cmd/herald", Name: "main"}, {ImportPath: "e2e", TestImports: []string{"cmd/herald"}},
		}, "e2e imports cmd/herald"},
		{"test helpers only in tests", []*pkg{
			{ImportPath: "internal/redistest"}, {ImportPath: "internal/feed", Imports: []string{"internal/redistest"}},
		}, "internal/feed imports the test helper internal/redistest"},
		{"test helpers only in tests", []*pkg{
			{ImportPath: "internal/redistest"},
			{ImportPath: "internal/feedtest", Imports: []string{"internal/redistest"}},
			{ImportPath: "cmd/herald", Name: "main", Imports: []string{"internal/redistest"}},
			{ImportPath: "producer", TestImports: []string{"internal/redistest", "internal/feedtest"}},
		}, ""},
		{"test helpers only in tests", []*pkg{
			{ImportPath: "internal/feedtest"}, {ImportPath: "dispatcher", Imports: []string{"internal/feedtest"}},
		}, "dispatcher imports the test helper internal/feedtest"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			got := check(t, tt.rule, fakeGraph(tt.pkgs...))
			switch {
			case tt.want == "" && len(got) != 0:
				t.Errorf("violations %q, want none", got)
			case tt.want != "" && (len(got) != 1 || !strings.Contains(got[0], tt.want)):
				t.Errorf("violations %q, want one containing %q", got, tt.want)
			}
		})
	}
}

func TestRulesIgnoreMissingPackages(t *testing.T) {
	g := fakeGraph(std("fmt"), &pkg{ImportPath: "internal/keys", Imports: []string{"fmt"}})
	for _, r := range rules[:len(rules)-1] { // the doc.go rule reads the disk
		if got := r.check(g); len(got) != 0 {
			t.Errorf("%s on a module without its packages: %q", r.name, got)
		}
	}
}

func TestDocGoRule(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) string {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if doc != "" {
			if err := os.WriteFile(filepath.Join(d, "doc.go"), []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	files := []string{"x.go"}
	g := fakeGraph(
		&pkg{ImportPath: "good", Dir: write("good", "// Package good does things.\npackage good\n"), GoFiles: files},
		&pkg{ImportPath: "cmd/herald", Name: "main", Dir: write("main", "// Herald runs the pipeline.\npackage main\n"), GoFiles: files},
		&pkg{ImportPath: "e2e", Dir: write("e2e", "")}, // test files only
		&pkg{ImportPath: "missing", Dir: write("missing", ""), GoFiles: files},
		&pkg{ImportPath: "bare", Dir: write("bare", "package bare\n"), GoFiles: files},
		&pkg{ImportPath: "wrong", Dir: write("wrong", "// This package is wrong.\npackage wrong\n"), GoFiles: files},
	)
	got := strings.Join(check(t, "every package has a doc.go", g), "\n")
	for _, want := range []string{"missing: no doc.go", "bare: doc.go has no package comment", `wrong: the package comment in doc.go must start with "Package wrong "`} {
		if !strings.Contains(got, want) {
			t.Errorf("violations lack %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "\n") + 1; n != 3 {
		t.Errorf("%d violations, want 3:\n%s", n, got)
	}
}

// check runs the named rule.
func check(t *testing.T, name string, g *graph) []string {
	t.Helper()
	for _, r := range rules {
		if r.name == name {
			return r.check(g)
		}
	}
	t.Fatalf("no rule %q", name)
	return nil
}
