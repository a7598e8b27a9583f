// Package failures lists the files that failed or were rejected recently,
// newest first, with their reasons and F&O's first error rows, read from
// their result and reason documents. Filed files live in dated folders
// (the day a file was enqueued or dropped), so each route's folder is
// listed from a little before the window onwards: one listing per route
// and folder, whose cost follows the failures, not the files processed.
package failures

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/ops/outcome"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// S3 is what listing failures reads.
type S3 interface {
	s3io.Getter
	s3io.Lister
}

// Lookback is how long before the window the dated folders are listed
// from: a file is filed under the day it was enqueued (or dropped), which
// can be days before it failed.
const Lookback = 30 * 24 * time.Hour

// Lister lists the failures of one bucket.
type Lister struct {
	S3     S3
	Bucket string
	Layout layout.Layout
	Now    func() time.Time
}

// Query is what to list.
type Query struct {
	Route string        // "" for every route (and _unrouted, _malformed)
	Since time.Duration // the window, back from now
}

// Report is the failures found, newest first.
type Report struct {
	Route    string         `json:"route,omitempty"`
	Since    time.Time      `json:"since"`
	Failures []outcome.Gist `json:"failures"`
}

// List finds the failed and rejected files filed within the window.
func (l *Lister) List(ctx context.Context, q Query) (Report, error) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	since := now().Add(-q.Since)
	r := Report{Route: q.Route, Since: since.UTC(), Failures: []outcome.Gist{}}
	for _, top := range []string{l.Layout.Failed, l.Layout.Rejected} {
		folders, err := l.routeFolders(ctx, top, q.Route)
		if err != nil {
			return Report{}, err
		}
		for _, folder := range folders {
			found, err := l.inFolder(ctx, folder, since)
			if err != nil {
				return Report{}, err
			}
			r.Failures = append(r.Failures, found...)
		}
	}
	slices.SortStableFunc(r.Failures, func(a, b outcome.Gist) int {
		return cmp.Or(b.At.Compare(a.At), strings.Compare(a.Key, b.Key))
	})
	return r, nil
}

// routeFolders are the route folders under failed/ or rejected/: the one
// asked for, or every one there (one listing with a delimiter), with
// failed/_exports/ taken as the export jobs' folders in it.
func (l *Lister) routeFolders(ctx context.Context, top, route string) ([]string, error) {
	if route != "" {
		return []string{top + route + "/"}, nil
	}
	folders, err := l.subfolders(ctx, top)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range folders {
		if f != l.Layout.Failed+layout.ExportsFolder+"/" {
			out = append(out, f)
			continue
		}
		jobs, err := l.subfolders(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, jobs...)
	}
	return out, nil
}

// subfolders lists the folders directly under prefix.
func (l *Lister) subfolders(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	p := s3.NewListObjectsV2Paginator(l.S3, &s3.ListObjectsV2Input{Bucket: &l.Bucket, Prefix: &prefix, Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", l.Bucket, prefix, err)
		}
		for _, cp := range page.CommonPrefixes {
			out = append(out, aws.ToString(cp.Prefix))
		}
	}
	return out, nil
}

// inFolder reads the documents in a route's folder written since, listing
// the dated folders from Lookback before since.
func (l *Lister) inFolder(ctx context.Context, folder string, since time.Time) ([]outcome.Gist, error) {
	from := since.Add(-Lookback).UTC()
	after := fmt.Sprintf("%s%04d/%02d/%02d/", folder, from.Year(), int(from.Month()), from.Day())
	var out []outcome.Gist
	p := s3.NewListObjectsV2Paginator(l.S3, &s3.ListObjectsV2Input{Bucket: &l.Bucket, Prefix: &folder, StartAfter: &after})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", l.Bucket, folder, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !strings.HasSuffix(key, layout.ResultSuffix) && !strings.HasSuffix(key, layout.ReasonSuffix) {
				continue
			}
			if aws.ToTime(o.LastModified).Before(since) {
				continue
			}
			g, found, err := outcome.Read(ctx, l.S3, l.Layout, l.Bucket, outcome.FileOf(key))
			if errors.Is(err, s3io.ErrUndecodable) {
				// Listed all the same: a document nobody can read is a
				// problem of its own.
				g, found = outcome.Gist{Outcome: l.outcomeOf(key), Key: outcome.FileOf(key), Document: key, At: aws.ToTime(o.LastModified),
					Status: "unreadable document", Detail: err.Error()}, true
			} else if err != nil {
				return nil, err
			}
			if found && !g.At.Before(since) {
				out = append(out, g)
			}
		}
	}
	return out, nil
}

// outcomeOf is the outcome a key's folder stands for.
func (l *Lister) outcomeOf(key string) string {
	if strings.HasPrefix(key, l.Layout.Rejected) {
		return filing.OutcomeRejected
	}
	return filing.OutcomeFailed
}
