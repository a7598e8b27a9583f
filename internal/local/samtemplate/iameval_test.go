package samtemplate_test

// A small evaluator of IAM identity-policy statements, enough to hold the
// template's roles to a table of what each function may and may not do
// (policy_test.go). It follows IAM's rules for what it supports and refuses
// the rest, so that a statement it cannot judge fails the test instead of
// being misread:
//
//   - an explicit Deny wins over any Allow; no matching Allow is a deny;
//   - Action and NotAction: wildcards * and ?, case-insensitive;
//   - Resource and NotResource: wildcards * and ? (a * spans "/" and ":"),
//     case-sensitive;
//   - Condition operators String(Not)Equals(IgnoreCase), String(Not)Like,
//     Arn(Not)Equals, Arn(Not)Like, Bool and Null, each with an IfExists
//     form. Blocks are ANDed, keys within an operator ANDed, values ORed.
//     A key the request lacks fails a positive operator, satisfies a
//     negated one and any IfExists form; Null tests presence. Set operators
//     (ForAnyValue:, ForAllValues:) and any other operator are refused.
//   - a Principal in an identity policy is refused.

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// iamStatement is one statement of a policy document, resolved (no
// intrinsic functions left).
type iamStatement struct {
	From        string // where it came from, for messages: "RouterRole/data-bucket/MoveInboundVersions"
	Sid         string
	Effect      string
	Action      []string
	NotAction   []string
	Resource    []string
	NotResource []string
	// Condition is operator -> key -> values.
	Condition map[string]map[string][]string
}

// iamRequest is one request to judge: an action on a resource, with the
// condition keys the request carries (absent keys are absent, not "").
type iamRequest struct {
	Action   string
	Resource string
	Context  map[string]string
}

func (r iamRequest) String() string {
	s := r.Action + " on " + r.Resource
	if len(r.Context) > 0 {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(r.Context)) {
			kv = append(kv, fmt.Sprintf("%s=%q", k, r.Context[k]))
		}
		s += " {" + strings.Join(kv, ", ") + "}"
	}
	return s
}

// parseStatements reads a resolved PolicyDocument.
func parseStatements(from string, doc any) ([]iamStatement, error) {
	d, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: policy document %v is not an object", from, doc)
	}
	// SAM's policy templates leave Version out (2008-10-17, which only
	// differs in not expanding ${...} policy variables, used nowhere here).
	switch v := d["Version"]; v {
	case nil, "2012-10-17", "2008-10-17":
	default:
		return nil, fmt.Errorf("%s: policy Version %v", from, v)
	}
	var raw []any
	switch st := d["Statement"].(type) {
	case []any:
		raw = st
	case map[string]any:
		raw = []any{st}
	default:
		return nil, fmt.Errorf("%s: no Statement", from)
	}
	var out []iamStatement
	for i, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: statement %d is not an object", from, i)
		}
		s := iamStatement{Sid: strOf(m["Sid"]), Effect: strOf(m["Effect"])}
		s.From = fmt.Sprintf("%s/%s", from, s.Sid)
		if s.Sid == "" {
			s.From = fmt.Sprintf("%s/[%d]", from, i)
		}
		for k := range m {
			switch k {
			case "Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition":
			default:
				return nil, fmt.Errorf("%s: %s is not evaluated here (an identity policy has no %s)", s.From, k, k)
			}
		}
		if s.Effect != "Allow" && s.Effect != "Deny" {
			return nil, fmt.Errorf("%s: Effect %q", s.From, s.Effect)
		}
		var err error
		if s.Action, err = stringList(m["Action"]); err != nil {
			return nil, fmt.Errorf("%s: Action: %w", s.From, err)
		}
		if s.NotAction, err = stringList(m["NotAction"]); err != nil {
			return nil, fmt.Errorf("%s: NotAction: %w", s.From, err)
		}
		if s.Resource, err = stringList(m["Resource"]); err != nil {
			return nil, fmt.Errorf("%s: Resource: %w", s.From, err)
		}
		if s.NotResource, err = stringList(m["NotResource"]); err != nil {
			return nil, fmt.Errorf("%s: NotResource: %w", s.From, err)
		}
		if (len(s.Action) == 0) == (len(s.NotAction) == 0) {
			return nil, fmt.Errorf("%s: want exactly one of Action and NotAction", s.From)
		}
		if (len(s.Resource) == 0) == (len(s.NotResource) == 0) {
			return nil, fmt.Errorf("%s: want exactly one of Resource and NotResource", s.From)
		}
		if c, ok := m["Condition"]; ok {
			cm, ok := c.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: Condition %v is not an object", s.From, c)
			}
			s.Condition = map[string]map[string][]string{}
			for op, keys := range cm {
				if _, _, err := conditionOperator(op); err != nil {
					return nil, fmt.Errorf("%s: %w", s.From, err)
				}
				km, ok := keys.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("%s: Condition %s is not an object", s.From, op)
				}
				s.Condition[op] = map[string][]string{}
				for k, v := range km {
					vs, err := stringList(v)
					if err != nil || len(vs) == 0 {
						return nil, fmt.Errorf("%s: Condition %s %s: %v", s.From, op, k, v)
					}
					s.Condition[op][k] = vs
				}
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// stringList reads a string or a list of strings (bools and numbers as
// CloudFormation renders them).
func stringList(v any) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{x}, nil
	case bool, int, float64:
		return []string{fmt.Sprint(x)}, nil
	case []any:
		var out []string
		for _, i := range x {
			switch s := i.(type) {
			case string:
				out = append(out, s)
			case bool, int, float64:
				out = append(out, fmt.Sprint(s))
			default:
				return nil, fmt.Errorf("%v is not a string", i)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%v is not a string or a list of strings", v)
}

func strOf(v any) string { s, _ := v.(string); return s }

// iamMatch is IAM's wildcard match: * any run of characters, ? one.
func iamMatch(pattern, s string, fold bool) bool {
	if fold {
		pattern, s = strings.ToLower(pattern), strings.ToLower(s)
	}
	// Iterative glob match with backtracking on the last *.
	p, i, star, mark := 0, 0, -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func anyMatch(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if iamMatch(p, s, fold) {
			return true
		}
	}
	return false
}

// conditionOperator splits an operator into its base and IfExists.
func conditionOperator(op string) (base string, ifExists bool, err error) {
	base, ifExists = strings.CutSuffix(op, "IfExists")
	switch base {
	case "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
		"StringLike", "StringNotLike", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike", "Bool":
		return base, ifExists, nil
	case "Null":
		if ifExists {
			return "", false, fmt.Errorf("condition operator %s does not exist", op)
		}
		return base, false, nil
	}
	return "", false, fmt.Errorf("condition operator %s is not evaluated here (add it to iameval_test.go, or use one that is)", op)
}

// conditionHolds evaluates a statement's Condition block against a request.
func conditionHolds(c map[string]map[string][]string, ctx map[string]string) bool {
	for op, keys := range c {
		base, ifExists, _ := conditionOperator(op) // checked when parsed
		for key, values := range keys {
			got, present := lookup(ctx, key)
			if base == "Null" {
				wantAbsent := strings.EqualFold(values[0], "true")
				if present == wantAbsent {
					return false
				}
				continue
			}
			negated := strings.Contains(base, "Not")
			if !present {
				if ifExists || negated {
					continue
				}
				return false
			}
			matched := false
			for _, v := range values {
				switch base {
				case "StringEquals", "StringNotEquals", "Bool":
					matched = matched || got == v
				case "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase":
					matched = matched || strings.EqualFold(got, v)
				default: // *Like, Arn*: wildcards
					matched = matched || iamMatch(v, got, false)
				}
			}
			if matched == negated {
				return false
			}
		}
	}
	return true
}

// lookup finds a condition key; key names are case-insensitive.
func lookup(ctx map[string]string, key string) (string, bool) {
	for k, v := range ctx {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

// applies reports whether a statement covers a request (whatever its effect).
func (s iamStatement) applies(r iamRequest) bool {
	if len(s.Action) > 0 && !anyMatch(s.Action, r.Action, true) {
		return false
	}
	if len(s.NotAction) > 0 && anyMatch(s.NotAction, r.Action, true) {
		return false
	}
	if len(s.Resource) > 0 && !anyMatch(s.Resource, r.Resource, false) {
		return false
	}
	if len(s.NotResource) > 0 && anyMatch(s.NotResource, r.Resource, false) {
		return false
	}
	return conditionHolds(s.Condition, r.Context)
}

// decide is IAM's verdict for one principal's statements: allowed, and the
// statements that decided it (the Deny, or the Allows).
func decide(stmts []iamStatement, r iamRequest) (bool, []string) {
	var allows []string
	for _, s := range stmts {
		if !s.applies(r) {
			continue
		}
		if s.Effect == "Deny" {
			return false, []string{s.From}
		}
		allows = append(allows, s.From)
	}
	return len(allows) > 0, allows
}

// TestIAMEvaluator checks the evaluator itself on statements whose verdicts
// IAM documents.
func TestIAMEvaluator(t *testing.T) {
	doc := map[string]any{"Version": "2012-10-17", "Statement": []any{
		map[string]any{"Sid": "Objects", "Effect": "Allow", "Action": []any{"s3:Get*", "s3:PutObject"},
			"Resource": "arn:aws:s3:::b/out/*"},
		map[string]any{"Sid": "NoSecrets", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b/out/secret/*"},
		map[string]any{"Sid": "One", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:r:1:q?"},
		map[string]any{"Sid": "List", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
			"Condition": map[string]any{"StringLike": map[string]any{"s3:prefix": []any{"out/*", "in/"}}}},
		map[string]any{"Sid": "Head404", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
			"Condition": map[string]any{"Null": map[string]any{"s3:prefix": "true"}}},
		map[string]any{"Sid": "Kms", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "arn:aws:kms:r:1:key/k",
			"Condition": map[string]any{
				"StringEquals":            map[string]any{"kms:ViaService": "s3.r.amazonaws.com"},
				"StringLikeIfExists":      map[string]any{"kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::b*"},
				"StringNotEqualsIfExists": map[string]any{"aws:SourceVpc": "vpc-bad"},
			}},
		map[string]any{"Sid": "NotAct", "Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:logs:r:1:log-group:g:*"},
	}}
	stmts, err := parseStatements("test", doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		r    iamRequest
		want bool
	}{
		{iamRequest{Action: "s3:GetObject", Resource: "arn:aws:s3:::b/out/x"}, true},
		{iamRequest{Action: "S3:getobjectversion", Resource: "arn:aws:s3:::b/out/a/b/c"}, true}, // actions ignore case
		{iamRequest{Action: "s3:GetObject", Resource: "arn:aws:s3:::b/OUT/x"}, false},           // resources do not
		{iamRequest{Action: "s3:GetObject", Resource: "arn:aws:s3:::b/out"}, false},
		{iamRequest{Action: "s3:GetObject", Resource: "arn:aws:s3:::b/in/x"}, false},
		{iamRequest{Action: "s3:DeleteObject", Resource: "arn:aws:s3:::b/out/x"}, false},     // implicit deny
		{iamRequest{Action: "s3:GetObject", Resource: "arn:aws:s3:::b/out/secret/x"}, false}, // Deny wins
		{iamRequest{Action: "sqs:SendMessage", Resource: "arn:aws:sqs:r:1:q1"}, true},
		{iamRequest{Action: "sqs:SendMessage", Resource: "arn:aws:sqs:r:1:q12"}, false}, // ? is one character
		{iamRequest{Action: "s3:ListBucket", Resource: "arn:aws:s3:::b", Context: map[string]string{"s3:prefix": "out/x/"}}, true},
		{iamRequest{Action: "s3:ListBucket", Resource: "arn:aws:s3:::b", Context: map[string]string{"s3:prefix": "out/"}}, true},
		{iamRequest{Action: "s3:ListBucket", Resource: "arn:aws:s3:::b", Context: map[string]string{"s3:prefix": "in/"}}, true},
		{iamRequest{Action: "s3:ListBucket", Resource: "arn:aws:s3:::b", Context: map[string]string{"s3:prefix": "in/x/"}}, false},
		{iamRequest{Action: "s3:ListBucket", Resource: "arn:aws:s3:::b", Context: map[string]string{"s3:prefix": ""}}, false},
		{iamRequest{Action: "s3:ListBucket", Resource: "arn:aws:s3:::b"}, true}, // no prefix: Null
		{iamRequest{Action: "s3:ListBucketVersions", Resource: "arn:aws:s3:::b"}, false},
		{iamRequest{Action: "kms:Decrypt", Resource: "arn:aws:kms:r:1:key/k",
			Context: map[string]string{"kms:ViaService": "s3.r.amazonaws.com", "kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::b"}}, true},
		{iamRequest{Action: "kms:Decrypt", Resource: "arn:aws:kms:r:1:key/k",
			Context: map[string]string{"kms:viaservice": "s3.r.amazonaws.com"}}, true}, // keys ignore case; IfExists
		{iamRequest{Action: "kms:Decrypt", Resource: "arn:aws:kms:r:1:key/k",
			Context: map[string]string{"kms:ViaService": "s3.r.amazonaws.com", "kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::c"}}, false},
		{iamRequest{Action: "kms:Decrypt", Resource: "arn:aws:kms:r:1:key/k",
			Context: map[string]string{"kms:ViaService": "s3.r.amazonaws.com", "aws:SourceVpc": "vpc-bad"}}, false},
		{iamRequest{Action: "kms:Decrypt", Resource: "arn:aws:kms:r:1:key/k"}, false}, // no ViaService
		{iamRequest{Action: "logs:PutLogEvents", Resource: "arn:aws:logs:r:1:log-group:g:log-stream:s"}, true},
		{iamRequest{Action: "iam:PassRole", Resource: "arn:aws:logs:r:1:log-group:g:x"}, false}, // NotAction
	} {
		if got, why := decide(stmts, tc.r); got != tc.want {
			t.Errorf("%s: allowed %v, want %v (statements %v)", tc.r, got, tc.want, why)
		}
	}
	for _, pat := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"a*", "a", true}, {"a*b", "axxb", true}, {"a*b", "axxbc", false}, {"*.stuck.json", "in/x.csv.stuck.json", true},
		{"a*b*c", "abbbc", true}, {"a?c", "ac", false}, {"", "", true}, {"", "x", false}, {"x/*", "x/", true},
	} {
		if got := iamMatch(pat.p, pat.s, false); got != pat.want {
			t.Errorf("iamMatch(%q, %q) = %v", pat.p, pat.s, got)
		}
	}
	for name, bad := range map[string]map[string]any{
		"set operator":   {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": map[string]any{"ForAnyValue:StringLike": map[string]any{"k": "v"}}},
		"date operator":  {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": map[string]any{"DateGreaterThan": map[string]any{"k": "v"}}},
		"principal":      {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Principal": "*"},
		"no resource":    {"Effect": "Allow", "Action": "s3:GetObject"},
		"no action":      {"Effect": "Allow", "Resource": "*"},
		"bad effect":     {"Effect": "allow", "Action": "s3:GetObject", "Resource": "*"},
		"null ifexists":  {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": map[string]any{"NullIfExists": map[string]any{"k": "true"}}},
		"action and not": {"Effect": "Allow", "Action": "s3:GetObject", "NotAction": "s3:PutObject", "Resource": "*"},
	} {
		if _, err := parseStatements(name, map[string]any{"Version": "2012-10-17", "Statement": []any{bad}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := parseStatements("bad version", map[string]any{"Version": "2020-01-01", "Statement": []any{}}); err == nil {
		t.Error("Version 2020-01-01 accepted")
	}
}
