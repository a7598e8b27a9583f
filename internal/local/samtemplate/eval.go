package samtemplate

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Values are what Eval resolves intrinsic functions against: parameter
// values (over the template's defaults), pseudo parameters, and whatever
// the caller knows about resources that only exist once deployed.
type Values struct {
	// Parameters override the parameters' defaults.
	Parameters map[string]string
	// Resources are the Ref values of resources, e.g. "DataBucket" ->
	// "s3-fno-data", "ImportQueue" -> a queue URL.
	Resources map[string]string
	// Attributes are GetAtt values, keyed "Resource.Attribute".
	Attributes map[string]string
	// Pseudo parameters. Defaults: us-east-1, 123456789012 (moto's account),
	// stack "s3-fno", partition "aws".
	Region    string
	AccountID string
	StackName string
	Partition string
}

func (v Values) withDefaults() Values {
	if v.Region == "" {
		v.Region = "us-east-1"
	}
	if v.AccountID == "" {
		v.AccountID = "123456789012"
	}
	if v.StackName == "" {
		v.StackName = "s3-fno"
	}
	if v.Partition == "" {
		v.Partition = "aws"
	}
	return v
}

// UnresolvedError reports a value that depends on something Values does not
// give: a resource's Ref or attribute, or a parameter without a default.
type UnresolvedError struct {
	// Name is "DataBucket" (a Ref), "DataBucket.Arn" (a GetAtt) or a
	// parameter name.
	Name string
	// Kind is "resource", "attribute" or "parameter".
	Kind string
}

func (e *UnresolvedError) Error() string {
	switch e.Kind {
	case "parameter":
		return fmt.Sprintf("parameter %s has no default and no value was given", e.Name)
	case "attribute":
		return fmt.Sprintf("needs the deployed value of %s (!GetAtt)", e.Name)
	}
	return fmt.Sprintf("needs the deployed value of %s (!Ref)", e.Name)
}

// noValue is AWS::NoValue: the enclosing property or list item disappears.
type noValue struct{}

// Eval resolves the intrinsic functions in v: Ref, Fn::GetAtt, Fn::Sub,
// Fn::Join, Fn::Select, Fn::Split, Fn::FindInMap, Fn::If, Fn::Equals,
// Fn::Not, Fn::And, Fn::Or and Condition. Maps and lists are resolved
// throughout. A value that needs something Values lacks fails with an
// *UnresolvedError (test with errors.As).
func (t *Template) Eval(v any, vals Values) (any, error) {
	e := &evaluator{t: t, v: vals.withDefaults()}
	out, err := e.eval(v)
	if _, ok := out.(noValue); ok {
		return nil, err
	}
	return out, err
}

// EvalString resolves v and renders the result as a string, as
// CloudFormation does for an environment variable or a Ref of a Number.
func (t *Template) EvalString(v any, vals Values) (string, error) {
	out, err := t.Eval(v, vals)
	if err != nil {
		return "", err
	}
	switch out.(type) {
	case map[string]any, []any:
		return "", fmt.Errorf("%v is not a scalar", out)
	}
	return scalarString(out), nil
}

// EvalInt resolves v to an integer.
func (t *Template) EvalInt(v any, vals Values) (int, error) {
	s, err := t.EvalString(v, vals)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != float64(int(f)) {
			return 0, fmt.Errorf("%q is not an integer", s)
		}
		n = int(f)
	}
	return n, nil
}

// Condition evaluates a named condition of the Conditions section.
func (t *Template) Condition(name string, vals Values) (bool, error) {
	e := &evaluator{t: t, v: vals.withDefaults()}
	return e.condition(name)
}

// ParameterValue is a parameter's value: the override in vals, else the
// default.
func (t *Template) ParameterValue(name string, vals Values) (string, error) {
	p, ok := t.Parameters[name]
	if !ok {
		return "", fmt.Errorf("no parameter %s", name)
	}
	if v, ok := vals.Parameters[name]; ok {
		return v, nil
	}
	if !p.HasDefault {
		return "", &UnresolvedError{Name: name, Kind: "parameter"}
	}
	return p.Default, nil
}

type evaluator struct {
	t     *Template
	v     Values
	depth int
}

func (e *evaluator) eval(v any) (any, error) {
	e.depth++
	defer func() { e.depth-- }()
	if e.depth > 64 {
		return nil, errors.New("intrinsic functions nested too deeply")
	}
	switch x := v.(type) {
	case []any:
		out := make([]any, 0, len(x))
		for i, item := range x {
			r, err := e.eval(item)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			if _, drop := r.(noValue); !drop {
				out = append(out, r)
			}
		}
		return out, nil
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::") {
					return e.intrinsic(k, arg)
				}
			}
		}
		out := make(map[string]any, len(x))
		for _, k := range sortedKeys(x) {
			r, err := e.eval(x[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if _, drop := r.(noValue); !drop {
				out[k] = r
			}
		}
		return out, nil
	default:
		return v, nil
	}
}

func (e *evaluator) intrinsic(fn string, arg any) (any, error) {
	switch fn {
	case "Ref":
		name, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("Ref: want a name, got %v", arg)
		}
		return e.ref(name)
	case "Condition":
		name, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("Condition: want a name, got %v", arg)
		}
		return e.condition(name)
	case "Fn::GetAtt":
		var parts []string
		switch a := arg.(type) {
		case string:
			parts = strings.SplitN(a, ".", 2)
		case []any:
			for _, p := range a {
				s, err := e.evalString(p)
				if err != nil {
					return nil, fmt.Errorf("Fn::GetAtt: %w", err)
				}
				parts = append(parts, s)
			}
		}
		if len(parts) != 2 {
			return nil, fmt.Errorf("Fn::GetAtt: want [Resource, Attribute], got %v", arg)
		}
		key := parts[0] + "." + parts[1]
		if s, ok := e.v.Attributes[key]; ok {
			return s, nil
		}
		if _, ok := e.t.Resources[parts[0]]; !ok {
			return nil, fmt.Errorf("Fn::GetAtt: no resource %s", parts[0])
		}
		return nil, &UnresolvedError{Name: key, Kind: "attribute"}
	case "Fn::Sub":
		return e.sub(arg)
	case "Fn::Join":
		a := asSlice(arg)
		if len(a) != 2 {
			return nil, fmt.Errorf("Fn::Join: want [delimiter, list]")
		}
		delim, err := e.evalString(a[0])
		if err != nil {
			return nil, fmt.Errorf("Fn::Join: %w", err)
		}
		list, err := e.eval(a[1])
		if err != nil {
			return nil, fmt.Errorf("Fn::Join: %w", err)
		}
		var parts []string
		for _, item := range asSlice(list) {
			parts = append(parts, scalarString(item))
		}
		return strings.Join(parts, delim), nil
	case "Fn::Select":
		a := asSlice(arg)
		if len(a) != 2 {
			return nil, fmt.Errorf("Fn::Select: want [index, list]")
		}
		is, err := e.evalString(a[0])
		if err != nil {
			return nil, fmt.Errorf("Fn::Select: %w", err)
		}
		i, err := strconv.Atoi(is)
		if err != nil {
			return nil, fmt.Errorf("Fn::Select: index %q: %w", is, err)
		}
		list, err := e.eval(a[1])
		if err != nil {
			return nil, fmt.Errorf("Fn::Select: %w", err)
		}
		items := asSlice(list)
		if i < 0 || i >= len(items) {
			return nil, fmt.Errorf("Fn::Select: index %d out of %d items", i, len(items))
		}
		return items[i], nil
	case "Fn::Split":
		a := asSlice(arg)
		if len(a) != 2 {
			return nil, fmt.Errorf("Fn::Split: want [delimiter, string]")
		}
		delim, err := e.evalString(a[0])
		if err != nil {
			return nil, fmt.Errorf("Fn::Split: %w", err)
		}
		s, err := e.evalString(a[1])
		if err != nil {
			return nil, fmt.Errorf("Fn::Split: %w", err)
		}
		var out []any
		for _, p := range strings.Split(s, delim) {
			out = append(out, p)
		}
		return out, nil
	case "Fn::FindInMap":
		a := asSlice(arg)
		if len(a) < 3 {
			return nil, fmt.Errorf("Fn::FindInMap: want [map, key, key]")
		}
		var keys [3]string
		for i := range keys {
			s, err := e.evalString(a[i])
			if err != nil {
				return nil, fmt.Errorf("Fn::FindInMap: %w", err)
			}
			keys[i] = s
		}
		top, ok := asMap(e.t.Mappings[keys[0]])[keys[1]]
		if !ok {
			return nil, fmt.Errorf("Fn::FindInMap: %s has no key %q", keys[0], keys[1])
		}
		v, ok := asMap(top)[keys[2]]
		if !ok {
			return nil, fmt.Errorf("Fn::FindInMap: %s.%s has no key %q", keys[0], keys[1], keys[2])
		}
		return e.eval(v)
	case "Fn::If":
		a := asSlice(arg)
		if len(a) != 3 {
			return nil, fmt.Errorf("Fn::If: want [condition, then, else]")
		}
		name, _ := a[0].(string)
		ok, err := e.condition(name)
		if err != nil {
			return nil, fmt.Errorf("Fn::If: %w", err)
		}
		if ok {
			return e.eval(a[1])
		}
		return e.eval(a[2])
	case "Fn::Equals":
		a := asSlice(arg)
		if len(a) != 2 {
			return nil, fmt.Errorf("Fn::Equals: want two values")
		}
		x, err := e.evalString(a[0])
		if err != nil {
			return nil, fmt.Errorf("Fn::Equals: %w", err)
		}
		y, err := e.evalString(a[1])
		if err != nil {
			return nil, fmt.Errorf("Fn::Equals: %w", err)
		}
		return x == y, nil
	case "Fn::Not", "Fn::And", "Fn::Or":
		a := asSlice(arg)
		var bs []bool
		for _, item := range a {
			r, err := e.eval(item)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", fn, err)
			}
			b, ok := r.(bool)
			if !ok {
				return nil, fmt.Errorf("%s: %v is not a condition", fn, r)
			}
			bs = append(bs, b)
		}
		switch fn {
		case "Fn::Not":
			if len(bs) != 1 {
				return nil, fmt.Errorf("Fn::Not: want one condition")
			}
			return !bs[0], nil
		case "Fn::And":
			for _, b := range bs {
				if !b {
					return false, nil
				}
			}
			return true, nil
		default:
			for _, b := range bs {
				if b {
					return true, nil
				}
			}
			return false, nil
		}
	}
	return nil, fmt.Errorf("%s is not supported", fn)
}

func (e *evaluator) evalString(v any) (string, error) {
	r, err := e.eval(v)
	if err != nil {
		return "", err
	}
	switch r.(type) {
	case map[string]any, []any:
		return "", fmt.Errorf("%v is not a scalar", r)
	}
	return scalarString(r), nil
}

func (e *evaluator) condition(name string) (bool, error) {
	c, ok := e.t.Conditions[name]
	if !ok {
		return false, fmt.Errorf("no condition %q", name)
	}
	r, err := e.eval(c)
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	b, ok := r.(bool)
	if !ok {
		return false, fmt.Errorf("condition %s: %v is not true or false", name, r)
	}
	return b, nil
}

func (e *evaluator) ref(name string) (any, error) {
	switch name {
	case "AWS::Region":
		return e.v.Region, nil
	case "AWS::AccountId":
		return e.v.AccountID, nil
	case "AWS::StackName":
		return e.v.StackName, nil
	case "AWS::Partition":
		return e.v.Partition, nil
	case "AWS::URLSuffix":
		return "amazonaws.com", nil
	case "AWS::StackId":
		return fmt.Sprintf("arn:%s:cloudformation:%s:%s:stack/%s/1c2fa620-982a-11e3-aff7-50e2416294e0",
			e.v.Partition, e.v.Region, e.v.AccountID, e.v.StackName), nil
	case "AWS::NoValue":
		return noValue{}, nil
	case "AWS::NotificationARNs":
		return []any{}, nil
	}
	if _, ok := e.t.Parameters[name]; ok {
		return e.t.ParameterValue(name, e.v)
	}
	if s, ok := e.v.Resources[name]; ok {
		return s, nil
	}
	if _, ok := e.t.Resources[name]; ok {
		return nil, &UnresolvedError{Name: name, Kind: "resource"}
	}
	return nil, fmt.Errorf("Ref: no parameter or resource %s", name)
}

// sub implements Fn::Sub: "${Name}", "${Resource.Attr}", "${!Literal}".
func (e *evaluator) sub(arg any) (any, error) {
	var tmpl string
	vars := map[string]any{}
	switch a := arg.(type) {
	case string:
		tmpl = a
	case []any:
		if len(a) != 2 {
			return nil, fmt.Errorf("Fn::Sub: want a string or [string, variables]")
		}
		tmpl, _ = a[0].(string)
		vars = asMap(a[1])
	default:
		return nil, fmt.Errorf("Fn::Sub: want a string or [string, variables]")
	}
	var b strings.Builder
	for {
		i := strings.Index(tmpl, "${")
		if i < 0 {
			b.WriteString(tmpl)
			return b.String(), nil
		}
		b.WriteString(tmpl[:i])
		rest := tmpl[i+2:]
		j := strings.Index(rest, "}")
		if j < 0 {
			return nil, fmt.Errorf("Fn::Sub: unclosed ${ in %q", tmpl)
		}
		name := strings.TrimSpace(rest[:j])
		tmpl = rest[j+1:]
		if strings.HasPrefix(name, "!") {
			b.WriteString("${" + name[1:] + "}")
			continue
		}
		var val any
		var err error
		switch v, ok := vars[name]; {
		case ok:
			val, err = e.eval(v)
		case strings.Contains(name, ".") && !strings.HasPrefix(name, "AWS::"):
			res, attr, _ := strings.Cut(name, ".")
			val, err = e.intrinsic("Fn::GetAtt", []any{res, attr})
		default:
			val, err = e.ref(name)
		}
		if err != nil {
			return nil, fmt.Errorf("Fn::Sub ${%s}: %w", name, err)
		}
		b.WriteString(scalarString(val))
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
