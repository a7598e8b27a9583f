// Package release decides when a route's files go to the FIFO import queue,
// so that one route's files reach F&O in the order they were dropped,
// whatever order S3's notifications arrive in.
//
// Notifications only ask for a pass over a route's folder (Notified sends a
// release request into the route's message group). A pass (Pass, run by the
// enqueue function when the request comes up) lists the folder itself,
// orders the files that are waiting by the route's rule (the time S3 stored
// them, then key; or by key) and sends them to the queue in that order,
// each once it has settled: its settle window has passed since S3 stored
// it, so a file uploaded alongside it has had time to become visible. The
// listing is the truth, so a late, duplicated or lost notification cannot
// reorder anything; requests travel in the route's group, so passes of one
// route never overlap. A released marker in _state/released/<route>/ says a
// file has been sent, until it is filed.
package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// S3 is what releasing calls: the listings of a route's folder and of its
// released markers, the markers, and filing what can never be imported.
type S3 interface {
	filing.S3
	s3io.Getter
	s3io.Lister
	s3io.VersionLister
}

// Sender is the part of SQS releasing needs.
type Sender interface {
	SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

var _ Sender = (*sqs.Client)(nil)

// Releaser releases the files of one bucket's routes.
type Releaser struct {
	cfg   Config
	s3    S3
	q     Sender
	log   *slog.Logger
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
}

// New builds a Releaser. log nil means slog.Default().
func New(cfg Config, s3c S3, q Sender, log *slog.Logger) (*Releaser, error) {
	if cfg.Bucket == "" || cfg.Routes == nil || cfg.QueueURL == "" || cfg.Layout.Inbound == "" {
		return nil, fmt.Errorf("release: Bucket, Routes, Layout and the queue URL are required")
	}
	if s3c == nil || q == nil {
		return nil, fmt.Errorf("release: S3 and SQS clients are required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Releaser{cfg: cfg, s3: s3c, q: q, log: log, now: time.Now, sleep: sleepCtx}, nil
}

// WithClock returns a copy that reads now and waits with sleep (tests).
func (r *Releaser) WithClock(now func() time.Time, sleep func(context.Context, time.Duration) error) *Releaser {
	c := *r
	c.now, c.sleep = now, sleep
	return &c
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Request sends a release request for a route into its message group.
func (r *Releaser) Request(ctx context.Context, rt routes.Route, followUp bool) error {
	req := importmsg.Release{Route: rt.Name, RequestedAt: r.now().UTC(), FollowUp: followUp}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode the release request of route %q: %w", rt.Name, err)
	}
	entry := sqstypes.SendMessageBatchRequestEntry{Id: aws.String("r"), MessageBody: aws.String(string(body)),
		MessageGroupId: aws.String(rt.GroupID()), MessageDeduplicationId: aws.String(req.DedupID())}
	if err := r.send(ctx, []sqstypes.SendMessageBatchRequestEntry{entry})[0]; err != nil {
		return fmt.Errorf("request a release of route %q: %w", rt.Name, err)
	}
	return nil
}

// send is one SendMessageBatch; it returns an error per entry.
func (r *Releaser) send(ctx context.Context, entries []sqstypes.SendMessageBatchRequestEntry) []error {
	errs := make([]error, len(entries))
	for i := range entries {
		entries[i].Id = aws.String("m" + strconv.Itoa(i))
	}
	out, err := r.q.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &r.cfg.QueueURL, Entries: entries})
	if err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("send to the import queue: %w", err)
		}
		return errs
	}
	ok := map[string]bool{}
	for _, s := range out.Successful {
		ok[aws.ToString(s.Id)] = true
	}
	failed := map[string]string{}
	for _, f := range out.Failed {
		failed[aws.ToString(f.Id)] = aws.ToString(f.Code) + ": " + aws.ToString(f.Message)
	}
	for i, e := range entries {
		id := aws.ToString(e.Id)
		switch {
		case failed[id] != "":
			errs[i] = fmt.Errorf("send to the import queue: %s", failed[id])
		case !ok[id]:
			errs[i] = errors.New("send to the import queue: SQS reported neither success nor failure")
		}
	}
	return errs
}

// routeOf is the route of an inbound key, or "".
func (r *Releaser) routeOf(key string) string {
	route, _, _ := r.cfg.Layout.Split(key)
	return route
}

// Ready brings the route table up to date with the configuration document
// (a fixed table: nothing). An error means there is no configuration to go
// by at all: files must wait, not be rejected as unrouted.
func (r *Releaser) Ready(ctx context.Context) error {
	err := r.cfg.Routes.Refresh(ctx)
	if r.cfg.Routes.Loaded() {
		return nil
	}
	return fmt.Errorf("no route configuration to go by; files wait in %s until one is stored: %w", r.cfg.Layout.Inbound, err)
}

// names lists the configured routes for messages.
func (r *Releaser) names() string { return strings.Join(r.cfg.Routes.Names(), ", ") }
