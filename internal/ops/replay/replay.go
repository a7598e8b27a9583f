// Package replay sends a filed file (processed, failed or rejected)
// through the pipeline again: it copies the filed file to where it was
// dropped, inbound/<route>/<file>, as a new object version. A new version
// is a new identity, so neither the FIFO deduplication nor the idempotency
// marker takes it for the old one; it is released in its route's order
// like any dropped file. The copy carries user metadata naming the filed
// file and its identity (importmsg.Replay), which the enqueue function
// reads and the result or reason document keeps as replayOf.
package replay

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/ops/outcome"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// S3 is what replaying calls.
type S3 interface {
	s3io.Getter
	s3io.Copier
	GetBucketVersioning(context.Context, *s3.GetBucketVersioningInput, ...func(*s3.Options)) (*s3.GetBucketVersioningOutput, error)
}

// ErrNotFound: the key names no filed file.
var ErrNotFound = errors.New("not found")

// ErrMayBeInFnO: the file ended with its outcome unknown (its send or
// ImportFromPackage went out and no answer came back), so F&O may hold it
// already and a replay may import it twice.
var ErrMayBeInFnO = errors.New("F&O may hold it already")

// outcomeUnknown are the statuses the enqueue function files such a file
// with (EnqueueOutcomeUnknown, ImportOutcomeUnknown).
var outcomeUnknown = map[string]bool{"EnqueueOutcomeUnknown": true, "ImportOutcomeUnknown": true}

// Replayer replays files of one bucket.
type Replayer struct {
	S3     S3
	Bucket string
	Layout layout.Layout
	// Force replays a file whose outcome in F&O is unknown, for a person
	// who has checked that F&O does not have it.
	Force bool
}

// Result is the new version.
type Result struct {
	From      string           `json:"from"`    // the filed file replayed
	Outcome   string           `json:"outcome"` // how it had ended
	Key       string           `json:"key"`     // where the new version is: its inbound key
	VersionID string           `json:"versionId"`
	Identity  string           `json:"identity"` // the new version's identity
	ReplayOf  importmsg.Replay `json:"replayOf"`
}

// Replay copies the filed file key (or its document's key) back to where
// it was dropped.
func (r *Replayer) Replay(ctx context.Context, key string) (Result, error) {
	l := r.Layout
	key = outcome.FileOf(strings.TrimSpace(key))
	if !strings.HasPrefix(key, l.Processed) && !strings.HasPrefix(key, l.Failed) && !strings.HasPrefix(key, l.Rejected) {
		return Result{}, fmt.Errorf("replay: %q is not a filed file: give a key under %s, %s or %s (s3fno where NAME lists them)",
			key, l.Processed, l.Failed, l.Rejected)
	}
	if strings.HasPrefix(key, l.Rejected+"_malformed/") {
		return Result{}, fmt.Errorf("replay: %s is a queue message kept because it could not be used, not a file: there is nothing to replay", key)
	}
	if strings.HasPrefix(key, l.Failed+layout.ExportsFolder+"/") {
		return Result{}, fmt.Errorf("replay: %s is the result of a package export, not an imported file: there is nothing to replay "+
			"(the job's next scheduled run starts a new export)", key)
	}
	g, found, err := outcome.Read(ctx, r.S3, l, r.Bucket, key)
	if err != nil {
		return Result{}, fmt.Errorf("replay: %w", err)
	}
	if !found {
		return Result{}, fmt.Errorf("replay: %w: no document beside s3://%s/%s (%s): give the key of a filed file (s3fno where NAME lists them)",
			ErrNotFound, r.Bucket, key, layout.Base(outcome.Document(l, key)))
	}
	if outcomeUnknown[g.Status] && !r.Force {
		return Result{}, fmt.Errorf("replay: %s ended %s: %w (look for it in F&O: its result document says what to look for); "+
			"replay it with --force once you know F&O does not have it", key, g.Status, ErrMayBeInFnO)
	}
	route, file, ok := l.Split(g.SourceKey)
	if !ok || route == "" || file == "" {
		return Result{}, fmt.Errorf("replay: %s was dropped as %q, not under %s<route>/: copy it into the route's folder yourself", key, g.SourceKey, l.Inbound)
	}
	if err := r.versioned(ctx); err != nil {
		return Result{}, err
	}
	replay := importmsg.Replay{Key: key, Identity: g.Identity}
	v, err := r.copy(ctx, key, g.SourceKey, replay)
	if err != nil {
		return Result{}, err
	}
	return Result{From: key, Outcome: g.Outcome, Key: g.SourceKey, VersionID: v,
		Identity: importmsg.Identity(r.Bucket, g.SourceKey, v, ""), ReplayOf: replay}, nil
}

// versioned refuses an unversioned bucket: there a copy of the same bytes
// would have the old file's identity (its ETag), and be taken for it.
func (r *Replayer) versioned(ctx context.Context) error {
	out, err := r.S3.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: &r.Bucket})
	if err != nil {
		return fmt.Errorf("replay: read the versioning of bucket %s: %w", r.Bucket, err)
	}
	if out.Status != types.BucketVersioningStatusEnabled {
		return fmt.Errorf("replay: bucket %s is not versioned, so a copy would have the old file's identity; enable versioning (the stack does)", r.Bucket)
	}
	return nil
}

// copy copies the filed file's current version to dst with the replay's
// metadata (and no other: the filed copy's own, such as its identity,
// would be wrong on the new version), keeping its content type (and its
// tags, up to 5 GiB: a copy in parts does not carry them).
func (r *Replayer) copy(ctx context.Context, src, dst string, replay importmsg.Replay) (string, error) {
	head, err := r.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &r.Bucket, Key: &src})
	if s3io.IsNotFound(err) {
		return "", fmt.Errorf("replay: %w: s3://%s/%s has its document but not the file (only the verdict was kept, or it expired)", ErrNotFound, r.Bucket, src)
	}
	if err != nil {
		return "", fmt.Errorf("replay: head s3://%s/%s: %w", r.Bucket, src, err)
	}
	ref := s3io.Ref{Bucket: r.Bucket, Key: src, VersionID: aws.ToString(head.VersionId)}
	v, err := s3io.CopyVersion(ctx, r.S3, ref, dst, s3io.Head{Size: aws.ToInt64(head.ContentLength),
		ContentType: aws.ToString(head.ContentType), Metadata: replay.Metadata()})
	if err != nil {
		return "", fmt.Errorf("replay: %w", err)
	}
	return v, nil
}
