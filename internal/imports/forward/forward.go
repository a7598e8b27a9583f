// Package forward sends files to the FIFO import queue: one message per
// file, in the group of the route's entity, with a routed marker written once
// it is out. It is the one sending step of the import path: the router calls
// it for notified files and the poller's sweep for files whose notification
// was lost. A file that can never be imported (no route, zero bytes) is
// rejected here instead.
package forward

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
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/sync/errgroup"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

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

// Sender is the part of SQS a Forwarder needs.
type Sender interface {
	SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

var _ Sender = (*sqs.Client)(nil)

// S3 is what forwarding calls: a HEAD for a size the notification did not
// give, the routed marker, and filing a rejected file.
type S3 interface {
	filing.S3
}

// Forwarder sends files of one bucket to the FIFO import queue.
type Forwarder struct {
	cfg      routes.Config
	queueURL string
	s3       S3
	q        Sender
	log      *slog.Logger
	now      func() time.Time
}

// New builds a Forwarder. log nil means slog.Default().
func New(cfg routes.Config, queueURL string, s3c S3, q Sender, log *slog.Logger) (*Forwarder, error) {
	if cfg.Bucket == "" || cfg.Routes.Len() == 0 || queueURL == "" || cfg.Layout.Inbound == "" {
		return nil, fmt.Errorf("forward: Bucket, Routes, Layout and the queue URL are required")
	}
	if s3c == nil || q == nil {
		return nil, fmt.Errorf("forward: S3 and SQS clients are required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Forwarder{cfg: cfg, queueURL: queueURL, s3: s3c, q: q, log: log, now: time.Now}, nil
}

// Outcome of routing one object.
type Outcome int

// What Forward did with an object.
const (
	Forwarded Outcome = iota
	Rejected
	Skipped
)

// Forward sends each routable object to the FIFO queue (batched, at most
// 10 per SendMessageBatch), rejects the ones that can never be imported and
// skips the ones that are not inbound files. It returns, per object, an
// error (nil when done with it) and what was done.
func (f *Forwarder) Forward(ctx context.Context, objs []Object) ([]error, []Outcome) {
	errs := make([]error, len(objs))
	outs := make([]Outcome, len(objs))
	var batch []sqstypes.SendMessageBatchRequestEntry
	var batchIdx []int
	for i, o := range objs {
		entry, outcome, err := f.classify(ctx, o)
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
		for k, err := range f.send(ctx, batch[start:end]) {
			i := batchIdx[start+k]
			o := objs[i]
			if err != nil {
				errs[i] = err
				f.log.ErrorContext(ctx, "forward: could not forward", "key", o.Key, "versionId", o.VersionID, "error", err.Error())
				continue
			}
			f.log.InfoContext(ctx, "forward: forwarded to the import queue", "key", o.Key, "versionId", o.VersionID,
				"route", f.routeOf(o.Key), "group", aws.ToString(batch[start+k].MessageGroupId))
			dedup := aws.ToString(batch[start+k].MessageDeduplicationId)
			markers.Go(func() error {
				f.markRouted(ctx, o, dedup)
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
func (f *Forwarder) markRouted(ctx context.Context, o Object, dedup string) {
	id := importmsg.Identity(o.Bucket, o.Key, o.VersionID, o.ETag)
	doc := Routed{Key: o.Key, VersionID: s3io.NormalizeVersion(o.VersionID), DedupID: dedup, RoutedAt: f.now().UTC()}
	if err := s3io.PutJSON(ctx, f.s3, f.cfg.Bucket, f.cfg.Layout.RoutedKey(id), doc); err != nil {
		f.log.WarnContext(ctx, "forward: routed marker not written", "key", o.Key, "error", err.Error())
	}
}

func (f *Forwarder) routeOf(key string) string {
	route, _, _ := f.cfg.Layout.Split(key)
	return route
}

// classify decides what to do with one object: an entry to send, or a
// rejection (done here), or a skip.
func (f *Forwarder) classify(ctx context.Context, o Object) (*sqstypes.SendMessageBatchRequestEntry, Outcome, error) {
	l := f.cfg.Layout
	log := f.log.With("key", o.Key, "bucket", o.Bucket, "versionId", o.VersionID)
	if o.Bucket != f.cfg.Bucket {
		log.WarnContext(ctx, "forward: skipping an object of another bucket", "configuredBucket", f.cfg.Bucket)
		return nil, Skipped, nil
	}
	route, file, inbound := l.Split(o.Key)
	switch {
	case !inbound:
		log.DebugContext(ctx, "forward: skipping a key outside the inbound prefix")
		return nil, Skipped, nil
	case strings.HasSuffix(o.Key, "/"):
		log.InfoContext(ctx, "forward: skipping a folder placeholder")
		return nil, Skipped, nil
	case strings.HasSuffix(o.Key, layout.StuckSuffix):
		log.DebugContext(ctx, "forward: skipping a stuck report")
		return nil, Skipped, nil
	}
	rt, ok := f.cfg.Routes.Lookup(route)
	if !ok {
		reason := fmt.Sprintf("no route is configured for folder %q (configured: %s)", route, strings.Join(f.cfg.Routes.Names(), ", "))
		if route == "" {
			reason = "the file is directly in " + l.Inbound + "; files go in " + l.Inbound + "<route>/ (configured: " + strings.Join(f.cfg.Routes.Names(), ", ") + ")"
			file = strings.TrimPrefix(o.Key, l.Inbound)
		} else {
			file = route + "/" + file
		}
		err := f.reject(ctx, filing.Rejection{Src: o.Ref(), EventTime: o.EventTime, File: file, Code: "no-route", Detail: reason})
		return nil, Rejected, err
	}
	log = log.With("route", rt.Name)
	if o.Size < 0 {
		in := &s3.HeadObjectInput{Bucket: &o.Bucket, Key: &o.Key}
		if v := s3io.NormalizeVersion(o.VersionID); v != "" {
			in.VersionId = &v
		}
		head, err := f.s3.HeadObject(ctx, in)
		if s3io.IsNotFound(err) {
			log.InfoContext(ctx, "forward: skipping an object that no longer exists")
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
		err := f.reject(ctx, filing.Rejection{Src: o.Ref(), EventTime: o.EventTime, Route: rt.Name, File: file, Code: "empty-file",
			Detail: "the file is empty (0 bytes): there is nothing to import"})
		return nil, Rejected, err
	}
	if o.EventTime.IsZero() {
		o.EventTime = f.now().UTC()
	}
	msg := importmsg.File{Bucket: o.Bucket, Key: o.Key, VersionID: s3io.NormalizeVersion(o.VersionID),
		ETag: s3io.NormalizeETag(o.ETag), Size: o.Size, Route: rt.Name, EventTime: o.EventTime}
	body, err := json.Marshal(msg)
	if err != nil {
		return nil, Skipped, fmt.Errorf("encode message for %s: %w", o.Key, err)
	}
	return &sqstypes.SendMessageBatchRequestEntry{
		MessageBody:            aws.String(string(body)),
		MessageGroupId:         aws.String(rt.GroupID()),
		MessageDeduplicationId: aws.String(importmsg.DedupID(msg)),
	}, Forwarded, nil
}

// send is one SendMessageBatch; it returns an error per entry.
func (f *Forwarder) send(ctx context.Context, entries []sqstypes.SendMessageBatchRequestEntry) []error {
	errs := make([]error, len(entries))
	out, err := f.q.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &f.queueURL, Entries: entries})
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
func (f *Forwarder) reject(ctx context.Context, j filing.Rejection) error {
	return filing.Reject(ctx, f.s3, f.cfg.Layout, f.now, f.log, j)
}
