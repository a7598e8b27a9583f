// Package where answers "where is my file?": which stage each version of a
// file is in, found from its key or its bare name without reading the
// whole bucket. Files still on their way are found by listing inbound/
// (the files in flight, what a release pass lists too) and reading their
// markers and ledger record; filed files by the where-index, one listing
// of _state/where/<name>/ (see layout.WhereRoot).
package where

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/deadletter"
	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/ops/outcome"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// S3 is what finding a file reads.
type S3 interface {
	s3io.Getter
	s3io.Lister
	s3io.VersionLister
}

// The stages of a file, in the order it passes them.
const (
	Inbound  = "inbound"  // dropped, not released yet
	Released = "released" // sent to the import queue in its route's order
	Sending  = "sending"  // an attempt began sending it and recorded no answer
	Enqueued = "enqueued" // F&O has it: the ledger follows it
	// DeadLetter: in inbound/, and its message is in the import
	// dead-letter queue.
	DeadLetter = "dead-letter"
	Processed  = "processed" // filed under processed/
	Failed     = "failed"    // filed under failed/
	Rejected   = "rejected"  // filed under rejected/
)

// Entry is one version of the file and where it is.
type Entry struct {
	Stage     string    `json:"stage"`
	Route     string    `json:"route,omitempty"`
	Key       string    `json:"key"`       // where it is now
	SourceKey string    `json:"sourceKey"` // where it was dropped
	VersionID string    `json:"versionId,omitempty"`
	Identity  string    `json:"identity"`
	At        time.Time `json:"at"` // dropped, released, enqueued or filed
	// Note says what happens next, for people.
	Note string `json:"note,omitempty"`
	// Record is the ledger record (enqueued) or the intent marker
	// (sending).
	Record *ledger.Record `json:"record,omitempty"`
	// Filed is the result or reason document's gist (processed, failed,
	// rejected).
	Filed *outcome.Gist `json:"filed,omitempty"`
}

// Report is every version found, oldest first.
type Report struct {
	Query string  `json:"query"`
	Found []Entry `json:"found"`
}

// Finder finds files in one bucket.
type Finder struct {
	S3     S3
	Bucket string
	Layout layout.Layout
	// DLQ and DLQURL, when set, let a released file be found in the
	// import dead-letter queue.
	DLQ    deadletter.Queue
	DLQURL string
}

// query is what the operator asked for.
type query struct {
	name  string // the file name, always
	key   string // an inbound key, when given: only its versions
	filed string // a filed file's key, when given: only it
}

// parse reads a key (inbound/…, processed/…, failed/…, rejected/…, or
// <route>/<file>) or a bare file name.
func (f *Finder) parse(q string) (query, error) {
	l := f.Layout
	q = strings.TrimSpace(q)
	if q == "" || strings.HasSuffix(q, "/") {
		return query{}, fmt.Errorf("where: give a file's key or its name (such as inbound/customers/a.csv or a.csv), not %q", q)
	}
	switch {
	case strings.HasPrefix(q, l.Inbound):
		return query{name: layout.Base(q), key: q}, nil
	case strings.HasPrefix(q, l.Processed), strings.HasPrefix(q, l.Failed), strings.HasPrefix(q, l.Rejected):
		k := outcome.FileOf(q)
		return query{name: layout.Base(k), filed: k}, nil
	case strings.HasPrefix(q, l.State):
		return query{}, fmt.Errorf("where: %s is a state document, not a file", q)
	case strings.Contains(q, "/"):
		return query{name: layout.Base(q), key: l.Inbound + q}, nil
	}
	return query{name: outcome.FileOf(q)}, nil
}

// Find looks for every version of the file q names.
func (f *Finder) Find(ctx context.Context, q string) (Report, error) {
	qq, err := f.parse(q)
	if err != nil {
		return Report{}, err
	}
	r := Report{Query: q, Found: []Entry{}}
	if qq.filed != "" {
		g, found, err := outcome.Read(ctx, f.S3, f.Layout, f.Bucket, qq.filed)
		if err != nil || !found {
			return r, err
		}
		r.Found = append(r.Found, filed(g))
		return r, nil
	}
	inFlight, err := f.inFlight(ctx, qq)
	if err != nil {
		return Report{}, err
	}
	done, err := f.filed(ctx, qq)
	if err != nil {
		return Report{}, err
	}
	f.deadLetters(ctx, inFlight)
	r.Found = append(done, inFlight...)
	slices.SortStableFunc(r.Found, func(a, b Entry) int { return cmp.Compare(a.At.UnixNano(), b.At.UnixNano()) })
	return r, nil
}

// filed is the entry of a filed file.
func filed(g outcome.Gist) Entry {
	e := Entry{Stage: g.Outcome, Route: g.Route, Key: g.Key, SourceKey: g.SourceKey, VersionID: g.SourceVersionID,
		Identity: g.Identity, At: g.At, Filed: &g}
	if g.Route == "" && g.Outcome == Rejected {
		e.Route = layout.Unrouted
	}
	return e
}

// filed finds the versions the where-index points at under the name.
func (f *Finder) filed(ctx context.Context, q query) ([]Entry, error) {
	prefix := f.Layout.WhereFolder(q.name)
	keys, err := listKeys(ctx, f.S3, f.Bucket, prefix)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, k := range keys {
		var p filing.Pointer
		found, err := s3io.GetJSON(ctx, f.S3, f.Bucket, k, &p)
		if err != nil {
			return nil, fmt.Errorf("where-index pointer: %w", err)
		}
		if !found || p.Name != q.name || (q.key != "" && p.SourceKey != q.key) {
			continue
		}
		g, found, err := outcome.Read(ctx, f.S3, f.Layout, f.Bucket, p.Key)
		if err != nil {
			return nil, err
		}
		if !found {
			// Expired by the retention rules, or removed by someone.
			g = outcome.Gist{Outcome: p.Outcome, Key: p.Key, Document: p.Document, Route: p.Route, SourceKey: p.SourceKey,
				SourceVersionID: p.SourceVersionID, Identity: p.Identity, At: p.FiledAt, Status: p.Status, ReplayOf: p.ReplayOf}
		}
		e := filed(g)
		if !found {
			e.Note = "the file and its document are gone (expired after their folder's retention days, or removed); " +
				"this is what the where-index remembers"
		}
		out = append(out, e)
	}
	return out, nil
}

// identity names a listed version as every function does.
func (f *Finder) identity(v s3io.Version) string {
	return importmsg.Identity(f.Bucket, v.Key, v.VersionID, v.ETag)
}
