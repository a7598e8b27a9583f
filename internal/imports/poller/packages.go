package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/imports/release"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// Package imports (route kind dataProject) are followed by their execution
// ID with GetExecutionSummaryStatus to a final status: Succeeded goes to
// processed/; PartiallySucceeded, Failed, Canceled (and any other final
// value) to failed/ with GetExecutionErrors and each entity's staging and
// target error files beside the package. A package imported with
// execute=false is done once it is in staging (NotRun). At the end the
// scope's lock goes and the scope's routes get a release pass, which
// releases the next package.

// notFoundYet is the status recorded while F&O answers "not found" for an
// execution: it can take a moment to appear after ImportFromPackage.
const notFoundYet = "NotFoundYet"

// check asks F&O how far an import got: GetMessageStatus for a connector
// message, GetExecutionSummaryStatus for a package import. final says
// whether it is over.
func (p *Poller) check(ctx context.Context, rec ledger.Record) (status string, final bool, err error) {
	if !rec.Package() {
		s, err := p.fno.GetMessageStatus(ctx, rec.MessageID)
		return string(s), s.Terminal(), err
	}
	s, err := p.fno.GetExecutionSummaryStatus(ctx, rec.ExecutionID)
	if errors.Is(err, d365.ErrExecutionNotFound) {
		return notFoundYet, false, nil
	}
	return string(s), packageFinal(rec, s), err
}

// packageFinal: a final execution status, or NotRun for a package imported
// into staging only.
func packageFinal(rec ledger.Record, s d365.ExecutionStatus) bool {
	return s.Terminal() || (rec.StageOnly && s == d365.ExecNotRun)
}

// stuckCause says why an import may not have finished, for its stuck
// report and notification.
func stuckCause(rec ledger.Record) string {
	if rec.Package() {
		return "F&O has not finished this package import (execution " + rec.ExecutionID + "). Common causes: the batch job that runs it " +
			"is waiting or held in F&O, or the import is very large. The packages of its scope wait behind it."
	}
	return "F&O has not finished this import. Common causes: the recurring job is disabled, its batch is not running, " +
		"or the entity name does not match the job."
}

// finalizeAny finalizes a connector import or a package import.
func (p *Poller) finalizeAny(ctx context.Context, rec ledger.Record, status string, now time.Time, log *slog.Logger) (*filing.Result, error) {
	if rec.Package() {
		return p.finalizePackage(ctx, rec, d365.ParseExecutionStatus(status), now, log.With("executionId", rec.ExecutionID))
	}
	return p.finalize(ctx, rec, d365.ParseMessageStatus(status), now, log)
}

// finalizePackage brings F&O's verdict on a package import back, files the
// package with its result document and error files, frees its scope and
// removes its markers. Every step can be repeated.
func (p *Poller) finalizePackage(ctx context.Context, rec ledger.Record, status d365.ExecutionStatus, now time.Time, log *slog.Logger) (*filing.Result, error) {
	res := &filing.Result{
		Outcome: filing.OutcomeFailed, Status: string(status), ExecutionID: rec.ExecutionID, ExecutionStatus: string(status),
		Route: rec.Route, Company: rec.Company, DefinitionGroupID: rec.DefinitionGroupID, Entities: rec.Entities, Wrapped: rec.Wrapped,
		SourceKey: rec.Key, SourceVersionID: rec.VersionID, Identity: rec.Identity, Size: rec.Size,
		EventTime: rec.EventTime, EnqueuedAt: rec.EnqueuedAt, FinishedAt: now, Checks: rec.Checks,
		ProcessingSeconds: now.Sub(rec.EnqueuedAt).Seconds(), Errors: []d365.ExecutionError{}, ReplayOf: rec.ReplayOf,
	}
	switch {
	case status.Succeeded():
		res.Outcome = filing.OutcomeProcessed
	case rec.StageOnly && status == d365.ExecNotRun:
		res.Outcome = filing.OutcomeProcessed
		res.Notes = append(res.Notes, "The route imports with execute=false: the package is in data project "+rec.DefinitionGroupID+
			"'s staging tables; run the data project in F&O to import it into its targets.")
	}
	if err := p.executionErrors(ctx, rec.ExecutionID, res); err != nil {
		return nil, err
	}
	base := p.cfg.Layout.ProcessedKey(rec.Route, rec.EnqueuedAt, p.fileOf(rec))
	if res.Outcome == filing.OutcomeFailed {
		base = p.cfg.Layout.FailedKey(rec.Route, rec.EnqueuedAt, p.fileOf(rec))
	}
	placed, err := filing.File(ctx, p.s3, filing.Move{Src: rec.Source(), SrcHead: rec.SourceHead, Candidates: s3io.Candidates(base, rec.Identity), Token: rec.Identity,
		Meta: map[string]string{"fno-execution-id": rec.ExecutionID, "fno-status": string(status)}, Suffix: layout.ResultSuffix,
		KeepDocumentWhenGone: true},
		func(placed string, gone bool) (any, error) {
			if gone {
				res.Notes = append(res.Notes, "the source file was no longer in "+p.cfg.Layout.Inbound+" when F&O finished; only this result is kept")
			}
			res.File = placed
			if res.Outcome == filing.OutcomeFailed {
				if err := p.packageErrorFiles(ctx, rec, placed, res); err != nil {
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
	if err := p.freeScope(ctx, rec.Scope, rec.Identity, rec.Route, log); err != nil {
		return nil, err
	}
	if err := p.ledger.DeleteReleased(ctx, rec.Route, rec.Identity); err != nil {
		return nil, err
	}
	if err := p.ledger.DeleteMarker(ctx, rec.Identity); err != nil {
		return nil, err
	}
	level := map[bool]slog.Level{true: slog.LevelInfo, false: slog.LevelWarn}[res.Outcome == filing.OutcomeProcessed]
	log.Log(ctx, level, "poller: package import finished", "outcome", res.Outcome, "executionStatus", res.ExecutionStatus,
		"errors", len(res.Errors), "file", placed)
	return res, nil
}

// executionErrors puts GetExecutionErrors' rows in the result.
func (p *Poller) executionErrors(ctx context.Context, execID string, res *filing.Result) error {
	ee, err := p.fno.GetExecutionErrors(ctx, execID)
	switch {
	case errors.Is(err, d365.ErrExecutionNotFound):
		res.Notes = append(res.Notes, "GetExecutionErrors: F&O does not know the execution")
	case err != nil:
		return fmt.Errorf("GetExecutionErrors: %w", err)
	default:
		if ee.Rows != nil {
			res.Errors = ee.Rows
		}
		if ee.Lenient {
			res.ErrorsRaw, res.ErrorsLenient = ee.Raw, true
		}
	}
	return nil
}

// packageErrorFiles copies each entity's staging error file and target
// error keys file beside the failed package.
func (p *Poller) packageErrorFiles(ctx context.Context, rec ledger.Record, placed string, res *filing.Result) error {
	if len(rec.Entities) == 0 {
		res.Notes = append(res.Notes, "the package's Manifest.xml named no entity that could be read, so F&O's per-entity error files were not fetched")
		return nil
	}
	res.EntityErrorFiles = nil // a repeated filing starts over
	for _, entity := range rec.Entities {
		files := filing.EntityErrorFiles{Entity: entity}
		at := placed + "." + safeName(entity)
		u, err := p.fno.GetImportStagingErrorFileURL(ctx, rec.ExecutionID, entity)
		switch {
		case errors.Is(err, d365.ErrExecutionNotFound):
		case err != nil:
			if err := noteIfRefused(res, "GetImportStagingErrorFileUrl ("+entity+")", err); err != nil {
				return err
			}
		case u != "":
			if err := p.copyBlob(ctx, rec.Bucket, u, at+".staging-errors"+extOf(u)); err != nil {
				if err := noteIfRefused(res, "staging error file of "+entity, err); err != nil {
					return err
				}
			} else {
				files.StagingErrorFile = at + ".staging-errors" + extOf(u)
			}
		}
		key, err := p.targetKeysFile(ctx, rec, entity, at, res)
		if err != nil {
			return err
		}
		files.TargetErrorKeysFile = key
		if files.StagingErrorFile != "" || files.TargetErrorKeysFile != "" {
			res.EntityErrorFiles = append(res.EntityErrorFiles, files)
		}
	}
	return nil
}

// targetKeysFile asks F&O for an entity's target error keys file and copies
// it to at + ".target-error-keys" + its extension; "" when there is none.
func (p *Poller) targetKeysFile(ctx context.Context, rec ledger.Record, entity, at string, res *filing.Result) (string, error) {
	has, err := p.fno.GenerateImportTargetErrorKeysFile(ctx, rec.ExecutionID, entity)
	switch {
	case errors.Is(err, d365.ErrExecutionNotFound):
		return "", nil
	case err != nil:
		return "", noteIfRefused(res, "GenerateImportTargetErrorKeysFile ("+entity+")", err)
	case !has:
		return "", nil
	}
	for i := 0; i < p.cfg.TargetKeysPolls; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(p.cfg.TargetKeysWait):
			}
		}
		u, err := p.fno.GetImportTargetErrorKeysFileURL(ctx, rec.ExecutionID, entity)
		if err != nil {
			return "", noteIfRefused(res, "GetImportTargetErrorKeysFileUrl ("+entity+")", err)
		}
		if u != "" {
			key := at + ".target-error-keys" + extOf(u)
			if err := p.copyBlob(ctx, rec.Bucket, u, key); err != nil {
				return "", noteIfRefused(res, "target error keys file of "+entity, err)
			}
			return key, nil
		}
	}
	res.Notes = append(res.Notes, fmt.Sprintf("F&O had not produced the target error keys file of %s after %d polls; "+
		"find it in F&O's execution history (execution %s)", entity, p.cfg.TargetKeysPolls, rec.ExecutionID))
	return "", nil
}

// safeName makes an entity name usable in a key beside the file.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, s)
}

// freeScope removes the lock identity holds on a package import scope and
// asks for a pass of each of the scope's routes, so the next package goes.
// A lock held by another package is left alone (that one is in flight).
func (p *Poller) freeScope(ctx context.Context, scope, identity, route string, log *slog.Logger) error {
	if scope == "" {
		return nil
	}
	held, err := p.ledger.GetLock(ctx, scope)
	if err != nil {
		return fmt.Errorf("read the lock of package import scope %q: %w", scope, err)
	}
	if held != nil && held.Identity != identity {
		return nil
	}
	if held != nil {
		if ok, err := p.ledger.DeleteLock(ctx, held); err != nil || !ok {
			return fmt.Errorf("remove the lock of package import scope %q (changed meanwhile: %v): %v", scope, !ok, err)
		}
	}
	if err := p.releaser.RequestScope(ctx, scope, route); err != nil {
		return err
	}
	log.InfoContext(ctx, "poller: package import scope free; its routes' next packages go", "scope", scope)
	return nil
}

// packageLocks looks after the locks no ledger record follows: one whose
// ImportFromPackage answer was lost is removed once F&O's execution of its
// ID is final, or never appeared within PackageUnknownGrace; one whose
// package was finalized without it going (a crash in between) is removed.
func (p *Poller) packageLocks(ctx context.Context, s *Summary) {
	locks, err := p.ledger.Locks(ctx, func(key string, err error) {
		p.log.ErrorContext(ctx, "poller: a package import lock cannot be read; its scope stays held until a person removes it",
			"lockKey", key, "error", err.Error())
		s.Errors++
	})
	if err != nil {
		p.log.ErrorContext(ctx, "poller: cannot list the package import locks", "error", err.Error())
		s.Errors++
		return
	}
	now := p.cfg.Now().UTC()
	for _, l := range locks {
		log := p.log.With("scope", l.Scope, "key", l.Key, "identity", l.Identity, "executionId", l.ExecutionID, "lockState", l.State)
		var why string
		switch l.State {
		case ledger.LockOutcomeUnknown:
			st, err := p.fno.GetExecutionSummaryStatus(ctx, l.ExecutionID)
			switch {
			case errors.Is(err, d365.ErrExecutionNotFound) && now.Sub(l.UpdatedAt) >= p.cfg.PackageUnknownGrace:
				why = "F&O never showed the execution of the import whose answer was lost"
			case err != nil:
				log.DebugContext(ctx, "poller: an import whose answer was lost is not final yet", "error", err.Error())
			case st.Terminal():
				why = "the import whose answer was lost ended " + string(st)
			}
		case ledger.LockRunning:
			if _, found, err := p.ledger.GetMarker(ctx, l.Identity); err == nil && !found {
				why = "its package was filed already"
			}
		}
		if why == "" {
			continue
		}
		if err := p.freeScope(ctx, l.Scope, l.Identity, l.Route, log); err != nil {
			log.ErrorContext(ctx, "poller: cannot free a package import scope", "reason", why, "error", err.Error())
			s.Errors++
			continue
		}
		log.WarnContext(ctx, "poller: freed a package import scope", "reason", why)
	}
}

// heldPackages tells the sweep which old inbound files are packages waiting
// for their scope's lock, held by another package: not lost, only waiting
// (the lock's release brings their pass). The locks are read once, and
// only if a dataProject route is configured.
func (p *Poller) heldPackages(ctx context.Context) func(o release.Object, identity string) bool {
	var locks map[string]*ledger.HeldLock
	return func(o release.Object, identity string) bool {
		route, _, _ := p.cfg.Layout.Split(o.Key)
		rt, ok := p.cfg.Routes.Lookup(route)
		if !ok || rt.Kind != routes.KindDataProject {
			return false
		}
		if locks == nil {
			locks = map[string]*ledger.HeldLock{}
			all, err := p.ledger.Locks(ctx, func(string, error) {})
			if err != nil {
				p.log.WarnContext(ctx, "sweep: cannot read the package import locks", "error", err.Error())
			}
			for _, l := range all {
				locks[l.Scope] = l
			}
		}
		l := locks[rt.ImportScope(p.cfg.PackageScope)]
		return l != nil && l.Identity != identity
	}
}

// freeDeadPackage frees the scope a package holds whose message reached the
// import dead-letter queue before its import began: it will not go by
// itself, and the scope's other packages must not wait for it. Like any
// file whose message is there, it stays in inbound/ with its released
// marker, which passes skip; a redrive of its message puts it back in line
// (the enqueue function finds the lock not its own and lets the route's
// next pass release it in order). settled is false when the lock could
// not be read or freed: a later run tries again.
func (p *Poller) freeDeadPackage(ctx context.Context, f *importmsg.File) (settled bool) {
	rt, ok := p.cfg.Routes.Lookup(f.Route)
	if !ok || rt.Kind != routes.KindDataProject {
		return true
	}
	scope := rt.ImportScope(p.cfg.PackageScope)
	held, err := p.ledger.GetLock(ctx, scope)
	if err != nil {
		return false
	}
	if held == nil || held.Identity != f.Identity() || (held.State != ledger.LockReleased && held.State != ledger.LockImporting) {
		return true
	}
	log := p.log.With("scope", scope, "key", f.Key, "identity", held.Identity)
	if err := p.freeScope(ctx, scope, held.Identity, f.Route, log); err != nil {
		log.ErrorContext(ctx, "poller: cannot free the scope of a package in the dead-letter queue", "error", err.Error())
		return false
	}
	log.WarnContext(ctx, "poller: a package's message is in the import dead-letter queue; its scope goes on without it")
	return true
}
