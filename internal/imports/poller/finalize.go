package poller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/shared/keepctx"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// finalize gathers F&O's verdict, moves the file with its result document
// and error files, and removes the markers. Every step can be repeated.
func (p *Poller) finalize(ctx context.Context, rec ledger.Record, status d365.MessageStatus, now time.Time, log *slog.Logger) (*filing.Result, error) {
	res := &filing.Result{
		Outcome: filing.OutcomeFailed, Status: string(status), MessageID: rec.MessageID,
		Route: rec.Route, Entity: rec.Entity, Company: rec.Company, ActivityID: rec.ActivityID, ExternalID: rec.ExternalID,
		SourceKey: rec.Key, SourceVersionID: rec.VersionID, Identity: rec.Identity, Size: rec.Size,
		EventTime: rec.EventTime, EnqueuedAt: rec.EnqueuedAt, FinishedAt: now, Checks: rec.Checks,
		ProcessingSeconds: now.Sub(rec.EnqueuedAt).Seconds(), Errors: []d365.ExecutionError{}, ReplayOf: rec.ReplayOf,
	}
	if status.Succeeded() {
		res.Outcome = filing.OutcomeProcessed
	}
	execID, err := p.fno.GetExecutionIDByMessageID(ctx, rec.MessageID)
	if err != nil {
		return nil, fmt.Errorf("GetExecutionIdByMessageId: %w", err)
	}
	res.ExecutionID = execID
	if execID == "" {
		res.Notes = append(res.Notes, "F&O reported no execution for this message, so there are no execution details")
	} else {
		es, err := p.fno.GetExecutionSummaryStatus(ctx, execID)
		switch {
		case errors.Is(err, d365.ErrExecutionNotFound):
			res.Notes = append(res.Notes, "GetExecutionSummaryStatus: F&O does not know the execution")
		case err != nil:
			return nil, fmt.Errorf("GetExecutionSummaryStatus: %w", err)
		default:
			res.ExecutionStatus = string(es)
		}
		ee, err := p.fno.GetExecutionErrors(ctx, execID)
		switch {
		case errors.Is(err, d365.ErrExecutionNotFound):
			res.Notes = append(res.Notes, "GetExecutionErrors: F&O does not know the execution")
		case err != nil:
			return nil, fmt.Errorf("GetExecutionErrors: %w", err)
		default:
			if ee.Rows != nil {
				res.Errors = ee.Rows
			}
			if ee.Lenient {
				res.ErrorsRaw, res.ErrorsLenient = ee.Raw, true
			}
		}
	}

	doubtProcessed(res)

	file := p.fileOf(rec)
	base := p.cfg.Layout.ProcessedKey(rec.Route, rec.EnqueuedAt, file)
	if res.Outcome == filing.OutcomeFailed {
		base = p.cfg.Layout.FailedKey(rec.Route, rec.EnqueuedAt, file)
	}
	placed, err := filing.File(ctx, p.s3, filing.Move{Src: rec.Source(), SrcHead: rec.SourceHead, Candidates: s3io.Candidates(base, rec.Identity),
		Token: rec.Identity, Meta: map[string]string{"fno-message-id": rec.MessageID, "fno-status": string(status)}, Suffix: layout.ResultSuffix,
		KeepDocumentWhenGone: true},
		func(placed string, gone bool) (any, error) {
			if gone {
				// Someone removed the file from inbound/ while F&O had it.
				// The verdict is kept anyway, at a name no other file holds.
				res.Notes = append(res.Notes, "the source file was no longer in "+p.cfg.Layout.Inbound+" when F&O finished; only this result is kept")
				log.WarnContext(ctx, "poller: the source file is gone; writing the result only", "resultKey", placed+layout.ResultSuffix)
			}
			res.File = placed
			if res.Outcome == filing.OutcomeFailed && execID != "" {
				if err := p.errorFiles(ctx, rec, execID, placed, res); err != nil {
					return nil, err
				}
			}
			return res, nil
		})
	if err != nil {
		return nil, err
	}
	ctx, cancel := filedTail(ctx)
	defer cancel()
	p.cfg.Observers.Filed(ctx, *res, placed)
	if !rec.StuckReportedAt.IsZero() {
		if err := s3io.DeleteKey(ctx, p.s3, rec.Bucket, rec.Key+layout.StuckSuffix); err != nil {
			return nil, err
		}
	}
	if err := p.ledger.DeleteReleased(ctx, rec.Route, rec.Identity); err != nil {
		return nil, err
	}
	if err := p.ledger.DeleteMarker(ctx, rec.Identity); err != nil {
		return nil, err
	}
	level := slog.LevelInfo
	if res.Outcome == filing.OutcomeFailed {
		level = slog.LevelWarn
	}
	log.Log(ctx, level, "poller: import finished", "outcome", res.Outcome, "status", res.Status, "executionId", execID,
		"executionStatus", res.ExecutionStatus, "errors", len(res.Errors), "file", placed)
	return res, nil
}

// filedTail is the context of what follows a file's filing: the
// notification, then the clean-up, the marker last. It runs to its end
// even when the run is being stopped (a worker ran out of budget and
// cancelled the others), with at least a few seconds; and people hear of
// the file before its marker goes, so a crash in between tells them on the
// next run (once: Filed sees it was told) rather than never.
func filedTail(ctx context.Context) (context.Context, context.CancelFunc) {
	return keepctx.Until(ctx, 5*time.Second)
}

// doubtProcessed files a message F&O calls Processed as failed when its
// execution says otherwise (it ended PartiallySucceeded, Failed or
// Canceled, or has error rows): rows may be missing in F&O, and a person
// should hear of it rather than find the file under processed/.
func doubtProcessed(res *filing.Result) {
	es := d365.ExecutionStatus(res.ExecutionStatus)
	bad := es == d365.ExecPartiallySucceeded || es == d365.ExecFailed || es == d365.ExecCanceled
	if res.Outcome != filing.OutcomeProcessed || (!bad && len(res.Errors) == 0) {
		return
	}
	res.Outcome = filing.OutcomeFailed
	res.Notes = append(res.Notes, fmt.Sprintf("F&O's message status is Processed, but its execution ended %s with %d error row(s): "+
		"filed as failed, so that a person checks what F&O imported", cmp.Or(res.ExecutionStatus, "(no status)"), len(res.Errors)))
}

// errorFiles copies F&O's staging error file and target error keys file
// beside the failed file.
func (p *Poller) errorFiles(ctx context.Context, rec ledger.Record, execID, placed string, res *filing.Result) error {
	if rec.Entity == "" {
		res.Notes = append(res.Notes, "no entity is configured for this route, so F&O's per-entity error files were not fetched")
		return nil
	}
	u, err := p.fno.GetImportStagingErrorFileURL(ctx, execID, rec.Entity)
	switch {
	case errors.Is(err, d365.ErrExecutionNotFound):
		res.Notes = append(res.Notes, "GetImportStagingErrorFileUrl: F&O does not know the execution")
	case err != nil:
		if err := noteIfRefused(res, "GetImportStagingErrorFileUrl", err); err != nil {
			return err
		}
	case u != "":
		key := placed + ".staging-errors" + extOf(u)
		if err := p.copyBlob(ctx, rec.Bucket, u, key); err != nil {
			if err := noteIfRefused(res, "staging error file", err); err != nil {
				return err
			}
		} else {
			res.StagingErrorFile = key
		}
	}
	has, err := p.fno.GenerateImportTargetErrorKeysFile(ctx, execID, rec.Entity)
	switch {
	case errors.Is(err, d365.ErrExecutionNotFound):
		res.Notes = append(res.Notes, "GenerateImportTargetErrorKeysFile: F&O does not know the execution")
		return nil
	case err != nil:
		return noteIfRefused(res, "GenerateImportTargetErrorKeysFile", err)
	case !has:
		return nil
	}
	for i := 0; i < p.cfg.TargetKeysPolls; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(p.cfg.TargetKeysWait):
			}
		}
		u, err := p.fno.GetImportTargetErrorKeysFileURL(ctx, execID, rec.Entity)
		if err != nil {
			return noteIfRefused(res, "GetImportTargetErrorKeysFileUrl", err)
		}
		if u != "" {
			key := placed + ".target-error-keys" + extOf(u)
			if err := p.copyBlob(ctx, rec.Bucket, u, key); err != nil {
				return noteIfRefused(res, "target error keys file", err)
			}
			res.TargetErrorKeysFile = key
			return nil
		}
	}
	res.Notes = append(res.Notes, fmt.Sprintf("F&O had not produced the target error keys file after %d polls; "+
		"find it in F&O's execution history (execution %s)", p.cfg.TargetKeysPolls, execID))
	return nil
}

// noteIfRefused keeps a failure to fetch an error file from holding up the
// verdict: when F&O or the blob host refused for good (a 4xx, such as an
// expired SAS link or an entity F&O does not know), the result says so and
// the file is finalized anyway. Faults worth retrying are returned.
func noteIfRefused(res *filing.Result, what string, err error) error {
	var fe *d365.Error
	if errors.As(err, &fe) && !fe.Temporary() {
		res.Notes = append(res.Notes, fmt.Sprintf("%s could not be fetched: %v", what, err))
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// copyBlob streams a SAS URL's content into S3.
func (p *Poller) copyBlob(ctx context.Context, bucket, blobURL, key string) error {
	dl, err := p.fno.FetchBlob(ctx, blobURL)
	if err != nil {
		return err
	}
	defer dl.Body.Close()
	return s3io.Upload(ctx, p.s3, bucket, key, dl.Body, dl.Size, "", nil)
}

// extOf is the file extension of a URL's path (".csv"), or "".
func extOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	ext := path.Ext(u.Path)
	if len(ext) > 8 {
		return ""
	}
	return ext
}
