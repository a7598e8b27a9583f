// Package router is the router function: S3 ObjectCreated notifications
// from the standard "arrivals" queue in, one message per new file out on the
// FIFO import queue (through package forward), whose message group is the
// route's entity. S3 cannot notify a FIFO queue and EventBridge cannot set a
// group per file, hence this step. Bodies that are not S3 notifications are
// kept under rejected/_malformed/; nothing here is ever an error loop.
package router

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/forward"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

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

// Router routes objects to the FIFO import queue.
type Router struct {
	cfg     Config
	s3      forward.S3
	forward *forward.Forwarder
	log     *slog.Logger
	now     func() time.Time
}

// New checks the configuration and builds a Router. log nil means
// slog.Default().
func New(cfg Config, s3c forward.S3, q forward.Sender, log *slog.Logger) (*Router, error) {
	if log == nil {
		log = slog.Default()
	}
	fw, err := forward.New(cfg.Config, cfg.QueueURL, s3c, q, log)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	return &Router{cfg: cfg, s3: s3c, forward: fw, log: log, now: time.Now}, nil
}

// Handle is the Lambda handler for the arrivals queue. It reports the
// records it could not forward (or reject) as batch item failures, so SQS
// redelivers only those; everything else, including unusable input, is
// done with.
func (r *Router) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	var objs []forward.Object
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
			objs = append(objs, forward.Object{Bucket: rec.Bucket, Key: rec.Key, VersionID: rec.VersionID, ETag: rec.ETag,
				Size: rec.Size, Sequencer: rec.Sequencer, EventTime: rec.EventTime})
			owner = append(owner, i)
		}
	}
	errs, _ := r.forward.Forward(ctx, objs)
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
