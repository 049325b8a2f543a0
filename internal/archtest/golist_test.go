package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// pkg is the part of `go list -json` output the rules read.
type pkg struct {
	ImportPath   string
	Name         string
	Dir          string
	Standard     bool
	DepOnly      bool
	GoFiles      []string
	CgoFiles     []string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Deps         []string
	Module       *struct{ Path string }
	Error        *struct{ Err string }
}

// graph is the module's packages and everything they depend on.
type graph struct {
	module string          // module path
	all    map[string]*pkg // by import path, dependencies included
	own    []*pkg          // the module's packages, in `go list` order
}

// rel returns a module import path relative to the module root: "events",
// "internal/redistest", "." for the root.
func (g *graph) rel(importPath string) string {
	if importPath == g.module {
		return "."
	}
	return strings.TrimPrefix(importPath, g.module+"/")
}

// within reports whether importPath is the module package dir or one of its
// subpackages.
func (g *graph) within(importPath, dir string) bool {
	if !g.isOwn(importPath) {
		return false
	}
	r := g.rel(importPath)
	return r == dir || strings.HasPrefix(r, dir+"/")
}

// show returns a module path relative to the module, any other path as is.
func (g *graph) show(importPath string) string {
	if g.isOwn(importPath) {
		return g.rel(importPath)
	}
	return importPath
}

func (g *graph) isOwn(importPath string) bool {
	return importPath == g.module || strings.HasPrefix(importPath, g.module+"/")
}

var loadGraph = sync.OnceValues(func() (*graph, error) {
	root, err := goCmd("env", "GOMOD")
	if err != nil {
		return nil, err
	}
	root = strings.TrimSpace(root)
	if root == "" || root == "/dev/null" {
		return nil, errors.New("not inside a Go module")
	}
	dir := filepath.Dir(root)
	modPath, err := goCmd("-C", dir, "list", "-m")
	if err != nil {
		return nil, err
	}
	out, err := goCmd("-C", dir, "list", "-e", "-deps", "-json", "./...")
	if err != nil {
		return nil, err
	}
	g := &graph{module: strings.TrimSpace(modPath), all: map[string]*pkg{}}
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		p := new(pkg)
		if err := dec.Decode(p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decode go list output: %w", err)
		}
		g.all[p.ImportPath] = p
		if !p.DepOnly && p.Module != nil && p.Module.Path == g.module {
			g.own = append(g.own, p)
		}
	}
	return g, nil
})

// goCmd runs the go command and returns its standard output.
func goCmd(args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}
