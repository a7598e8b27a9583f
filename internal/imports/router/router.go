// Package router turns S3 ObjectCreated notifications (delivered through
// the standard "arrivals" queue) into one message each on the FIFO import
// queue, whose message group is the route's entity: S3 cannot notify a FIFO
// queue, and EventBridge cannot set a dynamic group (AWS-NOTES A1).
//
// Files that can never be imported (no route, zero bytes) are moved to
// rejected/ with a reason document; bodies that are not S3 notifications
// are kept under rejected/_malformed/ (both filed by internal/filing).
// Neither is ever an error loop.
// The poller's sweep reuses Dispatch for files whose notification was lost.
package router

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/sync/errgroup"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// FileMessage is the body of a FIFO import message: one object version to
// enqueue. The router writes it and the enqueue function reads it.
type FileMessage struct {
	Bucket    string    `json:"bucket"`
	Key       string    `json:"key"` // URL-decoded
	VersionID string    `json:"versionId,omitempty"`
	ETag      string    `json:"etag,omitempty"`
	Size      int64     `json:"size"`
	Route     string    `json:"route"`
	EventTime time.Time `json:"eventTime"`
}

// Ref is the message's object version as an s3io.Ref.
func (m FileMessage) Ref() s3io.Ref {
	return s3io.Ref{Bucket: m.Bucket, Key: m.Key, VersionID: s3io.NormalizeVersion(m.VersionID), ETag: s3io.NormalizeETag(m.ETag)}
}

// Object is one object version to route, from a notification or a listing.
type Object struct {
	Bucket    string
	Key       string // decoded
	VersionID string
	ETag      string
	Size      int64 // -1: unknown, looked up
	Sequencer string
	EventTime time.Time
}

// Ref is the object version as an s3io.Ref.
func (o Object) Ref() s3io.Ref {
	return s3io.Ref{Bucket: o.Bucket, Key: o.Key, VersionID: s3io.NormalizeVersion(o.VersionID), ETag: s3io.NormalizeETag(o.ETag)}
}

// DedupID is the FIFO MessageDeduplicationId of an object version: the hex
// SHA-256 of bucket, key and version ID (else sequencer, else ETag). A late
// notification and the sweep produce the same ID for a versioned object,
// so SQS drops the second within its 5-minute window.
func DedupID(bucket, key, versionID, sequencer, etag string) string {
	v := s3io.NormalizeVersion(versionID)
	switch {
	case v != "":
	case sequencer != "":
		v = "seq:" + sequencer
	default:
		v = "etag:" + s3io.NormalizeETag(etag)
	}
	sum := sha256.Sum256([]byte(bucket + "\x00" + key + "\x00" + v))
	return hex.EncodeToString(sum[:])
}

// Config is the router's configuration.
type Config struct {
	routes.Config
	// QueueURL is the FIFO import queue (IMPORT_QUEUE_URL).
	QueueURL string
}

// ConfigFromEnv reads BUCKET, ROUTES, the prefixes and IMPORT_QUEUE_URL.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	rc, err := routes.FromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	q := strings.TrimSpace(getenv("IMPORT_QUEUE_URL"))
	if q == "" {
		return Config{}, fmt.Errorf("config: IMPORT_QUEUE_URL is required (the FIFO import queue's URL)")
	}
	if !strings.HasSuffix(q, ".fifo") {
		return Config{}, fmt.Errorf("config: IMPORT_QUEUE_URL %q is not a FIFO queue (its name must end in .fifo)", q)
	}
	return Config{Config: rc, QueueURL: q}, nil
}

// Sender is the part of SQS the router needs.
type Sender interface {
	SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

var _ Sender = (*sqs.Client)(nil)

// Router routes objects to the FIFO import queue.
type Router struct {
	cfg Config
	s3  s3io.Client
	q   Sender
	log *slog.Logger
	now func() time.Time
}

// New checks the configuration and builds a Router. log nil means
// slog.Default().
func New(cfg Config, s3c s3io.Client, q Sender, log *slog.Logger) (*Router, error) {
	if cfg.Bucket == "" || cfg.Routes.Len() == 0 || cfg.QueueURL == "" || cfg.Layout.Inbound == "" {
		return nil, fmt.Errorf("router: Bucket, Routes, Layout and QueueURL are required")
	}
	if s3c == nil || q == nil {
		return nil, fmt.Errorf("router: S3 and SQS clients are required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Router{cfg: cfg, s3: s3c, q: q, log: log, now: time.Now}, nil
}

// Handle is the Lambda handler for the arrivals queue. It reports the
// records it could not forward (or reject) as batch item failures, so SQS
// redelivers only those; everything else, including unusable input, is
// done with.
func (r *Router) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	var objs []Object
	var owner []int // objs[i] came from ev.Records[owner[i]]
	failed := map[int]bool{}
	for i, m := range ev.Records {
		n, err := DecodeNotification([]byte(m.Body))
		if err != nil {
			if err := filing.KeepMalformed(ctx, r.s3, r.cfg.Layout, r.cfg.Bucket, r.now, r.log, m, err); err != nil {
				r.log.ErrorContext(ctx, "router: could not keep a malformed message", "sqsMessageId", m.MessageId, "error", err.Error())
				failed[i] = true
			}
			continue
		}
		if n.TestEvent {
			r.log.InfoContext(ctx, "router: skipping s3:TestEvent", "sqsMessageId", m.MessageId)
			continue
		}
		for _, rec := range n.Records {
			if !rec.IsCreate() {
				r.log.InfoContext(ctx, "router: skipping event that creates nothing", "event", rec.EventName, "key", rec.Key, "bucket", rec.Bucket)
				continue
			}
			objs = append(objs, Object{Bucket: rec.Bucket, Key: rec.Key, VersionID: rec.VersionID, ETag: rec.ETag,
				Size: rec.Size, Sequencer: rec.Sequencer, EventTime: rec.EventTime})
			owner = append(owner, i)
		}
	}
	for j, err := range r.Dispatch(ctx, objs) {
		if err != nil {
			failed[owner[j]] = true
		}
	}
	for i, m := range ev.Records {
		if failed[i] {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
		}
	}
	return resp, nil
}

// Outcome of routing one object.
type Outcome int

// What Dispatch did with an object.
const (
	Forwarded Outcome = iota
	Rejected
	Skipped
)

// Dispatch routes objects: forwards each routable one to the FIFO queue
// (batched, at most 10 per SendMessageBatch), rejects the ones that can
// never be imported, skips the ones that are not inbound files. It returns
// one error per object (nil when done with it).
func (r *Router) Dispatch(ctx context.Context, objs []Object) []error {
	errs, _ := r.DispatchOutcomes(ctx, objs)
	return errs
}

// DispatchOutcomes is Dispatch that also says what was done with each
// object.
func (r *Router) DispatchOutcomes(ctx context.Context, objs []Object) ([]error, []Outcome) {
	errs := make([]error, len(objs))
	outs := make([]Outcome, len(objs))
	var batch []sqstypes.SendMessageBatchRequestEntry
	var batchIdx []int
	for i, o := range objs {
		entry, outcome, err := r.classify(ctx, o)
		outs[i], errs[i] = outcome, err
		if err != nil || entry == nil {
			continue
		}
		entry.Id = aws.String("m" + strconv.Itoa(len(batch)))
		batch = append(batch, *entry)
		batchIdx = append(batchIdx, i)
	}
	// Routed markers are independent S3 writes whose failure is only
	// logged, so they go out concurrently (a batch of 10 costs one round
	// trip, not ten) and may overlap the next batch's send.
	var markers errgroup.Group
	markers.SetLimit(markerConcurrency)
	for start := 0; start < len(batch); start += 10 {
		end := min(start+10, len(batch))
		for k, err := range r.send(ctx, batch[start:end]) {
			i := batchIdx[start+k]
			o := objs[i]
			if err != nil {
				errs[i] = err
				r.log.ErrorContext(ctx, "router: could not forward", "key", o.Key, "versionId", o.VersionID, "error", err.Error())
				continue
			}
			r.log.InfoContext(ctx, "router: forwarded to the import queue", "key", o.Key, "versionId", o.VersionID,
				"route", r.routeOf(o.Key), "group", aws.ToString(batch[start+k].MessageGroupId))
			dedup := aws.ToString(batch[start+k].MessageDeduplicationId)
			markers.Go(func() error {
				r.markRouted(ctx, o, dedup)
				return nil
			})
		}
	}
	markers.Wait() // markRouted logs its failures and never returns one
	return errs, outs
}

// markerConcurrency bounds the routed-marker writes in flight: one FIFO
// batch's worth.
const markerConcurrency = 10

// Routed is the routed marker's content.
type Routed struct {
	Key       string    `json:"key"`
	VersionID string    `json:"versionId,omitempty"`
	DedupID   string    `json:"dedupId"`
	RoutedAt  time.Time `json:"routedAt"`
}

// markRouted records that a file's FIFO message went out, so the sweep
// does not route it again while it waits in the queue or its DLQ. A failed
// write only costs a redundant send by a later sweep (the enqueue marker
// still stops a second enqueue), so it is logged, not returned.
func (r *Router) markRouted(ctx context.Context, o Object, dedup string) {
	id := s3io.Identity(o.Bucket, o.Key, o.VersionID, o.ETag)
	doc := Routed{Key: o.Key, VersionID: s3io.NormalizeVersion(o.VersionID), DedupID: dedup, RoutedAt: r.now().UTC()}
	if err := s3io.PutJSON(ctx, r.s3, r.cfg.Bucket, r.cfg.Layout.RoutedKey(id), doc); err != nil {
		r.log.WarnContext(ctx, "router: routed marker not written", "key", o.Key, "error", err.Error())
	}
}

func (r *Router) routeOf(key string) string {
	route, _, _ := r.cfg.Layout.Split(key)
	return route
}

// classify decides what to do with one object: an entry to send, or a
// rejection (done here), or a skip.
func (r *Router) classify(ctx context.Context, o Object) (*sqstypes.SendMessageBatchRequestEntry, Outcome, error) {
	l := r.cfg.Layout
	log := r.log.With("key", o.Key, "bucket", o.Bucket, "versionId", o.VersionID)
	if o.Bucket != r.cfg.Bucket {
		log.WarnContext(ctx, "router: skipping an object of another bucket", "configuredBucket", r.cfg.Bucket)
		return nil, Skipped, nil
	}
	route, file, inbound := l.Split(o.Key)
	switch {
	case !inbound:
		log.DebugContext(ctx, "router: skipping a key outside the inbound prefix")
		return nil, Skipped, nil
	case strings.HasSuffix(o.Key, "/"):
		log.InfoContext(ctx, "router: skipping a folder placeholder")
		return nil, Skipped, nil
	case strings.HasSuffix(o.Key, routes.StuckSuffix):
		log.DebugContext(ctx, "router: skipping a stuck report")
		return nil, Skipped, nil
	}
	rt, ok := r.cfg.Routes.Lookup(route)
	if !ok {
		reason := fmt.Sprintf("no route is configured for folder %q (configured: %s)", route, strings.Join(r.cfg.Routes.Names(), ", "))
		if route == "" {
			reason = "the file is directly in " + l.Inbound + "; files go in " + l.Inbound + "<route>/ (configured: " + strings.Join(r.cfg.Routes.Names(), ", ") + ")"
			file = strings.TrimPrefix(o.Key, l.Inbound)
		} else {
			file = route + "/" + file
		}
		err := r.reject(ctx, filing.Rejection{Src: o.Ref(), EventTime: o.EventTime, File: file, Code: "no-route", Detail: reason})
		return nil, Rejected, err
	}
	log = log.With("route", rt.Name)
	if o.Size < 0 {
		in := &s3.HeadObjectInput{Bucket: &o.Bucket, Key: &o.Key}
		if v := s3io.NormalizeVersion(o.VersionID); v != "" {
			in.VersionId = &v
		}
		head, err := r.s3.HeadObject(ctx, in)
		if s3io.IsNotFound(err) {
			log.InfoContext(ctx, "router: skipping an object that no longer exists")
			return nil, Skipped, nil
		}
		if err != nil {
			return nil, Skipped, fmt.Errorf("head %s: %w", o.Key, err)
		}
		o.Size = aws.ToInt64(head.ContentLength)
		if o.ETag == "" {
			o.ETag = aws.ToString(head.ETag)
		}
	}
	if o.Size == 0 {
		err := r.reject(ctx, filing.Rejection{Src: o.Ref(), EventTime: o.EventTime, Route: rt.Name, File: file, Code: "empty-file",
			Detail: "the file is empty (0 bytes): there is nothing to import"})
		return nil, Rejected, err
	}
	if o.EventTime.IsZero() {
		o.EventTime = r.now().UTC()
	}
	body, err := json.Marshal(FileMessage{Bucket: o.Bucket, Key: o.Key, VersionID: s3io.NormalizeVersion(o.VersionID),
		ETag: s3io.NormalizeETag(o.ETag), Size: o.Size, Route: rt.Name, EventTime: o.EventTime})
	if err != nil {
		return nil, Skipped, fmt.Errorf("encode message for %s: %w", o.Key, err)
	}
	return &sqstypes.SendMessageBatchRequestEntry{
		MessageBody:            aws.String(string(body)),
		MessageGroupId:         aws.String(rt.GroupID()),
		MessageDeduplicationId: aws.String(DedupID(o.Bucket, o.Key, o.VersionID, o.Sequencer, o.ETag)),
	}, Forwarded, nil
}

// send is one SendMessageBatch; it returns an error per entry.
func (r *Router) send(ctx context.Context, entries []sqstypes.SendMessageBatchRequestEntry) []error {
	errs := make([]error, len(entries))
	out, err := r.q.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &r.cfg.QueueURL, Entries: entries})
	if err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("send to the import queue: %w", err)
		}
		return errs
	}
	byID := map[string]int{}
	for i, e := range entries {
		byID[aws.ToString(e.Id)] = i
	}
	ok := map[int]bool{}
	for _, s := range out.Successful {
		if i, found := byID[aws.ToString(s.Id)]; found {
			ok[i] = true
		}
	}
	for _, f := range out.Failed {
		if i, found := byID[aws.ToString(f.Id)]; found {
			errs[i] = fmt.Errorf("send to the import queue: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
		}
	}
	for i := range entries {
		if errs[i] == nil && !ok[i] {
			errs[i] = errors.New("send to the import queue: SQS reported neither success nor failure")
		}
	}
	return errs
}

// reject files an object version that can never be imported under
// rejected/ (see filing.Reject).
func (r *Router) reject(ctx context.Context, j filing.Rejection) error {
	return filing.Reject(ctx, r.s3, r.cfg.Layout, r.now, r.log, j)
}
