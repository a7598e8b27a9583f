package s3io_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

func put(t *testing.T, c *s3.Client, bucket, key string, body []byte) string {
	t.Helper()
	out, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return aws.ToString(out.VersionId)
}

func get(t *testing.T, c *s3.Client, bucket, key string) ([]byte, map[string]string, bool) {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if s3io.IsNotFound(err) {
		return nil, nil, false
	}
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	return b, out.Metadata, true
}

func TestPutJSONIfAbsent(t *testing.T) {
	c := mototest.S3(t)
	b := mototest.NewBucket(t)
	ctx := context.Background()
	created, err := s3io.PutJSONIfAbsent(ctx, c, b, "_state/m.json", map[string]string{"id": "1"})
	if err != nil || !created {
		t.Fatalf("first write: %v %v", created, err)
	}
	created, err = s3io.PutJSONIfAbsent(ctx, c, b, "_state/m.json", map[string]string{"id": "2"})
	if err != nil || created {
		t.Fatalf("second write: created=%v err=%v, want false, nil", created, err)
	}
	var got map[string]string
	found, err := s3io.GetJSON(ctx, c, b, "_state/m.json", &got)
	if err != nil || !found || got["id"] != "1" {
		t.Fatalf("GetJSON = %v %v %v, want the first document", got, found, err)
	}
	found, err = s3io.GetJSON(ctx, c, b, "_state/none.json", &got)
	if err != nil || found {
		t.Fatalf("GetJSON(missing) = %v %v", found, err)
	}
}

func TestPlaceAndMove(t *testing.T) {
	c := mototest.S3(t)
	b := mototest.NewBucket(t)
	ctx := context.Background()
	for _, key := range []string{"inbound/c/plain.csv", "inbound/c/a+b c.csv", "inbound/c/ünï %2F.csv"} {
		t.Run(key, func(t *testing.T) {
			v1 := put(t, c, b, key, []byte("version one"))
			put(t, c, b, key, []byte("version two")) // a newer upload must survive the move of v1
			src := s3io.Ref{Bucket: b, Key: key, VersionID: v1}
			dst := "processed/c/2026/01/02/" + strings.TrimPrefix(key, "inbound/c/")
			got, err := s3io.Move(ctx, c, src, s3io.Candidates(dst, "abcdef0123"), "id-1", map[string]string{"fno-message-id": "m1"})
			if err != nil {
				t.Fatal(err)
			}
			if got != dst {
				t.Fatalf("moved to %q, want %q", got, dst)
			}
			body, md, ok := get(t, c, b, dst)
			if !ok || string(body) != "version one" || md[s3io.MetaIdentity] != "id-1" || md["fno-message-id"] != "m1" {
				t.Fatalf("copy = %q %v %v", body, md, ok)
			}
			if body, _, _ := get(t, c, b, key); string(body) != "version two" {
				t.Fatalf("the newer upload is now %q", body)
			}
			// Repeating the move finds its own copy and reports the same key.
			again, err := s3io.Move(ctx, c, src, s3io.Candidates(dst, "abcdef0123"), "id-1", nil)
			if err != nil || again != dst {
				t.Fatalf("repeat move = %q, %v", again, err)
			}
			// Another file to the same key goes to the alternative.
			v2src := s3io.Ref{Bucket: b, Key: key}
			other, err := s3io.Place(ctx, c, v2src, s3io.Candidates(dst, "99998888"), "id-2", nil)
			if err != nil || other == dst || !strings.Contains(other, "~99998888") {
				t.Fatalf("colliding place = %q, %v", other, err)
			}
			// A gone source with no copy anywhere.
			_, err = s3io.Place(ctx, c, s3io.Ref{Bucket: b, Key: key + ".missing"}, []string{dst + ".x"}, "id-3", nil)
			if !errors.Is(err, s3io.ErrSourceGone) {
				t.Fatalf("missing source: %v", err)
			}
		})
	}
}

func TestMultipartCopyAndStreamingUpload(t *testing.T) {
	c := mototest.S3(t)
	b := mototest.NewBucket(t)
	ctx := context.Background()
	oldMax, oldPart := s3io.MaxSingleCopy, s3io.CopyPartSize
	s3io.MaxSingleCopy, s3io.CopyPartSize = 1<<20, 5<<20
	t.Cleanup(func() { s3io.MaxSingleCopy, s3io.CopyPartSize = oldMax, oldPart })

	data := bytes.Repeat([]byte("0123456789abcdef"), (11<<20)/16+3) // 11 MiB and a bit
	// Upload through an io.Reader that is not seekable and of unknown size.
	if err := s3io.Upload(ctx, c, b, "inbound/c/big.csv", io.MultiReader(bytes.NewReader(data)), -1, "text/csv", nil); err != nil {
		t.Fatal(err)
	}
	dst, err := s3io.Move(ctx, c, s3io.Ref{Bucket: b, Key: "inbound/c/big.csv"}, []string{"processed/big.csv"}, "id", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, md, ok := get(t, c, b, dst)
	if !ok || sha256.Sum256(body) != sha256.Sum256(data) || md[s3io.MetaIdentity] != "id" {
		t.Fatalf("multipart copy: %d bytes (want %d), meta %v", len(body), len(data), md)
	}
	if _, _, ok := get(t, c, b, "inbound/c/big.csv"); ok {
		t.Fatal("source still there")
	}
}

func TestCandidates(t *testing.T) {
	for _, tt := range []struct{ key, want string }{
		{"p/a.csv", "p/a~12345678.csv"},
		{"p/a", "p/a~12345678"},
		{"p/.hidden", "p/.hidden~12345678"},
		{"p/x.tar.gz", "p/x.tar~12345678.gz"},
	} {
		got := s3io.Candidates(tt.key, "1234567890")
		if len(got) != 2 || got[0] != tt.key || got[1] != tt.want {
			t.Errorf("Candidates(%q) = %v, want [%q %q]", tt.key, got, tt.key, tt.want)
		}
	}
}

func TestUnversionedETagGuard(t *testing.T) {
	c := mototest.S3(t)
	b := mototest.Name("plain")
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &b}); err != nil {
		t.Fatal(err)
	}
	out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: aws.String("inbound/c/x.csv"), Body: strings.NewReader("first")})
	if err != nil {
		t.Fatal(err)
	}
	first := s3io.Ref{Bucket: b, Key: "inbound/c/x.csv", ETag: aws.ToString(out.ETag)}
	put(t, c, b, "inbound/c/x.csv", []byte("second upload")) // same key, new content
	if _, err := s3io.Place(ctx, c, first, []string{"processed/x.csv"}, "id", nil); !errors.Is(err, s3io.ErrSourceGone) {
		t.Fatalf("Place of replaced content: %v, want ErrSourceGone", err)
	}
	if err := s3io.Delete(ctx, c, first); err != nil {
		t.Fatal(err)
	}
	if body, _, ok := get(t, c, b, "inbound/c/x.csv"); !ok || string(body) != "second upload" {
		t.Fatalf("the newer content was touched: %q %v", body, ok)
	}
	second := s3io.Ref{Bucket: b, Key: "inbound/c/x.csv", ETag: fmt.Sprintf("%x", md5.Sum([]byte("second upload")))}
	if dst, err := s3io.Move(ctx, c, second, []string{"processed/x.csv"}, "id", nil); err != nil || dst != "processed/x.csv" {
		t.Fatalf("Move with the right ETag: %q %v", dst, err)
	}
	if _, _, ok := get(t, c, b, "inbound/c/x.csv"); ok {
		t.Fatal("moved content still in inbound/")
	}
}

// TestUploadSizes: whatever the length, known or not, the object holds
// exactly the body (a body that is a whole number of parts ends without an
// empty part; an empty body of unknown length is still an object).
func TestUploadSizes(t *testing.T) {
	c := mototest.S3(t)
	b := mototest.NewBucket(t)
	ctx := context.Background()
	for _, tt := range []struct {
		n     int
		known bool
	}{{0, true}, {0, false}, {100, true}, {100, false}, {2 * s3io.UploadPartSize, false}, {s3io.UploadPartSize + 1, true}} {
		data := bytes.Repeat([]byte{'x'}, tt.n)
		size := int64(-1)
		if tt.known {
			size = int64(tt.n)
		}
		key := fmt.Sprintf("f/%d-%v", tt.n, tt.known)
		if err := s3io.Upload(ctx, c, b, key, io.MultiReader(bytes.NewReader(data)), size, "", nil); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if got, _, ok := get(t, c, b, key); !ok || !bytes.Equal(got, data) {
			t.Fatalf("%s: %d bytes stored, want %d", key, len(got), tt.n)
		}
	}
}

// headCounter counts HeadObject calls by key.
type headCounter struct {
	*s3.Client
	heads map[string]int
}

func (h *headCounter) HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	h.heads[aws.ToString(in.Key)]++
	return h.Client.HeadObject(ctx, in, opts...)
}

// TestPlaceKnown: a caller that read the source version already gives its
// Head, and Place does not ask S3 for the source again; the copy still
// carries the source's content type and metadata, and a source gone (or
// replaced) meanwhile still fails the copy with ErrSourceGone.
func TestPlaceKnown(t *testing.T) {
	c := &headCounter{Client: mototest.S3(t), heads: map[string]int{}}
	b := mototest.NewBucket(t)
	ctx := context.Background()
	key := "inbound/c/known.csv"
	out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: &key, Body: strings.NewReader("known"),
		ContentType: aws.String("text/csv"), Metadata: map[string]string{"replay-of": "processed/c/x.csv"}})
	if err != nil {
		t.Fatal(err)
	}
	read, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &b, Key: &key, VersionId: out.VersionId})
	if err != nil {
		t.Fatal(err)
	}
	read.Body.Close()
	head := &s3io.Head{Size: aws.ToInt64(read.ContentLength), ContentType: aws.ToString(read.ContentType), Metadata: read.Metadata}
	src := s3io.Ref{Bucket: b, Key: key, VersionID: aws.ToString(out.VersionId)}
	dst, err := s3io.PlaceKnown(ctx, c, src, head, []string{"processed/c/known.csv"}, "id-k", map[string]string{"fno-status": "Processed"})
	if err != nil || dst != "processed/c/known.csv" {
		t.Fatalf("PlaceKnown = %q, %v", dst, err)
	}
	if c.heads[key] != 0 || c.heads[dst] != 1 {
		t.Fatalf("HeadObject calls %v: want the destination's only", c.heads)
	}
	copied, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b, Key: &dst})
	if err != nil {
		t.Fatal(err)
	}
	if md := copied.Metadata; aws.ToString(copied.ContentType) != "text/csv" || md["replay-of"] != "processed/c/x.csv" ||
		md[s3io.MetaIdentity] != "id-k" || md["fno-status"] != "Processed" {
		t.Fatalf("the copy has content type %q and metadata %v", aws.ToString(copied.ContentType), copied.Metadata)
	}

	// The version deleted meanwhile: the copy fails, as ErrSourceGone.
	if err := s3io.Delete(ctx, c, src); err != nil {
		t.Fatal(err)
	}
	if _, err := s3io.PlaceKnown(ctx, c, src, head, []string{"processed/c/other.csv"}, "id-other", nil); !errors.Is(err, s3io.ErrSourceGone) {
		t.Fatalf("PlaceKnown of a deleted version: %v, want ErrSourceGone", err)
	}

	// Unversioned, replaced by other content: the source is asked (with
	// its ETag), and the guard holds.
	plain := mototest.Name("plain")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &plain}); err != nil {
		t.Fatal(err)
	}
	first, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &plain, Key: &key, Body: strings.NewReader("first")})
	if err != nil {
		t.Fatal(err)
	}
	put(t, c.Client, plain, key, []byte("second upload"))
	old := s3io.Ref{Bucket: plain, Key: key, ETag: aws.ToString(first.ETag)}
	if _, err := s3io.PlaceKnown(ctx, c, old, &s3io.Head{Size: 5}, []string{"processed/x.csv"}, "id", nil); !errors.Is(err, s3io.ErrSourceGone) {
		t.Fatalf("PlaceKnown of replaced content: %v, want ErrSourceGone", err)
	}
	if _, _, ok := get(t, c.Client, plain, "processed/x.csv"); ok {
		t.Fatal("replaced content was copied")
	}
	if c.heads[key] != 1 {
		t.Fatalf("an unversioned source was asked %d times, want once", c.heads[key])
	}
}
