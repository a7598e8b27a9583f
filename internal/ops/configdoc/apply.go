package configdoc

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/shared/config"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// ErrChanged: the stored document changed between reading and writing it.
var ErrChanged = errors.New("the stored document changed while this one was being applied; run config diff and apply again")

// ErrStale: the file was saved from a version the bucket no longer holds as
// current; storing it would undo whatever changed since.
var ErrStale = errors.New("the stored document is no longer the version this file was shown from; " +
	"run config show again and redo the edit there (config diff shows what the file would undo), " +
	"or take the version line out to apply the file over whatever is current")

// Report is what apply (or a dry run) did.
type Report struct {
	Document  string           `json:"document"` // s3://bucket/key
	Stored    bool             `json:"stored"`   // a new version was written
	VersionID string           `json:"versionId,omitempty"`
	Changes   []Change         `json:"changes"`
	Schedules []ScheduleChange `json:"schedules"`
	// ShownFrom is the version the file was saved from (its version line),
	// Stale that the stored document has moved on since.
	ShownFrom string `json:"shownFrom,omitempty"`
	Stale     bool   `json:"stale,omitempty"`
}

// Apply validates data and, when it differs from the stored document,
// stores it as a new version, conditionally on the version read (no
// change made meanwhile is overwritten); then it makes the schedules match.
// A document that does not validate is refused before anything is written,
// and so is a file saved by `config show` from a version that is no longer
// the current one.
func (m *Manager) Apply(ctx context.Context, data []byte) (Report, error) {
	data, shownFrom := SplitVersion(data)
	rep, doc, cur, err := m.compare(ctx, data, shownFrom)
	if err != nil {
		if errors.Is(err, errInvalid) {
			err = fmt.Errorf("%w; nothing was stored", err)
		}
		return rep, err
	}
	if rep.Stale {
		return rep, fmt.Errorf("%w (shown from version %s, the current one is %s); nothing was stored", ErrStale, rep.ShownFrom, cmp.Or(cur.VersionID, "none"))
	}
	if cur.Raw == nil || !bytes.Equal(bytes.TrimSpace(cur.Raw), bytes.TrimSpace(data)) { // an editor's final newline is no change
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

// Plan is Apply without writing: what the document would change. A file
// shown from an older version is compared all the same, and marked Stale.
func (m *Manager) Plan(ctx context.Context, data []byte) (Report, error) {
	body, shownFrom := SplitVersion(data)
	rep, doc, _, err := m.compare(ctx, body, shownFrom)
	if err != nil {
		return rep, err
	}
	if m.Schedules != nil {
		if rep.Schedules, err = m.Schedules.Sync(ctx, doc, false); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// errInvalid marks a document that does not validate.
var errInvalid = errors.New("the document does not validate")

// compare validates body (a document without its version line, see
// SplitVersion) and reads the stored document: the report holds the
// changes body makes to it and whether it was shown from an older version.
func (m *Manager) compare(ctx context.Context, body []byte, shownFrom string) (Report, *config.Document, Stored, error) {
	rep := Report{Document: "s3://" + m.Bucket + "/" + m.Key, Changes: []Change{}, Schedules: []ScheduleChange{}}
	doc, err := m.Validate(body)
	if err != nil {
		return rep, nil, Stored{}, fmt.Errorf("%w: %w", errInvalid, err)
	}
	cur, err := m.Current(ctx)
	if err != nil {
		return rep, nil, Stored{}, err
	}
	rep.Changes = Diff(cur.Doc, doc)
	rep.ShownFrom = shownFrom
	rep.Stale = rep.ShownFrom != "" && rep.ShownFrom != cur.VersionID
	return rep, doc, cur, nil
}
