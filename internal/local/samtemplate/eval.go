package samtemplate

import (
	"errors"
	"fmt"
	"maps"
	"slices"
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
	return scalarOnly(out)
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
				if isIntrinsicKey(k) {
					return e.intrinsic(k, arg)
				}
			}
		}
		out := make(map[string]any, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
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

// intrinsicFunc evaluates one intrinsic function, given its argument.
type intrinsicFunc func(e *evaluator, arg any) (any, error)

// intrinsics are the supported intrinsic functions by name. They are set in
// init because they refer back to the table (through eval).
var intrinsics map[string]intrinsicFunc

func init() {
	intrinsics = map[string]intrinsicFunc{
		"Ref":           (*evaluator).evalRef,
		"Condition":     (*evaluator).evalCondition,
		"Fn::GetAtt":    (*evaluator).getAtt,
		"Fn::Sub":       (*evaluator).sub,
		"Fn::Join":      (*evaluator).join,
		"Fn::Select":    (*evaluator).selectItem,
		"Fn::Split":     (*evaluator).split,
		"Fn::FindInMap": (*evaluator).findInMap,
		"Fn::If":        (*evaluator).ifThenElse,
		"Fn::Equals":    (*evaluator).equals,
		"Fn::Not":       (*evaluator).not,
		"Fn::And":       (*evaluator).and,
		"Fn::Or":        (*evaluator).or,
	}
}

// isIntrinsicKey reports whether k names an intrinsic function: a map with
// that one key is a call, not a map.
func isIntrinsicKey(k string) bool {
	return k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::")
}

func (e *evaluator) intrinsic(fn string, arg any) (any, error) {
	f, ok := intrinsics[fn]
	if !ok {
		return nil, fmt.Errorf("%s is not supported", fn)
	}
	return f(e, arg)
}

// fnArgs returns arg as a list of exactly n items, or an error saying what
// fn wants.
func fnArgs(fn string, arg any, n int, want string) ([]any, error) {
	a := asSlice(arg)
	if len(a) != n {
		return nil, fmt.Errorf("%s: want %s", fn, want)
	}
	return a, nil
}

// evalStrings resolves each item to a string, in order; an error names fn.
func (e *evaluator) evalStrings(fn string, items ...any) ([]string, error) {
	out := make([]string, 0, len(items))
	for _, item := range items {
		s, err := e.evalString(item)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fn, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// evalRef is Ref: a parameter, pseudo parameter or resource by name.
func (e *evaluator) evalRef(arg any) (any, error) {
	name, ok := arg.(string)
	if !ok {
		return nil, fmt.Errorf("Ref: want a name, got %v", arg)
	}
	return e.ref(name)
}

// evalCondition is Condition: a condition of the Conditions section by name.
func (e *evaluator) evalCondition(arg any) (any, error) {
	name, ok := arg.(string)
	if !ok {
		return nil, fmt.Errorf("Condition: want a name, got %v", arg)
	}
	return e.condition(name)
}

// getAtt is Fn::GetAtt, "Resource.Attribute" or [Resource, Attribute]. Only
// Values.Attributes can give it: attributes exist once deployed.
func (e *evaluator) getAtt(arg any) (any, error) {
	var parts []string
	switch a := arg.(type) {
	case string:
		parts = strings.SplitN(a, ".", 2)
	case []any:
		var err error
		if parts, err = e.evalStrings("Fn::GetAtt", a...); err != nil {
			return nil, err
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
}

// join is Fn::Join, [delimiter, list].
func (e *evaluator) join(arg any) (any, error) {
	a, err := fnArgs("Fn::Join", arg, 2, "[delimiter, list]")
	if err != nil {
		return nil, err
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
}

// selectItem is Fn::Select, [index, list].
func (e *evaluator) selectItem(arg any) (any, error) {
	a, err := fnArgs("Fn::Select", arg, 2, "[index, list]")
	if err != nil {
		return nil, err
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
}

// split is Fn::Split, [delimiter, string].
func (e *evaluator) split(arg any) (any, error) {
	a, err := fnArgs("Fn::Split", arg, 2, "[delimiter, string]")
	if err != nil {
		return nil, err
	}
	s, err := e.evalStrings("Fn::Split", a...)
	if err != nil {
		return nil, err
	}
	var out []any
	for _, p := range strings.Split(s[1], s[0]) {
		out = append(out, p)
	}
	return out, nil
}

// findInMap is Fn::FindInMap, [map, top-level key, second-level key].
func (e *evaluator) findInMap(arg any) (any, error) {
	a := asSlice(arg)
	if len(a) < 3 {
		return nil, fmt.Errorf("Fn::FindInMap: want [map, key, key]")
	}
	keys, err := e.evalStrings("Fn::FindInMap", a[:3]...)
	if err != nil {
		return nil, err
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
}

// ifThenElse is Fn::If, [condition, then, else].
func (e *evaluator) ifThenElse(arg any) (any, error) {
	a, err := fnArgs("Fn::If", arg, 3, "[condition, then, else]")
	if err != nil {
		return nil, err
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
}

// equals is Fn::Equals, two values compared as strings.
func (e *evaluator) equals(arg any) (any, error) {
	a, err := fnArgs("Fn::Equals", arg, 2, "two values")
	if err != nil {
		return nil, err
	}
	s, err := e.evalStrings("Fn::Equals", a...)
	if err != nil {
		return nil, err
	}
	return s[0] == s[1], nil
}

// not is Fn::Not, [condition].
func (e *evaluator) not(arg any) (any, error) {
	bs, err := e.conditions("Fn::Not", arg)
	if err != nil {
		return nil, err
	}
	if len(bs) != 1 {
		return nil, fmt.Errorf("Fn::Not: want one condition")
	}
	return !bs[0], nil
}

// and is Fn::And: true when every condition is.
func (e *evaluator) and(arg any) (any, error) {
	bs, err := e.conditions("Fn::And", arg)
	if err != nil {
		return nil, err
	}
	return !slices.Contains(bs, false), nil
}

// or is Fn::Or: true when any condition is.
func (e *evaluator) or(arg any) (any, error) {
	bs, err := e.conditions("Fn::Or", arg)
	if err != nil {
		return nil, err
	}
	return slices.Contains(bs, true), nil
}

// conditions resolves each item of arg to true or false; an error names fn.
func (e *evaluator) conditions(fn string, arg any) ([]bool, error) {
	var bs []bool
	for _, item := range asSlice(arg) {
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
	return bs, nil
}

func (e *evaluator) evalString(v any) (string, error) {
	r, err := e.eval(v)
	if err != nil {
		return "", err
	}
	return scalarOnly(r)
}

// scalarOnly renders a resolved value as a string; a map or a list is an
// error.
func scalarOnly(v any) (string, error) {
	switch v.(type) {
	case map[string]any, []any:
		return "", fmt.Errorf("%v is not a scalar", v)
	}
	return scalarString(v), nil
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
			val, err = e.getAtt([]any{res, attr})
		default:
			val, err = e.ref(name)
		}
		if err != nil {
			return nil, fmt.Errorf("Fn::Sub ${%s}: %w", name, err)
		}
		b.WriteString(scalarString(val))
	}
}
