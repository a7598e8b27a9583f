package s3fake

// The server face: the store served over TLS on 127.0.0.1 as the slice of
// the S3 REST API the functions use (path-style), so the real SDK client
// runs its real code path (signing, aws-chunked bodies with trailing
// checksums, response checksum validation, retries, XML) at sizes moto
// cannot hold: generated objects of any size, multipart uploads counted and
// dropped. Not S3: no ACLs, no encryption, one current version per key,
// Range only as "bytes=N-".

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// smallLimit is the largest PutObject body the server keeps; the bytes of
// larger ones are counted and dropped, as multipart parts are.
const smallLimit = 4 << 20

// ServerOptions configures NewServer.
type ServerOptions struct {
	// NoChecksums leaves out the CRC64NVME that S3 returns when a GET asks
	// for it, so the client has nothing to validate (to measure what the
	// validation costs).
	NoChecksums bool
}

// Server is the store (versioned: every write gets a version ID) and its
// HTTP face. It counts requests by operation.
type Server struct {
	*S3
	srv       *httptest.Server
	pool      *x509.CertPool
	checksums bool
	sunk      atomic.Int64

	opsMu   sync.Mutex
	ops     map[string]int
	uploads map[string]*upload // by upload ID
}

// upload is a multipart upload in progress: the size of each part.
type upload struct {
	parts map[int]int64
}

// NewServer starts a server on an empty store; it stops with tb.
func NewServer(tb testing.TB, opt ServerOptions) *Server {
	tb.Helper()
	s := &Server{S3: New(), checksums: !opt.NoChecksums, ops: map[string]int{}, uploads: map[string]*upload{}}
	s.versioned = true
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.StartTLS()
	tb.Cleanup(s.srv.Close)
	s.pool = x509.NewCertPool()
	s.pool.AddCert(s.srv.Certificate())
	return s
}

// URL is the endpoint (https://127.0.0.1:port).
func (s *Server) URL() string { return s.srv.URL }

// HTTPClient is a plain client trusting the server's certificate.
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12},
	}}
}

// Client is the real SDK S3 client pointed at the server, configured as
// the functions configure theirs (config.LoadDefaultConfig, as
// internal/shared/awsenv does, so request checksums and response
// validation are "when supported"), plus path-style addressing, static
// credentials and an HTTP client trusting the server's certificate.
func (s *Server) Client(tb testing.TB) *s3.Client {
	tb.Helper()
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.Proxy = nil
		t.TLSClientConfig = &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12}
	})
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("s3fake", "s3fake", "")),
		config.WithHTTPClient(hc),
		config.WithBaseEndpoint(s.srv.URL),
	)
	if err != nil {
		tb.Fatalf("aws config: %v", err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = true
		// Without checksums the SDK would log a line per GET saying it
		// validates nothing.
		o.DisableLogOutputChecksumValidationSkipped = !s.checksums
	})
}

// Ops is a copy of the request counts by operation.
func (s *Server) Ops() map[string]int {
	s.opsMu.Lock()
	defer s.opsMu.Unlock()
	out := make(map[string]int, len(s.ops))
	for k, v := range s.ops {
		out[k] = v
	}
	return out
}

// Requests is the number of requests served.
func (s *Server) Requests() int {
	n := 0
	for _, v := range s.Ops() {
		n += v
	}
	return n
}

// Sunk is the number of bytes received and dropped: multipart parts and
// PutObject bodies over 4 MiB.
func (s *Server) Sunk() int64 { return s.sunk.Load() }

func (s *Server) count(op string) {
	s.opsMu.Lock()
	s.ops[op]++
	s.opsMu.Unlock()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	op := operation(r, key, q)
	s.count(op)
	var err error
	switch op {
	case "ListObjectsV2":
		s.serveList(w, bucket, q)
	case "ListObjectVersions":
		s.serveListVersions(w, bucket, q)
	case "CreateMultipartUpload":
		s.serveCreateUpload(w, bucket, key)
	case "UploadPart":
		err = s.serveUploadPart(w, r, q)
	case "CompleteMultipartUpload":
		err = s.serveCompleteUpload(w, r, bucket, key, q.Get("uploadId"))
	case "AbortMultipartUpload":
		s.opsMu.Lock()
		delete(s.uploads, q.Get("uploadId"))
		s.opsMu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case "CopyObject":
		err = s.serveCopy(w, r, bucket, key)
	case "PutObject":
		err = s.servePut(w, r, bucket, key)
	case "GetObject", "HeadObject":
		err = s.serveGet(w, r, bucket, key, q)
	case "DeleteObject":
		err = s.remove(bucket, key, q.Get("versionId"), r.Header.Get("If-Match"))
		if err == nil {
			w.WriteHeader(http.StatusNoContent)
		}
	default:
		err = &apiError{http.StatusNotImplemented, "NotImplemented", "s3fake does not do " + r.Method + " " + r.URL.String()}
	}
	if err != nil {
		writeError(w, r, err)
	}
}

// operation is the S3 operation a request is.
func operation(r *http.Request, key string, q url.Values) string {
	switch {
	case key == "" && r.Method == http.MethodGet && q.Get("list-type") == "2":
		return "ListObjectsV2"
	case key == "" && r.Method == http.MethodGet && q.Has("versions"):
		return "ListObjectVersions"
	case key == "":
		return "unsupported"
	case r.Method == http.MethodPost && q.Has("uploads"):
		return "CreateMultipartUpload"
	case r.Method == http.MethodPut && q.Has("uploadId"):
		return "UploadPart"
	case r.Method == http.MethodPost && q.Has("uploadId"):
		return "CompleteMultipartUpload"
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		return "AbortMultipartUpload"
	case r.Method == http.MethodPut && r.Header.Get("x-amz-copy-source") != "":
		return "CopyObject"
	case r.Method == http.MethodPut:
		return "PutObject"
	case r.Method == http.MethodGet:
		return "GetObject"
	case r.Method == http.MethodHead:
		return "HeadObject"
	case r.Method == http.MethodDelete:
		return "DeleteObject"
	}
	return "unsupported"
}

func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *apiError
	if !errors.As(err, &e) {
		e = &apiError{http.StatusBadRequest, "IncompleteBody", err.Error()}
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(e.status)
	if r.Method == http.MethodHead {
		return
	}
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>s3fake</RequestId></Error>`,
		e.code, xmlText(e.msg))
}

func writeXML(w http.ResponseWriter, format string, args ...any) {
	w.Header().Set("Content-Type", "application/xml")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+format, args...)
}

func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

const xmlTime = "2006-01-02T15:04:05.000Z"

// metaHeaders is the x-amz-meta-* headers of a request, keys lower case.
func metaHeaders(h http.Header) map[string]string {
	meta := map[string]string{}
	for k, v := range h {
		if m, ok := strings.CutPrefix(strings.ToLower(k), "x-amz-meta-"); ok && len(v) > 0 {
			meta[m] = v[0]
		}
	}
	return meta
}

func (s *Server) serveGet(w http.ResponseWriter, r *http.Request, bucket, key string, q url.Values) error {
	o, err := s.read(bucket, key, q.Get("versionId"), r.Header.Get("If-Match"))
	if err != nil {
		return err
	}
	off, n, err := byteRange(r.Header.Get("Range"), o.size)
	if err != nil {
		return err
	}
	var body io.Reader
	if r.Method == http.MethodGet {
		if body, err = o.open(off); err != nil {
			return err
		}
		if n < o.size-off {
			body = io.LimitReader(body, n)
		}
	}
	h := w.Header()
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	h.Set("ETag", o.etag)
	h.Set("Last-Modified", o.modified.Format(http.TimeFormat))
	h.Set("x-amz-version-id", o.version)
	h.Set("Accept-Ranges", "bytes")
	if o.ctype != "" {
		h.Set("Content-Type", o.ctype)
	}
	for k, v := range o.Meta {
		h.Set("x-amz-meta-"+k, v)
	}
	status := http.StatusOK
	if r.Header.Get("Range") != "" {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, o.size))
	} else if strings.EqualFold(r.Header.Get("x-amz-checksum-mode"), "ENABLED") {
		// Computed only when asked for: a kept object's CRC is a pass
		// over all of it.
		if crc := s.checksum(o); crc != "" {
			h.Set("x-amz-checksum-crc64nvme", crc)
			h.Set("x-amz-checksum-type", "FULL_OBJECT")
		}
	}
	w.WriteHeader(status)
	if body != nil {
		io.Copy(w, body)
	}
	return nil
}

// checksum is the full-object CRC64NVME S3 would return for o (as for an
// object uploaded with default integrity protection), "" if unknown or
// turned off.
func (s *Server) checksum(o *Object) string {
	switch {
	case !s.checksums:
		return ""
	case o.gen != nil:
		return o.crc
	case o.kept():
		return crcString(crc64.Checksum(o.Body, crcTable))
	}
	return ""
}

var bufReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// body is the request's payload, aws-chunked framing decoded (the SDK
// sends bodies over TLS that way, with a trailing checksum). Call done
// when finished with it.
func body(r *http.Request) (rd io.Reader, done func()) {
	if strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") ||
		strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
		br := bufReaders.Get().(*bufio.Reader)
		br.Reset(r.Body)
		return &chunkedReader{r: br}, func() { br.Reset(nil); bufReaders.Put(br) }
	}
	return r.Body, func() {}
}

// chunkedReader decodes aws-chunked: "<hex size>[;chunk-signature=...]\r\n
// <data>\r\n" ... "0\r\n" trailers "\r\n".
type chunkedReader struct {
	r    *bufio.Reader
	left int64
	done bool
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	for c.left == 0 {
		if c.done {
			return 0, io.EOF
		}
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("aws-chunked: %w", err)
		}
		line = strings.TrimSpace(line)
		if line == "" { // the CRLF after a chunk's data
			continue
		}
		sz, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(sz, 16, 64)
		if err != nil {
			return 0, fmt.Errorf("aws-chunked: bad chunk size %q", line)
		}
		if n == 0 { // trailers up to an empty line
			for {
				t, err := c.r.ReadString('\n')
				if err != nil || strings.TrimSpace(t) == "" {
					break
				}
			}
			c.done = true
			return 0, io.EOF
		}
		c.left = n
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err == io.EOF && c.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (s *Server) servePut(w http.ResponseWriter, r *http.Request, bucket, key string) error {
	ifNone := r.Header.Get("If-None-Match") == "*"
	if _, exists := s.Get(bucket, key); exists && ifNone {
		io.Copy(io.Discard, r.Body)
		return errPrecondition
	}
	in, done := body(r)
	defer done()
	b, err := io.ReadAll(io.LimitReader(in, smallLimit+1))
	if err != nil {
		return err
	}
	o := &Object{Body: b, size: int64(len(b)), Meta: metaHeaders(r.Header), ctype: r.Header.Get("Content-Type")}
	if len(b) > smallLimit {
		n, err := io.Copy(io.Discard, in)
		if err != nil {
			return err
		}
		s.sunk.Add(int64(len(b)) + n)
		o.Body, o.size = nil, int64(len(b))+n
	}
	if err := s.write(bucket, key, o, ifNone, r.Header.Get("If-Match")); err != nil {
		return err
	}
	w.Header().Set("ETag", o.etag)
	w.Header().Set("x-amz-version-id", o.version)
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) serveCopy(w http.ResponseWriter, r *http.Request, bucket, key string) error {
	c, err := s.copyObject(r.Header.Get("x-amz-copy-source"), r.Header.Get("x-amz-copy-source-if-match"), bucket, key,
		strings.EqualFold(r.Header.Get("x-amz-metadata-directive"), "REPLACE"), metaHeaders(r.Header), r.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	w.Header().Set("x-amz-version-id", c.version)
	writeXML(w, `<CopyObjectResult><LastModified>%s</LastModified><ETag>%s</ETag></CopyObjectResult>`,
		c.modified.Format(xmlTime), xmlText(c.etag))
	return nil
}

func (s *Server) serveCreateUpload(w http.ResponseWriter, bucket, key string) {
	id := fmt.Sprintf("upload-%d", s.seq.Add(1))
	s.opsMu.Lock()
	s.uploads[id] = &upload{parts: map[int]int64{}}
	s.opsMu.Unlock()
	writeXML(w, `<InitiateMultipartUploadResult><Bucket>%s</Bucket><Key>%s</Key><UploadId>%s</UploadId></InitiateMultipartUploadResult>`,
		xmlText(bucket), xmlText(key), id)
}

var errNoSuchUpload = &apiError{http.StatusNotFound, "NoSuchUpload", "The specified upload does not exist."}

func (s *Server) serveUploadPart(w http.ResponseWriter, r *http.Request, q url.Values) error {
	in, done := body(r)
	n, err := io.Copy(io.Discard, in)
	done()
	if err != nil {
		return err
	}
	s.sunk.Add(n)
	part, _ := strconv.Atoi(q.Get("partNumber"))
	s.opsMu.Lock()
	u := s.uploads[q.Get("uploadId")]
	if u != nil {
		u.parts[part] = n
	}
	s.opsMu.Unlock()
	if u == nil {
		return errNoSuchUpload
	}
	w.Header().Set("ETag", fmt.Sprintf(`"part-%d-%d"`, part, n))
	w.WriteHeader(http.StatusOK)
	return nil
}

// serveCompleteUpload stores an object that has the parts' total size and no
// bytes.
func (s *Server) serveCompleteUpload(w http.ResponseWriter, r *http.Request, bucket, key, id string) error {
	io.Copy(io.Discard, r.Body)
	s.opsMu.Lock()
	u := s.uploads[id]
	var size int64
	if u != nil {
		for _, n := range u.parts {
			size += n
		}
	}
	s.opsMu.Unlock()
	if u == nil {
		return errNoSuchUpload
	}
	o := &Object{size: size, etag: fmt.Sprintf(`"%032x-%d"`, s.seq.Add(1), len(u.parts))}
	if err := s.write(bucket, key, o, r.Header.Get("If-None-Match") == "*", r.Header.Get("If-Match")); err != nil {
		return err
	}
	s.opsMu.Lock()
	delete(s.uploads, id)
	s.opsMu.Unlock()
	w.Header().Set("x-amz-version-id", o.version)
	writeXML(w, `<CompleteMultipartUploadResult><Location>%s/%s/%s</Location><Bucket>%s</Bucket><Key>%s</Key><ETag>%s</ETag></CompleteMultipartUploadResult>`,
		s.srv.URL, xmlText(bucket), xmlText(key), xmlText(bucket), xmlText(key), xmlText(o.etag))
	return nil
}

// serveList answers ListObjectsV2 (prefix, start-after, max-keys,
// continuation-token); the continuation token is the last key listed,
// base64.
func (s *Server) serveList(w http.ResponseWriter, bucket string, q url.Values) {
	prefix, startAfter, token := q.Get("prefix"), q.Get("start-after"), q.Get("continuation-token")
	after := startAfter
	if b, err := base64.RawURLEncoding.DecodeString(token); err == nil && token != "" {
		after = max(after, string(b))
	}
	maxKeys := 1000
	if v, err := strconv.Atoi(q.Get("max-keys")); err == nil && v >= 0 && v < 1000 {
		maxKeys = v
	}
	page, more := s.list(bucket, prefix, after, maxKeys)
	var b strings.Builder
	fmt.Fprintf(&b, `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>%s</Name><Prefix>%s</Prefix>`+
		`<KeyCount>%d</KeyCount><MaxKeys>%d</MaxKeys><IsTruncated>%t</IsTruncated>`,
		xmlText(bucket), xmlText(prefix), len(page), maxKeys, more)
	if token != "" {
		fmt.Fprintf(&b, "<ContinuationToken>%s</ContinuationToken>", xmlText(token))
	}
	if startAfter != "" {
		fmt.Fprintf(&b, "<StartAfter>%s</StartAfter>", xmlText(startAfter))
	}
	for _, e := range page {
		fmt.Fprintf(&b, "<Contents><Key>%s</Key><LastModified>%s</LastModified><ETag>%s</ETag><Size>%d</Size><StorageClass>STANDARD</StorageClass></Contents>",
			xmlText(e.key), e.o.modified.Format(xmlTime), xmlText(e.o.etag), e.o.size)
	}
	if more && len(page) > 0 {
		fmt.Fprintf(&b, "<NextContinuationToken>%s</NextContinuationToken>", base64.RawURLEncoding.EncodeToString([]byte(page[len(page)-1].key)))
	}
	b.WriteString("</ListBucketResult>")
	writeXML(w, "%s", b.String())
}

// serveListVersions lists the current version of each key (the store keeps
// one), max-keys (at most 1,000) a page from key-marker on; with
// encoding-type=url the keys are URL-encoded, as S3 does.
func (s *Server) serveListVersions(w http.ResponseWriter, bucket string, q url.Values) {
	prefix, marker := q.Get("prefix"), q.Get("key-marker")
	maxKeys := 1000
	if v, err := strconv.Atoi(q.Get("max-keys")); err == nil && v > 0 && v < 1000 {
		maxKeys = v
	}
	enc := func(k string) string { return k }
	if q.Get("encoding-type") == "url" {
		enc = func(k string) string { return strings.ReplaceAll(url.QueryEscape(k), "%2F", "/") }
	}
	page, more := s.list(bucket, prefix, marker, maxKeys)
	var b strings.Builder
	fmt.Fprintf(&b, `<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>%s</Name><Prefix>%s</Prefix>`+
		`<KeyMarker>%s</KeyMarker><MaxKeys>%d</MaxKeys><IsTruncated>%t</IsTruncated>`,
		xmlText(bucket), xmlText(enc(prefix)), xmlText(enc(marker)), maxKeys, more)
	if q.Get("encoding-type") == "url" {
		b.WriteString("<EncodingType>url</EncodingType>")
	}
	for _, e := range page {
		v := e.o.version
		if v == "" {
			v = "null"
		}
		fmt.Fprintf(&b, "<Version><Key>%s</Key><VersionId>%s</VersionId><IsLatest>true</IsLatest><LastModified>%s</LastModified>"+
			"<ETag>%s</ETag><Size>%d</Size><StorageClass>STANDARD</StorageClass></Version>",
			xmlText(enc(e.key)), xmlText(v), e.o.modified.Format(xmlTime), xmlText(e.o.etag), e.o.size)
	}
	if more && len(page) > 0 {
		fmt.Fprintf(&b, "<NextKeyMarker>%s</NextKeyMarker><NextVersionIdMarker>null</NextVersionIdMarker>", xmlText(enc(page[len(page)-1].key)))
	}
	b.WriteString("</ListVersionsResult>")
	writeXML(w, "%s", b.String())
}
