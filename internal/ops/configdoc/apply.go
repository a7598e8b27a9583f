package configdoc

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// ErrChanged: the stored document changed between reading and writing it.
var ErrChanged = errors.New("the stored document changed while this one was being applied; run config diff and apply again")

// Report is what apply (or a dry run) did.
type Report struct {
	Document  string           `json:"document"` // s3://bucket/key
	Stored    bool             `json:"stored"`   // a new version was written
	VersionID string           `json:"versionId,omitempty"`
	Changes   []Change         `json:"changes"`
	Schedules []ScheduleChange `json:"schedules"`
}

// Apply validates data and, when it differs from the stored document,
// stores it as a new version, conditionally on the version read (no
// change made meanwhile is overwritten); then it makes the schedules match.
// A document that does not validate is refused before anything is written.
func (m *Manager) Apply(ctx context.Context, data []byte) (Report, error) {
	rep := Report{Document: "s3://" + m.Bucket + "/" + m.Key, Changes: []Change{}, Schedules: []ScheduleChange{}}
	doc, err := m.Validate(data)
	if err != nil {
		return rep, fmt.Errorf("the document does not validate; nothing was stored: %w", err)
	}
	cur, err := m.Current(ctx)
	if err != nil {
		return rep, err
	}
	rep.Changes = Diff(cur.Doc, doc)
	if cur.Raw == nil || !bytes.Equal(cur.Raw, data) {
		in := &s3.PutObjectInput{Bucket: &m.Bucket, Key: &m.Key, Body: bytes.NewReader(data), ContentType: aws.String("application/json")}
		if cur.Raw == nil {
			in.IfNoneMatch = aws.String("*")
		} else {
			in.IfMatch = aws.String(cur.ETag)
		}
		out, err := m.S3.PutObject(ctx, in)
		if s3io.IsPreconditionFailed(err) {
			return rep, ErrChanged
		}
		if err != nil {
			return rep, fmt.Errorf("store %s: %w", rep.Document, err)
		}
		rep.Stored, rep.VersionID = true, aws.ToString(out.VersionId)
	}
	if m.Schedules == nil {
		return rep, nil
	}
	rep.Schedules, err = m.Schedules.Sync(ctx, doc, true)
	if err != nil {
		return rep, fmt.Errorf("the document is stored; the schedules are not all in step (apply again): %w", err)
	}
	return rep, nil
}

// Plan is Apply without writing: what the document would change.
func (m *Manager) Plan(ctx context.Context, data []byte) (Report, error) {
	rep := Report{Document: "s3://" + m.Bucket + "/" + m.Key, Changes: []Change{}, Schedules: []ScheduleChange{}}
	doc, err := m.Validate(data)
	if err != nil {
		return rep, fmt.Errorf("the document does not validate: %w", err)
	}
	cur, err := m.Current(ctx)
	if err != nil {
		return rep, err
	}
	rep.Changes = Diff(cur.Doc, doc)
	if m.Schedules != nil {
		if rep.Schedules, err = m.Schedules.Sync(ctx, doc, false); err != nil {
			return rep, err
		}
	}
	return rep, nil
}
