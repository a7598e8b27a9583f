// Package ledger keeps the import side's state in the bucket itself, under
// the state prefix (default _state/), so no other AWS service is needed:
//
//	_state/markers/<identity>.json
//	    the idempotency marker of one source object version. It is written
//	    with If-None-Match: * just BEFORE the file is sent, without a message
//	    ID (an intent: "sending"), and replaced by the full record once F&O
//	    answers with the message ID. A redelivered FIFO message that finds a
//	    marker is never sent again: with a message ID it is skipped, without
//	    one (an earlier attempt died while sending) the file is filed under
//	    failed/ for a person to check. A lost ledger record is rebuilt from
//	    a full marker. Deleted when the file is finalized.
//	_state/ledger/<next check, unix seconds, 10 digits>/<identity>.json
//	    one record per file in flight in F&O. Keys sort by the time of the
//	    next check, so the poller's ListObjectsV2 stops at "now" and its
//	    cost follows the records that are due, not all in flight.
//	    Rescheduling writes the new key, then deletes the old one; a crash
//	    in between leaves two records for one identity, which the poller
//	    tolerates (it handles an identity once per run and retires extras).
//	_state/packages/<scope>.json
//	    the lock of a package import scope (PackageLock): the one package
//	    of the scope that is released, being imported or running in F&O.
//
// <identity> is s3io.Identity: the SHA-256 of bucket/key/version (or ETag).
package ledger

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/dmfpackage"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// Record is one file in flight in F&O. As a marker without a MessageID it
// is the intent written before sending (see Sending).
type Record struct {
	Identity   string `json:"identity"`
	MessageID  string `json:"messageId"`
	Bucket     string `json:"bucket"`
	Key        string `json:"key"`
	VersionID  string `json:"versionId,omitempty"`
	ETag       string `json:"etag,omitempty"`
	Size       int64  `json:"size"`
	Route      string `json:"route"`
	Entity     string `json:"entity,omitempty"`
	Company    string `json:"company,omitempty"`
	ActivityID string `json:"activityId"`
	Kind       string `json:"kind"`
	ExternalID string `json:"externalId"`

	// SourceHead is the source version's size, content type and user
	// metadata as the enqueue function read them, so that filing copies
	// the version without asking S3 for them again (nil: it asks).
	SourceHead *s3io.Head `json:"sourceHead,omitempty"`

	EventTime  time.Time `json:"eventTime,omitzero"`
	EnqueuedAt time.Time `json:"enqueuedAt"`
	NextCheck  time.Time `json:"nextCheck"`

	Checks      int       `json:"checks"`
	LastStatus  string    `json:"lastStatus,omitempty"`
	LastCheckAt time.Time `json:"lastCheckAt,omitzero"`
	// LastError is the last error checking or finalizing the message
	// (cleared by a successful check).
	LastError   string `json:"lastError,omitempty"`
	ExecutionID string `json:"executionId,omitempty"`
	// StuckReportedAt is when the record was first reported stuck.
	StuckReportedAt time.Time `json:"stuckReportedAt,omitzero"`
	// ReplayOf names the filed file this version replays (the operator's
	// replay sets it in the object's metadata), for its result document.
	ReplayOf *importmsg.Replay `json:"replayOf,omitempty"`

	// A package import (Kind "dataProject") has no message ID: F&O knows
	// it by ExecutionID, chosen before ImportFromPackage and in the intent
	// marker already. AcceptedAt is when ImportFromPackage answered.
	AcceptedAt        time.Time `json:"acceptedAt,omitzero"`
	DefinitionGroupID string    `json:"definitionGroupId,omitempty"`
	// Entities are the entities the package's Manifest.xml names (for
	// their error files).
	Entities []string `json:"entities,omitempty"`
	// StageOnly: imported with execute=false, into staging only.
	StageOnly bool `json:"stageOnly,omitempty"`
	// Wrapped: a plain file imported wrapped in its route's package
	// template, and how.
	Wrapped *dmfpackage.Wrapping `json:"wrapped,omitempty"`
	// Scope is the package import scope whose lock the import holds.
	Scope string `json:"scope,omitempty"`
	// Attempt is a random token of the delivery that wrote the intent, so
	// that it knows its own marker when the SDK's retry of the conditional
	// write finds the first try's (whose answer was lost).
	Attempt string `json:"attempt,omitempty"`
}

// Sending reports whether the record is an intent marker: the file was
// about to be sent and F&O's answer (a message ID; for a package import,
// its acceptance) was never recorded.
func (r Record) Sending() bool { return r.MessageID == "" && r.AcceptedAt.IsZero() }

// Package reports whether the record is a package import (route kind
// dataProject), followed by its execution ID.
func (r Record) Package() bool { return r.Kind == string(routes.KindDataProject) }

// Source is the record's source object version.
func (r Record) Source() s3io.Ref {
	return s3io.Ref{Bucket: r.Bucket, Key: r.Key, VersionID: r.VersionID, ETag: r.ETag}
}

// S3 is what the ledger calls.
type S3 interface {
	s3io.Getter
	s3io.Putter
	s3io.Deleter
	s3io.Lister
}

// Store reads and writes markers and ledger records.
type Store struct {
	S3     S3
	Bucket string
	Layout layout.Layout
	// PageSize is ListObjectsV2's MaxKeys (0: S3's default, 1,000).
	PageSize int32
}

// MarkerKey is the marker's key for an identity.
func (s *Store) MarkerKey(identity string) string { return s.Layout.MarkerKey(identity) }

// GetMarker reads the marker of an identity.
func (s *Store) GetMarker(ctx context.Context, identity string) (*Record, bool, error) {
	var r Record
	found, err := s3io.GetJSON(ctx, s.S3, s.Bucket, s.MarkerKey(identity), &r)
	if err != nil || !found {
		return nil, found, err
	}
	return &r, true, nil
}

// PutMarker writes the marker unless one exists. When one exists, created
// is false and existing is what it holds; one that carries r's Attempt
// token is r's own (written by a try whose answer was lost), so created
// is true.
func (s *Store) PutMarker(ctx context.Context, r Record) (created bool, existing *Record, err error) {
	created, err = s3io.PutJSONIfAbsent(ctx, s.S3, s.Bucket, s.MarkerKey(r.Identity), r)
	if err != nil || created {
		return created, nil, err
	}
	existing, _, err = s.GetMarker(ctx, r.Identity)
	if err == nil && existing != nil && r.Attempt != "" && existing.Attempt == r.Attempt {
		return true, nil, nil
	}
	return false, existing, err
}

// ReplaceMarker overwrites the marker: the intent written before a send
// becomes the record of what F&O accepted.
func (s *Store) ReplaceMarker(ctx context.Context, r Record) error {
	return s3io.PutJSON(ctx, s.S3, s.Bucket, s.MarkerKey(r.Identity), r)
}

// DeleteMarker removes the marker of an identity.
func (s *Store) DeleteMarker(ctx context.Context, identity string) error {
	return s3io.DeleteKey(ctx, s.S3, s.Bucket, s.MarkerKey(identity))
}

// MaxKeyUnix is the latest next-check time a ledger key can hold: the
// largest 10-digit Unix second (2286-11-20T17:46:39Z). The time is fixed
// width so that the keys' lexical order (ListObjectsV2's) is time order and
// Due can stop at "now"; an 11-digit time would sort among the 10-digit
// ones ("10000000000" < "2000000000") and stop the listing early.
const MaxKeyUnix int64 = 9_999_999_999

// Key is where a record lives given its NextCheck. Times before 1970 are
// filed at 0 and times after MaxKeyUnix at MaxKeyUnix, so every record is
// listed again (a far-off check is as good as never; the record itself
// keeps its NextCheck).
func (s *Store) Key(r Record) string {
	sec := min(max(r.NextCheck.Unix(), 0), MaxKeyUnix)
	return fmt.Sprintf("%s%010d/%s.json", s.Layout.LedgerPrefix(), sec, r.Identity)
}

// Entry is a ledger key taken apart.
type Entry struct {
	Key       string
	NextCheck time.Time
	Identity  string
}

// ParseKey takes a ledger key apart.
func (s *Store) ParseKey(key string) (Entry, bool) {
	rest, ok := strings.CutPrefix(key, s.Layout.LedgerPrefix())
	if !ok {
		return Entry{}, false
	}
	ts, name, ok := strings.Cut(rest, "/")
	if !ok || len(ts) != 10 || strings.Contains(name, "/") {
		return Entry{}, false
	}
	// An empty identity (".json") is no file's: every such key would share
	// one identity in the poller.
	id, ok := strings.CutSuffix(name, ".json")
	if !ok || id == "" {
		return Entry{}, false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Entry{}, false
	}
	return Entry{Key: key, NextCheck: time.Unix(sec, 0).UTC(), Identity: id}, true
}

// Put writes a record at its key and returns the key.
func (s *Store) Put(ctx context.Context, r Record) (string, error) {
	k := s.Key(r)
	if err := s3io.PutJSON(ctx, s.S3, s.Bucket, k, r); err != nil {
		return "", fmt.Errorf("ledger: %w", err)
	}
	return k, nil
}

// Reschedule writes r at its (new) key, then deletes oldKey if different.
func (s *Store) Reschedule(ctx context.Context, oldKey string, r Record) (string, error) {
	k, err := s.Put(ctx, r)
	if err != nil {
		return "", err
	}
	if k != oldKey && oldKey != "" {
		if err := s.Delete(ctx, oldKey); err != nil {
			return k, err
		}
	}
	return k, nil
}

// Get reads a record by key.
func (s *Store) Get(ctx context.Context, key string) (Record, bool, error) {
	var r Record
	found, err := s3io.GetJSON(ctx, s.S3, s.Bucket, key, &r)
	if err != nil {
		return Record{}, found, fmt.Errorf("ledger: %w", err)
	}
	return r, found, nil
}

// Delete removes a record.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s3io.DeleteKey(ctx, s.S3, s.Bucket, key); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// Due calls fn for every entry due at now, oldest first, and stops listing
// at the first entry that is not due (or when fn returns false). Keys that
// are not ledger records are skipped.
func (s *Store) Due(ctx context.Context, now time.Time, fn func(Entry) bool) error {
	prefix := s.Layout.LedgerPrefix()
	p := s3.NewListObjectsV2Paginator(s.S3, s.listInput(prefix))
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("ledger: list: %w", err)
		}
		for _, o := range out.Contents {
			e, ok := s.ParseKey(aws.ToString(o.Key))
			if !ok {
				continue
			}
			if e.NextCheck.After(now) {
				return nil
			}
			if !fn(e) {
				return nil
			}
		}
	}
	return nil
}

// Identities lists every identity with a ledger record (due or not). The
// sweep uses it; its cost is one request per 1,000 records in flight.
func (s *Store) Identities(ctx context.Context) (map[string]bool, error) {
	ids := map[string]bool{}
	prefix := s.Layout.LedgerPrefix()
	p := s3.NewListObjectsV2Paginator(s.S3, s.listInput(prefix))
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("ledger: list: %w", err)
		}
		for _, o := range out.Contents {
			if e, ok := s.ParseKey(aws.ToString(o.Key)); ok {
				ids[e.Identity] = true
			}
		}
	}
	return ids, nil
}

// Markers lists every identity with an idempotency marker.
func (s *Store) Markers(ctx context.Context) (map[string]bool, error) {
	return s.listIDs(ctx, s.Layout.MarkerPrefix())
}

// Released lists every identity with a released marker, in any route.
func (s *Store) Released(ctx context.Context) (map[string]bool, error) {
	return s.listIDs(ctx, s.Layout.ReleasedRoot())
}

// DeleteReleased removes the released marker of a route's file.
func (s *Store) DeleteReleased(ctx context.Context, route, identity string) error {
	return s3io.DeleteKey(ctx, s.S3, s.Bucket, s.Layout.ReleasedKey(route, identity))
}

func (s *Store) listIDs(ctx context.Context, prefix string) (map[string]bool, error) {
	ids := map[string]bool{}
	p := s3.NewListObjectsV2Paginator(s.S3, s.listInput(prefix))
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("ledger: list %s: %w", prefix, err)
		}
		for _, o := range out.Contents {
			// The identity is the last element: released markers sit one
			// folder (the route) deeper than markers.
			name := strings.TrimPrefix(aws.ToString(o.Key), prefix)
			name = name[strings.LastIndex(name, "/")+1:]
			if id, ok := strings.CutSuffix(name, ".json"); ok && id != "" {
				ids[id] = true
			}
		}
	}
	return ids, nil
}

func (s *Store) listInput(prefix string) *s3.ListObjectsV2Input {
	in := &s3.ListObjectsV2Input{Bucket: &s.Bucket, Prefix: &prefix}
	if s.PageSize > 0 {
		in.MaxKeys = &s.PageSize
	}
	return in
}
