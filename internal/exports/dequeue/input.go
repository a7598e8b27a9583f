package dequeue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
	"unicode"
)

// Input is one export job, the constant JSON input of its EventBridge
// schedule. A recurring export job (the default kind) dequeues what an F&O
// recurring export job queued:
//
//	{"job":"customer-groups","activityId":"<guid>","prefix":"outbound/customer-groups/",
//	 "unpack":false,"ackMissingFile":false}
//
// A job of kind "dataProject" exports a data project through the package
// API (packagejob.go):
//
//	{"job":"vendors","kind":"dataProject","definitionGroupId":"Vendors export",
//	 "legalEntityId":"USMF","packageName":"vendors","reExecute":false,"unpack":true}
//
// One function serves any number of jobs; each schedule carries its own.
type Input struct {
	// Job names the export; it is a path segment of every key the job
	// writes. Letters, digits, '.', '_' and '-', at most 128 characters.
	Job string `json:"job"`
	// Kind is "recurring" (or empty: the default) or "dataProject".
	Kind string `json:"kind,omitempty"`
	// ActivityID is the F&O recurring export job's activity ID (a GUID,
	// braces allowed). Recurring jobs only.
	ActivityID string `json:"activityId,omitempty"`
	// DefinitionGroupID is the data project to export (required for kind
	// dataProject, which alone has this and the next three fields).
	DefinitionGroupID string `json:"definitionGroupId,omitempty"`
	// PackageName names the exported package; default the job's name. The
	// package lands as <executionId>-<packageName>.zip.
	PackageName string `json:"packageName,omitempty"`
	// LegalEntityID is the legal entity to export from (required).
	LegalEntityID string `json:"legalEntityId,omitempty"`
	// ReExecute is ExportToPackage's reExecute flag.
	ReExecute bool `json:"reExecute,omitempty"`
	// Prefix is where the job's exports land. Optional: the default is
	// "<OUTBOUND_PREFIX><job>/". A trailing "/" is added when missing. It
	// must lie under OUTBOUND_PREFIX: an export landed anywhere else (under
	// inbound/, say) could be taken for an import and sent straight back
	// to F&O, and the function's IAM role may write nowhere else.
	Prefix string `json:"prefix,omitempty"`
	// Unpack writes each entity data file of a data package beside the
	// landed zip.
	Unpack bool `json:"unpack,omitempty"`
	// AckMissingFile acknowledges dequeue answers that have no file
	// (IsDownLoadFileExist=false or a null DownloadLocation) once recorded.
	// Without it they are left to F&O, which hands them out again after
	// 30 minutes. Recurring jobs only.
	AckMissingFile bool `json:"ackMissingFile,omitempty"`
}

// Job kinds.
const (
	// KindRecurring dequeues a recurring export job (the default).
	KindRecurring = "recurring"
	// KindDataProject exports a data project through the package API.
	KindDataProject = "dataProject"
)

// IsPackage reports whether the job exports through the package API.
func (in Input) IsPackage() bool { return in.Kind == KindDataProject }

// InputError is an input that cannot be used. Field is the JSON field at
// fault ("" when the whole document is).
type InputError struct {
	Field  string
	Reason string
}

func (e *InputError) Error() string {
	if e.Field == "" {
		return "input: " + e.Reason
	}
	return fmt.Sprintf("input: %s: %s", e.Field, e.Reason)
}

// maxInputBytes bounds the schedule input; real inputs are a few hundred bytes.
const maxInputBytes = 64 << 10

var (
	jobPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	guidPattern = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
)

// DecodeInput reads and checks a schedule input. outboundPrefix is
// OUTBOUND_PREFIX (e.g. "outbound/"; blank means that default): the parent
// of a job's default prefix, and the prefix every job's prefix must lie
// under. Unknown fields are refused, so a misspelt option is not silently
// ignored. Every error is an *InputError naming the field.
func DecodeInput(raw []byte, outboundPrefix string) (Input, error) {
	if len(raw) > maxInputBytes {
		return Input{}, &InputError{Reason: fmt.Sprintf("larger than %d bytes", maxInputBytes)}
	}
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return Input{}, &InputError{Reason: `empty; want {"job":"...","activityId":"<guid>"}`}
	}
	if t[0] != '{' {
		return Input{}, &InputError{Reason: `not a JSON object; want {"job":"...","activityId":"<guid>"}`}
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.DisallowUnknownFields()
	var in Input
	if err := dec.Decode(&in); err != nil {
		return Input{}, jsonInputError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Input{}, &InputError{Reason: "unexpected data after the JSON object"}
	}
	if err := checkKindFields(in, t); err != nil {
		return Input{}, err
	}
	if err := in.normalize(outboundPrefix); err != nil {
		return Input{}, err
	}
	return in, nil
}

// recurringOnly and packageOnly are the fields only one kind of job has.
var (
	recurringOnly = []string{"activityId", "ackMissingFile"}
	packageOnly   = []string{"definitionGroupId", "packageName", "legalEntityId", "reExecute"}
)

// checkKindFields refuses a field the job's kind does not have, even when
// it is given its zero value. The names match as encoding/json matches
// them to Input's fields: without regard to case.
func checkKindFields(in Input, raw []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return &InputError{Reason: fmt.Sprintf("not valid JSON: %v", err)}
	}
	kind, err := canonicalKind(in.Kind)
	if err != nil {
		return err
	}
	refuse := packageOnly
	if kind == KindDataProject {
		refuse = recurringOnly
	}
	for name := range fields {
		for _, f := range refuse {
			if strings.EqualFold(name, f) {
				return kindFieldError(f, kind)
			}
		}
	}
	return nil
}

func kindFieldError(field, kind string) error {
	if kind == KindDataProject {
		return &InputError{Field: field, Reason: `a job of kind "dataProject" has none: it exports the data project definitionGroupId through the package API, not a recurring job's queue`}
	}
	return &InputError{Field: field, Reason: `only a job of kind "dataProject" has it (this one is a recurring export job)`}
}

// canonicalKind spells a kind as the constants do ("" stays "": recurring).
func canonicalKind(k string) (string, error) {
	switch t := strings.TrimSpace(k); {
	case t == "":
		return "", nil
	case strings.EqualFold(t, KindRecurring):
		return KindRecurring, nil
	case strings.EqualFold(t, KindDataProject):
		return KindDataProject, nil
	}
	return "", &InputError{Field: "kind", Reason: fmt.Sprintf("%q: want %q (the default) or %q", clip(k), KindRecurring, KindDataProject)}
}

// jsonInputError turns an encoding/json error into an InputError that
// names the field.
func jsonInputError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			return &InputError{Reason: fmt.Sprintf("want a JSON object, got %s", te.Value)}
		}
		want := "a string"
		if te.Type != nil && te.Type.Kind() == reflect.Bool {
			want = "true or false"
		}
		return &InputError{Field: field, Reason: fmt.Sprintf("want %s, got %s", want, te.Value)}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &InputError{Reason: fmt.Sprintf("not valid JSON (offset %d): %v", se.Offset, err)}
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		field := strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`)
		return &InputError{Field: field, Reason: "unknown field (known: job, kind, activityId, prefix, unpack, ackMissingFile; " +
			"for kind dataProject: definitionGroupId, legalEntityId, packageName, reExecute instead of activityId and ackMissingFile)"}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &InputError{Reason: "not valid JSON: unexpected end of input"}
	}
	return &InputError{Reason: fmt.Sprintf("not valid JSON: %v", err)}
}

// defaultOutboundPrefix is OUTBOUND_PREFIX unless configured (Config's
// default too).
const defaultOutboundPrefix = "outbound/"

// normalize checks the fields and fills the default prefix. The prefix must
// lie under outboundPrefix (OUTBOUND_PREFIX): Handler.Run calls this too, so
// no Input that escapes it is ever run, however it was made.
func (in *Input) normalize(outboundPrefix string) error {
	in.Job = strings.TrimSpace(in.Job)
	switch {
	case in.Job == "":
		return &InputError{Field: "job", Reason: "required"}
	case !jobPattern.MatchString(in.Job):
		return &InputError{Field: "job", Reason: fmt.Sprintf("%q: use letters, digits, '.', '_' and '-' (at most 128, starting with a letter or digit)", clip(in.Job))}
	}
	kind, err := canonicalKind(in.Kind)
	if err != nil {
		return err
	}
	in.Kind = kind
	if in.IsPackage() {
		err = in.normalizePackage()
	} else {
		err = in.normalizeRecurring()
	}
	if err != nil {
		return err
	}
	return in.normalizePrefix(outboundPrefix)
}

// normalizeRecurring checks a recurring job's activity ID.
func (in *Input) normalizeRecurring() error {
	switch {
	case in.DefinitionGroupID != "":
		return kindFieldError("definitionGroupId", in.Kind)
	case in.PackageName != "":
		return kindFieldError("packageName", in.Kind)
	case in.LegalEntityID != "":
		return kindFieldError("legalEntityId", in.Kind)
	case in.ReExecute:
		return kindFieldError("reExecute", in.Kind)
	}
	in.ActivityID = strings.TrimSpace(in.ActivityID)
	if in.ActivityID == "" {
		return &InputError{Field: "activityId", Reason: "required (the recurring export job's activity ID)"}
	}
	g := strings.TrimSuffix(strings.TrimPrefix(in.ActivityID, "{"), "}")
	if !guidPattern.MatchString(g) {
		return &InputError{Field: "activityId", Reason: fmt.Sprintf("%q is not a GUID", clip(in.ActivityID))}
	}
	in.ActivityID = g
	return nil
}

// maxPackageField bounds the data project, legal entity and package names.
const maxPackageField = 200

// normalizePackage checks a dataProject job's fields and fills the default
// package name.
func (in *Input) normalizePackage() error {
	switch {
	case in.ActivityID != "":
		return kindFieldError("activityId", in.Kind)
	case in.AckMissingFile:
		return kindFieldError("ackMissingFile", in.Kind)
	}
	in.DefinitionGroupID = strings.TrimSpace(in.DefinitionGroupID)
	in.LegalEntityID = strings.TrimSpace(in.LegalEntityID)
	in.PackageName = strings.TrimSpace(in.PackageName)
	if in.PackageName == "" {
		in.PackageName = in.Job
	}
	for _, f := range []struct{ name, v, what string }{
		{"definitionGroupId", in.DefinitionGroupID, "the data project to export, as named in F&O's Data management workspace"},
		{"legalEntityId", in.LegalEntityID, `the legal entity to export from, e.g. "USMF"`},
	} {
		if f.v == "" {
			return &InputError{Field: f.name, Reason: "required for kind \"dataProject\" (" + f.what + ")"}
		}
	}
	for _, f := range []struct{ name, v string }{
		{"definitionGroupId", in.DefinitionGroupID}, {"legalEntityId", in.LegalEntityID}, {"packageName", in.PackageName},
	} {
		switch {
		case len(f.v) > maxPackageField:
			return &InputError{Field: f.name, Reason: fmt.Sprintf("longer than %d bytes", maxPackageField)}
		case strings.IndexFunc(f.v, unicode.IsControl) >= 0:
			return &InputError{Field: f.name, Reason: fmt.Sprintf("%q holds control characters", clip(f.v))}
		}
	}
	if strings.ContainsAny(in.PackageName, `/\`) || in.PackageName == "." || in.PackageName == ".." {
		return &InputError{Field: "packageName", Reason: fmt.Sprintf("%q names the package file: no '/' or '\\', not '.' or '..'", clip(in.PackageName))}
	}
	return nil
}

// normalizePrefix fills the default prefix and checks it lies under
// outboundPrefix.
func (in *Input) normalizePrefix(outboundPrefix string) error {
	if strings.TrimSpace(outboundPrefix) == "" {
		outboundPrefix = defaultOutboundPrefix
	}
	outbound, err := CheckPrefix(outboundPrefix)
	if err != nil {
		// A configuration fault (Config refuses it first), reported
		// against the field it keeps from being checked.
		return &InputError{Field: "prefix", Reason: fmt.Sprintf("cannot be checked: OUTBOUND_PREFIX %q is unusable: %v", clip(outboundPrefix), err)}
	}
	if strings.TrimSpace(in.Prefix) == "" {
		in.Prefix = outbound + in.Job + "/"
	}
	p, err := CheckPrefix(in.Prefix)
	if err != nil {
		return &InputError{Field: "prefix", Reason: err.Error()}
	}
	if !strings.HasPrefix(p, outbound) {
		return &InputError{Field: "prefix", Reason: fmt.Sprintf("%q is not under OUTBOUND_PREFIX %q: exports land only under it "+
			"(elsewhere, under inbound/ say, an export could be imported back into F&O, and the function may not write there); "+
			"use e.g. %q, or leave prefix out for that default", clip(p), outbound, outbound+in.Job+"/")}
	}
	in.Prefix = p
	return nil
}

// CheckPrefix validates an S3 key prefix and returns it with exactly one
// trailing "/". It refuses a leading "/", empty, "." or ".." segments and
// control characters.
func CheckPrefix(p string) (string, error) {
	p = strings.TrimSpace(p)
	if p == "" {
		return "", errors.New("empty")
	}
	// Checked on the result (with its "/"), so that a prefix accepted once
	// is accepted again when read back: a 512-character prefix without a
	// trailing "/" came out 513 long and failed its own round trip.
	if len(strings.TrimRight(p, "/"))+1 > 512 {
		return "", errors.New("longer than 512 characters")
	}
	if strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%q must not start with '/'", clip(p))
	}
	if strings.IndexFunc(p, unicode.IsControl) >= 0 {
		return "", fmt.Errorf("%q holds control characters", clip(p))
	}
	p = strings.TrimRight(p, "/") + "/"
	for _, seg := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("%q has an empty, '.' or '..' segment", clip(p))
		}
	}
	return p, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
