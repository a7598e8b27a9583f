package unpack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Getter is the part of the S3 client a ReaderAt needs.
type Getter interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Source is an S3 object to read. VersionID (or else ETag) pins the reads
// to one version of the object.
type Source struct {
	Bucket, Key string
	VersionID   string
	ETag        string
	Size        int64
}

// maxSkip is how far forward a read may be from the open stream's
// position and still be served by discarding bytes rather than a new GET.
const maxSkip = 256 << 10

// ReaderAt reads an S3 object at random offsets with ranged GETs, for
// archive/zip. It keeps one open-ended ranged GET and serves reads that
// continue it (or skip a little forward) from that stream, so reading a zip
// entry by entry costs about one GET plus a few for the central directory,
// and memory stays at the HTTP buffers: nothing is cached.
type ReaderAt struct {
	ctx context.Context
	s3  Getter
	src Source

	mu   sync.Mutex
	body io.ReadCloser
	pos  int64
	gets int
}

// NewReaderAt returns a ReaderAt over src; ctx bounds every GET. Close it
// when done.
func NewReaderAt(ctx context.Context, s3c Getter, src Source) *ReaderAt {
	return &ReaderAt{ctx: ctx, s3: s3c, src: src}
}

// SourceError is a failure to read the source object (as opposed to what
// it holds): worth trying again later.
type SourceError struct{ Err error }

func (e *SourceError) Error() string { return "read package: " + e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// ReadAt implements io.ReaderAt.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		// Not a SourceError: only a corrupt zip (an entry offset pointing
		// before the start) asks for it, and retrying cannot help.
		return 0, fmt.Errorf("negative offset %d", off)
	}
	if off >= r.src.Size {
		return 0, io.EOF
	}
	want := p
	if rem := r.src.Size - off; int64(len(want)) > rem {
		want = want[:rem]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for attempt := 0; n < len(want); attempt++ {
		if err := r.seek(off + int64(n)); err != nil {
			return n, err
		}
		m, err := io.ReadFull(r.body, want[n:])
		n += m
		r.pos += int64(m)
		if err != nil {
			r.closeBody()
			if attempt >= 2 || r.ctx.Err() != nil {
				return n, &SourceError{fmt.Errorf("s3://%s/%s at %d: %w", r.src.Bucket, r.src.Key, off+int64(n), err)}
			}
		}
	}
	if len(want) < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// seek positions the stream at off: by reading on, skipping a little, or
// opening a new ranged GET.
func (r *ReaderAt) seek(off int64) error {
	if r.body != nil && off > r.pos && off-r.pos <= maxSkip {
		if _, err := io.CopyN(io.Discard, r.body, off-r.pos); err != nil {
			r.closeBody()
		} else {
			r.pos = off
		}
	}
	if r.body != nil && off == r.pos {
		return nil
	}
	r.closeBody()
	in := &s3.GetObjectInput{
		Bucket: aws.String(r.src.Bucket), Key: aws.String(r.src.Key),
		Range: aws.String(fmt.Sprintf("bytes=%d-", off)),
	}
	switch {
	case r.src.VersionID != "" && r.src.VersionID != "null":
		in.VersionId = aws.String(r.src.VersionID)
	case r.src.ETag != "":
		in.IfMatch = aws.String(r.src.ETag)
	}
	r.gets++
	out, err := r.s3.GetObject(r.ctx, in)
	if err != nil {
		return &SourceError{fmt.Errorf("get s3://%s/%s range %d-: %w", r.src.Bucket, r.src.Key, off, err)}
	}
	r.body, r.pos = out.Body, off
	return nil
}

func (r *ReaderAt) closeBody() {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
}

// Gets is how many GETs were made so far.
func (r *ReaderAt) Gets() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gets
}

// Close releases the open stream, if any.
func (r *ReaderAt) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeBody()
	return nil
}

var _ io.ReaderAt = (*ReaderAt)(nil)

// isSourceError reports whether err came from reading the source object.
func isSourceError(err error) bool {
	var se *SourceError
	return errors.As(err, &se)
}
