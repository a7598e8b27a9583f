package s3fake

// The in-process face: the methods of *s3.Client that the functions call,
// run directly on the store, with errors typed as the SDK types S3's
// answers. Multipart uploads are refused: objects here are small.

import (
	"context"
	"errors"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// sdkError is err as the SDK returns S3's answer.
func sdkError(err error) error {
	var e *apiError
	if !errors.As(err, &e) {
		return err
	}
	if e == errNoSuchKey {
		return &s3types.NoSuchKey{Message: aws.String(e.msg)}
	}
	return &smithy.GenericAPIError{Code: e.code, Message: e.msg}
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (m *S3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	var b []byte
	if in.Body != nil {
		var err error
		if b, err = io.ReadAll(in.Body); err != nil {
			return nil, err
		}
	}
	o := &Object{Body: b, size: int64(len(b)), Meta: lowerKeys(in.Metadata), ctype: aws.ToString(in.ContentType)}
	if err := m.write(aws.ToString(in.Bucket), aws.ToString(in.Key), o, aws.ToString(in.IfNoneMatch) == "*", aws.ToString(in.IfMatch)); err != nil {
		return nil, sdkError(err)
	}
	return &s3.PutObjectOutput{ETag: aws.String(o.etag), VersionId: nonEmpty(o.version)}, nil
}

func (m *S3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	o, err := m.read(aws.ToString(in.Bucket), aws.ToString(in.Key), aws.ToString(in.VersionId), aws.ToString(in.IfMatch))
	if err != nil {
		return nil, sdkError(err)
	}
	off, n, err := byteRange(aws.ToString(in.Range), o.size)
	if err != nil {
		return nil, sdkError(err)
	}
	body, err := o.open(off)
	if err != nil {
		return nil, sdkError(err)
	}
	if n < o.size-off {
		body = io.LimitReader(body, n)
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(body), ContentLength: aws.Int64(n),
		ETag: aws.String(o.etag), VersionId: nonEmpty(o.version), Metadata: o.Meta}, nil
}

func (m *S3) HeadObject(_ context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	o, err := m.read(aws.ToString(in.Bucket), aws.ToString(in.Key), aws.ToString(in.VersionId), aws.ToString(in.IfMatch))
	if err == errNoSuchKey {
		return nil, &s3types.NotFound{Message: aws.String("Not Found")} // HEAD answers have no error body
	}
	if err != nil {
		return nil, sdkError(err)
	}
	return &s3.HeadObjectOutput{ContentLength: aws.Int64(o.size), ETag: aws.String(o.etag),
		VersionId: nonEmpty(o.version), Metadata: o.Meta, ContentType: nonEmpty(o.ctype)}, nil
}

func (m *S3) CopyObject(_ context.Context, in *s3.CopyObjectInput, _ ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	c, err := m.copyObject(aws.ToString(in.CopySource), aws.ToString(in.CopySourceIfMatch), aws.ToString(in.Bucket), aws.ToString(in.Key),
		in.MetadataDirective == s3types.MetadataDirectiveReplace, in.Metadata, aws.ToString(in.ContentType))
	if err != nil {
		return nil, sdkError(err)
	}
	return &s3.CopyObjectOutput{CopyObjectResult: &s3types.CopyObjectResult{ETag: aws.String(c.etag)}, VersionId: nonEmpty(c.version)}, nil
}

func (m *S3) DeleteObject(_ context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	if err := m.remove(aws.ToString(in.Bucket), aws.ToString(in.Key), aws.ToString(in.VersionId), aws.ToString(in.IfMatch)); err != nil {
		return nil, sdkError(err)
	}
	return &s3.DeleteObjectOutput{}, nil
}

// ListObjectsV2's continuation token is the last key listed.
func (m *S3) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	after := aws.ToString(in.ContinuationToken)
	if after == "" {
		after = aws.ToString(in.StartAfter)
	}
	max := int(aws.ToInt32(in.MaxKeys))
	if max <= 0 {
		max = 1000
	}
	page, more := m.list(aws.ToString(in.Bucket), aws.ToString(in.Prefix), after, max)
	out := &s3.ListObjectsV2Output{KeyCount: aws.Int32(int32(len(page)))}
	if more {
		out.IsTruncated = aws.Bool(true)
		out.NextContinuationToken = aws.String(page[len(page)-1].key)
	}
	for _, e := range page {
		out.Contents = append(out.Contents, s3types.Object{Key: aws.String(e.key), Size: aws.Int64(e.o.size), ETag: aws.String(e.o.etag),
			LastModified: aws.Time(e.o.modified)})
	}
	return out, nil
}

// ListObjectVersions lists the current version of every object under the
// prefix (the store keeps one version a key), at most MaxKeys (default
// 1,000) a page, as S3 pages them.
func (m *S3) ListObjectVersions(_ context.Context, in *s3.ListObjectVersionsInput, _ ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	max := int(aws.ToInt32(in.MaxKeys))
	if max <= 0 {
		max = 1000
	}
	page, more := m.list(aws.ToString(in.Bucket), aws.ToString(in.Prefix), aws.ToString(in.KeyMarker), max)
	out := &s3.ListObjectVersionsOutput{}
	if more {
		out.IsTruncated = aws.Bool(true)
		out.NextKeyMarker = aws.String(page[len(page)-1].key)
	}
	for _, e := range page {
		v := e.o.version
		if v == "" {
			v = "null"
		}
		out.Versions = append(out.Versions, s3types.ObjectVersion{Key: aws.String(e.key), VersionId: aws.String(v),
			ETag: aws.String(e.o.etag), IsLatest: aws.Bool(true), Size: aws.Int64(e.o.size), LastModified: aws.Time(e.o.modified)})
	}
	return out, nil
}

var errNoMultipart = errors.New("S3: multipart is not supported in process (objects are small)")

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
