package enqueue_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// corruptingS3 flips one byte of the first n GetObject bodies, after S3
// answered: bytes damaged between S3 and the function.
type corruptingS3 struct {
	*s3.Client
	left atomic.Int32
}

func (c *corruptingS3) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	out, err := c.Client.GetObject(ctx, in, opts...)
	if err == nil && c.left.Add(-1) >= 0 {
		out.Body = &flipper{ReadCloser: out.Body}
	}
	return out, err
}

type flipper struct {
	io.ReadCloser
	done bool
}

func (f *flipper) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if n > 0 && !f.done {
		p[n/2] ^= 0x20
		f.done = true
	}
	return n, err
}

// TestCorruptReadNeverReachesFnO: a file read with a byte changed in transit
// fails its checksum before its last bytes go out, so F&O never holds a
// wrong file; the send is retried from a fresh read (not filed as "outcome
// unknown"), and F&O ends up with exactly the bytes in S3.
func TestCorruptReadNeverReachesFnO(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
	body := bytes.Repeat([]byte("CUSTGROUP;NAME\r\n10;Wholesale\r\n"), 40000)
	// Real S3 gives every new object a CRC64NVME checksum; moto keeps one
	// only when the upload names it.
	key := "inbound/customers/damaged.csv"
	put, err := f.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &f.bucket, Key: &key, Body: bytes.NewReader(body),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme})
	if err != nil {
		t.Fatal(err)
	}
	m := importmsg.File{Bucket: f.bucket, Key: key, VersionID: aws.ToString(put.VersionId), ETag: aws.ToString(put.ETag),
		Size: int64(len(body)), Route: "customers", EventTime: time.Now().UTC()}

	// Every read damaged: the file is not sent, and stays for a redelivery.
	bad := &corruptingS3{Client: f.s3}
	bad.left.Store(1 << 20)
	h, err := enqueue.New(f.cfg, bad, pipelinetest.FnO(t, f.emu), f.sqs, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := h.Handle(context.Background(), event(m))
	if err != nil || len(resp.BatchItemFailures) != 1 {
		t.Fatalf("damaged reads: failures %v, err %v; want the record retried", failures(resp), err)
	}
	if n := len(f.emu.Messages()); n != 0 {
		t.Fatalf("F&O holds %d messages of a file that was never read right", n)
	}
	if keys := pipelinetest.Keys(t, f.s3, f.bucket, "failed/"); len(keys) != 0 {
		t.Fatalf("filed as failed: %v", keys)
	}
	if _, ok := pipelinetest.Get(t, f.s3, f.bucket, m.Key); !ok {
		t.Fatal("the file left inbound/")
	}

	// One damaged read: the client reopens the file and sends it whole.
	once := &corruptingS3{Client: f.s3}
	once.left.Store(1)
	h, err = enqueue.New(f.cfg, once, pipelinetest.FnO(t, f.emu), f.sqs, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	resp, err = h.Handle(context.Background(), event(m))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("one damaged read: failures %v, err %v", failures(resp), err)
	}
	msgs := f.emu.Messages()
	if len(msgs) != 1 || msgs[0].SHA256 != sha(body) {
		t.Fatalf("F&O holds %d messages; want one with the file's bytes", len(msgs))
	}
	if !strings.HasPrefix(msgs[0].ExternalID, "inbound/customers/") {
		t.Fatalf("external ID %q", msgs[0].ExternalID)
	}
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
