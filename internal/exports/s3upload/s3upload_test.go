package s3upload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// fakeS3 records what an Uploader asks of S3 and keeps the parts' bytes.
type fakeS3 struct {
	mu        sync.Mutex
	puts      []*s3.PutObjectInput
	putBodies [][]byte
	creates   []*s3.CreateMultipartUploadInput
	parts     map[int32][]byte
	partIn    []*s3.UploadPartInput
	completes []*s3.CompleteMultipartUploadInput
	aborts    []*s3.AbortMultipartUploadInput
	abortCtx  []error // the abort's context's Err() when it was called

	inFlight, maxInFlight int
	discard               bool // keep no part bytes (count them)
	// hooks
	uploadPart func(ctx context.Context, num int32) error
	complete   func() error
}

func newFake() *fakeS3 { return &fakeS3{parts: map[int32][]byte{}} }

func (f *fakeS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts, f.putBodies = append(f.puts, in), append(f.putBodies, b)
	return &s3.PutObjectOutput{ETag: aws.String(`"put"`), VersionId: aws.String("v1")}, nil
}

func (f *fakeS3) CreateMultipartUpload(_ context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates = append(f.creates, in)
	return &s3.CreateMultipartUploadOutput{UploadId: aws.String("up-1")}, nil
}

func (f *fakeS3) UploadPart(ctx context.Context, in *s3.UploadPartInput, _ ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	f.mu.Lock()
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	f.partIn = append(f.partIn, in)
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.inFlight--; f.mu.Unlock() }()
	if f.uploadPart != nil {
		if err := f.uploadPart(ctx, *in.PartNumber); err != nil {
			return nil, err
		}
	}
	var b []byte
	var n int64
	var err error
	if f.discard {
		n, err = io.Copy(io.Discard, in.Body)
	} else {
		b, err = io.ReadAll(in.Body)
		n = int64(len(b))
	}
	if err != nil {
		return nil, err
	}
	if n != aws.ToInt64(in.ContentLength) {
		return nil, fmt.Errorf("part %d: %d bytes, ContentLength %d", *in.PartNumber, n, aws.ToInt64(in.ContentLength))
	}
	f.mu.Lock()
	f.parts[*in.PartNumber] = b
	f.mu.Unlock()
	return &s3.UploadPartOutput{ETag: aws.String(fmt.Sprintf(`"p%d"`, *in.PartNumber)), ChecksumCRC32: aws.String(fmt.Sprintf("crc%d", *in.PartNumber))}, nil
}

func (f *fakeS3) CompleteMultipartUpload(_ context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	f.mu.Lock()
	f.completes = append(f.completes, in)
	f.mu.Unlock()
	if f.complete != nil {
		if err := f.complete(); err != nil {
			return nil, err
		}
	}
	return &s3.CompleteMultipartUploadOutput{ETag: aws.String(`"mpu-2"`), VersionId: aws.String("v2")}, nil
}

func (f *fakeS3) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.aborts, f.abortCtx = append(f.aborts, in), append(f.abortCtx, ctx.Err())
	return &s3.AbortMultipartUploadOutput{}, nil
}

// body is the parts in order.
func (f *fakeS3) body() []byte {
	var nums []int
	for n := range f.parts {
		nums = append(nums, int(n))
	}
	sort.Ints(nums)
	var b []byte
	for _, n := range nums {
		b = append(b, f.parts[int32(n)]...)
	}
	return b
}

const part = MinPartSize

func data(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>13)
	}
	return b
}

func input(body io.Reader, n int64) *Input {
	return &Input{Bucket: "b", Key: "k", Body: body, ContentLength: n, IfNoneMatch: "*", ContentType: "text/csv",
		Metadata: map[string]string{"job": "j"}}
}

// A body shorter than a part is one PutObject with everything on it.
func TestSmallBodyIsOnePut(t *testing.T) {
	for _, n := range []int64{0, 1, 1000, int64(part)} {
		f := newFake()
		u := New(f, Options{PartSize: part, Concurrency: 2})
		want := data(int(n))
		out, err := u.Upload(context.Background(), input(bytes.NewReader(want), n))
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if len(f.puts) != 1 || len(f.creates) != 0 || !bytes.Equal(f.putBodies[0], want) {
			t.Fatalf("%d bytes: %d puts, %d multipart uploads", n, len(f.puts), len(f.creates))
		}
		p := f.puts[0]
		if aws.ToString(p.IfNoneMatch) != "*" || aws.ToString(p.ContentType) != "text/csv" || p.Metadata["job"] != "j" ||
			p.ChecksumAlgorithm != s3types.ChecksumAlgorithmCrc32 || aws.ToInt64(p.ContentLength) != n {
			t.Errorf("%d bytes: PutObject input %+v", n, p)
		}
		if out.ETag != `"put"` || out.VersionID != "v1" || out.Size != n || out.Parts != 1 {
			t.Errorf("%d bytes: output %+v", n, out)
		}
	}
	// Unknown length, short body: still one PutObject.
	f := newFake()
	if _, err := New(f, Options{PartSize: part}).Upload(context.Background(), input(bytes.NewReader(data(10)), -1)); err != nil || len(f.puts) != 1 {
		t.Fatalf("unknown length: %v, %d puts", err, len(f.puts))
	}
}

// A longer body is a multipart upload: parts in order, the condition on the
// completion, the parts' checksums handed back, at most Concurrency parts
// in flight.
func TestMultipart(t *testing.T) {
	for _, n := range []int{int(part) + 1, 3 * int(part), 3*int(part) + 12345} {
		for _, length := range []int64{int64(n), -1} {
			f := newFake()
			u := New(f, Options{PartSize: part, Concurrency: 2})
			want := data(n)
			out, err := u.Upload(context.Background(), input(io.MultiReader(bytes.NewReader(want)), length))
			if err != nil {
				t.Fatalf("%d bytes: %v", n, err)
			}
			if !bytes.Equal(f.body(), want) {
				t.Fatalf("%d bytes: the parts do not add up to the body", n)
			}
			wantParts := (n + int(part) - 1) / int(part)
			if len(f.creates) != 1 || len(f.completes) != 1 || len(f.aborts) != 0 || len(f.parts) != wantParts || len(f.puts) != 0 {
				t.Fatalf("%d bytes: %d creates, %d completes, %d aborts, %d parts, %d puts", n, len(f.creates), len(f.completes), len(f.aborts), len(f.parts), len(f.puts))
			}
			c := f.creates[0]
			if aws.ToString(c.ContentType) != "text/csv" || c.Metadata["job"] != "j" || c.ChecksumAlgorithm != s3types.ChecksumAlgorithmCrc32 {
				t.Errorf("create input %+v", c)
			}
			for _, p := range f.partIn {
				if p.ChecksumAlgorithm != s3types.ChecksumAlgorithmCrc32 || aws.ToString(p.UploadId) != "up-1" {
					t.Errorf("part input %+v", p)
				}
			}
			done := f.completes[0]
			if aws.ToString(done.IfNoneMatch) != "*" || aws.ToInt64(done.MpuObjectSize) != int64(n) || len(done.MultipartUpload.Parts) != wantParts {
				t.Errorf("complete input %+v", done)
			}
			for i, p := range done.MultipartUpload.Parts {
				if *p.PartNumber != int32(i+1) || aws.ToString(p.ETag) != fmt.Sprintf(`"p%d"`, i+1) || aws.ToString(p.ChecksumCRC32) != fmt.Sprintf("crc%d", i+1) {
					t.Errorf("completed part %d: %+v", i, p)
				}
			}
			if f.maxInFlight > 2 {
				t.Errorf("%d parts in flight, concurrency 2", f.maxInFlight)
			}
			if out.ETag != `"mpu-2"` || out.VersionID != "v2" || out.Size != int64(n) || out.UploadID != "up-1" || out.Parts != wantParts {
				t.Errorf("output %+v", out)
			}
		}
	}
}

// errReader returns its data, then err.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

// A body cut short (its reader's own io.ErrUnexpectedEOF) never completes
// an upload: the error comes back and the upload is aborted.
func TestBrokenBodyAborts(t *testing.T) {
	for _, n := range []int{100, 2*int(part) + 100} {
		f := newFake()
		u := New(f, Options{PartSize: part, Concurrency: 2})
		_, err := u.Upload(context.Background(), input(&errReader{bytes.NewReader(data(n)), io.ErrUnexpectedEOF}, int64(n)+10))
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%d bytes: err = %v, want the body's", n, err)
		}
		if len(f.puts) != 0 || len(f.completes) != 0 {
			t.Fatalf("%d bytes: written anyway (%d puts, %d completes)", n, len(f.puts), len(f.completes))
		}
		if len(f.creates) != len(f.aborts) {
			t.Errorf("%d bytes: %d uploads, %d aborted", n, len(f.creates), len(f.aborts))
		}
		var ue *UploadError
		if len(f.creates) > 0 && (!errors.As(err, &ue) || ue.UploadID != "up-1" || ue.AbortErr != nil) {
			t.Errorf("%d bytes: %v is not an UploadError naming the upload", n, err)
		}
	}
}

// When the caller's context ends mid-upload, the upload is still aborted,
// with a context of its own.
func TestCancelledContextStillAborts(t *testing.T) {
	f := newFake()
	ctx, cancel := context.WithCancel(context.Background())
	f.uploadPart = func(pctx context.Context, num int32) error {
		if num == 2 {
			cancel()
			<-pctx.Done()
			return pctx.Err()
		}
		return nil
	}
	u := New(f, Options{PartSize: part, Concurrency: 2})
	_, err := u.Upload(ctx, input(bytes.NewReader(data(4*int(part))), -1))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if len(f.aborts) != 1 || f.abortCtx[0] != nil || len(f.completes) != 0 {
		t.Fatalf("%d aborts (context: %v), %d completes", len(f.aborts), f.abortCtx, len(f.completes))
	}
}

// A part that fails stops the upload; the part's error is what comes back.
func TestFailedPartAborts(t *testing.T) {
	f := newFake()
	boom := errors.New("boom")
	f.uploadPart = func(_ context.Context, num int32) error {
		if num == 3 {
			return boom
		}
		return nil
	}
	u := New(f, Options{PartSize: part, Concurrency: 2})
	_, err := u.Upload(context.Background(), input(bytes.NewReader(data(8*int(part))), -1))
	if !errors.Is(err, boom) || len(f.aborts) != 1 || len(f.completes) != 0 {
		t.Fatalf("err = %v, %d aborts, %d completes", err, len(f.aborts), len(f.completes))
	}
}

// S3 refusing the completion (the key is taken) comes back as S3's error
// and the upload is aborted.
func TestRefusedCompletionAborts(t *testing.T) {
	f := newFake()
	f.complete = func() error { return &smithy.GenericAPIError{Code: "PreconditionFailed"} }
	u := New(f, Options{PartSize: part, Concurrency: 2})
	_, err := u.Upload(context.Background(), input(bytes.NewReader(data(2*int(part))), -1))
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "PreconditionFailed" || len(f.aborts) != 1 {
		t.Fatalf("err = %v, %d aborts", err, len(f.aborts))
	}
}

// Part buffers are reused across uploads: however many uploads run, at
// most concurrency + 1 buffers are ever allocated, and nothing else of
// their size. Counted by the pool, not timed.
func TestBuffersArePooledAcrossUploads(t *testing.T) {
	f := newFake()
	f.discard = true
	const size = 6 << 20 // a part size no other test uses, for a pool of its own
	const conc = 2
	u := New(f, Options{PartSize: size, Concurrency: conc})
	p := poolFor(size, 0)
	body := data(5 * size)
	up := func() {
		f.parts = map[int32][]byte{}
		if _, err := u.Upload(context.Background(), input(bytes.NewReader(body), int64(len(body)))); err != nil {
			t.Fatal(err)
		}
	}
	// How many buffers an upload holds at once depends on how its parts
	// and reads interleave (2 or 3 here): the first uploads may each
	// allocate one more, up to concurrency + 1 in all; then never again.
	const uploads = 6
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	made := p.allocated()
	for range uploads {
		up()
	}
	runtime.ReadMemStats(&after)
	made = p.allocated() - made
	if made > conc+1 {
		t.Errorf("%d uploads allocated %d part buffers, want at most concurrency + 1 = %d in all: buffers are not reused", uploads, made, conc+1)
	}
	// Besides the part buffers, an upload allocates little (no copy of a
	// part, no buffer per upload).
	if other := int64(after.TotalAlloc-before.TotalAlloc) - int64(made)*size; other > uploads*size/4 {
		t.Errorf("%d uploads of %d MiB allocated %.1f MiB besides their %d part buffers", uploads, len(body)>>20, float64(other)/(1<<20), made)
	}
	if n, all := len(p.free), p.allocated(); n != all || n > conc+1 {
		t.Errorf("%d buffers kept, want every one allocated (%d; at most concurrency + 1 = %d)", n, all, conc+1)
	}
}

// A part's body cannot be read once its request is over.
func TestDetachedPartBody(t *testing.T) {
	p := newPartReader([]byte("abc"))
	p.detach()
	if _, err := p.Read(make([]byte, 3)); !errors.Is(err, errDetached) {
		t.Fatalf("read after detach: %v", err)
	}
	if _, err := p.Seek(0, io.SeekStart); !errors.Is(err, errDetached) {
		t.Fatalf("seek after detach: %v", err)
	}
}
