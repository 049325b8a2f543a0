package archtest

import (
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// A rule returns one message per violation it finds in the graph. Rules
// about packages that do not exist find nothing.
type rule struct {
	name  string
	check func(*graph) []string
}

var rules = []rule{
	{"events imports only the standard library", eventsOnlyStandard},
	{"stages do not depend on each other", stagesApart},
	{"store depends on no other herald package", storeAlone},
	{"nothing imports cmd", nothingImportsCmd},
	{"test helpers only in tests", testHelpersOnlyInTests},
	{"every package has a doc.go", docGoEverywhere},
}

var stages = []string{"producer", "dispatcher", "wsedge"}

// packagesWithin returns the module packages in dir and its subpackages;
// none when dir does not exist yet.
func (g *graph) packagesWithin(dir string) []*pkg {
	var out []*pkg
	for _, p := range g.own {
		if g.within(p.ImportPath, dir) {
			out = append(out, p)
		}
	}
	return out
}

func eventsOnlyStandard(g *graph) []string {
	var v []string
	for _, p := range g.packagesWithin("events") {
		for _, dep := range p.Deps {
			if d := g.all[dep]; (d == nil || !d.Standard) && !g.within(dep, "events") {
				v = append(v, fmt.Sprintf("%s depends on %s; events may import only the standard library", g.rel(p.ImportPath), g.show(dep)))
			}
		}
	}
	return v
}

func stagesApart(g *graph) []string {
	var v []string
	for _, from := range stages {
		for _, p := range g.packagesWithin(from) {
			for _, dep := range p.Deps {
				for _, to := range stages {
					if to != from && g.within(dep, to) {
						v = append(v, fmt.Sprintf("%s depends on %s; %s talk only through Redis",
							g.rel(p.ImportPath), g.rel(dep), strings.Join(stages, ", ")))
					}
				}
			}
		}
	}
	return v
}

func storeAlone(g *graph) []string {
	var v []string
	for _, p := range g.packagesWithin("store") {
		for _, dep := range p.Deps {
			if g.isOwn(dep) && !g.within(dep, "store") {
				v = append(v, fmt.Sprintf("%s depends on %s; store may not import other Herald packages", g.rel(p.ImportPath), g.rel(dep)))
			}
		}
	}
	return v
}

func nothingImportsCmd(g *graph) []string {
	var v []string
	for _, p := range g.own {
		if g.within(p.ImportPath, "cmd") {
			continue
		}
		for _, imp := range slices.Concat(p.Imports, p.TestImports, p.XTestImports) {
			if g.within(imp, "cmd") {
				v = append(v, fmt.Sprintf("%s imports %s; nothing imports cmd/", g.rel(p.ImportPath), g.rel(imp)))
			}
		}
	}
	return v
}

// isTestHelper reports whether the module package at importPath exists to
// help tests and must stay out of production code.
func (g *graph) isTestHelper(importPath string) bool {
	if !g.isOwn(importPath) {
		return false
	}
	switch g.rel(importPath) {
	case "internal/redistest", "internal/leakcheck":
		return true
	}
	p := g.all[importPath]
	return p != nil && strings.HasSuffix(p.Name, "test")
}

func testHelpersOnlyInTests(g *graph) []string {
	var v []string
	for _, p := range g.own {
		if g.within(p.ImportPath, "cmd/herald") || g.isTestHelper(p.ImportPath) {
			continue // the demo, and helpers built on helpers
		}
		for _, imp := range p.Imports {
			if g.isTestHelper(imp) {
				v = append(v, fmt.Sprintf("%s imports the test helper %s outside its tests", g.rel(p.ImportPath), g.rel(imp)))
			}
		}
	}
	return v
}

func docGoEverywhere(g *graph) []string {
	var v []string
	for _, p := range g.own {
		if len(p.GoFiles)+len(p.CgoFiles) == 0 {
			continue // only test files: e2e and the like
		}
		if problem := docProblem(p); problem != "" {
			v = append(v, g.rel(p.ImportPath)+": "+problem)
		}
	}
	return v
}

// docProblem returns what is wrong with p's doc.go, or "".
func docProblem(p *pkg) string {
	path := filepath.Join(p.Dir, "doc.go")
	if _, err := os.Stat(path); err != nil {
		return "no doc.go: say what the package owns, who may import it and what is safe for concurrent use"
	}
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.PackageClauseOnly|parser.ParseComments)
	if err != nil {
		return "doc.go does not parse: " + err.Error()
	}
	if f.Doc == nil || strings.TrimSpace(f.Doc.Text()) == "" {
		return "doc.go has no package comment"
	}
	if want := "Package " + p.Name + " "; p.Name != "main" && !strings.HasPrefix(f.Doc.Text(), want) {
		return "the package comment in doc.go must start with \"" + want + "\""
	}
	return ""
}
