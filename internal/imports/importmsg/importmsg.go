// Package importmsg is what travels on the FIFO import queue and how a file
// is named everywhere on the import path: the message the router writes and
// the enqueue function reads, and the one identity of a source object
// version that names its FIFO deduplication ID, its idempotency marker, its
// ledger record and the copies filed from it.
package importmsg

import (
	"crypto/sha256"
	"encoding/hex"
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
