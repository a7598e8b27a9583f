package dequeue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/fno-bridge/s3-fno/internal/shared/fnoenv"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// A job of kind dataProject exports a data project through F&O's package
// API, one execution at a time. Each run:
//
//  1. follows the job's execution in flight, if any (Execution, at
//     ExecutionKey), with GetExecutionSummaryStatus, waiting with a
//     bounded back-off while it runs (NotRun, Executing), at most
//     ExecutionWait and never past DeadlineMargin before the deadline;
//  2. on Succeeded or PartiallySucceeded, asks GetExportedPackageUrl (which
//     may answer "" for a while) and streams the package from blob storage
//     (never with the bearer token; a SAS that expired is replaced by a new
//     URL) to <prefix><yyyy>/<mm>/<dd>/<executionId>-<packageName>.zip
//     through the same landing as dequeued files: a marker per execution,
//     If-None-Match, unpacked when the job asks;
//  3. on Failed, Canceled or PartiallySucceeded, reads GetExecutionErrors
//     and reports the execution with them, once: an ERROR line, the
//     ExportFailures metric and an export-failed notification;
//  4. when no execution is in flight, chooses a new execution ID, records
//     it, then calls ExportToPackage with it, and follows it as in 1.
//
// An execution still running when the run ends is left for the next run,
// which starts none while it runs. One F&O has said for ExecutionLostAfter
// it does not know (its ExportToPackage never arrived) is given up: an
// export is safe to start again.

// PackageFnO is the package API a dataProject job uses.
type PackageFnO interface {
	ExportToPackage(ctx context.Context, in d365.ExportPackageRequest) (string, error)
	GetExecutionSummaryStatus(ctx context.Context, executionID string) (d365.ExecutionStatus, error)
	GetExecutionErrors(ctx context.Context, executionID string) (*d365.ExecutionErrors, error)
	GetExportedPackageURL(ctx context.Context, executionID string) (string, error)
	FetchBlob(ctx context.Context, blobURL string) (*d365.Download, error)
}

var _ PackageFnO = (*d365.Client)(nil)

const (
	// maxExecutionPoll caps the back-off between two looks at an execution.
	maxExecutionPoll = time.Minute
	// sasAttempts bounds the package URLs asked for in one landing: a SAS
	// refused as expired is replaced by a new one.
	sasAttempts = 3
	// maxReportedRows bounds the execution errors kept in a summary and a
	// log line; a notification names the first maxNotifiedRows.
	maxReportedRows = 20
	maxNotifiedRows = 5
)

// errURLNotReady: GetExportedPackageUrl still answered "" when the run
// could wait no longer. Not a failure: the next run lands it.
var errURLNotReady = errors.New("F&O has no package URL for the execution yet")

// errYield: another run of the job changed the execution document; this
// run leaves the execution to it.
var errYield = errors.New("another run of this job is following its execution")

// pkgRun is one run of a dataProject job.
type pkgRun struct {
	h     *Handler
	pk    PackageFnO
	in    Input
	log   *slog.Logger
	sum   *Summary
	x     *Execution // the job's execution (nil: none yet)
	etag  string     // of the execution document read or written last ("": none)
	until time.Time  // the run waits no longer than this (wall clock)
	poll  time.Duration
	rows  []d365.ExecutionError // the first execution errors of the execution followed, once reported
}

// runPackage runs a dataProject job: the execution in flight is followed,
// landed or reported; then, if none is in flight, the next one starts.
func (h *Handler) runPackage(ctx context.Context, in Input) (Summary, error) {
	log := h.log.With("job", in.Job, "definitionGroupId", in.DefinitionGroupID)
	sum := Summary{Job: in.Job, Kind: in.Kind, DefinitionGroupID: in.DefinitionGroupID, Prefix: in.Prefix, Files: []FileResult{}}
	pk, ok := h.fno.(PackageFnO)
	if !ok { // a client made for recurring jobs only (a test's)
		err := fmt.Errorf("export %s: the F&O client has no package API", in.Job)
		log.ErrorContext(ctx, "dequeue: bad F&O client", "error", err.Error())
		return sum, err
	}
	j := &pkgRun{h: h, pk: pk, in: in, log: log, sum: &sum, until: time.Now().Add(h.cfg.ExecutionWait), poll: h.cfg.ExecutionPoll}
	err := j.run(ctx)
	if errors.Is(err, errYield) {
		log.InfoContext(ctx, "dequeue: another run of this job changed its execution document; leaving the execution to it")
		err = nil
	}
	if err != nil {
		err = fmt.Errorf("export %s: %w", in.Job, err)
		sum.addError(err.Error())
		if j.x != nil && j.x.Phase != PhaseDone {
			sum.MoreMayRemain = true
		}
	}
	h.finish(ctx, log, sum)
	return sum, err
}

func (j *pkgRun) run(ctx context.Context) error {
	x, etag, err := j.h.readExecution(ctx, j.log, j.in)
	if err != nil {
		return err
	}
	j.x, j.etag = x, etag
	if j.x != nil && j.x.Phase != PhaseDone {
		if err := j.follow(ctx, false); err != nil || j.x.Phase != PhaseDone {
			return err
		}
	}
	if j.h.tooLate(ctx) {
		j.sum.StoppedForDeadline = true
		return nil
	}
	if started, err := j.start(ctx); err != nil || !started {
		return err
	}
	return j.follow(ctx, true)
}

// follow looks at the execution until it is done or the run may wait no
// longer, then records where it stands and adds it to the summary.
func (j *pkgRun) follow(ctx context.Context, started bool) error {
	log := j.log.With("executionId", j.x.ExecutionID)
	j.rows = nil
	err := j.watch(ctx, log)
	res := j.x.result()
	res.Started = started
	if j.x.Phase != PhaseDone {
		j.sum.MoreMayRemain = true
		log.InfoContext(ctx, pending(j.x.Status), "status", j.x.Status)
	}
	res.Errors = j.rows
	j.sum.Executions = append(j.sum.Executions, res)
	return err
}

// watch asks F&O for the execution's status until it is final and handled,
// or the wait is over. The document is written when the status changes and
// when the run leaves the execution.
func (j *pkgRun) watch(ctx context.Context, log *slog.Logger) error {
	for {
		st, err := j.pk.GetExecutionSummaryStatus(ctx, j.x.ExecutionID)
		notFound := errors.Is(err, d365.ErrExecutionNotFound)
		if err != nil && !notFound {
			if !fnoenv.LogRefusal(ctx, log, j.h.cfg.Notify, err) {
				log.ErrorContext(ctx, "dequeue: the package export's status could not be read", "error", err.Error())
			}
			return j.keep(ctx, fmt.Errorf("GetExecutionSummaryStatus %s: %w", j.x.ExecutionID, err))
		}
		if notFound {
			st = d365.ExecUnknown
		}
		changed := string(st) != j.x.Status
		j.x.Status, j.x.CheckedAt = string(st), j.h.cfg.Now().UTC()
		class := statusClass(st)
		if class != classUnknown && j.x.Phase == PhaseStarting {
			j.x.Phase, changed = PhaseRunning, true // F&O knows it: ExportToPackage arrived
		}
		switch class {
		case classLandable:
			return j.landable(ctx, log)
		case classFailed:
			return j.failed(ctx, log)
		case classUnknown:
			if j.x.UnknownSince.IsZero() {
				j.x.UnknownSince = j.x.CheckedAt
			}
			if j.x.CheckedAt.Sub(j.x.UnknownSince) >= j.h.cfg.ExecutionLostAfter {
				return j.lost(ctx, log)
			}
		default:
			j.x.UnknownSince = time.Time{}
			changed = j.stuck(ctx, log) || changed
		}
		if changed {
			if err := j.save(ctx); err != nil {
				return err
			}
		}
		if !j.wait(ctx) {
			return j.save(ctx)
		}
	}
}

// pending says why an execution is left for the next run.
func pending(status string) string {
	switch statusClass(d365.ParseExecutionStatus(status)) {
	case classLandable:
		return "dequeue: the package export has ended but its package is not landed yet; the next run lands it"
	case classFailed:
		return "dequeue: the package export has ended but is not reported yet; the next run reports it"
	case classUnknown:
		return "dequeue: F&O does not know the package export (yet); the next run looks again"
	}
	return "dequeue: the package export is still running in F&O; the next run follows it"
}

// Classes of execution status.
const (
	classRunning  = iota // NotRun, Executing and the values clients poll on
	classLandable        // Succeeded, PartiallySucceeded
	classFailed          // Failed, Canceled
	classUnknown         // Unknown, not found, or a value F&O does not document
)

func statusClass(st d365.ExecutionStatus) int {
	switch st {
	case d365.ExecSucceeded, d365.ExecPartiallySucceeded:
		return classLandable
	case d365.ExecFailed, d365.ExecCanceled:
		return classFailed
	case d365.ExecUnknown:
		return classUnknown
	}
	if !st.Terminal() {
		return classRunning
	}
	return classUnknown
}

// wait sleeps before the next look, doubling the pause up to
// maxExecutionPoll. It reports false, without sleeping, when the pause
// would pass the run's wait or the invocation's deadline margin.
func (j *pkgRun) wait(ctx context.Context) bool {
	if time.Now().Add(j.poll).After(j.until) {
		return false
	}
	if dl, ok := ctx.Deadline(); ok && dl.Sub(j.h.cfg.Now().Add(j.poll)) < j.h.cfg.DeadlineMargin {
		return false
	}
	t := time.NewTimer(j.poll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	j.poll = min(2*j.poll, maxExecutionPoll)
	return true
}

// save writes the execution document over the one this run read or wrote
// last. errYield: another run wrote it meanwhile.
func (j *pkgRun) save(ctx context.Context) error {
	cond := j.etag
	if cond == "" {
		cond = "*"
	}
	etag, err := j.h.writeExecution(ctx, j.in.Job, j.x, cond)
	if isPreconditionFailed(err) {
		return errYield
	}
	if err != nil {
		return err
	}
	j.etag = etag
	return nil
}

// keep records the execution as it stands after a failure, err (nil:
// none), and returns err with a failure to record it. That another run
// wrote the document meanwhile (errYield) is no news then: err is.
func (j *pkgRun) keep(ctx context.Context, err error) error {
	serr := j.save(ctx)
	switch {
	case err == nil:
		return serr
	case serr == nil || errors.Is(serr, errYield):
		return err
	}
	return errors.Join(err, serr)
}

// done marks the execution done with outcome and records it.
func (j *pkgRun) done(ctx context.Context, outcome string) error {
	j.x.Phase, j.x.Outcome, j.x.FinishedAt = PhaseDone, outcome, j.h.cfg.Now().UTC()
	return j.save(ctx)
}

// stuck tells a person, once, of an execution that has run for longer
// than ExecutionStuckAfter: the job starts no other while it runs. It
// reports whether it told (the document must then be saved).
func (j *pkgRun) stuck(ctx context.Context, log *slog.Logger) bool {
	age := j.x.CheckedAt.Sub(j.x.StartedAt)
	if j.x.StuckReported || age < j.h.cfg.ExecutionStuckAfter {
		return false
	}
	j.x.StuckReported = true
	log.ErrorContext(ctx, "dequeue: the package export has run for longer than it should; the job starts no other until it ends",
		"status", j.x.Status, "startedAt", j.x.StartedAt, "stuckAfter", j.h.cfg.ExecutionStuckAfter.String())
	j.alert(ctx, "stuck", fmt.Sprintf("%s for %s", j.x.Status, age.Round(time.Minute)),
		fmt.Sprintf("F&O's export %s of data project %s started at %s and is still %s. The job starts no other export until it ends. "+
			"Look at the execution in F&O's Data management workspace (job history): a NotRun export waits for its batch job; "+
			"cancel it there to let the job start afresh.", j.x.ExecutionID, j.in.DefinitionGroupID, j.x.StartedAt.Format(time.RFC3339), j.x.Status))
	return true
}

// lost gives up an execution F&O has not known for ExecutionLostAfter.
func (j *pkgRun) lost(ctx context.Context, log *slog.Logger) error {
	log.WarnContext(ctx, "dequeue: F&O knows no such package export; giving it up and starting afresh",
		"since", j.x.UnknownSince, "lostAfter", j.h.cfg.ExecutionLostAfter.String())
	return j.done(ctx, ExecLost)
}

// start records a new execution ID and then calls ExportToPackage with it.
// It reports whether an execution may now be running.
func (j *pkgRun) start(ctx context.Context) (bool, error) {
	now := j.h.cfg.Now().UTC()
	// Named after the job, whose name is a safe key segment, so the
	// package lands as <job>-<time>-<GUID>-<packageName>.zip.
	x := &Execution{Job: j.in.Job, DefinitionGroupID: j.in.DefinitionGroupID, LegalEntityID: j.in.LegalEntityID,
		PackageName: j.in.PackageName, ExecutionID: d365.NewExecutionID(j.in.Job, now),
		Phase: PhaseStarting, StartedAt: now}
	prev := j.x
	j.x = x
	if err := j.save(ctx); err != nil {
		j.x = prev
		return false, err
	}
	log := j.log.With("executionId", x.ExecutionID)
	id, err := j.pk.ExportToPackage(ctx, d365.ExportPackageRequest{DefinitionGroupID: j.in.DefinitionGroupID,
		PackageName: j.in.PackageName, ExecutionID: x.ExecutionID, ReExecute: j.in.ReExecute, LegalEntityID: j.in.LegalEntityID})
	switch {
	case err == nil:
		if id = strings.TrimSpace(id); id != x.ExecutionID {
			log.InfoContext(ctx, "dequeue: F&O named the package export otherwise; following its ID", "fnoExecutionId", id)
			x.ExecutionID = id
		}
		x.Phase = PhaseRunning
		j.log.InfoContext(ctx, "dequeue: package export started", "executionId", x.ExecutionID)
		return true, j.save(ctx)
	case refused(err):
		j.sum.Executions = append(j.sum.Executions, ExecutionResult{ExecutionID: x.ExecutionID, StartedAt: now, Started: true, Outcome: ExecRefused})
		if !fnoenv.LogRefusal(ctx, log, j.h.cfg.Notify, err) {
			j.refusedStart(ctx, log, err)
		}
		j.sum.addError(fmt.Sprintf("%s: ExportToPackage: %v", x.ExecutionID, err))
		return false, j.done(ctx, ExecRefused)
	}
	log.WarnContext(ctx, "dequeue: ExportToPackage's answer was not seen; the execution is followed by the ID it was sent with",
		"error", err.Error())
	j.sum.addError(fmt.Sprintf("%s: ExportToPackage: %v", x.ExecutionID, err))
	return true, nil
}

// refused reports whether ExportToPackage surely started nothing: F&O
// answered the empty execution ID, refused the request (a 4xx other than
// 429), or the app's credentials were refused before it was sent.
func refused(err error) bool {
	var fe *d365.Error
	var ae *d365.AuthError
	switch {
	case errors.Is(err, d365.ErrExportNotStarted), errors.As(err, &ae):
		return true
	case errors.Is(err, d365.ErrOutcomeUnknown):
		return false
	}
	return errors.As(err, &fe) && fe.StatusCode >= 400 && fe.StatusCode < 500 && fe.StatusCode != http.StatusTooManyRequests
}
