// Package dequeue is the dequeue function: it runs one export job per
// invocation. A recurring export job (the default kind) dequeues F&O
// recurring-integration exports until the queue is empty (204) or the
// invocation's deadline is near, streams each file into S3, and
// acknowledges it only once it has landed. A job of kind dataProject
// exports a data project through the package API, one execution at a time
// (ExportToPackage, GetExecutionSummaryStatus, GetExportedPackageUrl), and
// lands each execution's package once, or reports it with its execution
// errors (packagejob.go).
//
// # Keys
//
//	<prefix><yyyy>/<mm>/<dd>/<correlationId>-<name>      the export, named as F&O named the download (else <job>.zip, or .dat if not a zip)
//	<prefix><yyyy>/<mm>/<dd>/<executionId>-<packageName>.zip  a dataProject job's package
//	<same key without .zip>/<InputFilePath>               entity files, with "unpack"
//	<STATE_PREFIX>exports/<job>/<correlationId>.json     idempotency marker (of an execution ID, for a dataProject job)
//	<STATE_PREFIX>exports/<job>/<correlationId>.missing.json  answers without a file
//	<STATE_PREFIX>exports/<job>/package/execution.json   a dataProject job's current execution
//	<STATE_PREFIX>quarantine/exports/<job>/<correlationId>.json  a marker that could not be used, moved aside
//	<STATE_PREFIX>status/jobs/<job>/last-run.json, last-landing.json  the last run and the last run that landed, for the status view
//
// The date is the first time the export was seen, kept in the marker, so a
// re-delivered export (lost ack) maps to the same key and is recognised
// instead of landing twice. The object is written with If-None-Match: *.
// A marker that cannot be used is moved to quarantine and the export is
// looked for under its recent dates before it lands as new (quarantine.go).
//
// # Memory
//
// Exports are streamed: F&O's download body goes to S3 in parts through
// internal/exports/s3upload, whose part buffers, PartSize × (Concurrency +
// 1), are pooled across uploads: about 24 MiB with the defaults (8 MiB, 2)
// whatever the export's size. Unpacking reads the landed zip back with
// ranged GETs (no /tmp, no full buffering) and uploads one entry at a time
// with the same bound. The dequeue function sets a soft memory limit
// (Config.MemoryLimit, ApplyMemoryLimit; GOMEMLIMIT overrides it) so the GC
// collects what each request leaves before the heap in use passes that
// bound.
package dequeue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fno-bridge/s3-fno/internal/exports/s3upload"
	"github.com/fno-bridge/s3-fno/internal/shared/fnoenv"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// FnO is the part of the F&O client the dequeue function uses.
type FnO interface {
	Dequeue(ctx context.Context, activityID string) (*d365.DequeuedFile, error)
	Download(ctx context.Context, location string) (*d365.Download, error)
	Ack(ctx context.Context, activityID string, d *d365.DequeuedFile) error
}

var _ FnO = (*d365.Client)(nil)

// S3 is what the dequeue function calls: uploads (s3upload), reads and
// listings of its state documents, and the server-side copy that
// quarantines a damaged marker.
type S3 interface {
	s3io.Uploader
	s3io.Getter
	s3io.Lister
	s3io.Copier
	s3io.Deleter
}

// Handler runs export jobs. Build it once per execution environment with
// New; it is safe for concurrent use.
type Handler struct {
	cfg Config
	fno FnO
	s3  S3
	up  *s3upload.Uploader // part buffers from the process-wide pool
	log *slog.Logger
}

// New checks cfg and builds a Handler.
func New(cfg Config, fno FnO, s3c S3) (*Handler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if fno == nil {
		return nil, errors.New("dequeue: an F&O client is required")
	}
	if s3c == nil {
		return nil, errors.New("dequeue: an S3 client is required")
	}
	// A failed multipart upload is aborted with a context of its own
	// (s3upload.DefaultAbortTimeout), even when the invocation's is what
	// failed.
	up := s3upload.New(s3c, s3upload.Options{PartSize: cfg.PartSize, Concurrency: cfg.Concurrency})
	return &Handler{cfg: cfg, fno: fno, s3: s3c, up: up, log: cfg.Logger}, nil
}

// Config is the handler's configuration, defaults filled.
func (h *Handler) Config() Config { return h.cfg }

// Handle is the Lambda entry point: it decodes the schedule's input and
// runs the job. Bad input is an error naming the field. Per-file failures
// do not fail the invocation: they are in the summary (and logged at ERROR),
// and F&O hands the unacknowledged files out again. A dequeue that fails
// after retries does fail it. For a dataProject job, an export F&O failed
// and a package not landed are in the summary too; an F&O call or a state
// document that fails after retries fails the invocation.
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) (Summary, error) {
	defer h.cfg.Metrics.Flush()
	in, err := DecodeInput(raw, h.cfg.OutboundPrefix)
	if err != nil {
		h.log.ErrorContext(ctx, "dequeue: bad input", "error", err.Error())
		return Summary{}, err
	}
	return h.Run(ctx, in)
}

// Run dequeues, lands and acknowledges the exports of one job until F&O
// answers 204 or less than DeadlineMargin remains before ctx's deadline.
// Stopping for the deadline is not an error: the summary says so.
func (h *Handler) Run(ctx context.Context, in Input) (Summary, error) {
	if err := in.normalize(h.cfg.OutboundPrefix); err != nil {
		return Summary{}, err
	}
	if hasPrefix(in.Prefix, h.cfg.StatePrefix) {
		return Summary{}, &InputError{Field: "prefix", Reason: fmt.Sprintf("%q is inside STATE_PREFIX %q", in.Prefix, h.cfg.StatePrefix)}
	}
	if in.IsPackage() {
		return h.runPackage(ctx, in)
	}
	log := h.log.With("job", in.Job, "activityId", in.ActivityID)
	sum := Summary{Job: in.Job, ActivityID: in.ActivityID, Prefix: in.Prefix, Files: []FileResult{}}
	var runErr error
	failures := 0
	for {
		if h.tooLate(ctx) {
			sum.StoppedForDeadline, sum.MoreMayRemain = true, true
			break
		}
		if err := ctx.Err(); err != nil {
			sum.MoreMayRemain = true
			runErr = fmt.Errorf("export %s: %w", in.Job, err)
			sum.addError(runErr.Error())
			break
		}
		// A dequeue is bounded like a file: F&O's answer coming later than
		// that ends the run for the deadline, before Lambda would end the
		// function. F&O hands the message out again after its visibility
		// timeout.
		dctx, cancel := h.fileContext(ctx)
		d, err := h.fno.Dequeue(dctx, in.ActivityID)
		late := ctx.Err() == nil && errors.Is(dctx.Err(), context.DeadlineExceeded)
		cancel()
		if err != nil && late {
			log.WarnContext(ctx, "dequeue: F&O did not answer the dequeue before the deadline; stopping", "error", err.Error())
			sum.StoppedForDeadline, sum.MoreMayRemain = true, true
			break
		}
		if err != nil {
			if !fnoenv.LogRefusal(ctx, log, h.cfg.Notify, err) {
				h.exportFailed(ctx, in, "", "dequeue", "", err)
			}
			sum.MoreMayRemain = true
			runErr = fmt.Errorf("export %s: dequeue: %w", in.Job, err)
			sum.addError(runErr.Error())
			break
		}
		if d == nil {
			sum.QueueEmpty = true
			break
		}
		sum.Dequeued++
		fctx, cancel := h.fileContext(ctx)
		r := h.handleFile(fctx, log, in, d)
		cancel()
		sum.add(r)
		if r.Error != "" {
			failures++
			if failures >= h.cfg.MaxConsecutiveFailures {
				sum.MoreMayRemain = true
				sum.addError(fmt.Sprintf("stopped after %d failures in a row", failures))
				break
			}
		} else {
			failures = 0
		}
	}
	h.finish(ctx, log, sum)
	return sum, runErr
}

// finish logs the run's summary (at ERROR when it holds errors) and
// records the run for the status view.
func (h *Handler) finish(ctx context.Context, log *slog.Logger, sum Summary) {
	level := slog.LevelInfo
	if len(sum.Errors) > 0 {
		level = slog.LevelError
	}
	// Each file had its own line: the summary line keeps to the totals.
	logged := sum
	logged.Files = nil
	log.Log(ctx, level, "export summary", "summary", logged)
	h.recordRun(ctx, log, logged)
}

// JobRun is what the status view reads of a job's last run and last
// landing.
type JobRun struct {
	At      time.Time `json:"at"`
	Summary Summary   `json:"summary"`
}

// recordRun writes the run (and, when it landed files, the landing) under
// the job status prefix: the operator's status view lists them in one
// request for every job. A write that fails is logged; the run stands.
func (h *Handler) recordRun(ctx context.Context, log *slog.Logger, sum Summary) {
	prefix := layout.Layout{State: h.cfg.StatePrefix}.JobStatusPrefix() + sum.Job + "/"
	run := JobRun{At: time.Now().UTC(), Summary: sum}
	keys := []string{prefix + "last-run.json"}
	if sum.Landed > 0 {
		keys = append(keys, prefix+"last-landing.json")
	}
	for _, k := range keys {
		if err := s3io.PutJSON(ctx, h.s3, h.cfg.Bucket, k, run); err != nil {
			log.WarnContext(ctx, "dequeue: the run's status was not recorded", "statusKey", k, "error", err.Error())
		}
	}
}

// tooLate reports whether less than DeadlineMargin remains before ctx's
// deadline: too little to start another file.
func (h *Handler) tooLate(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && dl.Sub(h.cfg.Now()) < h.cfg.DeadlineMargin
}

// fileContext bounds one file's work a little before the invocation's
// deadline, so a transfer that cannot finish is aborted (its multipart
// upload cleaned up) rather than frozen mid-way.
func (h *Handler) fileContext(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	reserve := min(h.cfg.DeadlineMargin/2, 5*time.Second)
	return context.WithDeadline(ctx, dl.Add(-reserve))
}

func hasPrefix(s, prefix string) bool { return len(s) >= len(prefix) && s[:len(prefix)] == prefix }
