// Package mems3 is an in-memory S3 stand-in for fuzz targets, where
// moto_server would be far too slow: small objects only, one version per
// key. It implements what s3io.Client needs: conditional puts, ranged
// gets, heads, copies with metadata replacement, deletes with If-Match and
// listings. Tests that cross the real wire use moto (internal/mototest).
package s3fake

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Object is one stored object.
type Object struct {
	Body    []byte
	etag    string // quoted
	version string // "" for an unversioned object
	Meta    map[string]string
	ctype   string
}

// S3 is the stand-in; it satisfies s3io.Client.
type S3 struct {
	mu   sync.Mutex
	objs map[string]*Object // bucket + "\x00" + key
}

// New is an empty stand-in.
func New() *S3 { return &S3{objs: map[string]*Object{}} }

func apiErr(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: code}
}

func etagOf(b []byte) string {
	s := md5.Sum(b)
	return `"` + hex.EncodeToString(s[:]) + `"`
}

// Put stores an object directly (test setup).
func (m *S3) Put(bucket, key string, body []byte, etag, version string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if etag == "" {
		etag = etagOf(body)
	} else {
		etag = `"` + strings.Trim(etag, `"`) + `"`
	}
	m.objs[bucket+"\x00"+key] = &Object{Body: body, etag: etag, version: version, Meta: map[string]string{}}
}

// Keys lists every bucket/key stored.
func (m *S3) Keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.objs {
		out = append(out, strings.Replace(k, "\x00", "/", 1))
	}
	sort.Strings(out)
	return out
}

// Get returns a stored object.
func (m *S3) Get(bucket, key string) (*Object, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[bucket+"\x00"+key]
	return o, ok
}

// lookup finds an object honouring a version ID and an If-Match.
func (m *S3) lookup(bucket, key string, version, ifMatch *string) (*Object, error) {
	o, ok := m.objs[bucket+"\x00"+key]
	if !ok {
		return nil, &s3types.NoSuchKey{Message: aws.String("The specified key does not exist.")} // as the SDK types it
	}
	if v := aws.ToString(version); v != "" && v != "null" && v != o.version {
		return nil, apiErr("NoSuchVersion")
	}
	if im := aws.ToString(ifMatch); im != "" && strings.Trim(im, `"`) != strings.Trim(o.etag, `"`) {
		return nil, apiErr("PreconditionFailed")
	}
	return o, nil
}

func (m *S3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	var b []byte
	if in.Body != nil {
		var err error
		if b, err = io.ReadAll(in.Body); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := aws.ToString(in.Bucket) + "\x00" + aws.ToString(in.Key)
	if aws.ToString(in.IfNoneMatch) == "*" {
		if _, ok := m.objs[k]; ok {
			return nil, apiErr("PreconditionFailed")
		}
	}
	meta := map[string]string{}
	for mk, v := range in.Metadata {
		meta[strings.ToLower(mk)] = v
	}
	o := &Object{Body: b, etag: etagOf(b), Meta: meta, ctype: aws.ToString(in.ContentType)}
	m.objs[k] = o
	return &s3.PutObjectOutput{ETag: aws.String(o.etag)}, nil
}

func (m *S3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, err := m.lookup(aws.ToString(in.Bucket), aws.ToString(in.Key), in.VersionId, in.IfMatch)
	if err != nil {
		return nil, err
	}
	b := o.Body
	if r := aws.ToString(in.Range); r != "" {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(r, "bytes="), "-"))
		if err != nil || n > len(b) {
			return nil, apiErr("InvalidRange")
		}
		b = b[n:]
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(b)), ContentLength: aws.Int64(int64(len(b))),
		ETag: aws.String(o.etag), VersionId: nonEmpty(o.version), Metadata: o.Meta}, nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (m *S3) HeadObject(_ context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, err := m.lookup(aws.ToString(in.Bucket), aws.ToString(in.Key), in.VersionId, in.IfMatch)
	if err != nil {
		var nsk *s3types.NoSuchKey
		if errors.As(err, &nsk) {
			return nil, &s3types.NotFound{Message: aws.String("Not Found")} // HEAD answers have no error body
		}
		return nil, err
	}
	return &s3.HeadObjectOutput{ContentLength: aws.Int64(int64(len(o.Body))), ETag: aws.String(o.etag),
		VersionId: nonEmpty(o.version), Metadata: o.Meta, ContentType: nonEmpty(o.ctype)}, nil
}

func (m *S3) CopyObject(_ context.Context, in *s3.CopyObjectInput, _ ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	src := aws.ToString(in.CopySource)
	var version *string
	if i := strings.Index(src, "?versionId="); i >= 0 {
		v, err := url.QueryUnescape(src[i+len("?versionId="):])
		if err != nil {
			return nil, apiErr("InvalidArgument")
		}
		version, src = &v, src[:i]
	}
	bucket, key, ok := strings.Cut(src, "/")
	if !ok {
		return nil, apiErr("InvalidArgument")
	}
	key, err := url.PathUnescape(key)
	if err != nil {
		return nil, apiErr("InvalidArgument")
	}
	o, err := m.lookup(bucket, key, version, in.CopySourceIfMatch)
	if err != nil {
		return nil, err
	}
	meta := o.Meta
	if in.MetadataDirective == s3types.MetadataDirectiveReplace {
		meta = map[string]string{}
		for mk, v := range in.Metadata {
			meta[strings.ToLower(mk)] = v
		}
	}
	n := &Object{Body: o.Body, etag: o.etag, Meta: meta, ctype: aws.ToString(in.ContentType)}
	m.objs[aws.ToString(in.Bucket)+"\x00"+aws.ToString(in.Key)] = n
	return &s3.CopyObjectOutput{CopyObjectResult: &s3types.CopyObjectResult{ETag: aws.String(n.etag)}}, nil
}

func (m *S3) DeleteObject(_ context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := aws.ToString(in.Bucket) + "\x00" + aws.ToString(in.Key)
	o, ok := m.objs[k]
	if !ok {
		return &s3.DeleteObjectOutput{}, nil
	}
	if v := aws.ToString(in.VersionId); v != "" && v != o.version {
		return &s3.DeleteObjectOutput{}, nil // another version: nothing to delete
	}
	if im := aws.ToString(in.IfMatch); im != "" && strings.Trim(im, `"`) != strings.Trim(o.etag, `"`) {
		return nil, apiErr("PreconditionFailed")
	}
	delete(m.objs, k)
	return &s3.DeleteObjectOutput{}, nil
}

func (m *S3) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	bucket, prefix := aws.ToString(in.Bucket), aws.ToString(in.Prefix)
	after := aws.ToString(in.ContinuationToken)
	if after == "" {
		after = aws.ToString(in.StartAfter)
	}
	var keys []string
	for k := range m.objs {
		b, key, _ := strings.Cut(k, "\x00")
		if b == bucket && strings.HasPrefix(key, prefix) && key > after {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	max := int(aws.ToInt32(in.MaxKeys))
	if max <= 0 {
		max = 1000
	}
	out := &s3.ListObjectsV2Output{}
	if len(keys) > max {
		keys = keys[:max]
		out.IsTruncated = aws.Bool(true)
		out.NextContinuationToken = aws.String(keys[len(keys)-1])
	}
	for _, k := range keys {
		o := m.objs[bucket+"\x00"+k]
		out.Contents = append(out.Contents, s3types.Object{Key: aws.String(k), Size: aws.Int64(int64(len(o.Body))), ETag: aws.String(o.etag)})
	}
	out.KeyCount = aws.Int32(int32(len(out.Contents)))
	return out, nil
}

func (m *S3) ListObjectVersions(_ context.Context, in *s3.ListObjectVersionsInput, _ ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := &s3.ListObjectVersionsOutput{}
	for k, o := range m.objs {
		b, key, _ := strings.Cut(k, "\x00")
		if b == aws.ToString(in.Bucket) && strings.HasPrefix(key, aws.ToString(in.Prefix)) {
			v := o.version
			if v == "" {
				v = "null"
			}
			out.Versions = append(out.Versions, s3types.ObjectVersion{Key: aws.String(key), VersionId: aws.String(v),
				ETag: aws.String(o.etag), IsLatest: aws.Bool(true), Size: aws.Int64(int64(len(o.Body)))})
		}
	}
	return out, nil
}

var errNoMultipart = errors.New("S3: multipart is not supported (objects are small)")

func (m *S3) CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	return nil, errNoMultipart
}

func (m *S3) UploadPart(context.Context, *s3.UploadPartInput, ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	return nil, errNoMultipart
}

func (m *S3) CompleteMultipartUpload(context.Context, *s3.CompleteMultipartUploadInput, ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	return nil, errNoMultipart
}

func (m *S3) AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	return nil, errNoMultipart
}

func (m *S3) UploadPartCopy(context.Context, *s3.UploadPartCopyInput, ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error) {
	return nil, errNoMultipart
}
