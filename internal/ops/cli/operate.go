package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/user"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/release"
	"github.com/fno-bridge/s3-fno/internal/ops/configdoc"
	"github.com/fno-bridge/s3-fno/internal/ops/routectl"
	"github.com/fno-bridge/s3-fno/internal/ops/status"
	"github.com/fno-bridge/s3-fno/internal/shared/config"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

// operateCommands are status, pause and resume, the configuration
// document and running a job now.
var operateCommands = []Command{
	{Name: "status", NArgs: 0, Run: runStatus,
		Summary: "per route: files waiting and in flight, the oldest, F&O's statuses, paused or not; per export job: last run, last landing, next run"},
	{Name: "pause", Args: "<route>", NArgs: 1, Run: runPause, Flags: reasonFlag,
		Summary: "hold a route's files in inbound/, in order, until resume"},
	{Name: "resume", Args: "<route>", NArgs: 1, Run: runResume,
		Summary: "lift a route's pause: its waiting files go to F&O in their order"},
	{Name: "config validate", Args: "<file>", NArgs: 1, Run: runConfigValidate,
		Summary: "check a configuration document (routes and export jobs) as the functions will read it"},
	{Name: "config diff", Args: "<file>", NArgs: 1, Run: runConfigDiff,
		Summary: "what storing a document would change: routes, jobs and their schedules"},
	{Name: "config apply", Args: "<file>", NArgs: 1, Run: runConfigApply,
		Summary: "store a document (only if valid, and only over the version read) and make the export schedules match it"},
	{Name: "config show", NArgs: 0, Run: runConfigShow,
		Summary: "print the stored configuration document"},
	{Name: "jobs run", Args: "<job>", NArgs: 1, Run: runJobNow,
		Summary: "run an export job once, now (a one-off schedule; the run is recorded like a scheduled one)"},
}

func reasonFlag(fs *flag.FlagSet, o *Options) {
	fs.StringVar(&o.Reason, "reason", "", "why, for the status view")
}

// document is the configuration in force: the stored document, or the
// routes ROUTES fixes (local runs).
func (a *App) document(ctx context.Context) (*config.Document, error) {
	return a.Stack.Document(ctx, a.Clients.S3)
}

// manager stores the document and keeps the schedules.
func (a *App) manager() (*configdoc.Manager, error) {
	if err := a.Stack.NeedBucket(); err != nil {
		return nil, err
	}
	key := a.Stack.Getenv("CONFIG_KEY")
	if key == "" {
		key = config.DefaultKey
	}
	m := &configdoc.Manager{S3: a.Clients.S3, Bucket: a.Stack.Bucket, Key: key, OutboundPrefix: a.Stack.Getenv("OUTBOUND_PREFIX")}
	if a.Stack.ExportScheduleGroup != "" {
		m.Schedules = &configdoc.Schedules{Client: a.Clients.Scheduler, Group: a.Stack.ExportScheduleGroup,
			FunctionARN: a.Stack.Functions["dequeue"], RoleARN: a.Stack.ExportScheduleRole, DLQARN: a.Stack.ScheduleDLQArn}
	}
	return m, nil
}

func runStatus(ctx context.Context, a *App, _ []string) (Result, error) {
	l, err := a.layout()
	if err != nil {
		return Result{}, err
	}
	doc, err := a.document(ctx)
	if err != nil {
		return Result{}, err
	}
	v := &status.Viewer{S3: a.Clients.S3, Bucket: a.Stack.Bucket, Layout: l, Doc: doc, Now: a.Now}
	rep, err := v.View(ctx)
	if err != nil {
		return Result{}, err
	}
	return Result{Report: statusReport(rep), Code: ExitOK}, nil
}

// controller pauses and resumes the stack's routes.
func (a *App) controller(ctx context.Context) (*routectl.Controller, error) {
	l, err := a.layout()
	if err != nil {
		return nil, err
	}
	doc, err := a.document(ctx)
	if err != nil {
		return nil, err
	}
	if a.Stack.ImportQueue == "" {
		return nil, errors.New("no import queue: give --stack, --env-file or --import-queue (resume asks for a release pass there)")
	}
	cfg := release.Config{Config: routes.Config{Bucket: a.Stack.Bucket, Routes: doc.Routes, Layout: l}, QueueURL: a.Stack.ImportQueue}
	rel, err := release.New(cfg, a.Clients.S3, a.Clients.SQS, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	return &routectl.Controller{S3: a.Clients.S3, Bucket: a.Stack.Bucket, Layout: l, Routes: doc.Routes, Releaser: rel}, nil
}

func runPause(ctx context.Context, a *App, args []string) (Result, error) {
	c, err := a.controller(ctx)
	if err != nil {
		return Result{}, err
	}
	by := "s3fno"
	if u, err := user.Current(); err == nil {
		by = u.Username
	}
	res, err := c.Pause(ctx, args[0], by, a.Options.Reason)
	if err != nil && res.Paused {
		return Result{Report: routeChange(res), Code: ExitProblems}, err // paused all the same
	}
	if err != nil {
		return Result{}, err
	}
	return Result{Report: routeChange(res), Code: ExitOK}, nil
}

func runResume(ctx context.Context, a *App, args []string) (Result, error) {
	c, err := a.controller(ctx)
	if err != nil {
		return Result{}, err
	}
	res, err := c.Resume(ctx, args[0])
	if err != nil {
		return Result{Report: routeChange(res), Code: ExitProblems}, err
	}
	return Result{Report: routeChange(res), Code: ExitOK}, nil
}

func readDoc(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(io.LimitReader(os.Stdin, config.MaxSize+1))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the document: %w", err)
	}
	return data, nil
}

func runConfigValidate(_ context.Context, a *App, args []string) (Result, error) {
	data, err := readDoc(args[0])
	if err != nil {
		return Result{}, err
	}
	m := &configdoc.Manager{OutboundPrefix: a.Stack.Getenv("OUTBOUND_PREFIX")}
	data, _ = configdoc.SplitVersion(data)
	doc, err := m.Validate(data)
	if err != nil {
		return Result{Code: ExitProblems}, fmt.Errorf("%s: %w", args[0], err)
	}
	return Result{Report: validated{File: args[0], Routes: doc.Routes.Len(), Jobs: len(doc.Jobs)}, Code: ExitOK}, nil
}

func runConfigDiff(ctx context.Context, a *App, args []string) (Result, error) {
	return configChange(ctx, a, args[0], false)
}

func runConfigApply(ctx context.Context, a *App, args []string) (Result, error) {
	return configChange(ctx, a, args[0], true)
}

func configChange(ctx context.Context, a *App, path string, apply bool) (Result, error) {
	data, err := readDoc(path)
	if err != nil {
		return Result{}, err
	}
	m, err := a.manager()
	if err != nil {
		return Result{}, err
	}
	var rep configdoc.Report
	if apply {
		rep, err = m.Apply(ctx, data)
	} else {
		rep, err = m.Plan(ctx, data)
	}
	if err != nil {
		return Result{Report: configReport{rep, apply, m.Schedules != nil}, Code: ExitProblems}, err
	}
	return Result{Report: configReport{rep, apply, m.Schedules != nil}, Code: ExitOK}, nil
}

func runConfigShow(ctx context.Context, a *App, _ []string) (Result, error) {
	m, err := a.manager()
	if err != nil {
		return Result{}, err
	}
	cur, err := m.Current(ctx)
	if err != nil {
		return Result{}, err
	}
	if cur.Raw == nil {
		return Result{Code: ExitProblems}, fmt.Errorf("no document at s3://%s/%s yet: store one with config apply", m.Bucket, m.Key)
	}
	return Result{Report: shown(cur), Code: ExitOK}, cur.Invalid
}

func runJobNow(ctx context.Context, a *App, args []string) (Result, error) {
	m, err := a.manager()
	if err != nil {
		return Result{}, err
	}
	if m.Schedules == nil {
		return Result{}, errors.New("the export schedules are not known: give --stack (or --schedule-group, --schedule-role and --function dequeue=...)")
	}
	doc, err := a.document(ctx)
	if err != nil {
		return Result{}, err
	}
	for _, j := range doc.Jobs {
		if j.Name == args[0] {
			name, err := m.Schedules.RunNow(ctx, j, a.Now())
			if err != nil {
				return Result{}, err
			}
			return Result{Report: jobStarted{Job: j.Name, Schedule: name, Group: m.Schedules.Group}, Code: ExitOK}, nil
		}
	}
	var names []string
	for _, j := range doc.Jobs {
		names = append(names, j.Name)
	}
	return Result{Code: ExitProblems}, fmt.Errorf("no job %q in the configuration document (jobs: %s)", args[0], strings.Join(names, ", "))
}

// The reports, for people.

type statusReport status.Report

func (r statusReport) MarshalJSON() ([]byte, error) { return json.Marshal(status.Report(r)) }

func (r statusReport) Table(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ROUTE\tPAUSED\tWAITING\tIN FLIGHT\tOLDEST\tF&O STATUSES\tSTUCK\n")
	for _, rv := range r.Routes {
		paused := "-"
		if rv.Paused != nil {
			paused = "since " + rv.Paused.At.Format(time.RFC3339) + " (" + rv.Paused.By + ": " + rv.Paused.Reason + ")"
		}
		oldest := "-"
		if !rv.Oldest.IsZero() {
			oldest = r.At.Sub(rv.Oldest).Round(time.Second).String() + " ago"
		}
		var st []string
		for _, k := range slices.Sorted(maps.Keys(rv.Statuses)) {
			st = append(st, fmt.Sprintf("%s %d", k, rv.Statuses[k]))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%d\n", rv.Route, paused, rv.Waiting, rv.InFlight, oldest, strings.Join(st, ", "), rv.Stuck)
	}
	tw.Flush()
	if !r.BoardUpdatedAt.IsZero() {
		fmt.Fprintf(w, "(F&O statuses as the poller saw them at %s)\n", r.BoardUpdatedAt.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "JOB\tSCHEDULE\tENABLED\tLAST RUN\tLAST LANDING\tNEXT RUN\n")
	for _, j := range r.Jobs {
		fmt.Fprintf(tw, "%s\t%s (%s)\t%v\t%s\t%s\t%s\n", j.Job, j.Schedule, j.Timezone, j.Enabled, when(j.LastRun), when(j.LastLanding), when(j.NextRun))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, j := range r.Jobs {
		if x := j.Execution; x != nil {
			fmt.Fprintf(w, "%s: execution %s, started %s: %s (%s)\n", j.Job, x.ExecutionID, when(x.StartedAt), cmp.Or(x.Status, "-"), x.Outcome)
			if x.ResultKey != "" {
				fmt.Fprintf(w, "  F&O's errors: %s\n", x.ResultKey)
			}
		}
	}
	return nil
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

type routeChange routectl.Result

func (r routeChange) Table(w io.Writer) error {
	switch {
	case r.NoPass:
		_, err := fmt.Fprintf(w, "route %s resumed, but no release pass was asked for: its files wait until you resume it again\n", r.Route)
		return err
	case r.Paused && r.Changed:
		_, err := fmt.Fprintf(w, "route %s paused; %d file(s) in inbound/ wait, in order, until s3fno resume %s\n", r.Route, r.Waiting, r.Route)
		return err
	case r.Paused:
		_, err := fmt.Fprintf(w, "route %s was already paused (since %s, by %s: %s); %d file(s) wait\n", r.Route,
			r.Marker.At.Format(time.RFC3339), r.Marker.By, r.Marker.Reason, r.Waiting)
		return err
	case r.Changed:
		_, err := fmt.Fprintf(w, "route %s resumed; a release pass sends its %d waiting file(s) in their order\n", r.Route, r.Waiting)
		return err
	}
	_, err := fmt.Fprintf(w, "route %s was not paused; a release pass was asked for all the same (%d file(s) in inbound/)\n", r.Route, r.Waiting)
	return err
}

type validated struct {
	File   string `json:"file"`
	Routes int    `json:"routes"`
	Jobs   int    `json:"jobs"`
}

func (v validated) Table(w io.Writer) error {
	_, err := fmt.Fprintf(w, "%s is valid: %d route(s), %d export job(s)\n", v.File, v.Routes, v.Jobs)
	return err
}

type configReport struct {
	configdoc.Report
	applied, schedules bool
}

func (r configReport) MarshalJSON() ([]byte, error) { return json.Marshal(r.Report) }

func (r configReport) Table(w io.Writer) error {
	verb := "would change"
	if r.applied {
		verb = "changed"
		if r.Stored {
			fmt.Fprintf(w, "stored %s (version %s)\n", r.Document, r.VersionID)
		} else {
			fmt.Fprintf(w, "%s already holds this document\n", r.Document)
		}
	}
	if r.Stale {
		fmt.Fprintf(w, "this file was shown from version %s, and the stored document has changed since: "+
			"apply refuses it (the changes below include undoing those)\n", r.ShownFrom)
	}
	if len(r.Changes) == 0 {
		fmt.Fprintf(w, "no route or job changes\n")
	}
	for _, c := range r.Changes {
		fmt.Fprintf(w, "  %s %s %s: %s\n", c.Action, c.What, c.Name, c.Detail)
	}
	if !r.schedules {
		_, err := fmt.Fprintln(w, "(export schedules not checked: give --stack, or --schedule-group, --schedule-role and --function dequeue=...)")
		return err
	}
	fmt.Fprintf(w, "export schedules (%s):\n", verb)
	for _, s := range r.Schedules {
		fmt.Fprintf(w, "  %s %s %s\n", s.Action, s.Job, s.Detail)
	}
	return nil
}

type shown configdoc.Stored

func (s shown) MarshalJSON() ([]byte, error) { return s.Raw, nil }

// Table prints the document under its version's line: a file saved from
// it is applied over that version only.
func (s shown) Table(w io.Writer) error {
	_, err := w.Write(append(configdoc.Shown(s.Raw, s.VersionID), '\n'))
	return err
}

type jobStarted struct {
	Job      string `json:"job"`
	Schedule string `json:"schedule"`
	Group    string `json:"group"`
}

func (j jobStarted) Table(w io.Writer) error {
	_, err := fmt.Fprintf(w, "job %s runs within a minute (one-off schedule %s in %s, deleted once it ran); see s3fno status for its run\n",
		j.Job, j.Schedule, j.Group)
	return err
}
