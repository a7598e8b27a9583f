// Package importmsg is what travels on the FIFO import queue and how a file
// is named everywhere on the import path: the message the router writes and
// the enqueue function reads, and the one identity of a source object
// version that names its FIFO deduplication ID, its idempotency marker, its
// ledger record and the copies filed from it.
package importmsg

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// File is the body of a FIFO import message: one object version to enqueue.
type File struct {
	Bucket    string    `json:"bucket"`
	Key       string    `json:"key"` // URL-decoded
	VersionID string    `json:"versionId,omitempty"`
	ETag      string    `json:"etag,omitempty"`
	Size      int64     `json:"size"`
	Route     string    `json:"route"`
	EventTime time.Time `json:"eventTime"`
}

// Ref is the message's object version.
func (m File) Ref() s3io.Ref {
	return s3io.Ref{Bucket: m.Bucket, Key: m.Key, VersionID: s3io.NormalizeVersion(m.VersionID), ETag: s3io.NormalizeETag(m.ETag)}
}

// Identity is the file's identity (see Identity).
func (m File) Identity() string { return Identity(m.Bucket, m.Key, m.VersionID, m.ETag) }

// Identity is the stable name of one source object version: the hex SHA-256
// of bucket, key and version ID (in an unversioned bucket, the ETag). A
// late notification, a duplicate one and the sweep all name the same
// version the same way, so SQS drops the repeats within its deduplication
// window and the idempotency marker stops them after it.
func Identity(bucket, key, versionID, etag string) string {
	v := s3io.NormalizeVersion(versionID)
	if v == "" {
		v = "etag:" + s3io.NormalizeETag(etag)
	}
	sum := sha256.Sum256([]byte(bucket + "/" + key + "/" + v))
	return hex.EncodeToString(sum[:])
}

// DedupID is the FIFO MessageDeduplicationId of a file: its identity.
func DedupID(m File) string { return m.Identity() }

// Release asks for a pass over a route's folder: its waiting files are sent
// to the queue in the route's order once they have settled. It travels in
// the route's message group, so passes of one route never overlap.
type Release struct {
	Route string `json:"release"`
	// RequestedAt is when the request was made (the requester's clock): a
	// pass lists the folder only after this second has ended, so it sees
	// every file whose notification led to the request.
	RequestedAt time.Time `json:"requestedAt"`
	// FollowUp marks a request a pass made for files that had not settled,
	// or that it had no time left to send, or a resume's: one never taken
	// for a request of the same second.
	FollowUp bool `json:"followUp,omitempty"`
}

// DedupID is the request's deduplication ID: requests for one route made
// in the same second are one pass; a pass's follow-up is never taken for
// the request that started it.
func (r Release) DedupID() string {
	sum := sha256.Sum256([]byte(r.Route))
	h := hex.EncodeToString(sum[:16])
	if r.FollowUp {
		return "follow-" + h + "-" + strconv.FormatInt(r.RequestedAt.UnixMilli(), 10)
	}
	return "release-" + h + "-" + strconv.FormatInt(r.RequestedAt.Unix(), 10)
}

// Message is one FIFO import message: a file to enqueue or a release
// request, exactly one of the two.
type Message struct {
	File    *File
	Release *Release
}

// ErrNotAMessage: the body is neither a file nor a release request.
var ErrNotAMessage = errors.New("not an import message")

// Decode reads a FIFO import message body.
func Decode(body []byte) (Message, error) {
	var probe struct {
		Release *string `json:"release"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrNotAMessage, err)
	}
	if probe.Release != nil {
		var r Release
		if err := json.Unmarshal(body, &r); err != nil {
			return Message{}, fmt.Errorf("%w: release request: %v", ErrNotAMessage, err)
		}
		if r.Route == "" {
			return Message{}, fmt.Errorf("%w: release request without a route", ErrNotAMessage)
		}
		return Message{Release: &r}, nil
	}
	var f File
	if err := json.Unmarshal(body, &f); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrNotAMessage, err)
	}
	if f.Bucket == "" || f.Key == "" {
		return Message{}, fmt.Errorf("%w: bucket or key missing", ErrNotAMessage)
	}
	return Message{File: &f}, nil
}

// QueueURLFromEnv reads IMPORT_QUEUE_URL, the FIFO import queue.
func QueueURLFromEnv(getenv func(string) string) (string, error) {
	q := strings.TrimSpace(getenv("IMPORT_QUEUE_URL"))
	if q == "" {
		return "", fmt.Errorf("config: IMPORT_QUEUE_URL is required (the FIFO import queue's URL)")
	}
	if !strings.HasSuffix(q, ".fifo") {
		return "", fmt.Errorf("config: IMPORT_QUEUE_URL %q is not a FIFO queue (its name must end in .fifo)", q)
	}
	return q, nil
}

// Replay names the filed file a new version in inbound/ was copied from
// by the operator's replay (s3fno replay): the filed copy's key and the
// identity of the version it was filed from. The new version has an
// identity of its own, so it goes through like any dropped file; its
// result or reason document says what it replays.
type Replay struct {
	Key      string `json:"key"`
	Identity string `json:"identity"`
}

// User-metadata keys a replayed version carries (S3 lowercases them).
const (
	MetaReplayOf         = "s3fno-replay-of"
	MetaReplayOfIdentity = "s3fno-replay-of-identity"
)

// Metadata is the user metadata that marks a copy as a replay. The key is
// percent-encoded: metadata travels in HTTP headers, which cannot carry
// every character a key may hold.
func (r Replay) Metadata() map[string]string {
	return map[string]string{MetaReplayOf: url.PathEscape(r.Key), MetaReplayOfIdentity: r.Identity}
}

// ReplayFromMetadata reads Metadata back from an object's user metadata;
// nil when the object is not a replay.
func ReplayFromMetadata(md map[string]string) *Replay {
	var r Replay
	for k, v := range md {
		switch strings.ToLower(k) {
		case MetaReplayOf:
			if key, err := url.PathUnescape(v); err == nil {
				r.Key = key
			} else {
				r.Key = v
			}
		case MetaReplayOfIdentity:
			r.Identity = v
		}
	}
	if r.Key == "" && r.Identity == "" {
		return nil
	}
	return &r
}
