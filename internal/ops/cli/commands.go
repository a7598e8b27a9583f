package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fno-bridge/s3-fno/internal/ops/configdoc"
	"github.com/fno-bridge/s3-fno/internal/ops/doctor"
	"github.com/fno-bridge/s3-fno/internal/ops/failures"
	"github.com/fno-bridge/s3-fno/internal/ops/redrive"
	"github.com/fno-bridge/s3-fno/internal/ops/replay"
	"github.com/fno-bridge/s3-fno/internal/ops/where"
	"github.com/fno-bridge/s3-fno/internal/shared/config"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

// Commands is the tool's command table: finding files and failures,
// replay, redrive and doctor here; status, pause and resume, the
// configuration document and jobs run in operate.go.
var Commands = append([]Command{
	{Name: "where", Args: "<key or file name>", NArgs: 1, Run: runWhere,
		Summary: "which stage a file is in (inbound, released, enqueued, processed, failed, rejected), every version of it"},
	{Name: "failures", NArgs: 0, Run: runFailures, Flags: failureFlags,
		Summary: "failed and rejected files with their reasons and first error rows, newest first"},
	{Name: "replay", Args: "<key>", NArgs: 1, Run: runReplay, Flags: replayFlags,
		Summary: "send a processed, failed or rejected file through again, as a new version in inbound/<route>/"},
	{Name: "redrive", NArgs: 0, Run: runRedrive,
		Summary: "move the import dead-letter queue's messages back to the import queue, in order, and list their files"},
	{Name: "doctor", NArgs: 0, Run: runDoctor,
		Summary: "check each link (resources, secret, Entra ID, F&O, every route's job, schedules, dead-letter queues) and say what to fix"},
}, operateCommands...)

func runWhere(ctx context.Context, a *App, args []string) (Result, error) {
	l, err := a.layout()
	if err != nil {
		return Result{}, err
	}
	f := &where.Finder{S3: a.Clients.S3, Bucket: a.Stack.Bucket, Layout: l, DLQ: a.Clients.SQS, DLQURL: a.Stack.ImportDLQ}
	r, err := f.Find(ctx, args[0])
	if err != nil {
		return Result{}, err
	}
	if len(r.Found) == 0 {
		return Result{Report: r, Code: ExitProblems}, nil
	}
	return Result{Report: r, Code: ExitOK}, nil
}

func failureFlags(fs *flag.FlagSet, o *Options) {
	fs.StringVar(&o.Route, "route", "", "only this route (or _unrouted, _malformed)")
	fs.StringVar(&o.Since, "since", "24h", "how far back: a duration such as 90m, 24h or 7d")
}

func runFailures(ctx context.Context, a *App, _ []string) (Result, error) {
	l, err := a.layout()
	if err != nil {
		return Result{}, err
	}
	since, err := parseSince(a.Options.Since)
	if err != nil {
		return Result{}, err
	}
	if strings.Contains(a.Options.Route, "/") {
		return Result{}, fmt.Errorf("--route %q: give a route's folder name, such as customers", a.Options.Route)
	}
	lister := &failures.Lister{S3: a.Clients.S3, Bucket: a.Stack.Bucket, Layout: l, Now: a.Now}
	r, err := lister.List(ctx, failures.Query{Route: a.Options.Route, Since: since})
	if err != nil {
		return Result{}, err
	}
	if len(r.Failures) > 0 {
		return Result{Report: r, Code: ExitProblems}, nil
	}
	if err := a.knownRoute(ctx, a.Options.Route); err != nil {
		return Result{}, err // a misspelt route is not a route without failures
	}
	return Result{Report: r, Code: ExitOK}, nil
}

// knownRoute refuses a --route the configuration does not name (one that
// cannot be read is taken on trust, as are the _unrouted and _malformed
// folders).
func (a *App) knownRoute(ctx context.Context, route string) error {
	if route == "" || strings.HasPrefix(route, "_") {
		return nil
	}
	doc, err := a.document(ctx)
	if err != nil || doc == nil || doc.Routes == nil {
		return nil
	}
	if _, ok := doc.Routes.Lookup(route); ok {
		return nil
	}
	return fmt.Errorf("--route %q is not a configured route (configured: %s), and no failure was filed under it",
		route, strings.Join(doc.Routes.Names(), ", "))
}

// parseSince reads a duration, with d for days.
func parseSince(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 && n <= 3650 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--since %q: give a positive duration such as 90m, 24h or 7d", s)
	}
	return d, nil
}

func replayFlags(fs *flag.FlagSet, o *Options) {
	fs.BoolVar(&o.Force, "force", false, "replay a file whose outcome in F&O is unknown (check first that F&O does not have it)")
}

func runReplay(ctx context.Context, a *App, args []string) (Result, error) {
	l, err := a.layout()
	if err != nil {
		return Result{}, err
	}
	r := &replay.Replayer{S3: a.Clients.S3, Bucket: a.Stack.Bucket, Layout: l, Force: a.Options.Force}
	res, err := r.Replay(ctx, args[0])
	if errors.Is(err, replay.ErrNotFound) || errors.Is(err, replay.ErrMayBeInFnO) {
		return Result{Code: ExitProblems}, err
	}
	if err != nil {
		return Result{}, err
	}
	return Result{Report: replayed(res), Code: ExitOK}, nil
}

func runRedrive(ctx context.Context, a *App, _ []string) (Result, error) {
	r := &redrive.Redriver{SQS: a.Clients.SQS, DLQ: a.Stack.ImportDLQ, Queue: a.Stack.ImportQueue}
	rep, err := r.Redrive(ctx)
	switch {
	case err != nil && len(rep.Moved) == 0 && rep.Problem == "":
		return Result{}, err // nothing was tried: it could not run
	case err != nil:
		return Result{Report: rep, Code: ExitProblems}, err
	}
	return Result{Report: rep, Code: ExitOK}, nil
}

func runDoctor(ctx context.Context, a *App, _ []string) (Result, error) {
	c := a.Clients
	// The routes' checks and the schedules' share one read of the document.
	var loaded struct {
		sync.Once
		doc *config.Document
		err error
	}
	document := func(ctx context.Context) (*config.Document, error) {
		loaded.Do(func() { loaded.doc, loaded.err = a.document(ctx) })
		return loaded.doc, loaded.err
	}
	d := &doctor.Doctor{Stack: a.Stack, AWS: doctor.AWS{S3: c.S3, SQS: c.SQS, SNS: c.SNS, Secrets: c.Secrets, Lambda: c.Lambda, Scheduler: c.Scheduler},
		Routes: func(ctx context.Context) ([]routes.Route, error) {
			doc, err := document(ctx)
			if err != nil {
				return nil, err
			}
			return doc.Routes.All(), nil
		}}
	if m, err := a.manager(); err == nil && m.Schedules != nil {
		d.Exports = func(ctx context.Context) ([]configdoc.ScheduleChange, error) {
			doc, err := document(ctx)
			if err != nil {
				return nil, err
			}
			return m.Schedules.Sync(ctx, doc, false)
		}
	}
	r := d.Run(ctx)
	if r.Failed > 0 {
		return Result{Report: r, Code: ExitProblems}, nil
	}
	return Result{Report: r, Code: ExitOK}, nil
}
