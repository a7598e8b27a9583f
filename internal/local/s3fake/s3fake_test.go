package s3fake_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/fno-bridge/s3-fno/internal/local/s3fake"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// client is the part of *s3.Client both faces are checked on.
type client interface {
	s3.ListObjectsV2APIClient
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	CopyObject(context.Context, *s3.CopyObjectInput, ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

// isCode reports whether err is S3's answer code (or, for a HEAD, which
// carries no error body, its status).
func isCode(err error, code string) bool {
	var ae interface{ ErrorCode() string }
	if errors.As(err, &ae) && ae.ErrorCode() == code {
		return true
	}
	var re *smithyhttp.ResponseError
	status := map[string]int{"NotFound": 404, "NoSuchKey": 404, "NoSuchVersion": 404, "PreconditionFailed": 412}[code]
	return errors.As(err, &re) && re.HTTPStatusCode() == status
}

// TestFaces runs the same requests through both faces: the answers must
// be the same.
func TestFaces(t *testing.T) {
	t.Parallel()
	faces := map[string]func(t *testing.T) client{
		"in-process": func(*testing.T) client { return s3fake.New() },
		"server":     func(t *testing.T) client { return s3fake.NewServer(t, s3fake.ServerOptions{}).Client(t) },
	}
	for name, newClient := range faces {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, ctx := newClient(t), context.Background()
			b := aws.String("b")
			put := func(key, body string, cond func(*s3.PutObjectInput)) (*s3.PutObjectOutput, error) {
				in := &s3.PutObjectInput{Bucket: b, Key: &key, Body: strings.NewReader(body), Metadata: map[string]string{"A": "1"}}
				if cond != nil {
					cond(in)
				}
				return c.PutObject(ctx, in)
			}
			ifAbsent := func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }
			first, err := put("k", "one", ifAbsent)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := put("k", "two", ifAbsent); !isCode(err, "PreconditionFailed") {
				t.Fatalf("second put-if-absent: %v", err)
			}
			get := func(key string, in *s3.GetObjectInput) (string, error) {
				in.Bucket, in.Key = b, &key
				out, err := c.GetObject(ctx, in)
				if err != nil {
					return "", err
				}
				defer out.Body.Close()
				raw, err := io.ReadAll(out.Body)
				return string(raw), err
			}
			if got, err := get("k", &s3.GetObjectInput{IfMatch: first.ETag}); err != nil || got != "one" {
				t.Fatalf("get if-match: %q %v", got, err)
			}
			if _, err := get("k", &s3.GetObjectInput{IfMatch: aws.String(`"other"`)}); !isCode(err, "PreconditionFailed") {
				t.Fatalf("get with another etag: %v", err)
			}
			// A conditional overwrite: only over the object of that ETag,
			// and none where there is no object.
			if _, err := put("k", "one", func(in *s3.PutObjectInput) { in.IfMatch = aws.String(`"other"`) }); !isCode(err, "PreconditionFailed") {
				t.Fatalf("put over another etag: %v", err)
			}
			if _, err := put("absent", "x", func(in *s3.PutObjectInput) { in.IfMatch = first.ETag }); !isCode(err, "NoSuchKey") {
				t.Fatalf("put if-match where there is no object: %v", err)
			}
			if _, err := put("k", "one", func(in *s3.PutObjectInput) { in.IfMatch = first.ETag }); err != nil {
				t.Fatalf("put over the same etag: %v", err)
			}
			if _, err := get("k", &s3.GetObjectInput{VersionId: aws.String("v-none")}); !isCode(err, "NoSuchVersion") {
				t.Fatalf("get of another version: %v", err)
			}
			if _, err := get("nope", &s3.GetObjectInput{}); !isCode(err, "NoSuchKey") {
				t.Fatalf("missing key: %v", err)
			}
			if got, err := get("k", &s3.GetObjectInput{Range: aws.String("bytes=1-")}); err != nil || got != "ne" {
				t.Fatalf("ranged get: %q %v", got, err)
			}
			if got, err := get("k", &s3.GetObjectInput{Range: aws.String("bytes=0-1")}); err != nil || got != "on" {
				t.Fatalf("ranged get with an end: %q %v", got, err)
			}
			if got, err := get("k", &s3.GetObjectInput{Range: aws.String("bytes=1-99")}); err != nil || got != "ne" {
				t.Fatalf("ranged get past the end: %q %v", got, err)
			}
			if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("c d"), CopySource: aws.String("b/k"),
				CopySourceIfMatch: first.ETag, MetadataDirective: s3types.MetadataDirectiveReplace, Metadata: map[string]string{"Z": "2"},
				ContentType: aws.String("text/csv")}); err != nil {
				t.Fatal(err)
			}
			h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("c d")})
			if err != nil || h.Metadata["z"] != "2" || h.Metadata["a"] != "" || aws.ToInt64(h.ContentLength) != 3 || aws.ToString(h.ContentType) != "text/csv" {
				t.Fatalf("head of the copy: %+v %v", h, err)
			}
			if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("x"), CopySource: aws.String("b/c%20d"),
				CopySourceIfMatch: aws.String(`"other"`)}); !isCode(err, "PreconditionFailed") {
				t.Fatalf("copy with another etag: %v", err)
			}
			if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("nope")}); !isCode(err, "NotFound") {
				t.Fatalf("head of a missing key: %v", err)
			}
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String("k"), IfMatch: aws.String(`"other"`)}); !isCode(err, "PreconditionFailed") {
				t.Fatalf("delete with another etag: %v", err)
			}
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String("k"), IfMatch: first.ETag}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String("k")}); err != nil {
				t.Fatalf("delete of what is gone: %v", err)
			}
			for i := range 7 {
				if _, err := put(fmt.Sprintf("l/%02d", i), "x", nil); err != nil {
					t.Fatal(err)
				}
			}
			p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: b, Prefix: aws.String("l/"), StartAfter: aws.String("l/00"), MaxKeys: aws.Int32(3)})
			var keys []string
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range page.Contents {
					keys = append(keys, aws.ToString(o.Key))
				}
			}
			if strings.Join(keys, " ") != "l/01 l/02 l/03 l/04 l/05 l/06" {
				t.Fatalf("listed %v", keys)
			}
		})
	}
}

// TestServer checks what only the server face does, through the SDK
// operations the benchmarks use: generated objects with their checksum,
// the multipart sink, version IDs, request counts.
func TestServer(t *testing.T) {
	t.Parallel()
	s := s3fake.NewServer(t, s3fake.ServerOptions{})
	c := s.Client(t)
	ctx := context.Background()
	block := s3fake.Pattern(1)
	const size = 3<<20 + 17
	v := s.PutGenerated("b", "inbound/x/big file+1.csv", block, size, s3fake.PatternCRC(block, size)).VersionID()

	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("inbound/x/big file+1.csv"), VersionId: &v})
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, out.Body) // the SDK validates the CRC64NVME while reading
	out.Body.Close()
	if err != nil || n != size || aws.ToString(out.VersionId) != v || out.ChecksumCRC64NVME == nil {
		t.Fatalf("get: %d bytes, %v, version %s, checksum %v", n, err, aws.ToString(out.VersionId), aws.ToString(out.ChecksumCRC64NVME))
	}
	p, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("_state/m/1.json"), Body: strings.NewReader(`{"a":1}`)})
	if err != nil || aws.ToString(p.VersionId) == "" {
		t.Fatalf("put: %+v %v", p, err)
	}
	if o, ok := s.Get("b", "_state/m/1.json"); !ok || string(o.Body) != `{"a":1}` || o.VersionID() != aws.ToString(p.VersionId) {
		t.Fatalf("stored %+v", o)
	}
	// A multipart upload through the transfer manager (aws-chunked parts
	// with trailing checksums), then a second one refused by If-None-Match.
	tm := transfermanager.New(c, func(o *transfermanager.Options) { o.PartSizeBytes, o.MultipartUploadThreshold = 5<<20, 5<<20 })
	const big = 12<<20 + 5
	up := func() error {
		_, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: aws.String("b"), Key: aws.String("out/x.zip"),
			Body: s3fake.PatternReader(block, big), IfNoneMatch: aws.String("*")})
		return err
	}
	if err := up(); err != nil {
		t.Fatal(err)
	}
	if o, ok := s.Get("b", "out/x.zip"); !ok || o.Size() != big || s.Sunk() != big {
		t.Fatalf("multipart: object %+v (%v), %d bytes received", o, ok, s.Sunk())
	}
	if err := up(); !isCode(err, "PreconditionFailed") {
		t.Fatalf("second upload with If-None-Match: %v", err)
	}
	// A PutObject over 4 MiB is counted and dropped too.
	const large = 5<<20 + 1
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("out/y.zip"),
		Body: s3fake.PatternReader(block, large), ContentLength: aws.Int64(large)}); err != nil {
		t.Fatal(err)
	}
	if o, ok := s.Get("b", "out/y.zip"); !ok || o.Size() != large || o.Body != nil || s.Sunk() < big+large {
		t.Fatalf("large put: object %+v (%v), %d bytes received", o, ok, s.Sunk())
	}
	if _, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("out/x.zip")}); !isCode(err, "NotImplemented") {
		t.Fatalf("get of an object whose bytes were dropped: %v", err)
	}
	ops := s.Ops()
	if ops["GetObject"] != 2 || ops["PutObject"] != 2 || ops["CreateMultipartUpload"] != 2 || ops["UploadPart"] < 3 || ops["CompleteMultipartUpload"] != 2 {
		t.Fatalf("counted %v (%d in all)", ops, s.Requests())
	}
}

// TestListVersions: both faces page a listing of versions and give each
// key back as stored, odd characters included, through s3io.ListVersions
// (which asks for URL-encoded keys).
func TestListVersions(t *testing.T) {
	srv := s3fake.NewServer(t, s3fake.ServerOptions{})
	mem := s3fake.New()
	keys := []string{"in/a b.csv", "in/c+d.csv", "in/ü/e.csv", "out/x.csv"}
	for _, k := range keys {
		srv.Put("b", k, []byte("x"), "", "")
		mem.Put("b", k, []byte("x"), "", "v1")
	}
	for name, c := range map[string]s3io.VersionLister{"server": srv.Client(t), "in-process": mem} {
		var pages int
		counting := versionPages{VersionLister: c, n: &pages}
		got, err := s3io.ListVersions(context.Background(), counting, "b", "in/", func(raw string, err error) { t.Errorf("%s: undecodable %q", name, raw) })
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var names []string
		for _, v := range got {
			names = append(names, v.Key)
			if v.LastModified.IsZero() || v.Size != 1 {
				t.Errorf("%s: %+v", name, v)
			}
		}
		if strings.Join(names, "|") != strings.Join(keys[:3], "|") || pages != 1 {
			t.Errorf("%s: listed %q in %d pages", name, names, pages)
		}
	}
}

type versionPages struct {
	s3io.VersionLister
	n *int
}

func (v versionPages) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, o ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	*v.n++
	return v.VersionLister.ListObjectVersions(ctx, in, o...)
}
