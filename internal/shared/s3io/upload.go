package s3io

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// UploadPartSize is the part size of Upload's multipart uploads.
const UploadPartSize = 8 << 20

// Upload streams body to bucket/key; size is its length, or -1 if unknown.
// A body of known length up to one part goes in one PutObject; anything
// else as a multipart upload that holds one part in memory at a time. It is
// for the import side's occasional copies (F&O's error files, kept
// messages); the export path has its own concurrent landing.
func Upload(ctx context.Context, c Uploader, bucket, key string, body io.Reader, size int64, contentType string, meta map[string]string) error {
	var ct *string
	if contentType != "" {
		ct = &contentType
	}
	if size >= 0 && size <= UploadPartSize {
		// Read into memory (one part at most): the SDK needs a seekable
		// body to checksum a request that is not sent over TLS.
		buf := make([]byte, size)
		if _, err := io.ReadFull(body, buf); err != nil {
			return fmt.Errorf("upload s3://%s/%s: read: %w", bucket, key, err)
		}
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(buf),
			ContentLength: aws.Int64(size), ContentType: ct, Metadata: meta})
		if err != nil {
			return fmt.Errorf("upload s3://%s/%s: %w", bucket, key, err)
		}
		return nil
	}
	if err := uploadParts(ctx, c, bucket, key, body, ct, meta); err != nil {
		return fmt.Errorf("upload s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// uploadParts is a sequential multipart upload, aborted on any failure.
func uploadParts(ctx context.Context, c Uploader, bucket, key string, body io.Reader, ct *string, meta map[string]string) error {
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: &key, ContentType: ct, Metadata: meta})
	if err != nil {
		return fmt.Errorf("create multipart upload: %w", err)
	}
	var parts []types.CompletedPart
	err = func() error {
		buf := make([]byte, UploadPartSize)
		for n := int32(1); ; n++ {
			m, rerr := io.ReadFull(body, buf)
			if rerr != nil && !errors.Is(rerr, io.ErrUnexpectedEOF) && !errors.Is(rerr, io.EOF) {
				return fmt.Errorf("read part %d: %w", n, rerr)
			}
			if m == 0 && n > 1 {
				return nil
			}
			out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &bucket, Key: &key, UploadId: up.UploadId, PartNumber: aws.Int32(n),
				Body: bytes.NewReader(buf[:m]), ContentLength: aws.Int64(int64(m))})
			if err != nil {
				return fmt.Errorf("upload part %d: %w", n, err)
			}
			parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag})
			if rerr != nil { // the body ended inside this part
				return nil
			}
		}
	}()
	if err == nil {
		_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &bucket, Key: &key, UploadId: up.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	}
	if err != nil {
		// A fresh context: the caller's may be what failed.
		_, _ = c.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: &key, UploadId: up.UploadId})
		return err
	}
	return nil
}
