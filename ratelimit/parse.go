package ratelimit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The document as YAML sees it. Scalars are strings so that nothing is
// coerced behind the SRE's back (yaml.v3 would turn limit: 3.5 into 3); the
// validator parses them.
type docYAML struct {
	Version string     `yaml:"version"`
	Rules   []ruleYAML `yaml:"rules"`
}

type ruleYAML struct {
	Name      string            `yaml:"name"`
	Match     *matchYAML        `yaml:"match"`
	Per       string            `yaml:"per"`
	Limit     string            `yaml:"limit"`
	Interval  string            `yaml:"interval"`
	Action    string            `yaml:"action"`
	MaxWait   string            `yaml:"max_wait"`
	Mode      string            `yaml:"mode"`
	Overrides map[string]string `yaml:"overrides"`
	AppliesTo []string          `yaml:"applies_to"`
}

type matchYAML struct {
	Type string `yaml:"type"`
}

const (
	docFields   = "version, rules"
	ruleFields  = "name, match, per, limit, interval, action, max_wait, mode, overrides, applies_to"
	matchFields = "type"
)

// ParseRules reads and validates a rules document. The document is refused
// whole when anything is wrong: the error joins one *ValidationError per
// problem (see Problems), each naming the line, the rule and the field, and
// matches ErrInvalid.
func ParseRules(data []byte) (*Document, error) {
	if len(data) > MaxDocumentSize {
		return nil, &ValidationError{Problem: fmt.Sprintf("document is %d bytes, more than the %d allowed", len(data), MaxDocumentSize)}
	}
	root, err := parseNode(data)
	if err != nil {
		return nil, err
	}
	pos := positions(root)
	var raw docYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var decodeErrs []*ValidationError
	if err := dec.Decode(&raw); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, syntaxError(err)
		}
		decodeErrs = pos.translate(te)
	}
	// Fields that did not decode are reported once, by the decoder; the
	// validator checks everything else.
	v := validator{pos: pos, skip: map[string]bool{}}
	for _, e := range decodeErrs {
		v.skip[e.Rule+"\x00"+e.Field] = true
	}
	doc := v.document(&raw)
	errs := make([]error, 0, len(decodeErrs)+len(v.errs))
	for _, e := range decodeErrs {
		errs = append(errs, e)
	}
	errs = append(errs, v.errs...)
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b error) int { return a.(*ValidationError).Line - b.(*ValidationError).Line })
		return nil, errors.Join(errs...)
	}
	return doc, nil
}

// parseNode parses exactly one YAML document that is a mapping.
func parseNode(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ValidationError{Problem: `empty document: want "version: 1" and "rules:" (rules: [] turns every limit off)`}
		}
		return nil, syntaxError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := 0
		if err == nil {
			line = extra.Line
		}
		return nil, &ValidationError{Line: line, Problem: "more than one YAML document (---): want exactly one"}
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, &ValidationError{Line: root.Line, Problem: "the document must be a mapping with version and rules"}
	}
	return root.Content[0], nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func syntaxError(err error) error {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &ValidationError{Line: line, Problem: "YAML syntax: " + m[2]}
	}
	return &ValidationError{Problem: "YAML syntax: " + strings.TrimPrefix(err.Error(), "yaml: ")}
}

// docPos records where things are in the document.
type docPos struct {
	fields    map[string]int // top-level key → line
	line      int
	rulesNull bool // "rules:" with nothing after it
	rules     []rulePos
}

type rulePos struct {
	mapping   bool // false when the item is not a mapping
	null      bool // the item is empty ("-" or "- ~")
	line, end int
	fields    map[string]int        // key → line
	values    map[string]*yaml.Node // key → value node
	overrides map[string]int        // override key → line
}

func positions(m *yaml.Node) *docPos {
	p := &docPos{fields: map[string]int{}, line: m.Line}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		p.fields[k.Value] = k.Line
		if k.Value == "rules" && v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			p.rulesNull = true
		}
		if k.Value != "rules" || v.Kind != yaml.SequenceNode {
			continue
		}
		for _, r := range v.Content {
			p.rules = append(p.rules, rulePositions(r))
		}
	}
	return p
}

func rulePositions(r *yaml.Node) rulePos {
	rp := rulePos{line: r.Line, end: lastLine(r), fields: map[string]int{}, values: map[string]*yaml.Node{}, overrides: map[string]int{}}
	if r.Kind != yaml.MappingNode {
		rp.null = r.Kind == yaml.ScalarNode && r.Tag == "!!null"
		return rp
	}
	rp.mapping = true
	for i := 0; i+1 < len(r.Content); i += 2 {
		k, v := r.Content[i], r.Content[i+1]
		rp.fields[k.Value] = k.Line
		rp.values[k.Value] = v
		if k.Value == "overrides" && v.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(v.Content); j += 2 {
				rp.overrides[v.Content[j].Value] = v.Content[j].Line
			}
		}
		if k.Value == "match" && v.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(v.Content); j += 2 {
				rp.fields["match."+v.Content[j].Value] = v.Content[j].Line
			}
		}
	}
	return rp
}

// lastLine is the last line a node's subtree touches.
func lastLine(n *yaml.Node) int {
	l := n.Line
	for _, c := range n.Content {
		l = max(l, lastLine(c))
	}
	return l
}

// ruleAt returns the index of the rule spanning line, or -1.
func (p *docPos) ruleAt(line int) int {
	for i, r := range p.rules {
		if line >= r.line && line <= r.end {
			return i
		}
	}
	return -1
}

// fieldAt returns the field of rule i on line: the one whose value is
// value on that line if there is one (flow mappings put many on a line),
// else the last field starting at or before it.
func (p *docPos) fieldAt(i, line int, value string) string {
	r := p.rules[i]
	best, bestLine := "", 0
	for f, l := range r.fields {
		if v := r.values[f]; v != nil && v.Line == line && value != "" && v.Value == value {
			return f
		}
		if l <= line && (l > bestLine || l == bestLine && f > best) {
			best, bestLine = f, l
		}
	}
	return best
}

var (
	typeErrLine  = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownField = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	cantDecode   = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (\\S+)$")
	dupKey       = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
)

// translate turns yaml.v3's decoding errors into ValidationErrors that
// name the rule and the field.
func (p *docPos) translate(te *yaml.TypeError) []*ValidationError {
	errs := make([]*ValidationError, 0, len(te.Errors))
	for _, msg := range te.Errors {
		errs = append(errs, p.translateOne(msg))
	}
	return errs
}

func (p *docPos) translateOne(msg string) *ValidationError {
	ve := &ValidationError{Problem: msg}
	m := typeErrLine.FindStringSubmatch(msg)
	if m == nil {
		return ve
	}
	ve.Line, _ = strconv.Atoi(m[1])
	ve.Problem = m[2]
	ri := p.ruleAt(ve.Line)
	if ri >= 0 {
		ve.Rule = p.ruleLabel(ri)
		value := ""
		if sm := cantDecode.FindStringSubmatch(ve.Problem); sm != nil {
			value = sm[2]
		}
		ve.Field = p.fieldAt(ri, ve.Line, value)
	}
	switch {
	case unknownField.MatchString(ve.Problem):
		sm := unknownField.FindStringSubmatch(ve.Problem)
		known := docFields
		switch {
		case strings.HasSuffix(sm[2], "matchYAML"):
			known, ve.Field = matchFields, "match."+sm[1]
		case strings.HasSuffix(sm[2], "ruleYAML"):
			known, ve.Field = ruleFields, sm[1]
		default:
			ve.Rule, ve.Field = "", sm[1]
		}
		ve.Problem = "unknown field; the known ones are " + known
	case dupKey.MatchString(ve.Problem):
		sm := dupKey.FindStringSubmatch(ve.Problem)
		ve.Field = sm[1]
		if ri >= 0 && ve.Field != p.fieldAt(ri, ve.Line, "") {
			ve.Field = p.fieldAt(ri, ve.Line, "") + "." + sm[1] // a key inside overrides or match
		}
		ve.Problem = "given twice (first at line " + sm[2] + ")"
	case cantDecode.MatchString(ve.Problem):
		sm := cantDecode.FindStringSubmatch(ve.Problem)
		ve.Problem = decodeProblem(sm[1], sm[2], sm[3])
		if ri < 0 && strings.Contains(sm[3], "ruleYAML") {
			ve.Field = "rules"
		}
	}
	return ve
}

func decodeProblem(tag, value, into string) string {
	what := map[string]string{"!!seq": "a list", "!!map": "a mapping", "!!str": "text", "!!int": "a number",
		"!!float": "a number", "!!bool": "true/false", "!!null": "empty"}[tag]
	if what == "" {
		what = tag
	}
	if value != "" {
		what = strconv.Quote(value)
	}
	want := "a single value"
	switch {
	case strings.HasPrefix(into, "[]ratelimit.ruleYAML"):
		want = "a list of rules"
	case strings.HasSuffix(into, "ruleYAML"):
		want = "a mapping (one rule)"
	case strings.HasSuffix(into, "matchYAML"):
		want = "a mapping like {type: \"marketing.*\"}"
	case strings.HasPrefix(into, "map["):
		want = `a mapping like {"tenant:acme": 10}`
	case strings.HasPrefix(into, "[]"):
		want = "a list like [push, pub]"
	}
	return fmt.Sprintf("%s where %s is expected", what, want)
}

func (p *docPos) ruleLabel(i int) string {
	if n := p.rules[i].values["name"]; n != nil && n.Kind == yaml.ScalarNode && n.Value != "" {
		return strconv.Quote(n.Value)
	}
	return "#" + strconv.Itoa(i+1)
}
