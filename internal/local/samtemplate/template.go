// Package samtemplate is local tooling that reads template.yaml; it never
// ships in a Lambda bootstrap. cmd/invoke builds a function's environment
// from it, and tests hold the template to the project's rules.
//
// Intrinsic functions are normalized to their long form, whichever form the
// template uses: `!Ref X` becomes map{"Ref": "X"}, `!GetAtt A.B` becomes
// map{"Fn::GetAtt": ["A", "B"]}, `!Sub s` becomes map{"Fn::Sub": s}, and so
// on. Every value is then a plain Go value (map[string]any, []any, string,
// int, float64, bool, nil) that Eval can resolve against parameter values.
package samtemplate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Resource types this package knows.
const (
	TypeFunction = "AWS::Serverless::Function"
	TypeQueue    = "AWS::SQS::Queue"
	TypeBucket   = "AWS::S3::Bucket"
)

// Template is a parsed SAM template.
type Template struct {
	// Dir is the directory of the template file ("" for Parse); CodeUri
	// paths are relative to it.
	Dir         string
	Description string
	Parameters  map[string]Parameter
	Mappings    map[string]any
	Conditions  map[string]any
	// Globals is the Globals section, e.g. Globals["Function"].
	Globals   map[string]any
	Resources map[string]Resource
	Outputs   map[string]any
}

// Parameter is one entry of the Parameters section.
type Parameter struct {
	Type        string
	Description string
	// Default is the default rendered as a string (as Ref returns it);
	// HasDefault tells an empty default from none.
	Default        string
	HasDefault     bool
	AllowedValues  []string
	AllowedPattern string
	MinValue       *float64
	MaxValue       *float64
	NoEcho         bool
}

// Resource is one entry of the Resources section.
type Resource struct {
	Type       string
	Properties map[string]any
	Metadata   map[string]any
	Condition  string
	DependsOn  []string
	// DeletionPolicy and UpdateReplacePolicy as written ("" when absent).
	DeletionPolicy      string
	UpdateReplacePolicy string
}

// Load reads and parses a template file.
func Load(file string) (*Template, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("samtemplate: %w", err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("samtemplate: %s: %w", file, err)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("samtemplate: %w", err)
	}
	t.Dir = filepath.Dir(abs)
	return t, nil
}

// Parse parses a template from YAML (or JSON, which is YAML).
func Parse(data []byte) (*Template, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	v, err := convert(&doc)
	if err != nil {
		return nil, err
	}
	root, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("parse: the template is not a mapping")
	}
	t := &Template{
		Description: str(root["Description"]),
		Parameters:  map[string]Parameter{},
		Mappings:    asMap(root["Mappings"]),
		Conditions:  asMap(root["Conditions"]),
		Globals:     asMap(root["Globals"]),
		Resources:   map[string]Resource{},
		Outputs:     asMap(root["Outputs"]),
	}
	for name, raw := range asMap(root["Parameters"]) {
		p, err := parseParameter(asMap(raw))
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", name, err)
		}
		t.Parameters[name] = p
	}
	for id, raw := range asMap(root["Resources"]) {
		m := asMap(raw)
		r := Resource{
			Type:       str(m["Type"]),
			Properties: asMap(m["Properties"]),
			Metadata:   asMap(m["Metadata"]),
			Condition:  str(m["Condition"]),

			DeletionPolicy:      str(m["DeletionPolicy"]),
			UpdateReplacePolicy: str(m["UpdateReplacePolicy"]),
		}
		switch d := m["DependsOn"].(type) {
		case string:
			r.DependsOn = []string{d}
		case []any:
			for _, x := range d {
				r.DependsOn = append(r.DependsOn, str(x))
			}
		}
		if r.Type == "" {
			return nil, fmt.Errorf("resource %s: no Type", id)
		}
		t.Resources[id] = r
	}
	return t, nil
}

func parseParameter(m map[string]any) (Parameter, error) {
	p := Parameter{
		Type:           str(m["Type"]),
		Description:    str(m["Description"]),
		AllowedPattern: str(m["AllowedPattern"]),
	}
	if d, ok := m["Default"]; ok {
		p.Default, p.HasDefault = scalarString(d), true
	}
	for _, v := range asSlice(m["AllowedValues"]) {
		p.AllowedValues = append(p.AllowedValues, scalarString(v))
	}
	for key, dst := range map[string]**float64{"MinValue": &p.MinValue, "MaxValue": &p.MaxValue} {
		if v, ok := m[key]; ok {
			f, err := toFloat(v)
			if err != nil {
				return p, fmt.Errorf("%s: %w", key, err)
			}
			*dst = &f
		}
	}
	if b, ok := m["NoEcho"].(bool); ok {
		p.NoEcho = b
	} else if s := str(m["NoEcho"]); strings.EqualFold(s, "true") {
		p.NoEcho = true
	}
	return p, nil
}

// ResourcesOfType returns the logical IDs of the resources of a type, sorted.
func (t *Template) ResourcesOfType(typ string) []string {
	var ids []string
	for id, r := range t.Resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// convert turns a YAML node into plain Go values, with the CloudFormation
// short-form tags rewritten to the long form.
func convert(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return convert(n.Content[0])
	case yaml.AliasNode:
		return convert(n.Alias)
	}
	if tag := n.Tag; strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!") {
		return convertIntrinsic(n)
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			var key string
			if err := n.Content[i].Decode(&key); err != nil {
				return nil, fmt.Errorf("line %d: key: %w", n.Content[i].Line, err)
			}
			v, err := convert(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[key] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := convert(c)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	default:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return v, nil
	}
}

func convertIntrinsic(n *yaml.Node) (any, error) {
	name := strings.TrimPrefix(n.Tag, "!")
	// The argument is the node without its tag.
	arg := *n
	arg.Tag = ""
	if n.Kind == yaml.ScalarNode {
		arg.Tag = "!!str"
	}
	v, err := convert(&arg)
	if err != nil {
		return nil, err
	}
	switch name {
	case "Ref":
		return map[string]any{"Ref": v}, nil
	case "Condition":
		return map[string]any{"Condition": v}, nil
	case "GetAtt":
		if s, ok := v.(string); ok {
			res, attr, found := strings.Cut(s, ".")
			if !found {
				return nil, fmt.Errorf("line %d: !GetAtt %q: want Resource.Attribute", n.Line, s)
			}
			return map[string]any{"Fn::GetAtt": []any{res, attr}}, nil
		}
		return map[string]any{"Fn::GetAtt": v}, nil
	default:
		return map[string]any{"Fn::" + name: v}, nil
	}
}

func asMap(v any) map[string]any {
	if m, ok := v.(map[string]any); ok {
		return m
	}
	return map[string]any{}
}

func asSlice(v any) []any {
	if s, ok := v.([]any); ok {
		return s
	}
	return nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// scalarString renders a YAML scalar the way CloudFormation hands it on.
func scalarString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	default:
		return fmt.Sprint(x)
	}
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case int:
		return float64(x), nil
	case float64:
		return x, nil
	case string:
		var f float64
		_, err := fmt.Sscan(x, &f)
		return f, err
	}
	return 0, fmt.Errorf("%v is not a number", v)
}

// cleanCodeURI renders a CodeUri as a Go package path relative to the
// template directory: "." stays ".", "functions/router/" becomes
// "./functions/router".
func cleanCodeURI(uri string) string {
	if uri == "" || filepath.IsAbs(uri) {
		return uri
	}
	c := path.Clean(filepath.ToSlash(uri))
	if c == "." || strings.HasPrefix(c, "../") {
		return c
	}
	return "./" + c
}
