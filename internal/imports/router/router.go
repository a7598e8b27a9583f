// Package router is the router function: S3 ObjectCreated notifications
// from the standard "arrivals" queue in; for each route with new files, one
// release request out on the FIFO import queue, in the route's message group
// (package release sends the files themselves, in drop order). S3 cannot
// notify a FIFO queue and EventBridge cannot set a group per file, hence
// this step. Files no route takes are filed under rejected/; bodies that
// are not S3 notifications are kept under rejected/_malformed/; nothing here
// is ever an error loop.
package router

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/release"
)

// Config is the router's configuration: the import side's.
type Config = release.Config

// ConfigFromEnv reads BUCKET, ROUTES, the prefixes and IMPORT_QUEUE_URL.
func ConfigFromEnv(getenv func(string) string) (Config, error) { return release.ConfigFromEnv(getenv) }

// Router routes objects to the FIFO import queue.
type Router struct {
	cfg      Config
	s3       release.S3
	releaser *release.Releaser
	log      *slog.Logger
	now      func() time.Time
}

// New checks the configuration and builds a Router. log nil means
// slog.Default().
func New(cfg Config, s3c release.S3, q release.Sender, log *slog.Logger) (*Router, error) {
	if log == nil {
		log = slog.Default()
	}
	rel, err := release.New(cfg, s3c, q, log)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	return &Router{cfg: cfg, s3: s3c, releaser: rel, log: log, now: time.Now}, nil
}

// Handle is the Lambda handler for the arrivals queue. It reports the
// records it could not act on (request or reject) as batch item failures, so SQS
// redelivers only those; everything else, including unusable input, is
// done with.
func (r *Router) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	defer r.cfg.Observers.Metrics.Flush()
	var resp events.SQSEventResponse
	if err := r.releaser.Ready(ctx); err != nil {
		r.log.ErrorContext(ctx, "router: returning the batch for redelivery", "records", len(ev.Records), "error", err.Error())
		for _, m := range ev.Records {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
		}
		return resp, nil
	}
	var objs []release.Object
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
			objs = append(objs, release.Object{Bucket: rec.Bucket, Key: rec.Key, VersionID: rec.VersionID, ETag: rec.ETag, EventTime: rec.EventTime})
			owner = append(owner, i)
		}
	}
	errs, _ := r.releaser.Notified(ctx, objs)
	for j, err := range errs {
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
