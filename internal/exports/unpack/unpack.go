// Package unpack writes the entity data files of a DMF data package (a zip
// already in S3) beside it, named by the package's Manifest.xml. The zip is
// read back from S3 through an io.ReaderAt over ranged GETs and each entry
// is streamed to S3 in parts (internal/exports/s3upload, buffers pooled
// across uploads): nothing goes to /tmp and no file is held whole in memory.
package unpack

import (
	"archive/zip"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"path"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/fno-bridge/s3-fno/internal/exports/s3upload"
)

// Uploader writes one object from a stream.
type Uploader interface {
	Upload(ctx context.Context, in *s3upload.Input) (*s3upload.Output, error)
}

var _ Uploader = (*s3upload.Uploader)(nil)

// Target is where entity files go: Prefix + the file's name in the zip.
type Target struct {
	Bucket, Prefix string
	// Metadata is added to every entity file, with "entity-name" (the DMF
	// label from the manifest).
	Metadata map[string]string
}

// File is one entity file written (or found already written).
type File struct {
	Name       string // name in the zip
	EntityName string // manifest label, "" if the manifest does not name it
	Key        string
	Size       int64
	Existed    bool // the key was already taken (an earlier run wrote it)
}

// Result is what Package did.
type Result struct {
	Files []File
	// Unlisted are zip entries the manifest does not name; they are
	// written too, without an entity name.
	Unlisted []string
	// Missing are manifest data files absent from the zip.
	Missing []string
	// Refused are entries with unsafe names (absolute, "..") not written.
	Refused []string
}

// FormatError means the object is not a usable data package (not a zip,
// no Manifest.xml, a corrupt entry): trying again will not help.
type FormatError struct{ Err error }

func (e *FormatError) Error() string { return "not a usable data package: " + e.Err.Error() }
func (e *FormatError) Unwrap() error { return e.Err }

// Skipped package files: the manifest and header describe the package and
// are not entity data.
func skipped(name string) bool {
	n := strings.ToLower(name)
	return n == "manifest.xml" || n == "packageheader.xml"
}

// Package writes each entity data file of the zip src to dst. Entries
// already present (an earlier, interrupted run) are left as they are, so
// Package can be repeated. Only one entry is in flight at a time.
func Package(ctx context.Context, s3c Reader, up Uploader, src Source, dst Target) (*Result, error) {
	ra := NewReaderAt(ctx, s3c, src)
	defer ra.Close()
	zr, err := zip.NewReader(ra, src.Size)
	if errors.Is(err, zip.ErrInsecurePath) && zr != nil {
		err = nil // such names are refused one by one below
	}
	if err != nil {
		return nil, contentError(fmt.Errorf("open zip s3://%s/%s: %w", src.Bucket, src.Key, err))
	}
	var manifest *zip.File
	for _, f := range zr.File {
		if strings.EqualFold(f.Name, "Manifest.xml") {
			manifest = f
			break
		}
	}
	if manifest == nil {
		return nil, &FormatError{fmt.Errorf("s3://%s/%s has no Manifest.xml at its root", src.Bucket, src.Key)}
	}
	mr, err := manifest.Open()
	if err != nil {
		return nil, contentError(fmt.Errorf("open Manifest.xml: %w", err))
	}
	entities, err := ReadManifest(mr)
	mr.Close()
	if err != nil {
		if isSourceError(err) {
			return nil, err
		}
		return nil, &FormatError{err}
	}
	labels := map[string]string{} // lowercased file name -> entity label
	for _, e := range entities {
		if e.InputFilePath != "" {
			labels[strings.ToLower(fileName(e.InputFilePath))] = e.EntityName
		}
	}

	res := &Result{}
	seen := map[string]bool{}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") || skipped(f.Name) {
			continue
		}
		rel, ok := safeName(f.Name)
		if !ok {
			res.Refused = append(res.Refused, f.Name)
			continue
		}
		label, listed := labels[strings.ToLower(path.Base(rel))]
		seen[strings.ToLower(path.Base(rel))] = true
		if !listed {
			res.Unlisted = append(res.Unlisted, f.Name)
		}
		file, err := writeEntry(ctx, s3c, up, f, rel, label, dst)
		if err != nil {
			return res, classify(fmt.Errorf("entry %q: %w", f.Name, err))
		}
		res.Files = append(res.Files, file)
	}
	for _, e := range entities {
		if n := fileName(e.InputFilePath); e.InputFilePath != "" && !seen[strings.ToLower(n)] {
			res.Missing = append(res.Missing, n)
		}
	}
	return res, nil
}

// Reader is what unpacking reads: the package (ranged GETs) and, before
// each entry, whether it is written already.
type Reader interface {
	Getter
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
}

// writeEntry streams one zip entry to dst.Prefix + rel. An entry already
// there (written by an earlier attempt that ran out of time) is not
// inflated and uploaded again, so a retry goes on where the last one
// stopped instead of redoing every entry before it; the upload's
// If-None-Match still guards a key written in between.
func writeEntry(ctx context.Context, s3c Reader, up Uploader, f *zip.File, rel, label string, dst Target) (File, error) {
	key := dst.Prefix + rel
	out := File{Name: f.Name, EntityName: label, Key: key, Size: int64(f.UncompressedSize64)}
	if _, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &dst.Bucket, Key: &key}); err == nil {
		out.Existed = true
		return out, nil
	}
	zrc, err := f.Open()
	if err != nil {
		return out, contentError(err)
	}
	defer zrc.Close()
	rc := entryReader{zrc}
	meta := make(map[string]string, len(dst.Metadata)+1)
	for k, v := range dst.Metadata {
		meta[k] = v
	}
	if label != "" {
		meta["entity-name"] = MetaValue(label)
	}
	ct := mime.TypeByExtension(path.Ext(rel))
	if ct == "" {
		ct = "application/octet-stream"
	}
	_, err = up.Upload(ctx, &s3upload.Input{
		Bucket: dst.Bucket, Key: key, Body: rc, ContentLength: int64(f.UncompressedSize64),
		IfNoneMatch: "*", ContentType: ct, Metadata: meta,
	})
	if err != nil {
		if preconditionFailed(err) {
			out.Existed = true
			return out, nil
		}
		return out, err
	}
	return out, nil
}

// safeName cleans a zip entry name into a relative key suffix, refusing
// absolute names and ones that climb out with "..".
func safeName(name string) (string, bool) {
	n := strings.ReplaceAll(name, `\`, "/")
	if strings.HasPrefix(n, "/") || strings.ContainsAny(n, "\x00") {
		return "", false
	}
	c := path.Clean(n)
	if c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", false
	}
	for _, r := range c {
		if r < 0x20 || r == 0x7f {
			return "", false
		}
	}
	return c, true
}

// contentError marks a failure to read the zip (its directory, the
// manifest, an entry) as the package's fault (FormatError), unless reading
// the source object is what failed. A truncated directory or entry, or one
// whose header claims more bytes than it holds, ends in io.ErrUnexpectedEOF
// on every attempt, which must not pass for a transient failure.
func contentError(err error) error {
	if err == nil || err == io.EOF || isSourceError(err) {
		return err
	}
	var fe *FormatError
	if errors.As(err, &fe) {
		return err
	}
	return &FormatError{err}
}

// entryReader is an open zip entry whose read failures are marked with
// contentError, so they stay recognisable through the uploader's wrapping.
type entryReader struct{ io.ReadCloser }

func (e entryReader) Read(p []byte) (int, error) {
	n, err := e.ReadCloser.Read(p)
	return n, contentError(err)
}

// classify marks errors about the package's content as FormatError; source
// read failures and upload failures stay as they are (worth a retry).
func classify(err error) error {
	if err == nil || isSourceError(err) {
		return err
	}
	var ce flate.CorruptInputError
	if errors.Is(err, zip.ErrFormat) || errors.Is(err, zip.ErrAlgorithm) || errors.Is(err, zip.ErrChecksum) ||
		errors.As(err, &ce) {
		return &FormatError{err}
	}
	return err
}

func preconditionFailed(err error) bool {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == 412 {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "PreconditionFailed"
}

// MetaValue makes a value safe for S3 user metadata (sent as an HTTP
// header): printable ASCII stays as is; otherwise the value is
// percent-encoded byte by byte (UTF-8), "%" included.
func MetaValue(s string) string {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '%' {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
