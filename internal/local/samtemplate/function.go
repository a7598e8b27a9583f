package samtemplate

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"
)

// Lambda's defaults for properties a template leaves out.
const (
	defaultTimeout  = 3 * time.Second
	defaultMemoryMB = 128
)

// Function is an AWS::Serverless::Function with Globals.Function merged in
// the way SAM merges it, and its settings resolved against Values.
type Function struct {
	LogicalID string
	// Name is the function's short name, "router" for RouterFunction: the
	// folder under functions/ and under bin/.
	Name string
	// CodeURI is CodeUri as written ("." is the whole module).
	CodeURI string
	// BuildMethod is Metadata.BuildMethod ("makefile", "go1.x" or "").
	BuildMethod string
	// Package is the Go main package to build, relative to the template's
	// directory: CodeUri itself when it names a folder; with CodeUri "."
	// (the makefile builder's layout) the convention ./functions/<Name>.
	Package       string
	Runtime       string
	Handler       string
	Architectures []string
	Timeout       time.Duration
	MemoryMB      int
	// LogFormat and LogLevel come from LoggingConfig (LogFormat,
	// ApplicationLogLevel).
	LogFormat string
	LogLevel  string
	// Env holds the environment variables whose values resolved.
	Env map[string]string
	// Unresolved holds the variables whose values need a deployed resource
	// (BUCKET: !Ref DataBucket) or a parameter without a default; each error
	// is an *UnresolvedError. Give them in Values or set them by hand.
	Unresolved map[string]error
	// Events are the function's event sources, sorted by name, with their
	// properties as written (not evaluated).
	Events []Event
	// Properties are the merged, unevaluated properties; Metadata the
	// resource's Metadata.
	Properties map[string]any
	Metadata   map[string]any
}

// Event is one entry of a function's Events.
type Event struct {
	Name       string
	Type       string // SQS, ScheduleV2, S3, ...
	Properties map[string]any
}

// EventsOfType returns the function's events of one type.
func (f Function) EventsOfType(typ string) []Event {
	var out []Event
	for _, e := range f.Events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// Functions returns every AWS::Serverless::Function, sorted by logical ID,
// resolved against vals.
func (t *Template) Functions(vals Values) ([]Function, error) {
	var out []Function
	for _, id := range t.ResourcesOfType(TypeFunction) {
		f, err := t.Function(id, vals)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// Function returns one function by logical ID, resolved against vals.
func (t *Template) Function(id string, vals Values) (Function, error) {
	r, ok := t.Resources[id]
	if !ok || r.Type != TypeFunction {
		return Function{}, fmt.Errorf("no %s %q in the template (functions: %s)", TypeFunction, id,
			strings.Join(t.ResourcesOfType(TypeFunction), ", "))
	}
	props, _ := mergeGlobals(asMap(t.Globals["Function"]), r.Properties).(map[string]any)
	f := Function{
		LogicalID:   id,
		CodeURI:     str(props["CodeUri"]),
		BuildMethod: str(r.Metadata["BuildMethod"]),
		Properties:  props,
		Metadata:    r.Metadata,
		Env:         map[string]string{},
		Unresolved:  map[string]error{},
	}
	f.Name = strings.ToLower(strings.TrimSuffix(id, "Function"))
	switch pkg := cleanCodeURI(f.CodeURI); pkg {
	case ".", "":
		f.Package = "./functions/" + f.Name
	default:
		f.Package = pkg
		f.Name = path.Base(pkg)
	}

	var err error
	wrap := func(what string, e error) error { return fmt.Errorf("function %s: %s: %w", id, what, e) }
	if f.Runtime, err = t.optString(props["Runtime"], vals); err != nil {
		return f, wrap("Runtime", err)
	}
	if f.Handler, err = t.optString(props["Handler"], vals); err != nil {
		return f, wrap("Handler", err)
	}
	if archs, err := t.Eval(props["Architectures"], vals); err != nil {
		return f, wrap("Architectures", err)
	} else {
		for _, a := range asSlice(archs) {
			f.Architectures = append(f.Architectures, scalarString(a))
		}
	}
	f.Timeout = defaultTimeout
	if v, ok := props["Timeout"]; ok {
		n, err := t.EvalInt(v, vals)
		if err != nil {
			return f, wrap("Timeout", err)
		}
		f.Timeout = time.Duration(n) * time.Second
	}
	f.MemoryMB = defaultMemoryMB
	if v, ok := props["MemorySize"]; ok {
		if f.MemoryMB, err = t.EvalInt(v, vals); err != nil {
			return f, wrap("MemorySize", err)
		}
	}
	logging := asMap(props["LoggingConfig"])
	if f.LogFormat, err = t.optString(logging["LogFormat"], vals); err != nil {
		return f, wrap("LoggingConfig.LogFormat", err)
	}
	if f.LogLevel, err = t.optString(logging["ApplicationLogLevel"], vals); err != nil {
		return f, wrap("LoggingConfig.ApplicationLogLevel", err)
	}

	for name, raw := range asMap(asMap(props["Environment"])["Variables"]) {
		v, err := t.EvalString(raw, vals)
		var ue *UnresolvedError
		switch {
		case errors.As(err, &ue):
			f.Unresolved[name] = ue
		case err != nil:
			return f, wrap("Environment "+name, err)
		default:
			f.Env[name] = v
		}
	}

	events := asMap(props["Events"])
	for _, name := range slices.Sorted(maps.Keys(events)) {
		ev := asMap(events[name])
		f.Events = append(f.Events, Event{Name: name, Type: str(ev["Type"]), Properties: asMap(ev["Properties"])})
	}
	return f, nil
}

func (t *Template) optString(v any, vals Values) (string, error) {
	if v == nil {
		return "", nil
	}
	return t.EvalString(v, vals)
}

// mergeGlobals merges a Globals section into a resource's properties as SAM
// does: maps merge key by key (the resource wins), lists concatenate
// (globals first), anything else the resource overrides. An intrinsic
// function on either side is a value, not a map to merge.
func mergeGlobals(global, local any) any {
	if global == nil {
		return local
	}
	if local == nil {
		return global
	}
	gm, gok := global.(map[string]any)
	lm, lok := local.(map[string]any)
	if gok && lok && !isIntrinsic(gm) && !isIntrinsic(lm) {
		out := make(map[string]any, len(gm)+len(lm))
		for k, v := range gm {
			out[k] = v
		}
		for k, v := range lm {
			out[k] = mergeGlobals(gm[k], v)
		}
		return out
	}
	gs, gok := global.([]any)
	ls, lok := local.([]any)
	if gok && lok {
		return append(append([]any{}, gs...), ls...)
	}
	return local
}

func isIntrinsic(m map[string]any) bool {
	if len(m) != 1 {
		return false
	}
	for k := range m {
		return isIntrinsicKey(k)
	}
	return false
}
