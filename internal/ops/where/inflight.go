package where

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/imports/pause"
	"github.com/fno-bridge/s3-fno/internal/imports/release"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// inFlight finds the versions still in inbound/: by key, one listing of
// that key's versions; by name, one listing of inbound/ (a request per
// 1,000 files in flight).
func (f *Finder) inFlight(ctx context.Context, q query) ([]Entry, error) {
	prefix := f.Layout.Inbound
	if q.key != "" {
		prefix = q.key
	}
	versions, err := s3io.ListVersions(ctx, f.S3, f.Bucket, prefix, func(string, error) {})
	if err != nil {
		return nil, err
	}
	var out []Entry
	var ledgerIDs map[string]string      // identity -> ledger key, listed once when needed
	paused := map[string]*pause.Marker{} // route -> its pause, read once when needed
	for _, v := range versions {
		if strings.HasSuffix(v.Key, "/") || strings.HasSuffix(v.Key, layout.StuckSuffix) {
			continue
		}
		if (q.key != "" && v.Key != q.key) || layout.Base(v.Key) != q.name {
			continue
		}
		e, err := f.version(ctx, v, &ledgerIDs)
		if err != nil {
			return nil, err
		}
		if e.Stage == Inbound {
			if e, err = f.pausedRoute(ctx, e, paused); err != nil {
				return nil, err
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// pausedRoute says so of a file not released yet whose route is paused: it
// waits for the resume, not for its settle window.
func (f *Finder) pausedRoute(ctx context.Context, e Entry, paused map[string]*pause.Marker) (Entry, error) {
	m, ok := paused[e.Route]
	if !ok {
		var err error
		if m, err = pause.Get(ctx, f.S3, f.Bucket, f.Layout, e.Route); err != nil {
			return e, err
		}
		paused[e.Route] = m
	}
	if m != nil {
		e.Note = fmt.Sprintf("waiting: route %s is paused (since %s, by %s: %s); s3fno resume %s sends its files in their order",
			e.Route, m.At.Format(time.RFC3339), m.By, m.Reason, e.Route)
	}
	return e, nil
}

// version is where one inbound version is: released or not, sending, or
// in F&O with its ledger record.
func (f *Finder) version(ctx context.Context, v s3io.Version, ledgerIDs *map[string]string) (Entry, error) {
	route, _, _ := f.Layout.Split(v.Key)
	id := f.identity(v)
	e := Entry{Stage: Inbound, Route: route, Key: v.Key, SourceKey: v.Key, VersionID: v.VersionID, Identity: id, At: v.LastModified,
		Note: "waiting to be released: a pass sends it once its route's settle window has passed and every older file of the route went before it"}
	var mk ledger.Record
	found, err := s3io.GetJSON(ctx, f.S3, f.Bucket, f.Layout.MarkerKey(id), &mk)
	if err != nil {
		return e, err
	}
	if found && mk.Sending() {
		e.Stage, e.Record, e.At = Sending, &mk, mk.EnqueuedAt
		e.Note = "an attempt began sending it and recorded no answer: the next delivery files it under failed/ as EnqueueOutcomeUnknown"
		return e, nil
	}
	if found {
		return f.enqueued(ctx, e, mk, ledgerIDs)
	}
	var rel release.Released
	found, err = s3io.GetJSON(ctx, f.S3, f.Bucket, f.Layout.ReleasedKey(route, id), &rel)
	if err != nil {
		return e, err
	}
	if found {
		e.Stage, e.At = Released, rel.ReleasedAt
		e.Note = "in the import queue, not sent to F&O yet; if the enqueue function keeps failing on it, its message ends in the " +
			"import dead-letter queue (s3fno doctor shows it, s3fno redrive sends it back)"
	}
	return e, nil
}

// enqueued fills in an enqueued version from its ledger record (or, when
// the record is lost, its marker).
func (f *Finder) enqueued(ctx context.Context, e Entry, mk ledger.Record, ledgerIDs *map[string]string) (Entry, error) {
	e.Stage, e.Record, e.At = Enqueued, &mk, mk.EnqueuedAt
	if *ledgerIDs == nil {
		ids, err := f.ledgerKeys(ctx)
		if err != nil {
			return e, err
		}
		*ledgerIDs = ids
	}
	key, ok := (*ledgerIDs)[e.Identity]
	if !ok {
		e.Note = "F&O has it (message " + mk.MessageID + "); its ledger record is missing: the poller's sweep rebuilds it from the marker"
		return e, nil
	}
	var rec ledger.Record
	found, err := s3io.GetJSON(ctx, f.S3, f.Bucket, key, &rec)
	if err != nil || !found {
		return e, err
	}
	e.Record = &rec
	e.Note = fmt.Sprintf("F&O has it; the poller checks it next at %s", rec.NextCheck.UTC().Format(time.RFC3339))
	if !rec.StuckReportedAt.IsZero() {
		e.Note += fmt.Sprintf("; reported stuck at %s (%s beside it)", rec.StuckReportedAt.UTC().Format(time.RFC3339), layout.Base(e.Key)+layout.StuckSuffix)
	}
	return e, nil
}

// ledgerKeys lists the ledger: identity -> record key (a request per 1,000
// files in F&O).
func (f *Finder) ledgerKeys(ctx context.Context) (map[string]string, error) {
	store := &ledger.Store{Bucket: f.Bucket, Layout: f.Layout}
	keys, err := listKeys(ctx, f.S3, f.Bucket, f.Layout.LedgerPrefix())
	if err != nil {
		return nil, err
	}
	ids := map[string]string{}
	for _, k := range keys {
		if e, ok := store.ParseKey(k); ok {
			ids[e.Identity] = k
		}
	}
	return ids, nil
}

// listKeys lists every key under prefix.
func listKeys(ctx context.Context, c s3io.Lister, bucket, prefix string) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}
