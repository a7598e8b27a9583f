package s3io

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// MetaIdentity is the user-metadata key a placed copy carries, holding the
// caller's token (the source's identity), so a repeated move recognises its
// own earlier copy and a different file's copy at the same key.
const MetaIdentity = "fno-identity"

// ErrSourceGone: neither the source version nor an earlier copy of it
// exists.
var ErrSourceGone = errors.New("the source object is gone and no copy of it was placed")

// MaxSingleCopy is the largest object CopyObject takes (5 GiB); larger ones
// are copied part by part. A variable so tests can exercise that path.
var MaxSingleCopy int64 = 5 << 30

// CopyPartSize is the part size of a multipart copy (at least 5 MiB, as S3
// requires for every part but the last). A variable for tests.
var CopyPartSize int64 = 512 << 20

// Place copies src (the exact version) to the first of candidates that is
// free, or returns the candidate that already holds a copy carrying token
// (an earlier, interrupted attempt). A candidate holding another file's
// copy is skipped. The source is not deleted: call Delete once whatever
// belongs beside the copy is written. It returns ErrSourceGone when the
// source is missing and no candidate holds its copy.
func Place(ctx context.Context, c Copier, src Ref, candidates []string, token string, meta map[string]string) (string, error) {
	return PlaceKnown(ctx, c, src, nil, candidates, token, meta)
}

// Head is what a copy takes from its source version besides the bytes:
// its size (one CopyObject or a multipart copy), content type and user
// metadata (the copy replaces the metadata, so the source's goes again).
type Head struct {
	Size        int64             `json:"size"`
	ContentType string            `json:"contentType,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// PlaceKnown is Place for a caller that has read src's exact version
// already and knows its Head: a version never changes, so the source is
// not asked again (one HeadObject fewer), and a version deleted meanwhile
// fails the copy itself, with ErrSourceGone as in Place. A source without
// a version ID (guarded by its ETag) is still asked, with If-Match: that
// is the guard where a store ignores x-amz-copy-source-if-match (moto
// does). A nil head is Place.
func PlaceKnown(ctx context.Context, c Copier, src Ref, head *Head, candidates []string, token string, meta map[string]string) (string, error) {
	if len(candidates) == 0 {
		return "", fmt.Errorf("place %s: no destination", src)
	}
	dst := ""
	for _, k := range candidates {
		ok, m, err := Exists(ctx, c, src.Bucket, k)
		if err != nil {
			return "", err
		}
		if ok && metaGet(m, MetaIdentity) == token {
			return k, nil // already placed
		}
		if !ok {
			dst = k
			break
		}
	}
	if dst == "" {
		return "", fmt.Errorf("place %s: every destination (%s) holds another file", src, strings.Join(candidates, ", "))
	}
	if head == nil || src.VersionID == "" {
		var err error
		if head, err = headOf(ctx, c, src); err != nil {
			return "", err
		}
	}
	md := map[string]string{}
	for k, v := range head.Metadata {
		md[strings.ToLower(k)] = v
	}
	for k, v := range meta {
		md[strings.ToLower(k)] = v
	}
	md[MetaIdentity] = token
	_, err := CopyVersion(ctx, c, src, dst, Head{Size: head.Size, ContentType: head.ContentType, Metadata: md})
	if IsNotFound(err) || IsInvalidVersion(err) || IsPreconditionFailed(err) {
		return "", fmt.Errorf("place %s: %w", src, ErrSourceGone)
	}
	if err != nil {
		return "", err
	}
	return dst, nil
}

// CopyVersion copies src (the exact version, or without one the object
// guarded by its ETag) to dst with as's size, content type and metadata
// (replacing the source's): one CopyObject up to MaxSingleCopy, part by
// part beyond. It returns the new version's ID.
func CopyVersion(ctx context.Context, c Copier, src Ref, dst string, as Head) (string, error) {
	if as.Size > MaxSingleCopy {
		v, err := copyMultipart(ctx, c, src, dst, as.Size, nzString(as.ContentType), as.Metadata)
		if err != nil {
			return "", fmt.Errorf("copy %s to %s: %w", src, dst, err)
		}
		return v, nil
	}
	out, err := c.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: &src.Bucket, Key: &dst, CopySource: aws.String(CopySource(src)), CopySourceIfMatch: src.ifMatch(),
		MetadataDirective: types.MetadataDirectiveReplace, Metadata: as.Metadata, ContentType: nzString(as.ContentType),
	})
	if err != nil {
		return "", fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return aws.ToString(out.VersionId), nil
}

// headOf asks S3 for src's Head.
func headOf(ctx context.Context, c Header, src Ref) (*Head, error) {
	hin := &s3.HeadObjectInput{Bucket: &src.Bucket, Key: &src.Key, IfMatch: src.ifMatch()}
	if src.VersionID != "" {
		hin.VersionId = &src.VersionID
	}
	out, err := c.HeadObject(ctx, hin)
	if IsNotFound(err) || IsInvalidVersion(err) || IsPreconditionFailed(err) {
		return nil, fmt.Errorf("place %s: %w", src, ErrSourceGone)
	}
	if err != nil {
		return nil, fmt.Errorf("place %s: head source: %w", src, err)
	}
	return &Head{Size: aws.ToInt64(out.ContentLength), ContentType: aws.ToString(out.ContentType), Metadata: out.Metadata}, nil
}

// nzString is nil for "", else a pointer to s.
func nzString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func metaGet(m map[string]string, k string) string {
	for mk, v := range m {
		if strings.EqualFold(mk, k) {
			return v
		}
	}
	return ""
}

// copyMultipart copies an object over 5 GiB with UploadPartCopy and
// returns the new version's ID.
func copyMultipart(ctx context.Context, c Copier, src Ref, dst string, size int64, contentType *string, md map[string]string) (string, error) {
	part := CopyPartSize
	if min := (size + 9999) / 10000; part < min {
		part = min
	}
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &src.Bucket, Key: &dst, Metadata: md, ContentType: contentType,
	})
	if err != nil {
		return "", fmt.Errorf("create multipart upload: %w", err)
	}
	abort := func() {
		// A fresh context: the caller's may be what failed.
		_, _ = c.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{
			Bucket: &src.Bucket, Key: &dst, UploadId: up.UploadId})
	}
	var parts []types.CompletedPart
	for n, off := int32(1), int64(0); off < size; n, off = n+1, off+part {
		end := min(off+part, size) - 1
		out, err := c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket: &src.Bucket, Key: &dst, UploadId: up.UploadId, PartNumber: aws.Int32(n),
			CopySource: aws.String(CopySource(src)), CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, end)),
			CopySourceIfMatch: src.ifMatch(),
		})
		if err != nil {
			abort()
			return "", fmt.Errorf("upload part copy %d: %w", n, err)
		}
		cp := types.CompletedPart{PartNumber: aws.Int32(n)}
		if out.CopyPartResult != nil {
			cp.ETag = out.CopyPartResult.ETag
		}
		parts = append(parts, cp)
	}
	done, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &src.Bucket, Key: &dst, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		abort()
		return "", fmt.Errorf("complete multipart copy: %w", err)
	}
	return aws.ToString(done.VersionId), nil
}

// Move places src at the first free candidate and deletes the source
// version. It is Place followed by Delete, for callers with nothing to write
// beside the copy in between.
func Move(ctx context.Context, c interface {
	Copier
	Deleter
}, src Ref, candidates []string, token string, meta map[string]string) (string, error) {
	dst, err := Place(ctx, c, src, candidates, token, meta)
	if err != nil {
		return "", err
	}
	return dst, Delete(ctx, c, src)
}

// Candidates is the destination key followed by one alternative for a
// collision (another file already moved to the same key on the same day):
// "<stem>~<tag><ext>", e.g. "orders~3fa85f64.csv".
func Candidates(key, tag string) []string {
	if len(tag) > 8 {
		tag = tag[:8]
	}
	dir, base := "", key
	if i := strings.LastIndex(key, "/"); i >= 0 {
		dir, base = key[:i+1], key[i+1:]
	}
	stem, ext := base, ""
	if i := strings.LastIndex(base, "."); i > 0 {
		stem, ext = base[:i], base[i:]
	}
	return []string{key, dir + stem + "~" + tag + ext}
}
