// Package enqueue is the enqueue function: FIFO import messages in, grouped
// by entity. A release request runs a release pass (package release), which
// sends the route's settled files to the queue in drop order; each file
// message is streamed from S3 to F&O's recurring-integration enqueue
// endpoint, strictly in order.
//
// A file of a dataProject route is a data package imported through the
// package API instead (packages.go): one at a time per scope, at most once.
//
// A batch is processed sequentially; from the first record that fails,
// that record and every later one are returned to SQS, so nothing behind a
// failed file of the same entity overtakes it.
//
// F&O does not de-duplicate enqueues, so a file is sent at most once: an
// intent marker (_state/markers/<identity>.json without a message ID) is
// written before the send and replaced by F&O's message ID after it. A
// redelivery that finds a marker never sends again: with a message ID it is
// done, without one (the function died while sending) the file is filed
// under failed/ as EnqueueOutcomeUnknown for a person to check. The same
// happens when the body went out and no answer came back.
//
// F&O refusing the file for good (a 4xx other than 401/403/408/429) files
// it under rejected/ with F&O's answer; 401/403, throttling, 5xx, network
// and S3 faults are returned to SQS, and after the queue's maxReceiveCount
// the message moves to the dead-letter queue while the file stays in
// inbound/. A message that does not name a file under inbound/<route>/ of
// the configured bucket is kept under rejected/_malformed/ and nothing it
// names is touched.
package enqueue

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/imports/release"
	"github.com/fno-bridge/s3-fno/internal/shared/fnoenv"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// Config is the enqueue function's configuration.
type Config struct {
	release.Config
	// Margin: a record is not started when less than this is left before
	// the invocation's deadline; it and the rest are returned for
	// redelivery. Default 20s.
	Margin time.Duration
	// FirstCheck is how long after enqueue the poller first looks at a
	// message: POLL_INTERVAL, default 1m.
	FirstCheck time.Duration
	// BlockSize is the block a package larger than it goes up to blob
	// storage in (one held in memory at a time). Default DefaultBlockSize.
	BlockSize int64
}

// ConfigFromEnv reads BUCKET, ROUTES, the prefixes, IMPORT_QUEUE_URL and
// POLL_INTERVAL.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	rc, err := release.ConfigFromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	c := Config{Config: rc}
	if v := strings.TrimSpace(getenv("POLL_INTERVAL")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return Config{}, fmt.Errorf("config: POLL_INTERVAL %q must be a positive duration such as 1m", v)
		}
		c.FirstCheck = d
	}
	return c, nil
}

// Enqueuer is the part of the F&O client the handler needs.
type Enqueuer interface {
	Enqueue(ctx context.Context, in d365.EnqueueRequest) (string, error)
}

var _ Enqueuer = (*d365.Client)(nil)

// S3 is what the enqueue function calls: checked reads of the file, the
// marker and ledger, filing, and release passes.
type S3 interface {
	s3io.Getter
	ledger.S3
	release.S3
}

// Handler is the enqueue function's handler.
type Handler struct {
	cfg      Config
	s3       S3
	fno      Enqueuer
	pkgs     PackageImporter // fno's package API, for dataProject routes
	ledger   *ledger.Store
	releaser *release.Releaser
	log      *slog.Logger
	now      func() time.Time
}

// New builds the handler; q sends what release passes release. log nil
// means slog.Default().
func New(cfg Config, s3c S3, fno Enqueuer, q release.Sender, log *slog.Logger) (*Handler, error) {
	if cfg.Bucket == "" || cfg.Routes == nil || cfg.Layout.Inbound == "" {
		return nil, fmt.Errorf("enqueue: Bucket, Routes and Layout are required")
	}
	if s3c == nil || fno == nil {
		return nil, fmt.Errorf("enqueue: S3 and F&O clients are required")
	}
	if cfg.Margin <= 0 {
		cfg.Margin = 20 * time.Second
	}
	if cfg.FirstCheck <= 0 {
		cfg.FirstCheck = time.Minute
	}
	if cfg.BlockSize <= 0 {
		cfg.BlockSize = DefaultBlockSize
	}
	if log == nil {
		log = slog.Default()
	}
	rel, err := release.New(cfg.Config, s3c, q, log)
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	pkgs, _ := fno.(PackageImporter)
	return &Handler{cfg: cfg, s3: s3c, fno: fno, pkgs: pkgs, log: log, now: time.Now, releaser: rel,
		ledger: &ledger.Store{S3: s3c, Bucket: cfg.Bucket, Layout: cfg.Layout}}, nil
}

// Handle processes a FIFO batch strictly in order. From the first record
// that fails, that record and every later one are batch item failures.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	defer h.cfg.Observers.Metrics.Flush()
	var resp events.SQSEventResponse
	ready := h.releaser.Ready(ctx)
	for i, m := range ev.Records {
		err := h.beforeDeadline(ctx)
		if err == nil {
			err = ready
		}
		if err == nil {
			err = h.process(ctx, m)
		}
		if err != nil {
			fnoenv.LogRefusal(ctx, h.log, h.cfg.Observers.Notify, err)
			rest := len(ev.Records) - i
			h.log.WarnContext(ctx, "enqueue: returning the rest of the batch for redelivery",
				"sqsMessageId", m.MessageId, "failed", 1, "unprocessed", rest-1, "error", err.Error())
			for _, r := range ev.Records[i:] {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			}
			return resp, nil
		}
	}
	return resp, nil
}

func (h *Handler) beforeDeadline(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < h.cfg.Margin {
		return fmt.Errorf("less than %s left before the deadline", h.cfg.Margin)
	}
	return nil
}

// process handles one record; nil means done with it.
func (h *Handler) process(ctx context.Context, m events.SQSMessage) error {
	msg, err := importmsg.Decode([]byte(m.Body))
	if err != nil {
		return filing.KeepMalformed(ctx, h.s3, h.cfg.Layout, h.cfg.Bucket, h.now, h.log, m, err)
	}
	if msg.Release != nil {
		_, err := h.releaser.Pass(ctx, *msg.Release)
		return err
	}
	fm, file, err := h.decode(ctx, m, *msg.File)
	if err != nil || fm == nil {
		return err
	}
	j := &job{msg: *fm, file: file, identity: fm.Identity(), src: fm.Ref(),
		log: h.log.With("key", fm.Key, "versionId", fm.VersionID, "route", fm.Route, "identity", fm.Identity(), "sqsMessageId", m.MessageId)}
	rt, ok := h.cfg.Routes.LookupFresh(ctx, fm.Route)
	if !ok {
		return h.done(ctx, j, h.reject(ctx, j.log, filing.Rejection{Src: j.src, EventTime: fm.EventTime, File: fm.Route + "/" + file,
			Code: "no-route", Detail: fmt.Sprintf("route %q is no longer configured", fm.Route)}))
	}
	j.route = rt
	if rt.Kind == routes.KindDataProject {
		return h.importPackage(ctx, j)
	}
	return h.send(ctx, j)
}

// job is one file on its way to F&O.
type job struct {
	msg      importmsg.File
	file     string // the path under the route's folder
	identity string
	src      s3io.Ref
	route    routes.Route
	log      *slog.Logger
	// replayOf: the file is a replay of a filed one (its metadata says).
	replayOf *importmsg.Replay
}

// decode checks a file message. One that cannot be trusted is kept under
// rejected/_malformed/ and gives a nil message: done with it.
func (h *Handler) decode(ctx context.Context, m events.SQSMessage, fm importmsg.File) (*importmsg.File, string, error) {
	file, why := h.inboundFile(fm)
	if why != "" {
		// Not what the router writes: nothing of the object it names is
		// touched (it may be a processed file, a marker, or another
		// bucket's), only the message is kept.
		return nil, "", filing.KeepMalformed(ctx, h.s3, h.cfg.Layout, h.cfg.Bucket, h.now, h.log, m,
			fmt.Errorf("import message for s3://%s/%s (route %q) does not name a file the router forwards: %s; nothing was sent to F&O or moved",
				fm.Bucket, fm.Key, fm.Route, why))
	}
	return &fm, file, nil
}

// markerFound handles a file whose idempotency marker exists: it is never
// sent again. mk nil means the marker went between the conditional write
// that found it and the read: the redelivery looks again.
func (h *Handler) markerFound(ctx context.Context, j *job, mk *ledger.Record) error {
	switch {
	case mk == nil:
		return fmt.Errorf("the marker of %s changed while it was read; a redelivery looks again", j.msg.Key)
	case mk.Sending():
		// An earlier attempt began sending and never recorded an answer
		// (it died, or filing the outcome failed): F&O may hold the file.
		if mk.ReplayOf != nil {
			j.replayOf = mk.ReplayOf
		}
		return h.done(ctx, j, h.outcomeUnknown(ctx, j, mk.ExternalID, mk.EnqueuedAt,
			errors.New("an earlier attempt started sending the file and did not record F&O's answer")))
	}
	j.log.InfoContext(ctx, "enqueue: already enqueued, skipping", "messageId", mk.MessageID, "enqueuedAt", mk.EnqueuedAt)
	return nil
}

// gone handles a file whose version is no longer in S3 and had no marker:
// the intent this delivery wrote is withdrawn, and there is nothing to
// import.
func (h *Handler) gone(ctx context.Context, j *job, cause error) error {
	if err := h.withdrawn(ctx, j, nil); err != nil {
		return err
	}
	j.log.WarnContext(ctx, "enqueue: the file no longer exists in this version; nothing to import", "error", cause.Error())
	return h.done(ctx, j, nil)
}

// send opens the file, writes the intent marker, streams the file to F&O
// and records the outcome.
//
// The intent marker's conditional write goes out together with the
// file's GET: one entity's files are sent one at a time, so the round trip
// saved per file is throughput for a burst of them. Nothing is sent before
// both the GET and the intent have answered. The conditional
// write is also the look for an earlier attempt's marker: it fails only
// when there is one, so a first delivery reads no marker.
func (h *Handler) send(ctx context.Context, j *job) error {
	fm, rt, log := j.msg, j.route, j.log
	start := h.now()
	intent := h.intent(j, start)
	marked := make(chan intentWrite, 1)
	go func() {
		var w intentWrite
		w.created, w.existing, w.err = h.ledger.PutMarker(ctx, intent)
		marked <- w
	}()
	body, err := h.open(ctx, fm)
	mk := <-marked
	if err == nil {
		defer body.Body.Close()
		j.replayOf = importmsg.ReplayFromMetadata(body.Metadata)
	}
	switch {
	case mk.err != nil:
		return fmt.Errorf("write the intent marker of %s: %w", fm.Key, mk.err)
	case err != nil && !isGone(err):
		if mk.created {
			return h.withdrawn(ctx, j, err)
		}
		return err
	case err != nil && mk.created:
		return h.gone(ctx, j, err)
	case err != nil:
		// Gone, and an earlier attempt's marker decides (it may have
		// been filed, or sent).
		return h.markerFound(ctx, j, mk.existing)
	case aws.ToInt64(body.ContentLength) == 0:
		// Never sent, whatever marker it has (one left by a withdrawal
		// that failed).
		body.Body.Close()
		if err := h.withdrawn(ctx, j, nil); err != nil {
			return err
		}
		return h.done(ctx, j, h.reject(ctx, log, filing.Rejection{Src: j.src, EventTime: fm.EventTime, Route: rt.Name, File: j.file,
			Code: "empty-file", Detail: "the file is empty (0 bytes): there is nothing to import", ReplayOf: j.replayOf}))
	case !mk.created:
		body.Body.Close()
		return h.markerFound(ctx, j, mk.existing)
	}
	req, version := h.request(fm, rt, body)
	rec := intent
	rec.VersionID, rec.Size, rec.ReplayOf = version, req.Size, j.replayOf
	rec.SourceHead = &s3io.Head{Size: req.Size, ContentType: aws.ToString(body.ContentType), Metadata: body.Metadata}
	// Stop sending early enough to record the outcome before Lambda ends
	// the invocation.
	sctx, cancel := h.sendContext(ctx)
	msgID, err := h.fno.Enqueue(sctx, req)
	cancel()
	body.Body.Close()
	if err != nil {
		return h.notAccepted(ctx, j, req.ExternalID, start, err)
	}
	return h.accepted(ctx, j, rec, msgID, start)
}

// intentWrite is the answer to the intent marker's conditional write.
type intentWrite struct {
	created  bool
	existing *ledger.Record
	err      error
}

// intent is the marker written before the send: from here on a crash
// leaves a marker without a message ID, and a redelivery files the file
// as "outcome unknown" instead of sending it again. It holds what the
// message says; the record written after the send adds what the GET
// said.
func (h *Handler) intent(j *job, start time.Time) ledger.Record {
	fm, rt := j.msg, j.route
	return ledger.Record{
		Identity: j.identity, Bucket: fm.Bucket, Key: fm.Key,
		VersionID: s3io.NormalizeVersion(fm.VersionID), ETag: s3io.NormalizeETag(fm.ETag), Size: fm.Size,
		Route: rt.Name, Entity: rt.Entity, Company: rt.Company, ActivityID: rt.ActivityID, Kind: string(rt.Kind),
		ExternalID: ExternalID(fm.Key), EventTime: fm.EventTime, EnqueuedAt: start.UTC(), Attempt: rand.Text(),
	}
}

// withdrawn removes the intent marker this delivery wrote for a file it
// did not send, then returns cause. If the marker stays, a redelivery
// errs on the safe side: it files the file as "outcome unknown".
func (h *Handler) withdrawn(ctx context.Context, j *job, cause error) error {
	if err := h.ledger.DeleteMarker(ctx, j.identity); err != nil {
		if cause == nil {
			return fmt.Errorf("withdraw the intent marker of %s: %w", j.msg.Key, err)
		}
		return fmt.Errorf("%w (and the intent marker could not be withdrawn: %v)", cause, err)
	}
	return cause
}

// request is the enqueue request for a file whose body is open; version is
// the exact version being sent, which Reopen reads again.
func (h *Handler) request(fm importmsg.File, rt routes.Route, body *s3.GetObjectOutput) (d365.EnqueueRequest, string) {
	again := fm
	if v := aws.ToString(body.VersionId); s3io.NormalizeVersion(v) != "" {
		again.VersionID = v
	} else if again.ETag == "" {
		again.ETag = s3io.NormalizeETag(aws.ToString(body.ETag))
	}
	req := d365.EnqueueRequest{
		ActivityID: rt.ActivityID, Company: rt.Company, ExternalID: ExternalID(fm.Key),
		Body: body.Body, Size: aws.ToInt64(body.ContentLength),
		Reopen: func(ctx context.Context) (io.ReadCloser, error) {
			out, err := h.open(ctx, again)
			if err != nil {
				return nil, err
			}
			return out.Body, nil
		},
	}
	if rt.Kind == routes.KindFile {
		req.Entity = rt.Entity
	}
	return req, s3io.NormalizeVersion(again.VersionID)
}

// notAccepted records a send that F&O did not accept.
func (h *Handler) notAccepted(ctx context.Context, j *job, externalID string, start time.Time, err error) error {
	if errors.Is(err, d365.ErrOutcomeUnknown) {
		// The body went out and no answer came back: F&O may hold the
		// file. Sending it again could import it twice, so it is filed
		// under failed/ for a person to check.
		return h.done(ctx, j, h.outcomeUnknown(ctx, j, externalID, start, err))
	}
	// F&O answered, or nothing went out: it does not hold the file.
	// Withdraw the intent so that a retry may send it; if that fails, the
	// redelivery errs on the safe side (outcome unknown).
	if derr := h.ledger.DeleteMarker(ctx, j.identity); derr != nil {
		return fmt.Errorf("enqueue %s: %w (and the intent marker could not be withdrawn: %v)", j.msg.Key, err, derr)
	}
	if permanent(err) {
		return h.done(ctx, j, h.reject(ctx, j.log, filing.Rejection{Src: j.src, EventTime: j.msg.EventTime, Route: j.route.Name,
			File: j.file, Code: "fno-rejected", Detail: "F&O refused the file: " + err.Error(), Answer: answerJSON(err), ReplayOf: j.replayOf}))
	}
	return fmt.Errorf("enqueue %s: %w", j.msg.Key, err)
}

// accepted records F&O's message ID in the marker, then the ledger record
// the poller follows.
func (h *Handler) accepted(ctx context.Context, j *job, rec ledger.Record, msgID string, start time.Time) error {
	now := h.now().UTC()
	rec.MessageID, rec.EnqueuedAt, rec.NextCheck = msgID, now, now.Add(h.cfg.FirstCheck)
	log := j.log.With("messageId", msgID)
	took := h.now().Sub(start)
	log.InfoContext(ctx, "enqueue: F&O accepted the file", "size", rec.Size, "entity", rec.Entity, "activityId", rec.ActivityID,
		"took", took.String())
	h.cfg.Observers.Metrics.Add("FilesEnqueued", 1, metrics.Route, rec.Route)
	h.cfg.Observers.Metrics.Observe("EnqueueLatency", float64(took.Milliseconds()), metrics.Route, rec.Route)
	// The marker first, the ledger record only after it: a record the
	// poller follows always has a marker holding F&O's message ID. Were
	// the record written beside an intent (a crash between the two), a
	// redelivery would file the file as "outcome unknown" while the poller
	// filed F&O's real result. If the marker is never updated, the intent
	// makes a redelivery file it as outcome unknown rather than send it
	// twice.
	if err := h.writeMarker(ctx, rec, log); err != nil {
		return fmt.Errorf("F&O accepted %s as message %s but the marker could not be updated (a redelivery will file it as outcome unknown): %w",
			j.msg.Key, msgID, err)
	}
	if _, err := h.ledger.Put(ctx, rec); err != nil {
		// The marker holds the record: the poller's sweep rebuilds it.
		log.WarnContext(ctx, "enqueue: ledger record not written; the sweep will rebuild it from the marker", "error", err.Error())
	}
	return nil
}

// inboundFile checks that an import message names what the router would
// forward: a file (not a folder placeholder or a stuck report) under
// inbound/<route>/ of the configured bucket, with that same non-empty
// route. It returns the file's path under the route folder, or why not.
// Anything else would be sent to F&O and then moved, rejected or filed
// wherever it is, even in another bucket or under processed/ or _state/.
func (h *Handler) inboundFile(fm importmsg.File) (file, why string) {
	l := h.cfg.Layout
	route, file, inbound := l.Split(fm.Key)
	switch {
	case fm.Bucket != h.cfg.Bucket:
		return "", fmt.Sprintf("the bucket is not the configured bucket %q", h.cfg.Bucket)
	case fm.Route == "":
		return "", "the route is empty"
	case !inbound || route != fm.Route:
		return "", fmt.Sprintf("the key is not under %s%s/", l.Inbound, fm.Route)
	case file == "" || strings.HasSuffix(file, "/"):
		return "", "the key is a folder, not a file"
	case strings.HasSuffix(file, layout.StuckSuffix):
		return "", "the key is a stuck report, not a file to import"
	}
	return file, ""
}

func (h *Handler) reject(ctx context.Context, log *slog.Logger, j filing.Rejection) error {
	return filing.Reject(ctx, h.s3, h.cfg.Layout, h.now, log, h.cfg.Observers, j)
}

// OutcomeUnknown is the status written in the result document of a file
// whose enqueue went out without an answer.
const OutcomeUnknown = "EnqueueOutcomeUnknown"

// outcomeUnknown moves a file whose enqueue went out unanswered to
// failed/<route>/<yyyy>/<mm>/<dd>/<file> with a result document saying so.
// It runs on its own short deadline: it matters most when the invocation's
// own deadline is what cut the answer off.
func (h *Handler) outcomeUnknown(ctx context.Context, j *job, externalID string, sentAt time.Time, cause error) error {
	fm, rt, file, log := j.msg, j.route, j.file, j.log
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	src, identity := j.src, j.identity
	var result filing.Result
	dst, err := filing.File(wctx, h.s3, filing.Move{Src: src, Candidates: s3io.Candidates(h.cfg.Layout.FailedKey(rt.Name, sentAt, file), identity),
		Token: identity, Meta: map[string]string{"fno-status": OutcomeUnknown}, Suffix: layout.ResultSuffix},
		func(dst string, _ bool) (any, error) {
			result = filing.Result{
				Outcome: filing.OutcomeFailed, Status: OutcomeUnknown, Route: rt.Name, Entity: rt.Entity, Company: rt.Company,
				ActivityID: rt.ActivityID, ExternalID: externalID, SourceKey: fm.Key, SourceVersionID: src.VersionID, Identity: identity, Size: fm.Size,
				File: dst, EventTime: fm.EventTime, EnqueuedAt: sentAt.UTC(), FinishedAt: h.now().UTC(), Errors: []d365.ExecutionError{},
				Notes: []string{
					outcomeUnknownNote(cause),
					"F&O may or may not hold it: look for external identifier " + externalID + " in the recurring job's message history.",
					"It was not sent again, since F&O does not de-duplicate. If F&O does not have it, drop it into inbound/ again.",
				},
				Answer:   unexpectedAnswer(cause),
				ReplayOf: j.replayOf,
			}
			return result, nil
		})
	if errors.Is(err, s3io.ErrSourceGone) {
		// Filed by an earlier attempt, or removed by someone.
		log.ErrorContext(ctx, "enqueue: outcome unknown and the file is no longer in inbound/", "error", cause.Error())
		return h.ledger.DeleteMarker(wctx, identity)
	}
	if err != nil {
		return fmt.Errorf("enqueue outcome unknown for %s, and it could not be filed under failed/: %w", fm.Key, err)
	}
	log.ErrorContext(ctx, "enqueue: sent, but F&O's answer was lost; filed under failed/ for a person to check",
		"file", dst, "error", cause.Error())
	// People hear of it before the marker goes: a crash in between tells
	// them on the redelivery (once: the notification is kept once) rather
	// than never. Until the marker goes, a redelivery that finds it
	// finishes this filing instead of sending the file.
	h.cfg.Observers.Filed(wctx, result, dst)
	return h.ledger.DeleteMarker(wctx, identity)
}

// outcomeUnknownNote says what happened to a send whose outcome is unknown:
// no answer at all, or an answer that is not one F&O gives (a gateway's or
// sign-in page's, say).
func outcomeUnknownNote(cause error) string {
	var ua *d365.UnexpectedAnswerError
	if errors.As(cause, &ua) {
		return "The file was sent to F&O and an answer came back, but not an enqueue answer F&O gives (" + cause.Error() +
			"): something in front of F&O (a gateway, a sign-in page) may have answered instead."
	}
	return "The file was sent to F&O but no answer came back (" + cause.Error() + ")."
}

// unexpectedAnswer is what came back instead of an enqueue answer, for the
// result document; nil when nothing came back.
func unexpectedAnswer(cause error) json.RawMessage {
	var ua *d365.UnexpectedAnswerError
	if !errors.As(cause, &ua) {
		return nil
	}
	b, _ := json.Marshal(map[string]any{"status": ua.Status, "contentType": ua.ContentType, "contentLength": ua.ContentLength,
		"reason": ua.Reason, "firstBytes": ua.Snippet})
	return b
}

// done removes the released marker of a file that will never be enqueued
// (rejected, gone or filed as outcome unknown), once err is nil.
func (h *Handler) done(ctx context.Context, j *job, err error) error {
	if err != nil {
		return err
	}
	if err := s3io.DeleteKey(ctx, h.s3, h.cfg.Bucket, h.cfg.Layout.ReleasedKey(j.msg.Route, j.identity)); err != nil {
		j.log.WarnContext(ctx, "enqueue: released marker not removed", "error", err.Error())
	}
	return nil
}

func (h *Handler) writeMarker(ctx context.Context, rec ledger.Record, log *slog.Logger) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		if last = h.ledger.ReplaceMarker(wctx, rec); last == nil {
			return nil
		}
		log.WarnContext(ctx, "enqueue: marker update failed, retrying", "error", last.Error())
		select {
		case <-wctx.Done():
			return last
		case <-time.After(time.Duration(200*(attempt+1)) * time.Millisecond):
		}
	}
	return last
}

// sendReserve is kept free after a send for recording its outcome (at
// most a quarter of the time left, for short deadlines).
const sendReserve = 15 * time.Second

// sendContext bounds a send so that it ends before the invocation's
// deadline: Lambda stops the process at the deadline, so whatever must
// happen after F&O answers has to happen before it.
func (h *Handler) sendContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, dl.Add(-min(sendReserve, time.Until(dl)/4)))
	}
	return context.WithCancel(ctx)
}

// open reads the exact version named (or, without one, the object only if
// its ETag is still the one named), checking S3's checksum as it streams:
// F&O never gets the whole of a file that differs from what S3 holds.
func (h *Handler) open(ctx context.Context, fm importmsg.File) (*s3.GetObjectOutput, error) {
	in := &s3.GetObjectInput{Bucket: &fm.Bucket, Key: &fm.Key}
	if v := s3io.NormalizeVersion(fm.VersionID); v != "" {
		in.VersionId = &v
	} else if fm.ETag != "" {
		in.IfMatch = aws.String(`"` + s3io.NormalizeETag(fm.ETag) + `"`)
	}
	out, err := s3io.GetVerified(ctx, h.s3, in)
	if err != nil {
		return nil, fmt.Errorf("get s3://%s/%s: %w", fm.Bucket, fm.Key, err)
	}
	return out, nil
}

func isGone(err error) bool {
	return err != nil && (s3io.IsNotFound(err) || s3io.IsInvalidVersion(err) || s3io.IsPreconditionFailed(err))
}

// permanent reports whether F&O refused the file for good.
func permanent(err error) bool {
	if errors.Is(err, d365.ErrOnPremises) {
		return true
	}
	var te *d365.ThrottledError
	if errors.As(err, &te) {
		return false
	}
	var fe *d365.Error
	if !errors.As(err, &fe) || fe.Temporary() {
		return false
	}
	switch fe.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return fe.StatusCode >= 400 && fe.StatusCode < 500
}

// answerJSON is F&O's answer for the reason document.
func answerJSON(err error) json.RawMessage {
	var fe *d365.Error
	if !errors.As(err, &fe) {
		return nil
	}
	b, _ := json.Marshal(map[string]any{"status": fe.StatusCode, "code": fe.Code, "message": fe.Message, "summary": fe.Summary, "body": fe.Body})
	return b
}

// maxExternalID bounds the x-ms-dyn-externalidentifier header.
const maxExternalID = 250

// ExternalID is the x-ms-dyn-externalidentifier sent with a file: its S3
// key, with every byte that is not printable ASCII percent-encoded (header
// values cannot carry control characters, and F&O's handling of non-ASCII
// is unknown). Keys too long keep their end (the file name) behind "…".
func ExternalID(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c < 0x20 || c >= 0x7f || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	s := b.String()
	if len(s) > maxExternalID {
		s = "..." + s[len(s)-(maxExternalID-3):]
	}
	return s
}
