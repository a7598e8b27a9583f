// Package s3upload lands a stream in S3 as one object, in parts whose
// buffers are pooled across uploads. It is the export path's uploader (the
// dequeue function's landing and the unpacked entity files), written on the
// SDK's own operations: PutObject when the stream fits in one part, else
// CreateMultipartUpload, UploadPart × n (Concurrency at a time) and
// CompleteMultipartUpload.
//
// Why not the SDK's transfer manager (feature/s3/transfermanager v0.5.4),
// which the landing used before: for every upload it allocates a fresh pool
// of Concurrency + 1 part buffers and reads the first part whole with
// io.ReadAll (growing a slice to the part size), so each export allocated
// 47–60 MB that was garbage at its end, the GC ran often under the dequeue
// function's soft memory limit, and each part waited for a buffer of the
// new pool. Measured with the benchmarks in bench/ on this project's
// machine (2 CPUs, shared with other work, so single runs vary; alternating
// runs, medians): against a plain SDK multipart upload of the same
// download with the same part size and concurrency, the transfer manager's
// landing ran at 0.68 of it at 16 MiB and 0.47 at 256 MiB; this package's
// at 0.98 at both, allocating 0.5 MB per 16 MiB export and 13 MB per GiB
// (the HTTP, TLS and SDK code's own, as much as the plain upload's).
// bench/RESULTS.md has the last full run. feature/s3/manager, the
// transfer manager's deprecated predecessor, is no way forward either; the
// operations are few and the SDK's own, hence this package.
//
// Behaviour kept from the transfer manager: the SDK computes a CRC32 of
// every request body (ChecksumAlgorithm CRC32 on PutObject,
// CreateMultipartUpload and UploadPart, the parts' checksums sent back in
// CompleteMultipartUpload); IfNoneMatch goes on the PutObject or the
// CompleteMultipartUpload, so nothing is ever written over an existing
// object; content type and metadata go with the object; and a multipart
// upload that fails is aborted with a fresh context (AbortTimeout), even
// when the caller's context is what failed. In addition the completion
// states the object's size (MpuObjectSize), which S3 checks.
//
// Memory: an upload holds at most Concurrency + 1 buffers of PartSize (the
// parts in flight and the one being filled). The pool is process-wide, by
// part size, and keeps up to the largest Concurrency + 1 any uploader of
// that size asked for, so a warm process lands export after export without
// allocating a part buffer.
package s3upload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// API is the part of the S3 client an Uploader calls (*s3.Client has it).
type API interface {
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(context.Context, *s3.UploadPartInput, ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(context.Context, *s3.CompleteMultipartUploadInput, ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

var _ API = (*s3.Client)(nil)

const (
	// MinPartSize is S3's smallest part (but for the last).
	MinPartSize int64 = 5 << 20
	// MaxParts is S3's most parts in one upload.
	MaxParts = 10000
	// DefaultAbortTimeout bounds the abort of a failed upload.
	DefaultAbortTimeout = 10 * time.Second
)

// Options configures an Uploader.
type Options struct {
	// PartSize is the size of each part but the last (at least
	// MinPartSize; default 8 MiB).
	PartSize int64
	// Concurrency is the parts uploaded at once (default 2).
	Concurrency int
	// AbortTimeout bounds the AbortMultipartUpload of a failed upload,
	// made with a context of its own (default DefaultAbortTimeout).
	AbortTimeout time.Duration
}

// Input is one object to write.
type Input struct {
	Bucket, Key string
	// Body is read once, to its end.
	Body io.Reader
	// ContentLength is the body's length if known, else -1. When known, a
	// body of exactly one part goes up as a PutObject.
	ContentLength int64
	// IfNoneMatch ("*") makes the write fail with S3's 412 when the key
	// is taken; on a multipart upload it goes on the completion.
	IfNoneMatch string
	ContentType string
	Metadata    map[string]string
}

// Output is what S3 answered for the object written.
type Output struct {
	ETag, VersionID string
	// Size is the bytes written.
	Size int64
	// UploadID is the multipart upload's, "" for a PutObject; Parts its
	// part count (1 for a PutObject).
	UploadID string
	Parts    int
}

// UploadError is a failed multipart upload: Err what failed, AbortErr the
// abort's failure if the abort failed too (the bucket's lifecycle rule for
// incomplete uploads is then the last resort). It unwraps to Err.
type UploadError struct {
	UploadID string
	Err      error
	AbortErr error
}

func (e *UploadError) Error() string {
	s := fmt.Sprintf("multipart upload %s: %v", e.UploadID, e.Err)
	if e.AbortErr != nil {
		s += fmt.Sprintf(" (and its abort failed: %v)", e.AbortErr)
	}
	return s
}

func (e *UploadError) Unwrap() error { return e.Err }

// Uploader writes objects. It is cheap to make (the buffers are in the
// process-wide pool) and safe for concurrent use.
type Uploader struct {
	api          API
	part         int64
	conc         int
	abortTimeout time.Duration
	pool         *pool
}

// New is an uploader over api. A PartSize below MinPartSize is raised to
// it.
func New(api API, o Options) *Uploader {
	if o.PartSize <= 0 {
		o.PartSize = 8 << 20
	}
	o.PartSize = max(o.PartSize, MinPartSize)
	if o.Concurrency <= 0 {
		o.Concurrency = 2
	}
	if o.AbortTimeout <= 0 {
		o.AbortTimeout = DefaultAbortTimeout
	}
	return &Uploader{api: api, part: o.PartSize, conc: o.Concurrency, abortTimeout: o.AbortTimeout,
		pool: poolFor(o.PartSize, o.Concurrency+1)}
}

// Upload writes in.Body to in.Bucket/in.Key. A body that fits in one part
// is one PutObject; a longer one is a multipart upload, aborted if anything
// fails. A failure of the body's reads is returned as is (wrapped in an
// *UploadError once a multipart upload was open), so the caller can tell
// its own source's errors.
func (u *Uploader) Upload(ctx context.Context, in *Input) (*Output, error) {
	buf := u.pool.get()
	n, err := fill(in.Body, buf)
	switch {
	case err == io.EOF || (err == nil && in.ContentLength == int64(n)):
		defer u.pool.put(buf)
		return u.single(ctx, in, buf[:n])
	case err != nil:
		u.pool.put(buf)
		return nil, err
	}
	return u.multipart(ctx, in, buf)
}

func (u *Uploader) single(ctx context.Context, in *Input, b []byte) (*Output, error) {
	body := newPartReader(b)
	out, err := u.api.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &in.Bucket, Key: &in.Key, Body: body, ContentLength: aws.Int64(int64(len(b))),
		IfNoneMatch: nzstring(in.IfNoneMatch), ContentType: nzstring(in.ContentType), Metadata: in.Metadata,
		ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32,
	})
	body.detach()
	if err != nil {
		return nil, err
	}
	return &Output{ETag: aws.ToString(out.ETag), VersionID: aws.ToString(out.VersionId), Size: int64(len(b)), Parts: 1}, nil
}

// multipart uploads first (a full part) and the rest of in.Body.
func (u *Uploader) multipart(ctx context.Context, in *Input, first []byte) (*Output, error) {
	created, err := u.api.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &in.Bucket, Key: &in.Key, ContentType: nzstring(in.ContentType), Metadata: in.Metadata,
		ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		u.pool.put(first)
		return nil, err
	}
	m := &upload{u: u, in: in, id: aws.ToString(created.UploadId), slots: make(chan struct{}, u.conc)}
	var pctx context.Context
	pctx, m.cancel = context.WithCancel(ctx)
	defer m.cancel()

	buf, n := first, len(first)
	var size int64
	for num := int32(1); ; num++ {
		if num > MaxParts {
			u.pool.put(buf)
			m.fail(fmt.Errorf("the body is longer than %d parts of %d bytes", MaxParts, u.part))
			break
		}
		select {
		case m.slots <- struct{}{}:
		case <-pctx.Done():
		}
		if m.failed() || pctx.Err() != nil {
			u.pool.put(buf)
			m.fail(pctx.Err())
			break
		}
		m.wg.Add(1)
		go m.send(pctx, num, buf, n)
		size += int64(n)
		if n < len(buf) { // the body ended in this part
			break
		}
		buf = u.pool.get()
		n, err = fill(in.Body, buf)
		if err == io.EOF && n == 0 { // it ended on a part boundary
			u.pool.put(buf)
			break
		}
		if err != nil && err != io.EOF {
			u.pool.put(buf)
			m.fail(err)
			break
		}
	}
	m.wg.Wait()
	if err := m.err(); err != nil {
		return nil, m.abort(ctx, err)
	}
	sort.Slice(m.parts, func(i, j int) bool { return *m.parts[i].PartNumber < *m.parts[j].PartNumber })
	out, err := u.api.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &in.Bucket, Key: &in.Key, UploadId: &m.id, IfNoneMatch: nzstring(in.IfNoneMatch),
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: m.parts}, MpuObjectSize: aws.Int64(size),
	})
	if err != nil {
		return nil, m.abort(ctx, err)
	}
	return &Output{ETag: aws.ToString(out.ETag), VersionID: aws.ToString(out.VersionId), Size: size, UploadID: m.id, Parts: len(m.parts)}, nil
}

// upload is one multipart upload in progress.
type upload struct {
	u      *Uploader
	in     *Input
	id     string
	slots  chan struct{} // a token per part in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	parts []s3types.CompletedPart
	first error
}

// send uploads part num (buf[:n]) and gives buf back to the pool.
func (m *upload) send(ctx context.Context, num int32, buf []byte, n int) {
	defer m.wg.Done()
	defer func() { <-m.slots }()
	defer m.u.pool.put(buf)
	body := newPartReader(buf[:n])
	out, err := m.u.api.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: &m.in.Bucket, Key: &m.in.Key, UploadId: &m.id, PartNumber: aws.Int32(num),
		Body: body, ContentLength: aws.Int64(int64(n)), ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32,
	})
	body.detach()
	if err != nil {
		m.fail(fmt.Errorf("part %d: %w", num, err))
		return
	}
	m.mu.Lock()
	m.parts = append(m.parts, s3types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag,
		ChecksumCRC32: out.ChecksumCRC32, ChecksumCRC32C: out.ChecksumCRC32C, ChecksumCRC64NVME: out.ChecksumCRC64NVME,
		ChecksumSHA1: out.ChecksumSHA1, ChecksumSHA256: out.ChecksumSHA256})
	m.mu.Unlock()
}

// fail records the upload's first error (a real one wins over the
// cancellation it caused) and stops the parts in flight.
func (m *upload) fail(err error) {
	if err == nil {
		return
	}
	m.mu.Lock()
	if m.first == nil || isCancel(m.first) && !isCancel(err) {
		m.first = err
	}
	m.mu.Unlock()
	m.cancel()
}

func (m *upload) failed() bool { return m.err() != nil }

func (m *upload) err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.first
}

// abort aborts the upload with a context of its own, which keeps ctx's
// values but not its cancellation or deadline.
func (m *upload) abort(ctx context.Context, cause error) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.u.abortTimeout)
	defer cancel()
	_, aerr := m.u.api.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &m.in.Bucket, Key: &m.in.Key, UploadId: &m.id})
	var nsu *s3types.NoSuchUpload
	var re *smithyhttp.ResponseError
	if errors.As(aerr, &nsu) || errors.As(aerr, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		aerr = nil // already gone
	}
	return &UploadError{UploadID: m.id, Err: cause, AbortErr: aerr}
}

// fill reads r into b until b is full (nil error) or r ends (io.EOF, with
// the bytes read before it) or fails (its error as is: unlike io.ReadFull,
// a reader's own io.ErrUnexpectedEOF, a body cut short, is never taken for
// its end).
func fill(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func isCancel(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func nzstring(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// partReader is a part's body handed to the SDK. Once the request is over
// it is detached: a read after that (a transport still writing a request
// the server answered early) gets an error instead of the bytes of the
// next part filled into the same buffer.
type partReader struct {
	mu sync.Mutex
	r  *bytes.Reader
}

var errDetached = errors.New("s3upload: part body read after its request ended")

func newPartReader(b []byte) *partReader { return &partReader{r: bytes.NewReader(b)} }

func (p *partReader) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.r == nil {
		return 0, errDetached
	}
	return p.r.Read(b)
}

// Seek lets the SDK learn the length, checksum the body and rewind it for
// a retry.
func (p *partReader) Seek(off int64, whence int) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.r == nil {
		return 0, errDetached
	}
	return p.r.Seek(off, whence)
}

func (p *partReader) detach() {
	p.mu.Lock()
	p.r = nil
	p.mu.Unlock()
}

// pool is the free part buffers of one size.
type pool struct {
	size int64
	mu   sync.Mutex
	free [][]byte
	keep int // most free buffers kept
	made int // buffers allocated, ever (get found none free)
}

var (
	poolsMu sync.Mutex
	pools   = map[int64]*pool{}
)

// poolFor is the process's pool of size-byte buffers, keeping at least
// keep of them.
func poolFor(size int64, keep int) *pool {
	poolsMu.Lock()
	defer poolsMu.Unlock()
	p := pools[size]
	if p == nil {
		p = &pool{size: size}
		pools[size] = p
	}
	p.mu.Lock()
	p.keep = max(p.keep, keep)
	p.mu.Unlock()
	return p
}

func (p *pool) get() []byte {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return b
	}
	p.made++
	p.mu.Unlock()
	return make([]byte, p.size)
}

// allocated is how many buffers the pool has allocated, ever.
func (p *pool) allocated() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.made
}

func (p *pool) put(b []byte) {
	p.mu.Lock()
	if len(p.free) < p.keep {
		p.free = append(p.free, b[:cap(b)])
	}
	p.mu.Unlock()
}
