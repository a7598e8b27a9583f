package dequeue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/notify"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// landable handles a Succeeded or PartiallySucceeded execution: a
// PartiallySucceeded one is reported (once), and the package lands (once).
// A package F&O has no URL for yet is left for the next run; one that
// cannot be landed now is reported and tried again by the next run.
func (j *pkgRun) landable(ctx context.Context, log *slog.Logger) error {
	var reportErr error
	if j.x.Status == string(d365.ExecPartiallySucceeded) && !j.x.Reported {
		reportErr = j.report(ctx, log)
	}
	r := FileResult{ExecutionID: j.x.ExecutionID}
	fctx, cancel := j.h.fileContext(ctx)
	stage, err := j.h.landOnce(fctx, log, j.in, j.x.ExecutionID, j.openPackage(log), &r)
	cancel()
	switch {
	case errors.Is(err, errURLNotReady):
		log.InfoContext(ctx, "dequeue: F&O has no URL for the exported package yet; the next run lands it", "status", j.x.Status)
		return j.keep(ctx, reportErr)
	case isGone(err):
		r.Stage, r.Error, r.Outcome = stage, fmt.Sprintf("%s: %v", stage, err), OutcomeFailed
		j.sum.add(r)
		j.gone(ctx, log, err)
		j.x.Phase, j.x.Outcome, j.x.FinishedAt = PhaseDone, ExecGone, j.h.cfg.Now().UTC()
		return j.keep(ctx, reportErr)
	case err != nil:
		r.Stage, r.Error = stage, fmt.Sprintf("%s: %v", stage, err)
		if r.Outcome == "" {
			r.Outcome = OutcomeFailed
		}
		j.sum.add(r)
		log.ErrorContext(ctx, "dequeue: exported package not landed; the next run tries again", "stage", stage, "key", r.Key, "error", err.Error())
		j.alert(ctx, "landing", stage, fmt.Sprintf("The package of F&O's export %s was not landed in S3 (%v). The next scheduled run tries again; "+
			"F&O keeps the package for 7 days.", j.x.ExecutionID, err), [2]string{"Stage", stage}, [2]string{"Key", r.Key})
		return j.keep(ctx, reportErr)
	}
	j.sum.add(r)
	j.x.Key = r.Key
	if reportErr != nil {
		return j.keep(ctx, reportErr)
	}
	return j.done(ctx, ExecLanded)
}

// failed handles a Failed or Canceled execution: reported once, done.
func (j *pkgRun) failed(ctx context.Context, log *slog.Logger) error {
	if !j.x.Reported {
		if err := j.report(ctx, log); err != nil {
			return j.keep(ctx, err)
		}
	}
	return j.done(ctx, ExecFailed)
}

// report reads the execution's errors and tells of them: an ERROR line,
// the run's summary, the ExportFailures metric and one notification. An
// execution whose errors cannot be read is reported by a later run.
func (j *pkgRun) report(ctx context.Context, log *slog.Logger) error {
	errs, err := j.pk.GetExecutionErrors(ctx, j.x.ExecutionID)
	if err != nil {
		log.ErrorContext(ctx, "dequeue: the package export's execution errors could not be read; a later run reports it",
			"status", j.x.Status, "error", err.Error())
		return fmt.Errorf("GetExecutionErrors %s: %w", j.x.ExecutionID, err)
	}
	rows := errs.Rows
	j.x.Reported, j.x.ErrorRows = true, len(rows)
	j.rows = rows[:min(len(rows), maxReportedRows)]
	log.ErrorContext(ctx, "dequeue: package export "+j.x.Status, "status", j.x.Status, "errorRows", len(rows), "errors", j.rows)
	first := ""
	if len(rows) > 0 {
		first = ": " + rowText(rows[0])
	}
	j.sum.addError(fmt.Sprintf("%s: %s, %d execution error(s)%s", j.x.ExecutionID, j.x.Status, len(rows), first))
	body := fmt.Sprintf("F&O's export of data project %s ended %s with %d execution error(s).", j.in.DefinitionGroupID, j.x.Status, len(rows))
	if j.x.Status == string(d365.ExecPartiallySucceeded) {
		body += " Its package lands all the same, under " + j.in.Prefix + " (unless F&O no longer has it)."
	} else {
		body += " No package was exported; the next scheduled run starts a new export."
	}
	extra := make([][2]string, 0, maxNotifiedRows+3)
	extra = append(extra, [2]string{"Status", j.x.Status}, [2]string{"Error rows", strconv.Itoa(len(rows))})
	// The SDK has retried a refused write already: a person hears of one
	// that failed all the same here.
	key, werr := j.writeResult(ctx, log, errs, body)
	if werr != nil {
		extra = append(extra, [2]string{"Result document", "not written: " + werr.Error()})
	} else {
		extra = append(extra, [2]string{"Result document", "s3://" + j.h.cfg.Bucket + "/" + key})
	}
	for i, row := range rows[:min(len(rows), maxNotifiedRows)] {
		extra = append(extra, [2]string{"Error " + strconv.Itoa(i+1), rowText(row)})
	}
	j.alert(ctx, "", fmt.Sprintf("%s, %d rows", j.x.Status, len(rows)), body, extra...)
	return nil
}

// writeResult writes the execution's result document and returns its key.
// One that cannot be written is logged and counted, and the report goes on
// (the notification says so; the run's record keeps the first rows).
func (j *pkgRun) writeResult(ctx context.Context, log *slog.Logger, errs *d365.ExecutionErrors, note string) (string, error) {
	doc := ExportResult{Outcome: "failed", Status: j.x.Status, Job: j.in.Job, DefinitionGroupID: j.in.DefinitionGroupID,
		LegalEntityID: j.in.LegalEntityID, PackageName: j.x.PackageName, ExecutionID: j.x.ExecutionID, StartedAt: j.x.StartedAt,
		FinishedAt: j.h.cfg.Now().UTC(), Errors: errs.Rows, ErrorsLenient: errs.Lenient, Notes: []string{note}}
	if doc.Errors == nil {
		doc.Errors = []d365.ExecutionError{}
	}
	if errs.Lenient {
		doc.ErrorsRaw = errs.Raw
	}
	key := ResultKey(j.h.cfg.FailedPrefix, j.in.Job, j.x.StartedAt, j.x.ExecutionID, j.x.PackageName)
	if err := j.h.putJSON(ctx, key, doc, false); err != nil {
		log.ErrorContext(ctx, "dequeue: the package export's result document was not written", "key", key, "error", err.Error())
		j.sum.addError(fmt.Sprintf("%s: result document not written: %v", j.x.ExecutionID, err))
		return "", err
	}
	j.x.ResultKey = key
	return key, nil
}

// gone reports a package F&O no longer keeps.
func (j *pkgRun) gone(ctx context.Context, log *slog.Logger, err error) {
	log.ErrorContext(ctx, "dequeue: the exported package is no longer in F&O's blob storage; it is given up", "error", err.Error())
	j.alert(ctx, "gone", "package gone", fmt.Sprintf("F&O's export %s ended %s, but its package was no longer in F&O's blob storage "+
		"(F&O deletes exported packages after 7 days), so nothing was landed. The next scheduled run starts a new export.",
		j.x.ExecutionID, j.x.Status))
}

// refusedStart reports an ExportToPackage that started nothing, at most
// once an hour.
func (j *pkgRun) refusedStart(ctx context.Context, log *slog.Logger, err error) {
	log.ErrorContext(ctx, "dequeue: F&O did not start the package export", "error", err.Error())
	j.alert(ctx, "start "+j.h.cfg.Now().UTC().Format("2006-01-02T15"), "ExportToPackage refused",
		fmt.Sprintf("F&O did not start the export of data project %s (%v). Check the data project and the legal entity in F&O's "+
			"Data management workspace; the next scheduled run tries again.", j.in.DefinitionGroupID, err))
}

// alert counts a failure of the job (ExportFailures) and sends one
// export-failed notification per id: the execution's own event (""), or
// one of its others ("landing", "gone"), or one not tied to it ("start
// <hour>").
func (j *pkgRun) alert(ctx context.Context, event, what, body string, extra ...[2]string) {
	j.h.cfg.Metrics.Add("ExportFailures", 1, metrics.Job, j.in.Job)
	id := j.in.Job + " " + j.x.ExecutionID
	switch {
	case strings.HasPrefix(event, "start "):
		id = j.in.Job + " " + event
	case event != "":
		id += " " + event
	}
	fields := [][2]string{{"Job", j.in.Job}, {"Data project", j.in.DefinitionGroupID}, {"Legal entity", j.in.LegalEntityID},
		{"Execution ID", j.x.ExecutionID}}
	ctx, cancel := tellContext(ctx)
	defer cancel()
	j.h.cfg.Notify.Send(ctx, notify.Event{Kind: notify.ExportFailed, ID: id, What: j.in.Job + ": " + what, Body: body,
		Fields: append(fields, extra...)})
}

// rowText is one execution error as a person reads it.
func rowText(e d365.ExecutionError) string {
	var where []string
	if e.RecordID != "" {
		where = append(where, "record "+e.RecordID)
	}
	if e.Field != "" {
		where = append(where, "field "+e.Field)
	}
	msg := strings.Join(strings.Fields(e.ErrorMessage), " ")
	if len(where) == 0 {
		return clip(msg)
	}
	return strings.Join(where, ", ") + ": " + clip(msg)
}

// openPackage opens the execution's package for landOnce: the URL from
// GetExportedPackageUrl (asked again while it is "", within the run's
// wait), fetched without the bearer token; a URL whose SAS has expired is
// replaced by a new one.
func (j *pkgRun) openPackage(log *slog.Logger) func(context.Context) (*download, error) {
	return func(ctx context.Context) (*download, error) {
		for attempt := 1; ; attempt++ {
			u, err := j.packageURL(ctx)
			if err != nil {
				return nil, err
			}
			dl, err := j.pk.FetchBlob(ctx, u)
			if errors.Is(err, d365.ErrSASRefused) && attempt < sasAttempts {
				log.WarnContext(ctx, "dequeue: blob storage refused the package URL (its SAS expired); asking F&O for a new one", "attempt", attempt)
				continue
			}
			if err != nil {
				return nil, err
			}
			out, err := startDownload(dl, packageFile(j.in.PackageName))
			if err == nil && !out.isZip {
				// A page or error text a proxy served with status 200:
				// landing it would end the execution without its package.
				out.body.Close()
				return nil, fmt.Errorf("blob storage answered with something that is not a data package (it begins %q, not as a zip); "+
					"nothing landed, a later run fetches it again", out.head)
			}
			return out, err
		}
	}
}

// packageURL asks GetExportedPackageUrl until it names the package, or
// errURLNotReady when the run can wait no longer.
func (j *pkgRun) packageURL(ctx context.Context) (string, error) {
	for {
		u, err := j.pk.GetExportedPackageURL(ctx, j.x.ExecutionID)
		if err != nil {
			return "", err
		}
		if u = strings.TrimSpace(u); u != "" {
			return u, nil
		}
		if !j.wait(ctx) {
			return "", errURLNotReady
		}
	}
}

// packageFile is the file name a package lands under: the job's package
// name, with .zip.
func packageFile(name string) string {
	if strings.HasSuffix(strings.ToLower(name), ".zip") {
		return name
	}
	return name + ".zip"
}

// isGone: blob storage has no such blob (F&O deleted the package).
func isGone(err error) bool {
	var fe *d365.Error
	return errors.As(err, &fe) && fe.StatusCode == http.StatusNotFound && strings.HasPrefix(fe.Op, "blob-")
}
