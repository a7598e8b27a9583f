package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// LockState is how far the package holding a scope's lock has got.
type LockState string

// The states of a package import lock, in the order they follow each other.
const (
	// LockReleased: a release pass took the lock and sent the package to
	// the import queue; nothing went to F&O yet.
	LockReleased LockState = "released"
	// LockImporting: the enqueue function chose the execution ID and may
	// be calling ImportFromPackage.
	LockImporting LockState = "importing"
	// LockRunning: F&O accepted the import; the poller follows it by its
	// ledger record and removes the lock when the execution is final.
	LockRunning LockState = "running"
	// LockOutcomeUnknown: ImportFromPackage went out and its answer was
	// lost; the package was filed under failed/, and the poller watches
	// the execution ID until it is final (or never appeared), then
	// removes the lock.
	LockOutcomeUnknown LockState = "outcomeUnknown"
)

// PackageLock is _state/packages/<scope>.json: the one package of a package
// import scope that is on its way into F&O or running there. While it
// exists, release passes of the scope's routes release nothing, so the
// scope's other packages wait in inbound/ (not in the queue, where waiting
// would cost receive counts). It is created with If-None-Match (two passes
// cannot both take it) and changed and removed with If-Match.
type PackageLock struct {
	Scope       string    `json:"scope"`
	Route       string    `json:"route"`
	Key         string    `json:"key"`
	VersionID   string    `json:"versionId,omitempty"`
	Identity    string    `json:"identity"`
	State       LockState `json:"state"`
	ExecutionID string    `json:"executionId,omitempty"`
	TakenAt     time.Time `json:"takenAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// HeldLock is a lock as read: its document and the ETag that changes to it
// must match.
type HeldLock struct {
	PackageLock
	ETag string
}

// ErrLockLost: the lock changed or went since it was read.
var ErrLockLost = errors.New("the package import lock changed since it was read")

// LockKey is the lock's key for a scope.
func (s *Store) LockKey(scope string) string { return s.Layout.PackageLockKey(scope) }

// GetLock reads a scope's lock; nil when the scope is free. A lock that is
// not a lock document is an error matching s3io.ErrUndecodable.
func (s *Store) GetLock(ctx context.Context, scope string) (*HeldLock, error) {
	return s.getLockAt(ctx, s.LockKey(scope))
}

func (s *Store) getLockAt(ctx context.Context, key string) (*HeldLock, error) {
	out, err := s.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.Bucket, Key: &key})
	if s3io.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get s3://%s/%s: %w", s.Bucket, key, err)
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(out.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read s3://%s/%s: %w", s.Bucket, key, err)
	}
	var l HeldLock
	if err := json.Unmarshal(raw, &l.PackageLock); err != nil || l.Scope == "" || l.Identity == "" {
		return nil, fmt.Errorf("decode s3://%s/%s: %w: %v", s.Bucket, key, s3io.ErrUndecodable, err)
	}
	l.ETag = aws.ToString(out.ETag)
	return &l, nil
}

// TakeLock creates a scope's lock unless it exists: taken is false (and
// nothing written) when another holds it.
func (s *Store) TakeLock(ctx context.Context, l PackageLock) (taken bool, err error) {
	_, err = s.putLock(ctx, l, &s3.PutObjectInput{IfNoneMatch: aws.String("*")})
	if errors.Is(err, ErrLockLost) {
		return false, nil
	}
	return err == nil, err
}

// UpdateLock replaces a lock read as held, if it is unchanged; the result
// is the lock as now held. ErrLockLost says it changed meanwhile.
func (s *Store) UpdateLock(ctx context.Context, held *HeldLock, l PackageLock) (*HeldLock, error) {
	etag, err := s.putLock(ctx, l, &s3.PutObjectInput{IfMatch: aws.String(held.ETag)})
	if err != nil {
		return nil, err
	}
	return &HeldLock{PackageLock: l, ETag: etag}, nil
}

func (s *Store) putLock(ctx context.Context, l PackageLock, in *s3.PutObjectInput) (string, error) {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode the lock of %s: %w", l.Scope, err)
	}
	key := s.LockKey(l.Scope)
	in.Bucket, in.Key, in.Body = &s.Bucket, &key, bytes.NewReader(b)
	in.ContentLength, in.ContentType = aws.Int64(int64(len(b))), aws.String("application/json")
	out, err := s.S3.PutObject(ctx, in)
	if s3io.IsPreconditionFailed(err) || s3io.IsConflict(err) {
		return "", fmt.Errorf("put s3://%s/%s: %w", s.Bucket, key, ErrLockLost)
	}
	if err != nil {
		return "", fmt.Errorf("put s3://%s/%s: %w", s.Bucket, key, err)
	}
	return aws.ToString(out.ETag), nil
}

// ReleaseLock removes a scope's lock if identity holds it. released is
// false when the scope was free or another package holds it (nothing
// done), or when it changed while being released.
func (s *Store) ReleaseLock(ctx context.Context, scope, identity string) (released bool, err error) {
	held, err := s.GetLock(ctx, scope)
	if err != nil || held == nil || held.Identity != identity {
		return false, err
	}
	return s.DeleteLock(ctx, held)
}

// DeleteLock removes a lock read as held, if it is unchanged.
func (s *Store) DeleteLock(ctx context.Context, held *HeldLock) (bool, error) {
	key := s.LockKey(held.Scope)
	_, err := s.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.Bucket, Key: &key, IfMatch: aws.String(held.ETag)})
	switch {
	case s3io.IsPreconditionFailed(err) || s3io.IsConflict(err):
		return false, nil
	case s3io.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("delete s3://%s/%s: %w", s.Bucket, key, err)
	}
	return true, nil
}

// Locks reads every package import lock. A lock that cannot be read is
// passed to bad with its key (the poller moves it aside).
func (s *Store) Locks(ctx context.Context, bad func(key string, err error)) ([]*HeldLock, error) {
	prefix := s.Layout.PackageLockPrefix()
	var out []*HeldLock
	p := s3.NewListObjectsV2Paginator(s.S3, s.listInput(prefix))
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("ledger: list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			l, err := s.getLockAt(ctx, aws.ToString(o.Key))
			switch {
			case errors.Is(err, s3io.ErrUndecodable):
				bad(aws.ToString(o.Key), err)
			case err != nil:
				return nil, err
			case l != nil:
				out = append(out, l)
			}
		}
	}
	return out, nil
}
