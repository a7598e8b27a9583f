package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fno-bridge/s3-fno/internal/local/lambdahost"
	"github.com/fno-bridge/s3-fno/internal/local/localrun"
	"github.com/fno-bridge/s3-fno/internal/local/samtemplate"
)

// Exit statuses.
const (
	exitOK            = 0
	exitFunctionError = 1
	exitCannotRun     = 2
)

// forwarded are the variables passed on from the caller's environment, as
// `sam local invoke` passes the shell's AWS credentials and region, plus the
// local-only settings the functions honour. Anything else must come from
// the template, an -env-file or -env.
var forwarded = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "HOME",
	"AWS_REGION", "AWS_DEFAULT_REGION",
	"AWS_ENDPOINT_URL", "S3_FORCE_PATH_STYLE", "FNO_CA_BUNDLE", "FNO_CLIENT_SECRET",
	"SSL_CERT_FILE", "SSL_CERT_DIR",
}

// forwardedPrefixes are forwarded too (service-specific endpoints such as
// AWS_ENDPOINT_URL_SQS).
var forwardedPrefixes = []string{"AWS_ENDPOINT_URL_"}

// Config is what one run does.
type Config struct {
	Function  string   // logical ID
	Event     string   // event file; "-" is stdin; "" is {}
	Template  string   // template.yaml
	Bootstrap string   // a built bootstrap to run instead of building
	BinDir    string   // where to build; default <template dir>/bin
	Env       []string // K=V, last wins
	EnvFiles  []string
	Params    []string // template parameter overrides, Name=Value
	Timeout   time.Duration

	Local  bool   // run against stand-ins started for this invoke (local.go)
	Seed   bool   // with Local: seed what the event names
	Report string // with Local: write the report as JSON to this file
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// parseFlags reads the command line into a Config.
func parseFlags(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("invoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Function, "fn", "", "logical ID of the function in the template, e.g. RouterFunction (required)")
	fs.StringVar(&c.Event, "event", "", `event file ("-" reads stdin; none sends {})`)
	fs.StringVar(&c.Template, "template", "template.yaml", "SAM template")
	fs.StringVar(&c.Bootstrap, "bootstrap", "", "run this built bootstrap instead of building the function")
	fs.StringVar(&c.BinDir, "bin", "", "build into `dir`/<name>/bootstrap (default: bin/ beside the template)")
	fs.Var((*multiFlag)(&c.Env), "env", "set an environment variable, `KEY=VALUE` (repeatable; wins over everything)")
	fs.Var((*multiFlag)(&c.EnvFiles), "env-file", "environment `file`: SAM's env-vars JSON ({\"Parameters\":{...},\"<LogicalId>\":{...}}) or KEY=VALUE lines (repeatable)")
	fs.Var((*multiFlag)(&c.Params), "param", "override a template parameter, `Name=Value` (repeatable)")
	fs.DurationVar(&c.Timeout, "timeout", 0, "override the function's timeout")
	fs.BoolVar(&c.Local, "local", false, "start moto_server and the F&O emulator on 127.0.0.1 for this invoke, provision the stack,\n"+
		"seed what the event names, point the function at them, report what changed and stop them")
	fs.BoolVar(&c.Seed, "seed", true, "with -local: put the objects the event names, queue an export for an export job, give the poller a file in flight")
	fs.StringVar(&c.Report, "report", "", "with -local: also write the report as JSON to `file`")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: invoke [-local] -fn LogicalId [-event file] [-env K=V]... [-env-file f]... [-param Name=Value]...\n\n"+
			"-fn may be left out for an event file named router-*, enqueue-*, poller-* or dequeue-*.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.Function == "" {
		c.Function = functionForEvent(c.Event)
	}
	if c.Function == "" {
		return c, errors.New("-fn is required (or an -event file named router-*, enqueue-*, poller-* or dequeue-*)")
	}
	if c.Report != "" && !c.Local {
		return c, errors.New("-report needs -local")
	}
	for _, kv := range append(append([]string{}, c.Env...), c.Params...) {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return c, fmt.Errorf("%q: want KEY=VALUE", kv)
		}
	}
	return c, nil
}

// Run is the command: it returns the exit status.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "invoke:", err)
		return exitCannotRun
	}
	// The function's output and ours share stderr; one writer at a time.
	stderr = &syncWriter{w: stderr}
	res, report, err := invoke(ctx, cfg, stdin, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "invoke:", err)
		return exitCannotRun
	}
	stdout.Write(res.Payload)
	fmt.Fprintln(stdout)
	if report != nil {
		report.Print(stderr)
	}
	if res.Error != nil {
		fmt.Fprintf(stderr, "invoke: %s returned a function error: %v\n", cfg.Function, res.Error)
		return exitFunctionError
	}
	return exitOK
}

// invoke builds (unless told not to), starts and invokes the function once.
// With cfg.Local it runs it against stand-ins it starts and stops itself
// (local.go), and returns what the invoke changed on them.
func invoke(ctx context.Context, cfg Config, stdin io.Reader, stderr io.Writer) (res lambdahost.Result, rep *localrun.Report, err error) {
	payload, err := readEvent(cfg.Event, stdin)
	if err != nil {
		return res, nil, err
	}
	tpl, err := samtemplate.Load(cfg.Template)
	if err != nil {
		return res, nil, err
	}
	vals := samtemplate.Values{Parameters: map[string]string{}}
	for _, kv := range cfg.Params {
		k, v, _ := strings.Cut(kv, "=")
		if _, ok := tpl.Parameters[k]; !ok {
			return res, nil, fmt.Errorf("-param %s: the template has no such parameter", k)
		}
		vals.Parameters[k] = v
	}
	fn, err := tpl.Function(cfg.Function, vals)
	if err != nil {
		return res, nil, err
	}
	env, err := baseEnvironment(fn, cfg, os.Environ())
	if err != nil {
		return res, nil, err
	}

	bootstrap := cfg.Bootstrap
	if bootstrap == "" {
		if bootstrap, err = build(ctx, tpl, fn, cfg.BinDir); err != nil {
			return res, nil, err
		}
	}

	var sb *localrun.Sandbox
	if cfg.Local {
		// Started after the build, so a slow build keeps no server waiting.
		if sb, err = startLocal(ctx, env, stderr); err != nil {
			return res, nil, err
		}
		defer sb.Close()
	}
	applyEnvFlags(env, cfg.Env)
	for _, name := range slices.Sorted(maps.Keys(fn.Unresolved)) {
		if _, ok := env[name]; !ok {
			fmt.Fprintf(stderr, "invoke: warning: %s is not set: %v; give it with -env %s=... or an -env-file\n",
				name, fn.Unresolved[name], name)
		}
	}
	if sb != nil {
		if payload, err = prepareLocal(ctx, sb, payload, env, cfg.Seed, stderr); err != nil {
			return res, nil, err
		}
	}

	timeout := fn.Timeout
	if cfg.Timeout > 0 {
		timeout = cfg.Timeout
	}
	// The function's output goes to stderr; in a local invoke through the
	// sandbox too, which keeps its EMF lines for the report.
	var output io.Writer = stderr
	if sb != nil {
		output = sb.Output(stderr)
	}
	host, err := lambdahost.Start(ctx, lambdahost.Function{
		Name:      fn.LogicalID,
		Bootstrap: bootstrap,
		Env:       env,
		Timeout:   timeout,
		MemoryMB:  fn.MemoryMB,
		LogFormat: fn.LogFormat,
		LogLevel:  fn.LogLevel,
		Stdout:    output,
		Stderr:    output,
	})
	if err != nil {
		return res, nil, err
	}
	res, err = host.Invoke(ctx, payload)
	// Stopped before the report: the function process is done with the
	// stand-ins.
	host.Close()
	if err != nil {
		return res, nil, err
	}
	report := fmt.Sprintf("REPORT RequestId: %s\tDuration: %.2f ms\tMemory Size: %d MB",
		res.RequestID, float64(res.Duration.Microseconds())/1000, fn.MemoryMB)
	if res.InitDuration > 0 {
		report += fmt.Sprintf("\tInit Duration: %.2f ms", float64(res.InitDuration.Microseconds())/1000)
	}
	fmt.Fprintln(stderr, report)
	if sb != nil {
		if rep, err = reportLocal(ctx, sb, cfg.Report); err != nil {
			return res, nil, err
		}
	}
	return res, rep, nil
}

func readEvent(name string, stdin io.Reader) ([]byte, error) {
	var data []byte
	var err error
	switch name {
	case "":
		return []byte("{}"), nil
	case "-":
		data, err = io.ReadAll(stdin)
	default:
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("event %s is not valid JSON", name)
	}
	return bytes.TrimSpace(data), nil
}

// baseEnvironment is the function's environment before the -env flags,
// later sources winning: the template's resolved variables, the forwarded
// variables of the caller's environment, each -env-file (its Parameters
// section, then the function's own section). The -env flags come last
// (applyEnvFlags); a local invoke points the function at its stand-ins in
// between.
func baseEnvironment(fn samtemplate.Function, cfg Config, callerEnv []string) (map[string]string, error) {
	env := map[string]string{}
	for k, v := range fn.Env {
		env[k] = v
	}
	for _, kv := range callerEnv {
		k, v, _ := strings.Cut(kv, "=")
		if isForwarded(k) {
			env[k] = v
		}
	}
	for _, f := range cfg.EnvFiles {
		vars, err := readEnvFile(f, fn.LogicalID)
		if err != nil {
			return nil, err
		}
		for k, v := range vars {
			env[k] = v
		}
	}
	return env, nil
}

// applyEnvFlags sets each -env KEY=VALUE, last wins.
func applyEnvFlags(env map[string]string, flags []string) {
	for _, kv := range flags {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
}

func isForwarded(k string) bool {
	for _, f := range forwarded {
		if k == f {
			return true
		}
	}
	for _, p := range forwardedPrefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// readEnvFile reads an environment file for one function: SAM's env-vars
// JSON (the "Parameters" section applies to every function, a section named
// after the logical ID to that function only), or dotenv-style KEY=VALUE
// lines with # comments and optional quotes.
func readEnvFile(name, logicalID string) (map[string]string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("env file: %w", err)
	}
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		var sections map[string]map[string]any
		if err := json.Unmarshal(t, &sections); err != nil {
			return nil, fmt.Errorf("env file %s: want {\"Parameters\":{...},\"<LogicalId>\":{...}}: %w", name, err)
		}
		out := map[string]string{}
		for _, sec := range []string{"Parameters", logicalID} {
			for k, v := range sections[sec] {
				switch x := v.(type) {
				case string:
					out[k] = x
				case nil:
					out[k] = ""
				default:
					b, _ := json.Marshal(x)
					out[k] = string(b)
				}
			}
		}
		return out, nil
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("env file %s:%d: want KEY=VALUE", name, n)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		out[k] = v
	}
	return out, sc.Err()
}

// build compiles the function's package for this machine into
// <bin>/<name>/bootstrap.
func build(ctx context.Context, tpl *samtemplate.Template, fn samtemplate.Function, binDir string) (string, error) {
	dir := tpl.Dir
	pkgDir := fn.Package
	if !filepath.IsAbs(pkgDir) {
		pkgDir = filepath.Join(dir, pkgDir)
	}
	if fi, err := os.Stat(pkgDir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%s: its package %s does not exist", fn.LogicalID, fn.Package)
	}
	if binDir == "" {
		binDir = filepath.Join(dir, "bin")
	}
	out := filepath.Join(binDir, fn.Name, "bootstrap")
	// Built from inside the package's folder, so a CodeUri anywhere in a
	// module works, whichever folder the template is in.
	if err := lambdahost.Build(ctx, pkgDir, ".", out); err != nil {
		return "", err
	}
	return out, nil
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
