package enqueue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/dmfpackage"
	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// A file of a dataProject route is a data package imported through F&O's
// package API: its release pass took its scope's lock (package release),
// and here it is checked to be a package, streamed from S3 to the blob URL
// GetAzureWriteUrl hands out (asked for right before the upload, in blocks,
// never with the bearer token), and imported by ImportFromPackage, at most
// once: the execution ID is chosen first and kept in the lock, an intent
// marker holding it is written before the call, and a redelivery that
// finds the marker without F&O's answer files the package under failed/ as
// ImportOutcomeUnknown, naming the execution ID, instead of importing it
// again. Once F&O accepts, the poller follows the execution and removes
// the lock at its end.
//
// On a route with a package template, a file that is no data package at
// all (a CSV, a workbook) is wrapped, as it streams, into a package made of
// the template's Manifest.xml and PackageHeader.xml and the file under the
// name the manifest gives it (dmfpackage.Template.Wrap): a zip written into
// the block upload through a pipe, never a copy of the file.

// PackageImporter is the part of the F&O client package imports need.
type PackageImporter interface {
	GetAzureWriteURL(ctx context.Context, uniqueFileName string) (*d365.BlobWriteURL, error)
	UploadPackageBlocks(ctx context.Context, blobURL string, body io.Reader, size, blockSize int64) error
	ImportFromPackage(ctx context.Context, in d365.ImportPackageRequest) (string, error)
}

var _ PackageImporter = (*d365.Client)(nil)

// DefaultBlockSize is the block size of package uploads.
const DefaultBlockSize = 8 << 20

// ImportOutcomeUnknown is the status in the result document of a package
// whose ImportFromPackage went out without an answer.
const ImportOutcomeUnknown = "ImportOutcomeUnknown"

// uploadAttempts bounds the uploads of one package in one delivery: a SAS
// that expires on the way is replaced by a fresh one this often.
const uploadAttempts = 3

// pkgJob is a package on its way into F&O.
type pkgJob struct {
	*job
	scope string
	lock  *ledger.HeldLock
	info  *dmfpackage.Package
	size  int64 // the file's
	// tmpl wraps the file into a package (a plain file on a route with a
	// package template); nil when the file is a package itself.
	tmpl     *dmfpackage.Template
	modified time.Time // the file's, for the wrapped package's entries
	// head is the file's size, content type and metadata as opened, so
	// that filing copies it without asking S3 again.
	head *s3io.Head
}

// uploadSize is the size of what goes up to blob storage: the file's, or
// unknown (-1) for a package built while it streams.
func (p *pkgJob) uploadSize() int64 {
	if p.tmpl != nil {
		return -1
	}
	return p.size
}

// body is what goes up to blob storage of the file version opened.
func (p *pkgJob) body(out *s3.GetObjectOutput) io.ReadCloser {
	if p.tmpl != nil {
		return p.tmpl.Wrap(out.Body, p.size, p.modified)
	}
	return out.Body
}

// importPackage imports one package of a dataProject route.
func (h *Handler) importPackage(ctx context.Context, j *job) error {
	if h.pkgs == nil {
		return fmt.Errorf("enqueue: route %q imports packages, and this F&O client has no package API", j.route.Name)
	}
	p := &pkgJob{job: j, scope: j.route.ImportScope(h.cfg.PackageScope)}
	j.log = j.log.With("scope", p.scope)
	mk, found, err := h.ledger.GetMarker(ctx, j.identity)
	switch {
	case err != nil:
		return fmt.Errorf("read marker of %s: %w", j.msg.Key, err)
	case found && mk.Sending():
		return h.done(ctx, j, h.packageUnknown(ctx, p, *mk,
			errors.New("an earlier attempt called ImportFromPackage and did not record F&O's answer")))
	case found:
		j.log.InfoContext(ctx, "enqueue: package already imported, skipping", "executionId", mk.ExecutionID)
		return nil
	}
	if p.lock, err = h.ledger.GetLock(ctx, p.scope); err != nil {
		return fmt.Errorf("read the lock of package import scope %q: %w", p.scope, err)
	}
	switch {
	case p.lock == nil || p.lock.Identity != j.identity:
		return h.notItsTurn(ctx, p)
	case p.lock.State == ledger.LockRunning || p.lock.State == ledger.LockOutcomeUnknown:
		j.log.InfoContext(ctx, "enqueue: package already imported, skipping", "executionId", p.lock.ExecutionID)
		return nil
	}
	body, err := h.prepare(ctx, p)
	if err != nil || body == nil {
		return err
	}
	defer body.Close()
	return h.upload(ctx, p, body)
}

// notItsTurn handles a package message sent while its scope's lock does not
// name it (a redrive from the dead-letter queue, a message sent twice): the
// package goes back to waiting in inbound/, and its route's passes release
// it in order when the scope is free.
func (h *Handler) notItsTurn(ctx context.Context, p *pkgJob) error {
	args := []any{"lockedBy", "none"}
	if p.lock != nil {
		args = []any{"lockedBy", p.lock.Key, "lockState", p.lock.State}
	}
	p.log.WarnContext(ctx, "enqueue: a package came from the queue without holding its scope's lock; it waits in inbound/ for its turn", args...)
	if err := h.done(ctx, p.job, nil); err != nil {
		return err
	}
	if p.lock == nil {
		return h.releaser.Request(ctx, p.route, false)
	}
	return nil
}

// prepare opens the package's exact version, checks that it is a data
// package (or wraps a plain file in its route's template) and chooses its
// execution ID. A nil body means done with it (gone, empty, not a package:
// filed; or waiting for its template to be fixed), and the scope freed.
func (h *Handler) prepare(ctx context.Context, p *pkgJob) (io.ReadCloser, error) {
	out, err := h.open(ctx, p.msg)
	if isGone(err) {
		p.log.WarnContext(ctx, "enqueue: the package no longer exists in this version; nothing to import", "error", err.Error())
		return nil, h.freeScope(ctx, p, nil)
	}
	if err != nil {
		return nil, err
	}
	p.size, p.modified = aws.ToInt64(out.ContentLength), aws.ToTime(out.LastModified)
	p.head = &s3io.Head{Size: p.size, ContentType: aws.ToString(out.ContentType), Metadata: out.Metadata}
	p.replayOf = importmsg.ReplayFromMetadata(out.Metadata)
	if s := aws.ToString(out.VersionId); p.src.VersionID == "" && s3io.NormalizeVersion(s) != "" {
		p.src.VersionID = s
	}
	if p.size == 0 {
		out.Body.Close()
		return nil, h.freeScope(ctx, p, &filing.Rejection{Code: "empty-file", Detail: "the file is empty (0 bytes): there is nothing to import"})
	}
	body, err := h.asPackage(ctx, p, out)
	if err != nil || body == nil {
		return nil, err
	}
	if p.lock.ExecutionID == "" {
		now := h.now().UTC()
		l := p.lock.PackageLock
		l.State, l.ExecutionID, l.UpdatedAt = ledger.LockImporting, d365.NewExecutionID(p.route.DefinitionGroupID, now), now
		if p.lock, err = h.ledger.UpdateLock(ctx, p.lock, l); err != nil {
			body.Close()
			return nil, fmt.Errorf("record the execution ID in the lock of scope %q: %w", p.scope, err)
		}
	}
	return body, nil
}

// asPackage is what goes up of the file opened: the file itself when it is
// a data package; on a route with a package template, a file that is no
// package at all wrapped in one. Anything else is refused (not-a-package).
// A nil body means done with it.
func (h *Handler) asPackage(ctx context.Context, p *pkgJob, out *s3.GetObjectOutput) (io.ReadCloser, error) {
	info, err := dmfpackage.Inspect(ctx, h.s3, p.src, p.size)
	var np *dmfpackage.NotAPackageError
	switch {
	case err == nil:
		p.info = info
		return out.Body, nil
	case !errors.As(err, &np):
		out.Body.Close()
		return nil, fmt.Errorf("inspect the package %s: %w", p.msg.Key, err)
	case p.route.PackageTemplate == "" || np.LooksLikePackage:
		out.Body.Close()
		detail := "route " + p.route.Name + " imports data packages into data project " + p.route.DefinitionGroupID + ", and this file is " + err.Error()
		if p.route.PackageTemplate != "" {
			detail += "; it holds package files, so it is not wrapped in the route's package template as a plain data file would be"
		}
		return nil, h.freeScope(ctx, p, &filing.Rejection{Code: "not-a-package", Detail: detail})
	}
	if p.tmpl, err = dmfpackage.LoadTemplate(ctx, h.s3, h.cfg.Bucket, p.route.PackageTemplate); err != nil {
		out.Body.Close()
		return nil, h.templateUnusable(ctx, p, err)
	}
	p.info = &dmfpackage.Package{DefinitionGroup: p.route.DefinitionGroupID, Entities: []string{p.tmpl.Entity}}
	p.log.InfoContext(ctx, "enqueue: a plain file; wrapping it in the route's package template", "template", p.route.PackageTemplate,
		"entity", p.tmpl.Entity, "dataFile", p.tmpl.DataFile)
	return p.body(out), nil
}

// templateUnusable handles a package template that could not be read for
// a file. One that cannot be used (*dmfpackage.TemplateError) is the
// route's configuration, not the file's fault: rejecting the file, and
// every file dropped until someone notices, would leave a person to replay
// them one by one, so the file goes back to waiting in inbound/ instead
// (its released marker and its scope's lock go, so the scope's other
// routes go on) and the route's release passes hold its files until the
// template is fixed (release.Releaser.TemplateRefused tells of it). A read
// that failed is returned and retried.
func (h *Handler) templateUnusable(ctx context.Context, p *pkgJob, err error) error {
	var te *dmfpackage.TemplateError
	if !errors.As(err, &te) {
		return fmt.Errorf("route %s: %w", p.route.Name, err)
	}
	h.releaser.TemplateRefused(ctx, p.route, te)
	p.tmpl = nil
	return h.freeScope(ctx, p, nil)
}

// freeScope files a package that will not be imported (rejected with the
// reason given, or gone when there is none), removes its scope's lock and
// asks for the passes that release the scope's next package.
func (h *Handler) freeScope(ctx context.Context, p *pkgJob, why *filing.Rejection) error {
	if why != nil {
		why.Src, why.EventTime, why.Route, why.File, why.ReplayOf = p.src, p.msg.EventTime, p.route.Name, p.file, p.replayOf
		if err := h.reject(ctx, p.log, *why); err != nil {
			return err
		}
	}
	released, err := h.ledger.ReleaseLock(ctx, p.scope, p.identity)
	if err != nil {
		return fmt.Errorf("remove the lock of package import scope %q: %w", p.scope, err)
	}
	if released {
		if err := h.releaser.RequestScope(ctx, p.scope, p.route.Name); err != nil {
			return err
		}
		p.log.InfoContext(ctx, "enqueue: package import scope free again; its routes' next packages go")
	}
	return h.done(ctx, p.job, nil)
}

// upload streams the package to blob storage, then imports it.
func (h *Handler) upload(ctx context.Context, p *pkgJob, body io.ReadCloser) error {
	blobURL, err := h.uploadPackage(ctx, p, body)
	if isGone(err) {
		return h.freeScope(ctx, p, nil)
	}
	if err != nil {
		return err
	}
	rt := p.route
	start := h.now()
	rec := ledger.Record{
		Identity: p.identity, Bucket: p.msg.Bucket, Key: p.msg.Key, VersionID: s3io.NormalizeVersion(p.src.VersionID),
		ETag: s3io.NormalizeETag(p.msg.ETag), Size: p.size, Route: rt.Name, Company: rt.LegalEntityID, Kind: string(rt.Kind),
		ExecutionID: p.lock.ExecutionID, DefinitionGroupID: rt.DefinitionGroupID, Entities: p.info.Entities, StageOnly: !rt.Execute,
		Scope: p.scope, EventTime: p.msg.EventTime, EnqueuedAt: start.UTC(), ReplayOf: p.replayOf, SourceHead: p.head,
	}
	if p.tmpl != nil {
		rec.Wrapped = p.tmpl.Wrapping()
	}
	// The intent: from here on a crash leaves a marker without F&O's
	// answer, and a redelivery files the package as outcome unknown.
	if created, existing, err := h.ledger.PutMarker(ctx, rec); err != nil {
		return fmt.Errorf("write the intent marker of %s: %w", p.msg.Key, err)
	} else if !created && existing == nil {
		// The marker that refused the write was gone when read: try again
		// on the next delivery rather than guess.
		return fmt.Errorf("the intent marker of %s refused the write but was gone when read; retrying", p.msg.Key)
	} else if !created {
		p.log.WarnContext(ctx, "enqueue: another delivery of this package got there first", "executionId", existing.ExecutionID)
		return nil
	}
	sctx, cancel := h.sendContext(ctx)
	id, err := h.pkgs.ImportFromPackage(sctx, d365.ImportPackageRequest{PackageURL: blobURL, DefinitionGroupID: rt.DefinitionGroupID,
		ExecutionID: rec.ExecutionID, Execute: rt.Execute, Overwrite: rt.Overwrite, LegalEntityID: rt.LegalEntityID})
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, d365.ErrOutcomeUnknown):
		return h.done(ctx, p.job, h.packageUnknown(ctx, p, rec, err))
	case executionExists(err, rec.ExecutionID):
		// An earlier attempt's call reached F&O although it was answered
		// with an error: the import under this ID is F&O's already.
		p.log.WarnContext(ctx, "enqueue: F&O already has this package's execution; following it", "executionId", rec.ExecutionID, "error", err.Error())
		id = rec.ExecutionID
	default:
		return h.importRefused(ctx, p, err)
	}
	return h.importAccepted(ctx, p, rec, id, start)
}

// uploadPackage puts the package at a fresh blob URL, asking F&O for
// another when blob storage refuses the SAS (it expired on the way), from
// a fresh read of the file each time. It returns the blob URL.
func (h *Handler) uploadPackage(ctx context.Context, p *pkgJob, body io.ReadCloser) (string, error) {
	for attempt := 1; ; attempt++ {
		if body == nil {
			out, err := h.open(ctx, p.msg)
			if err != nil {
				return "", err
			}
			body = p.body(out)
		}
		name := fmt.Sprintf("s3fno-%s-%d.zip", p.identity[:16], h.now().UnixNano())
		w, err := h.pkgs.GetAzureWriteURL(ctx, name)
		if err == nil {
			err = h.pkgs.UploadPackageBlocks(ctx, w.BlobURL, body, p.uploadSize(), h.cfg.BlockSize)
		}
		body.Close()
		body = nil
		switch {
		case err == nil:
			p.log.InfoContext(ctx, "enqueue: package uploaded to blob storage", "blob", name, "size", p.size, "attempt", attempt)
			return w.BlobURL, nil
		case errors.Is(err, d365.ErrSASRefused) && attempt < uploadAttempts:
			p.log.WarnContext(ctx, "enqueue: blob storage refused the upload URL (its SAS expired); asking F&O for a new one",
				"attempt", attempt, "error", err.Error())
		default:
			return "", fmt.Errorf("upload the package %s to blob storage: %w", p.msg.Key, err)
		}
	}
}

// executionExists reports F&O refusing ImportFromPackage because an
// execution of this ID exists already.
func executionExists(err error, id string) bool {
	var fe *d365.Error
	return errors.As(err, &fe) && fe.StatusCode == http.StatusBadRequest &&
		strings.Contains(fe.Message+" "+fe.Summary, id) && strings.Contains(strings.ToLower(fe.Message+" "+fe.Summary), "already exists")
}

// importRefused records an ImportFromPackage that F&O answered with an
// error: nothing was imported, so the intent is withdrawn. A refusal for
// good (a bad package, a data project that may not be overwritten, an
// entity F&O does not know) files the package under rejected/ and frees the
// scope; anything else is retried with the same execution ID.
func (h *Handler) importRefused(ctx context.Context, p *pkgJob, err error) error {
	if derr := h.ledger.DeleteMarker(ctx, p.identity); derr != nil {
		return fmt.Errorf("import %s: %w (and the intent marker could not be withdrawn: %v)", p.msg.Key, err, derr)
	}
	if permanent(err) {
		return h.freeScope(ctx, p, &filing.Rejection{Code: "fno-rejected",
			Detail: "F&O refused to import the package into data project " + p.route.DefinitionGroupID + ": " + err.Error(), Answer: answerJSON(err)})
	}
	return fmt.Errorf("import %s: %w", p.msg.Key, err)
}

// importAccepted records F&O's acceptance in the marker, then the ledger
// record the poller follows, then the lock's state.
func (h *Handler) importAccepted(ctx context.Context, p *pkgJob, rec ledger.Record, id string, start time.Time) error {
	now := h.now().UTC()
	if id != "" {
		rec.ExecutionID = id
	}
	rec.AcceptedAt, rec.EnqueuedAt, rec.NextCheck = now, now, now.Add(h.cfg.FirstCheck)
	log := p.log.With("executionId", rec.ExecutionID)
	took := h.now().Sub(start)
	log.InfoContext(ctx, "enqueue: F&O accepted the package import", "size", rec.Size, "definitionGroupId", rec.DefinitionGroupID,
		"entities", rec.Entities, "took", took.String())
	h.cfg.Observers.Metrics.Add("FilesEnqueued", 1, metrics.Route, rec.Route)
	h.cfg.Observers.Metrics.Observe("EnqueueLatency", float64(took.Milliseconds()), metrics.Route, rec.Route)
	if err := h.writeMarker(ctx, rec, log); err != nil {
		return fmt.Errorf("F&O accepted %s as execution %s but the marker could not be updated (a redelivery will file it as outcome unknown): %w",
			p.msg.Key, rec.ExecutionID, err)
	}
	if _, err := h.ledger.Put(ctx, rec); err != nil {
		log.WarnContext(ctx, "enqueue: ledger record not written; the sweep will rebuild it from the marker", "error", err.Error())
	}
	h.setLock(ctx, p, ledger.LockRunning, rec.ExecutionID, log)
	return nil
}

// setLock moves the package's lock on to a state. A failure is logged
// only: the lock still names the package, which is what holds the scope.
func (h *Handler) setLock(ctx context.Context, p *pkgJob, state ledger.LockState, execID string, log *slog.Logger) {
	held := p.lock
	if held == nil || held.Identity != p.identity {
		var err error
		if held, err = h.ledger.GetLock(ctx, p.scope); err != nil || held == nil || held.Identity != p.identity {
			log.WarnContext(ctx, "enqueue: the package's lock could not be moved on", "state", state, "error", fmt.Sprint(err))
			return
		}
	}
	l := held.PackageLock
	l.State, l.ExecutionID, l.UpdatedAt = state, execID, h.now().UTC()
	if _, err := h.ledger.UpdateLock(ctx, held, l); err != nil {
		log.WarnContext(ctx, "enqueue: the package's lock could not be moved on", "state", state, "error", err.Error())
	}
}

// importUnknownNote says what happened to an ImportFromPackage whose
// outcome is unknown: no answer at all, or one that is not F&O's.
func importUnknownNote(cause error) string {
	var ua *d365.UnexpectedAnswerError
	if errors.As(cause, &ua) {
		return "ImportFromPackage was called for this package and an answer came back, but not one F&O gives (" + cause.Error() +
			"): something in front of F&O (a gateway, a sign-in page) may have answered instead."
	}
	return "ImportFromPackage was called for this package but no answer came back (" + cause.Error() + ")."
}

// packageUnknown files a package whose ImportFromPackage went out without
// an answer under failed/ with the execution ID to look up, and leaves its
// scope's lock to the poller, which removes it once that execution is
// final (or never appeared).
func (h *Handler) packageUnknown(ctx context.Context, p *pkgJob, rec ledger.Record, cause error) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	rt := p.route
	var result filing.Result
	dst, err := filing.File(wctx, h.s3, filing.Move{Src: p.src, Candidates: s3io.Candidates(h.cfg.Layout.FailedKey(rt.Name, rec.EnqueuedAt, p.file), p.identity),
		Token: p.identity, Meta: map[string]string{"fno-status": ImportOutcomeUnknown, "fno-execution-id": rec.ExecutionID}, Suffix: layout.ResultSuffix},
		func(dst string, _ bool) (any, error) {
			result = filing.Result{
				Outcome: filing.OutcomeFailed, Status: ImportOutcomeUnknown, ExecutionID: rec.ExecutionID, Route: rt.Name, Company: rt.LegalEntityID,
				DefinitionGroupID: rt.DefinitionGroupID, Entities: rec.Entities, Wrapped: rec.Wrapped, SourceKey: p.msg.Key, SourceVersionID: p.src.VersionID,
				Identity: p.identity, Size: rec.Size, File: dst, EventTime: p.msg.EventTime, EnqueuedAt: rec.EnqueuedAt.UTC(),
				FinishedAt: h.now().UTC(), Errors: []d365.ExecutionError{}, ReplayOf: rec.ReplayOf,
				Notes: []string{
					importUnknownNote(cause),
					"F&O may or may not be importing it: look for execution " + rec.ExecutionID + " in data project " + rt.DefinitionGroupID +
						" (Data management > Job history).",
					"It was not imported again. If F&O has no such execution, drop the package into inbound/ again.",
				},
				Answer: unexpectedAnswer(cause),
			}
			return result, nil
		})
	if errors.Is(err, s3io.ErrSourceGone) {
		p.log.ErrorContext(ctx, "enqueue: package import outcome unknown and the package is no longer in inbound/", "error", cause.Error())
	} else if err != nil {
		return fmt.Errorf("package import outcome unknown for %s, and it could not be filed under failed/: %w", p.msg.Key, err)
	}
	// The poller watches the execution and frees the scope at its end.
	h.setLock(wctx, p, ledger.LockOutcomeUnknown, rec.ExecutionID, p.log)
	if dst != "" {
		p.log.ErrorContext(ctx, "enqueue: ImportFromPackage went out, but F&O's answer was lost; filed under failed/ for a person to check",
			"file", dst, "executionId", rec.ExecutionID, "error", cause.Error())
		// Told before the marker goes, so a crash in between tells it on
		// the redelivery rather than never (once either way).
		h.cfg.Observers.Filed(wctx, result, dst)
	}
	return h.ledger.DeleteMarker(wctx, p.identity)
}
