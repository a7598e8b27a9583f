package config

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/notify"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// S3 is what loading the document needs.
type S3 interface {
	s3io.Getter
	s3io.VersionLister
}

// ErrNoDocument is Load's error when the bucket holds no usable document:
// none was ever stored, or no version of it validates.
var ErrNoDocument = errors.New("no usable configuration document")

// RefreshEvery is how often a function checks the document: a change takes
// effect within this (one conditional GET each time).
const RefreshEvery = 30 * time.Second

// maxVersions bounds how far back a cold start looks for a usable version.
const maxVersions = 20

// Store loads the document for a function. It keeps the last good one: a
// document that does not validate (or is deleted) is logged at ERROR,
// notified once per version and counted, and the functions go on with what
// they had; a cold start that finds one goes back to the newest version
// that validates.
type Store struct {
	S3      S3
	Bucket  string
	Key     string
	Check   JobCheck // nil: the jobs' schedule fields only
	Log     *slog.Logger
	Notify  *notify.Notifier
	Metrics *metrics.Recorder

	seen    string    // ETag of the object last read, good or not
	good    *Document // the last good document
	goodVer string
}

// Load returns the current document, or the last good one when the
// current cannot be used. Unchanged documents cost one conditional GET.
func (s *Store) Load(ctx context.Context) (*Document, error) {
	in := &s3.GetObjectInput{Bucket: &s.Bucket, Key: &s.Key}
	if s.seen != "" && s.good != nil {
		in.IfNoneMatch = aws.String(s.seen)
	}
	out, err := s.S3.GetObject(ctx, in)
	var data []byte
	if err == nil {
		data, err = readBody(out.Body)
	}
	switch {
	case s3io.IsNotModified(err):
		return s.good, nil
	case s3io.IsNotFound(err):
		s.seen = ""
		if s.good != nil {
			s.refuse(ctx, "deleted", "", errors.New("the document was deleted"))
			return s.good, nil
		}
		return nil, fmt.Errorf("%w: s3://%s/%s does not exist (store one with the operator's tool: config apply)", ErrNoDocument, s.Bucket, s.Key)
	case err != nil:
		if s.good != nil {
			s.log().WarnContext(ctx, "config: cannot read the document; keeping the last good one", "key", s.Key, "error", err.Error())
			return s.good, nil
		}
		return nil, fmt.Errorf("read s3://%s/%s: %w", s.Bucket, s.Key, err)
	}
	// Only a document read whole is judged: one whose download broke off
	// is an error above, read again next time, not a bad version.
	etag, ver := s3io.NormalizeETag(aws.ToString(out.ETag)), aws.ToString(out.VersionId)
	doc, perr := Parse(data, s.Check)
	s.seen = etag
	if perr == nil {
		if s.goodVer != ver {
			s.log().InfoContext(ctx, "config: loaded", "key", s.Key, "versionId", ver, "routes", doc.Routes.Len(), "jobs", len(doc.Jobs))
		}
		s.good, s.goodVer = doc, ver
		return doc, nil
	}
	s.refuse(ctx, ver, etag, perr)
	if s.good != nil {
		return s.good, nil
	}
	return s.fallBack(ctx, ver)
}

// readBody reads a document's body (Parse refuses one over MaxSize).
func readBody(body io.ReadCloser) ([]byte, error) {
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read the document: %w", err)
	}
	return data, nil
}

// fallBack finds the newest version, other than bad, that validates.
func (s *Store) fallBack(ctx context.Context, bad string) (*Document, error) {
	out, err := s.S3.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &s.Bucket, Prefix: &s.Key,
		MaxKeys: aws.Int32(maxVersions + 1)})
	if err != nil {
		return nil, fmt.Errorf("%w: the current one does not validate, and its versions cannot be listed: %v", ErrNoDocument, err)
	}
	versions := slices.DeleteFunc(out.Versions, func(v types.ObjectVersion) bool {
		return aws.ToString(v.Key) != s.Key || aws.ToString(v.VersionId) == bad
	})
	slices.SortFunc(versions, func(a, b types.ObjectVersion) int {
		return aws.ToTime(b.LastModified).Compare(aws.ToTime(a.LastModified))
	})
	for _, v := range versions[:min(len(versions), maxVersions)] {
		got, err := s.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.Bucket, Key: &s.Key, VersionId: v.VersionId})
		if err != nil {
			continue
		}
		data, err := readBody(got.Body)
		if err != nil {
			continue
		}
		doc, err := Parse(data, s.Check)
		if err != nil {
			continue
		}
		s.good, s.goodVer = doc, aws.ToString(v.VersionId)
		s.log().WarnContext(ctx, "config: using an earlier version of the document", "key", s.Key, "versionId", s.goodVer)
		return doc, nil
	}
	return nil, fmt.Errorf("%w: no version of s3://%s/%s validates", ErrNoDocument, s.Bucket, s.Key)
}

// refuse tells of a document that cannot be used: at ERROR, once per
// version on the topic, and in the metrics.
func (s *Store) refuse(ctx context.Context, version, etag string, why error) {
	s.log().ErrorContext(ctx, "config: the document cannot be used; keeping the last good one", "key", s.Key, "versionId", version,
		"keptVersionId", s.goodVer, "error", why.Error())
	s.Metrics.Add("ConfigRejected", 1)
	kept := "none: the functions wait for a good document"
	if s.good != nil {
		kept = cmp.Or(s.goodVer, "the one loaded before")
	}
	s.Notify.Send(ctx, notify.Event{Kind: notify.Config, ID: s.Key + "\x00" + version + "\x00" + etag,
		What: s.Key + " cannot be used",
		Body: "The configuration document was changed to one that does not validate. The functions go on with the last good " +
			"configuration; no file is rejected because of it. Fix it with the operator's tool (config validate, then config apply).",
		Fields: [][2]string{{"Document", "s3://" + s.Bucket + "/" + s.Key}, {"Version", version}, {"Problem", why.Error()},
			{"Version in use", kept}}})
}

func (s *Store) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// Routes is a route table that follows the document, checked again once
// every interval (now: time.Now when nil).
func (s *Store) Routes(every time.Duration, now func() time.Time) *routes.Table {
	return routes.Live(func(ctx context.Context) (*routes.Table, error) {
		d, err := s.Load(ctx)
		if err != nil {
			return nil, err
		}
		return d.Routes, nil
	}, every, now)
}
