package filing_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/local/s3fake"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// orderS3 records the writes and deletes, to check the order of the steps.
type orderS3 struct {
	*s3fake.S3
	mu  sync.Mutex
	ops []string
}

func (o *orderS3) record(op string) {
	o.mu.Lock()
	o.ops = append(o.ops, op)
	o.mu.Unlock()
}

func (o *orderS3) PutObject(ctx context.Context, in *s3.PutObjectInput, opt ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	o.record("put " + aws.ToString(in.Key))
	return o.S3.PutObject(ctx, in, opt...)
}

func (o *orderS3) CopyObject(ctx context.Context, in *s3.CopyObjectInput, opt ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	o.record("copy " + aws.ToString(in.Key))
	return o.S3.CopyObject(ctx, in, opt...)
}

func (o *orderS3) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opt ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	o.record("delete " + aws.ToString(in.Key))
	return o.S3.DeleteObject(ctx, in, opt...)
}

const (
	bucket = "b"
	srcKey = "inbound/r/a.csv"
	token  = "0123456789abcdef"
)

// fileOnce files srcKey (version v1) as processed, with a document that
// names where the file went and whether it was gone.
func fileOnce(c filing.S3, keepWhenGone bool, docErr error) (string, error) {
	m := filing.Move{Src: s3io.Ref{Bucket: bucket, Key: srcKey, VersionID: "v1"}, Candidates: s3io.Candidates("processed/r/a.csv", token),
		Token: token, Meta: map[string]string{"fno-status": "Processed"}, Suffix: ".result.json", KeepDocumentWhenGone: keepWhenGone}
	return filing.File(context.Background(), c, m, func(placed string, gone bool) (any, error) {
		return map[string]any{"file": placed, "gone": gone}, docErr
	})
}

func document(t *testing.T, c *s3fake.S3, key string) map[string]any {
	t.Helper()
	o, ok := c.Get(bucket, key+".result.json")
	if !ok {
		t.Fatalf("no document beside %s (have %v)", key, c.Keys())
	}
	var doc map[string]any
	if err := json.Unmarshal(o.Body, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestFile(t *testing.T) {
	t.Parallel()
	const first, second = "processed/r/a.csv", "processed/r/a~01234567.csv"

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		mem := s3fake.New()
		mem.Put(bucket, srcKey, []byte("x,y\n"), "", "v1")
		c := &orderS3{S3: mem}
		placed, err := fileOnce(c, false, nil)
		if err != nil || placed != first {
			t.Fatalf("File = %q, %v; want %s", placed, err, first)
		}
		o, ok := mem.Get(bucket, first)
		if !ok || string(o.Body) != "x,y\n" || o.Meta[s3io.MetaIdentity] != token || o.Meta["fno-status"] != "Processed" {
			t.Fatalf("placed copy %+v, %v", o, ok)
		}
		if doc := document(t, mem, first); doc["file"] != first || doc["gone"] != false {
			t.Fatalf("document %v", doc)
		}
		if _, ok := mem.Get(bucket, srcKey); ok {
			t.Fatal("the source is still there")
		}
		// The source goes last: until the document is written, a repeat
		// still has the file to finish with.
		want := []string{"copy " + first, "put " + first + ".result.json", "delete " + srcKey}
		if !slices.Equal(c.ops, want) {
			t.Fatalf("steps %q, want %q", c.ops, want)
		}
	})

	t.Run("another file at the first choice", func(t *testing.T) {
		t.Parallel()
		c := s3fake.New()
		c.Put(bucket, srcKey, []byte("mine"), "", "v1")
		c.Put(bucket, first, []byte("theirs"), "", "")
		placed, err := fileOnce(c, false, nil)
		if err != nil || placed != second {
			t.Fatalf("File = %q, %v; want %s", placed, err, second)
		}
		if o, _ := c.Get(bucket, first); string(o.Body) != "theirs" {
			t.Fatalf("the other file was overwritten: %q", o.Body)
		}
		if doc := document(t, c, second); doc["file"] != second {
			t.Fatalf("document %v", doc)
		}
	})

	t.Run("a repeat finishes an interrupted filing", func(t *testing.T) {
		t.Parallel()
		c := s3fake.New()
		c.Put(bucket, srcKey, []byte("x"), "", "v1")
		died := errors.New("died before the document")
		if _, err := fileOnce(c, false, died); !errors.Is(err, died) {
			t.Fatalf("File = %v, want the document's error", err)
		}
		if _, ok := c.Get(bucket, srcKey); !ok {
			t.Fatal("the source was deleted before its document was written")
		}
		placed, err := fileOnce(c, false, nil)
		if err != nil || placed != first {
			t.Fatalf("repeat: File = %q, %v; want its own earlier copy %s", placed, err, first)
		}
		if _, ok := c.Get(bucket, second); ok {
			t.Fatal("the repeat placed a second copy")
		}
		document(t, c, first)
		if _, ok := c.Get(bucket, srcKey); ok {
			t.Fatal("the source is still there")
		}
	})

	t.Run("source gone", func(t *testing.T) {
		t.Parallel()
		c := s3fake.New()
		placed, err := fileOnce(c, false, nil)
		if !errors.Is(err, s3io.ErrSourceGone) || placed != "" {
			t.Fatalf("File = %q, %v; want s3io.ErrSourceGone", placed, err)
		}
		if keys := c.Keys(); len(keys) != 0 {
			t.Fatalf("written for a file that is gone: %v", keys)
		}
	})

	for _, taken := range []bool{false, true} {
		name := "source gone, document kept"
		if taken {
			name += ", first choice taken"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := s3fake.New()
			want := first
			if taken {
				c.Put(bucket, first, []byte("theirs"), "", "")
				want = second
			}
			placed, err := fileOnce(c, true, nil)
			if err != nil || placed != want {
				t.Fatalf("File = %q, %v; want %s", placed, err, want)
			}
			if doc := document(t, c, want); doc["file"] != want || doc["gone"] != true {
				t.Fatalf("document %v", doc)
			}
			if _, ok := c.Get(bucket, want); ok {
				t.Fatalf("an object at %s: only the document belongs there", want)
			}
			if o, _ := c.Get(bucket, first); taken && string(o.Body) != "theirs" {
				t.Fatalf("the other file was overwritten: %q", o.Body)
			}
		})
	}
}
