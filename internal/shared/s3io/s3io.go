// Package s3io holds the S3 operations the functions share: small JSON
// documents (plain and write-if-absent), server-side copies of an exact
// object version, "moves" (copy, then delete that version), checked reads,
// streaming uploads, and error classification. Nothing here buffers a
// whole file.
package s3io

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// The S3 operations the helpers here call, one small interface each;
// *s3.Client has them all. A consumer declares its own interface from the
// ones it uses.
type (
	// Getter reads objects.
	Getter interface {
		GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	}
	// Putter writes whole objects.
	Putter interface {
		PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	}
	// Header reads an object's metadata.
	Header interface {
		HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	}
	// Deleter removes objects.
	Deleter interface {
		DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	}
	// Lister lists keys.
	Lister interface {
		ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	}
	// Multiparter runs multipart uploads.
	Multiparter interface {
		CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
		CompleteMultipartUpload(context.Context, *s3.CompleteMultipartUploadInput, ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
		AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	}
	// Copier copies an exact object version server-side: in one CopyObject
	// up to 5 GiB, part by part beyond.
	Copier interface {
		Header
		Multiparter
		CopyObject(context.Context, *s3.CopyObjectInput, ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
		UploadPartCopy(context.Context, *s3.UploadPartCopyInput, ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error)
	}
	// Uploader streams a body of any length into an object.
	Uploader interface {
		Putter
		Multiparter
		UploadPart(context.Context, *s3.UploadPartInput, ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	}
)

var _ interface {
	Getter
	Lister
	Deleter
	Copier
	Uploader
} = (*s3.Client)(nil)

// Ref names one object version. An empty VersionID means the current
// version (unversioned buckets); then ETag, if set, guards every read, copy
// and delete, so content uploaded later under the same key is never taken
// for the original.
type Ref struct {
	Bucket    string `json:"bucket"`
	Key       string `json:"key"`
	VersionID string `json:"versionId,omitempty"`
	ETag      string `json:"etag,omitempty"`
}

// ifMatch is the If-Match value guarding an unversioned Ref, or nil.
func (r Ref) ifMatch() *string {
	if r.VersionID != "" || r.ETag == "" {
		return nil
	}
	return aws.String(`"` + NormalizeETag(r.ETag) + `"`)
}

func (r Ref) String() string {
	if r.VersionID == "" {
		return r.Bucket + "/" + r.Key
	}
	return r.Bucket + "/" + r.Key + "?versionId=" + r.VersionID
}

// NormalizeVersion maps the "null" version ID that S3 reports for objects
// written while versioning was off onto "".
func NormalizeVersion(v string) string {
	if v == "null" {
		return ""
	}
	return v
}

// NormalizeETag strips the quotes S3 puts around ETags in some answers but
// not in event notifications.
func NormalizeETag(e string) string { return strings.Trim(e, `"`) }

// statusCode is the HTTP status of an SDK error, or 0.
func statusCode(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}

// IsNotFound reports whether err says the object (or that version of it)
// does not exist.
func IsNotFound(err error) bool {
	if err == nil {
		return false
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NoSuchVersion", "NotFound":
			return true
		}
	}
	return statusCode(err) == http.StatusNotFound
}

// IsPreconditionFailed reports a 412: If-None-Match found the key, or
// If-Match found another ETag.
func IsPreconditionFailed(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "PreconditionFailed" {
		return true
	}
	return statusCode(err) == http.StatusPreconditionFailed
}

// IsConflict reports S3's 409 ConditionalRequestConflict: another
// conditional write to the key was under way. Read again and decide again.
func IsConflict(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "ConditionalRequestConflict" {
		return true
	}
	return statusCode(err) == http.StatusConflict
}

// IsNotModified reports a 304: If-None-Match found the same ETag.
func IsNotModified(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NotModified" {
		return true
	}
	return statusCode(err) == http.StatusNotModified
}

// IsInvalidVersion reports an answer to a malformed version ID (S3 says 400
// InvalidArgument; the version cannot exist).
func IsInvalidVersion(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "InvalidArgument" &&
		strings.Contains(strings.ToLower(ae.ErrorMessage()), "version")
}

// PutJSON writes v as a JSON document, overwriting.
func PutJSON(ctx context.Context, c Putter, bucket, key string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: &key, Body: bytes.NewReader(b),
		ContentLength: aws.Int64(int64(len(b))), ContentType: aws.String("application/json"),
	})
	if err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// PutJSONIfAbsent writes v only if key does not exist (If-None-Match: *).
// created is false, with no error, when the key already exists. A 409
// (another writer racing on the same key) is returned as an error.
func PutJSONIfAbsent(ctx context.Context, c Putter, bucket, key string, v any) (created bool, err error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return false, fmt.Errorf("encode %s: %w", key, err)
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: &key, Body: bytes.NewReader(b), IfNoneMatch: aws.String("*"),
		ContentLength: aws.Int64(int64(len(b))), ContentType: aws.String("application/json"),
	})
	if IsPreconditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("put-if-absent s3://%s/%s: %w", bucket, key, err)
	}
	return true, nil
}

// GetJSON reads a JSON document into v. found is false, with no error, when
// the key does not exist. Documents are small; at most 16 MiB is read.
func GetJSON(ctx context.Context, c Getter, bucket, key string, v any) (found bool, err error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	// Read whole first: a read that breaks off and a document that is
	// not JSON both end in io.ErrUnexpectedEOF inside a decoder, and only
	// the second will never read better.
	raw, err := io.ReadAll(io.LimitReader(out.Body, maxJSON+1))
	if err != nil {
		return true, fmt.Errorf("read s3://%s/%s: %w", bucket, key, err)
	}
	if len(raw) > maxJSON {
		return true, fmt.Errorf("decode s3://%s/%s: %w: larger than %d bytes", bucket, key, ErrUndecodable, maxJSON)
	}
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(v); err != nil { // the first value; what follows is ignored
		return true, fmt.Errorf("decode s3://%s/%s: %w: %w", bucket, key, ErrUndecodable, err)
	}
	return true, nil
}

// maxJSON bounds the state documents read (ours are a few KiB).
const maxJSON = 16 << 20

// ErrUndecodable: the object was read whole and is not the JSON expected.
// Reading it again will not help (unlike a read that broke off).
var ErrUndecodable = errors.New("not the JSON document expected")

// Exists reports whether a key exists, and its user metadata.
func Exists(ctx context.Context, c Header, bucket, key string) (bool, map[string]string, error) {
	out, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	if IsNotFound(err) {
		return false, nil, nil
	}
	if err != nil {
		return false, nil, fmt.Errorf("head s3://%s/%s: %w", bucket, key, err)
	}
	return true, out.Metadata, nil
}

// Delete removes one object version (or, with no VersionID, the current
// object). A missing object is not an error. Deleting the exact version
// (rather than adding a delete marker) means a newer upload to the same key
// is never hidden by a move; in an unversioned bucket the ETag guard does
// the same (a 412 means the key holds other content now: left alone).
func Delete(ctx context.Context, c Deleter, r Ref) error {
	in := &s3.DeleteObjectInput{Bucket: &r.Bucket, Key: &r.Key, IfMatch: r.ifMatch()}
	if r.VersionID != "" {
		in.VersionId = &r.VersionID
	}
	_, err := c.DeleteObject(ctx, in)
	if err != nil && !IsNotFound(err) && !IsPreconditionFailed(err) {
		return fmt.Errorf("delete s3://%s: %w", r, err)
	}
	return nil
}

// DeleteKey removes the current object at key (for documents in _state/,
// which are never versioned on purpose). A missing key is not an error.
func DeleteKey(ctx context.Context, c Deleter, bucket, key string) error {
	return Delete(ctx, c, Ref{Bucket: bucket, Key: key})
}

// CopySource is the URL-encoded x-amz-copy-source of a version.
func CopySource(r Ref) string {
	s := r.Bucket + "/" + escapeKey(r.Key)
	if r.VersionID != "" {
		s += "?versionId=" + escapeKey(r.VersionID)
	}
	return s
}

// escapeKey percent-encodes everything except unreserved characters and
// '/', so '+' and spaces survive the trip (S3 decodes the copy source).
func escapeKey(k string) string {
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
