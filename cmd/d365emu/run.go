package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// config is everything the command line sets.
type config struct {
	opts       d365test.Options
	activities []activitySpec
	exports    []exportSpec
	tick       time.Duration
	realTime   bool
	caOut      string
	verbose    bool
}

type activitySpec struct {
	id string
	a  d365test.Activity
}

type exportSpec struct{ activity, path string }

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	var acts, exps listFlag
	fs := flag.NewFlagSet("d365emu", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.opts.Addr, "addr", "127.0.0.1:0", "F&O listener address (127.0.0.1 only); Entra and blob listeners take free ports")
	fs.Var(&acts, "activity", "recurring job: `GUID[,file|package][,inorder][,name=Job name]` (repeatable)")
	fs.Var(&exps, "export", "queue an export at start: `GUID=path/to/file` (repeatable)")
	fs.DurationVar(&cfg.tick, "tick", 5*time.Second, "batch run interval (0: never tick)")
	fs.BoolVar(&cfg.realTime, "realtime", true, "advance the emulator's clock with real time on every tick (dequeue re-delivery, SAS and token expiry)")
	fs.StringVar(&cfg.caOut, "ca-out", "", "write the CA certificate (PEM) to this file")
	fs.StringVar(&cfg.opts.TenantID, "tenant", "", "Entra tenant ID (default "+d365test.DefaultTenantID+")")
	fs.StringVar(&cfg.opts.ClientID, "client-id", "", `client ID (default "fno-bridge-app")`)
	fs.StringVar(&cfg.opts.ClientSecret, "client-secret", "", `client secret (default "emulator-secret")`)
	fs.DurationVar(&cfg.opts.TokenLifetime, "token-lifetime", time.Hour, "lifetime of issued tokens")
	fs.DurationVar(&cfg.opts.VisibilityTimeout, "visibility-timeout", 30*time.Minute, "dequeue re-delivery delay")
	fs.BoolVar(&cfg.opts.HTTPDownloadLocation, "http-download-location", false, "hand out DownloadLocation as http://host:80/... (the real quirk)")
	fs.BoolVar(&cfg.opts.RawNewlinesInErrors, "raw-newlines-in-errors", false, "GetExecutionErrors text with raw CR/LF and quotes")
	fs.BoolVar(&cfg.opts.Unauthorized403, "unauthorized-403", false, "answer 403 instead of 401 for apps not allowed on an activity")
	fs.BoolVar(&cfg.opts.EnhancedParallelPackageImport, "enhanced-parallel-package-import", false,
		"F&O's Data management parameter of that name: package imports of different data projects may run at once (default: one per environment)")
	fs.BoolVar(&cfg.opts.OnPremises, "on-premises", false,
		"an on-premises environment: sign-in at AD FS (/adfs), the package API under /namespaces/AXSF, no recurring integrations (302)")
	fs.BoolVar(&cfg.verbose, "v", false, "log every request to stderr (never tokens or secrets)")
	answer := fs.String("enqueue-answer", string(d365test.AnswerJSONString), "shape of every enqueue answer: "+shapeNames()+
		" (F&O answers json; the others try a client's reading of the message ID)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	shape, err := d365test.ParseAnswerShape(*answer)
	if err != nil {
		fmt.Fprintln(stderr, "d365emu: -enqueue-answer:", err)
		return config{}, err
	}
	cfg.opts.EnqueueAnswer = shape
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected arguments %q", fs.Args())
		fmt.Fprintln(stderr, "d365emu:", err)
		return config{}, err
	}
	for _, s := range acts {
		a, err := parseActivity(s)
		if err != nil {
			fmt.Fprintln(stderr, "d365emu:", err)
			return config{}, err
		}
		cfg.activities = append(cfg.activities, a)
	}
	for _, s := range exps {
		id, path, ok := strings.Cut(s, "=")
		if !ok || !guidRE.MatchString(id) || path == "" {
			err := fmt.Errorf("-export %q: want GUID=path", s)
			fmt.Fprintln(stderr, "d365emu:", err)
			return config{}, err
		}
		cfg.exports = append(cfg.exports, exportSpec{id, path})
	}
	if cfg.tick < 0 {
		err := errors.New("-tick must not be negative")
		fmt.Fprintln(stderr, "d365emu:", err)
		return config{}, err
	}
	return cfg, nil
}

// shapeNames lists the enqueue answer shapes for the flag's help.
func shapeNames() string {
	names := make([]string, len(d365test.AnswerShapes))
	for i, a := range d365test.AnswerShapes {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

// guidRE is an activity ID as F&O accepts it: any case, braces optional.
var guidRE = regexp.MustCompile(`^\{?[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}?$`)

// parseActivity reads "GUID[,file|package][,inorder][,name=...]".
func parseActivity(s string) (activitySpec, error) {
	parts := strings.Split(s, ",")
	spec := activitySpec{id: strings.TrimSpace(parts[0])}
	if !guidRE.MatchString(spec.id) {
		return spec, fmt.Errorf("-activity %q: %q is not a GUID", s, spec.id)
	}
	for _, p := range parts[1:] {
		p = strings.TrimSpace(p)
		switch k := strings.ToLower(p); {
		case k == "file":
			spec.a.Kind = d365test.File
		case k == "package":
			spec.a.Kind = d365test.Package
		case k == "inorder":
			spec.a.InOrder = true
		case strings.HasPrefix(k, "name="):
			spec.a.Name = p[len("name="):]
		default:
			return spec, fmt.Errorf("-activity %q: unknown option %q (want file, package, inorder or name=...)", s, p)
		}
	}
	return spec, nil
}

// run starts the emulator, prints how to reach it, ticks until ctx ends,
// then closes it. ready, if set, gets the running emulator (for tests).
func run(ctx context.Context, cfg config, out io.Writer, ready func(*d365test.Emulator)) (err error) {
	if cfg.verbose {
		l := log.New(os.Stderr, "", log.LstdFlags)
		cfg.opts.Logf = l.Printf
	}
	e, err := d365test.Start(cfg.opts)
	if err != nil {
		return err
	}
	defer e.Close()
	for _, a := range cfg.activities {
		e.AddActivity(a.id, a.a)
	}
	for _, x := range cfg.exports {
		body, err := os.ReadFile(x.path)
		if err != nil {
			return fmt.Errorf("-export: %w", err)
		}
		e.QueueExport(x.activity, d365test.Export{Body: body, FileName: filepath.Base(x.path)})
	}
	caFile := ""
	if cfg.caOut != "" {
		if err := os.WriteFile(cfg.caOut, e.CertPEM(), 0o644); err != nil {
			return fmt.Errorf("-ca-out: %w", err)
		}
		caFile, _ = filepath.Abs(cfg.caOut)
	}
	// The names the functions read (internal/shared/fnoenv), so the output can be
	// pasted into a function's environment as is.
	au, _ := url.Parse(e.AuthorityURL())
	authority, tenant, namespace := au.Scheme+"://"+au.Host, e.TenantID(), ""
	if cfg.opts.OnPremises {
		authority, tenant, namespace = e.ADFSAuthorityURL(), "adfs", "\nFNO_NAMESPACE="+d365test.OnPremisesNamespace
	}
	fmt.Fprintf(out, "FNO_BASE_URL=%s\nFNO_AUTHORITY_HOST=%s\nFNO_TENANT_ID=%s%s\nFNO_CLIENT_ID=%s\nFNO_CLIENT_SECRET=%s\nFNO_CA_BUNDLE=%s\n# blob storage (download URLs point here): %s\n",
		e.URL(), authority, tenant, namespace, e.ClientID(), e.ClientSecret(), caFile, e.BlobURL())
	if ready != nil {
		ready(e)
	}
	if cfg.tick == 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(cfg.tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			if cfg.realTime {
				e.Advance(now.Sub(last))
				last = now
			}
			e.Tick()
		}
	}
}
