package s3io

import (
	"crypto/sha256"
	"encoding/hex"
)

// Identity is the stable name of one source object: the hex SHA-256 of
// bucket, key and version ID (or, in an unversioned bucket, the ETag). It
// names the idempotency marker and the ledger record, and is stamped on the
// copies a move places, so every step can recognise the same file.
func Identity(bucket, key, versionID, etag string) string {
	v := NormalizeVersion(versionID)
	if v == "" {
		v = "etag:" + NormalizeETag(etag)
	}
	sum := sha256.Sum256([]byte(bucket + "/" + key + "/" + v))
	return hex.EncodeToString(sum[:])
}
