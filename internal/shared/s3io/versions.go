package s3io

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// VersionLister lists object versions.
type VersionLister interface {
	ListObjectVersions(context.Context, *s3.ListObjectVersionsInput, ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error)
}

// Version is one object version a listing gave.
type Version struct {
	Key          string // decoded
	VersionID    string // "" for S3's "null"
	ETag         string // unquoted
	Size         int64
	LastModified time.Time
}

// ListVersions lists every version under prefix, leaving out the keys whose
// latest version is a delete marker (someone deleted the file). Keys are
// asked for URL-encoded: S3 lists them raw in XML otherwise, and one key
// with a control character (which S3 accepts) makes the whole listing
// unreadable. A key that still cannot be decoded goes to undecodable and is
// left out, so one bad key never hides the rest.
func ListVersions(ctx context.Context, c VersionLister, bucket, prefix string, undecodable func(raw string, err error)) ([]Version, error) {
	in := &s3.ListObjectVersionsInput{Bucket: &bucket, Prefix: &prefix, EncodingType: types.EncodingTypeUrl}
	deleted := map[string]bool{}
	var out []Version
	for {
		page, err := c.ListObjectVersions(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list versions under s3://%s/%s: %w", bucket, prefix, err)
		}
		// A server that ignored the parameter says so by leaving it out.
		decode := func(s *string) (string, error) { return aws.ToString(s), nil }
		if page.EncodingType == types.EncodingTypeUrl {
			decode = func(s *string) (string, error) { return url.QueryUnescape(aws.ToString(s)) }
		}
		for _, d := range page.DeleteMarkers {
			key, err := decode(d.Key)
			if err != nil {
				undecodable(aws.ToString(d.Key), err)
				continue
			}
			if aws.ToBool(d.IsLatest) {
				deleted[key] = true
			}
		}
		for _, v := range page.Versions {
			key, err := decode(v.Key)
			if err != nil {
				undecodable(aws.ToString(v.Key), err)
				continue
			}
			out = append(out, Version{Key: key, VersionID: NormalizeVersion(aws.ToString(v.VersionId)),
				ETag: NormalizeETag(aws.ToString(v.ETag)), Size: aws.ToInt64(v.Size), LastModified: aws.ToTime(v.LastModified).UTC()})
		}
		if !aws.ToBool(page.IsTruncated) {
			break
		}
		next, err := decode(page.NextKeyMarker)
		if err != nil {
			return nil, fmt.Errorf("list versions under s3://%s/%s: undecodable marker %q: %w", bucket, prefix, aws.ToString(page.NextKeyMarker), err)
		}
		in.KeyMarker, in.VersionIdMarker = &next, page.NextVersionIdMarker
	}
	kept := out[:0]
	for _, v := range out {
		if !deleted[v.Key] {
			kept = append(kept, v)
		}
	}
	return kept, nil
}
