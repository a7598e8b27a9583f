// Package doctor checks each link a deployment depends on, once, and says
// what to fix: the stack and its resources, the secret, a token from Entra
// ID, F&O and the app's authorization there, every route's recurring job,
// the schedules, and the dead-letter queues. A link that fails makes the
// ones behind it unknowable; they are skipped and say why.
package doctor

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/fno-bridge/s3-fno/internal/ops/configdoc"
	"github.com/fno-bridge/s3-fno/internal/ops/stack"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

// Results of a check.
const (
	OK   = "ok"
	Warn = "warn" // works, but something is missing a person should know of
	Fail = "FAIL"
	Skip = "skip" // not checked: nothing to check, or a link before it failed
)

// Check is one link and how it is.
type Check struct {
	Name   string `json:"name"`
	Result string `json:"result"`
	Detail string `json:"detail,omitempty"`
	Fix    string `json:"fix,omitempty"`
}

// Report is every check, in the order made.
type Report struct {
	Stack  string  `json:"stack,omitempty"`
	Checks []Check `json:"checks"`
	Failed int     `json:"failed"`
	Warned int     `json:"warned"`
}

// Doctor checks one deployment.
type Doctor struct {
	Stack *stack.Stack
	AWS   AWS
	// Routes reads the route table the functions go by.
	Routes func(ctx context.Context) ([]routes.Route, error)
	// Exports plans the export jobs' schedules against the configuration
	// document (nil: not checked).
	Exports func(ctx context.Context) ([]configdoc.ScheduleChange, error)
	// Timeout bounds each check (default 30s).
	Timeout time.Duration
}

// Run makes every check.
func (d *Doctor) Run(ctx context.Context) Report {
	r := &Report{Stack: d.Stack.Name, Checks: []Check{}}
	depth := d.resources(ctx, r)
	d.fno(ctx, r)
	d.schedules(ctx, r)
	d.exportSchedules(ctx, r)
	d.deadLetters(r, depth)
	for _, c := range r.Checks {
		switch c.Result {
		case Fail:
			r.Failed++
		case Warn:
			r.Warned++
		}
	}
	return *r
}

func (r *Report) add(c Check) { r.Checks = append(r.Checks, c) }

// within runs one check with the timeout.
func (d *Doctor) within(ctx context.Context, f func(context.Context) Check) Check {
	t := d.Timeout
	if t <= 0 {
		t = 30 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	return f(cctx)
}

// Table writes the checks for people, each failure with its fix.
func (r Report) Table(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT\tDETAIL")
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, c.Result, c.Detail)
		if c.Fix != "" {
			fmt.Fprintf(tw, "\t\tfix: %s\n", c.Fix)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case r.Failed > 0:
		_, err := fmt.Fprintf(w, "\n%d check%s failed; fix them in the order shown (a later one may only follow from an earlier).\n",
			r.Failed, map[bool]string{true: "", false: "s"}[r.Failed == 1])
		return err
	}
	works := "every link works"
	if n := r.skipped(); n > 0 {
		works = fmt.Sprintf("every link checked works; %d not checked (skip, above)", n)
	}
	if r.Warned > 0 {
		works += fmt.Sprintf("; %d warning%s", r.Warned, map[bool]string{true: "", false: "s"}[r.Warned == 1])
	}
	_, err := fmt.Fprintf(w, "\n%s.\n", works)
	return err
}

// skipped counts the checks not made.
func (r Report) skipped() int {
	n := 0
	for _, c := range r.Checks {
		if c.Result == Skip {
			n++
		}
	}
	return n
}
