package d365

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// BlobWriteURL is GetAzureWriteUrl's answer: where to PUT a package.
type BlobWriteURL struct {
	BlobID  string `json:"BlobId"`
	BlobURL string `json:"BlobUrl"`
}

// GetAzureWriteURL calls GetAzureWriteUrl. Its value is a JSON string that
// holds another JSON document; both layers are read here.
func (c *Client) GetAzureWriteURL(ctx context.Context, uniqueFileName string) (*BlobWriteURL, error) {
	v, raw, err := c.action(ctx, "GetAzureWriteUrl", map[string]string{"uniqueFileName": uniqueFileName}, retrySafe)
	if err != nil {
		if raw != nil { // a 2xx answer that is not an OData value: it may hold the SAS
			return nil, redactedAnswer("GetAzureWriteUrl", len(raw))
		}
		return nil, err
	}
	inner := []byte(v)
	if s, err := stringValue(v); err == nil {
		inner = []byte(s)
	}
	var w BlobWriteURL
	if err := json.Unmarshal(inner, &w); err != nil || w.BlobURL == "" {
		// The value is not echoed: it may hold a SAS signature.
		return nil, fmt.Errorf("d365 GetAzureWriteUrl: the answer's value has no BlobUrl (%d bytes)", len(v))
	}
	return &w, nil
}

// UploadPackage PUTs a package to the SAS URL from GetAzureWriteURL as a
// block blob, without the bearer token (the SAS is the credential). If body
// is an io.ReadSeeker a failed attempt is repeated from the start.
func (c *Client) UploadPackage(ctx context.Context, blobURL string, body io.Reader, size int64) error {
	if err := checkBlobURL("blob-put", blobURL); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("d365 blob-put: the package size is required (blob storage refuses chunked uploads)")
	}
	seeker, rewindable := body.(io.ReadSeeker)
	var start int64
	if rewindable {
		var err error
		if start, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			return fmt.Errorf("d365 blob-put: %w", err)
		}
	}
	mode := retrySafe
	if !rewindable {
		mode = retryUnsent
	}
	first := true
	resp, err := c.send(ctx, request{
		op: "blob-put", method: http.MethodPut, url: blobURL, mode: mode,
		header: http.Header{"x-ms-blob-type": {"BlockBlob"}, "Content-Type": {"application/octet-stream"}},
		body: func(context.Context) (io.ReadCloser, int64, error) {
			if !first {
				if !rewindable {
					return nil, 0, errNoReopen
				}
				if _, err := seeker.Seek(start, io.SeekStart); err != nil {
					return nil, 0, err
				}
			}
			first = false
			return io.NopCloser(body), size, nil
		},
	})
	if err != nil {
		return err
	}
	return drainAndClose(resp)
}

// MaxBlocks is the most blocks a block blob may have (Azure's limit): a
// package of size bytes needs a block size of at least size/MaxBlocks.
const MaxBlocks = 50000

// UploadPackageBlocks uploads a package read from body to the SAS URL from
// GetAzureWriteURL without the bearer token. size is its length, or -1 when
// it is not known beforehand (a package built while it streams): body is
// then read to its end. A package that fits in one block goes up in one Put
// Blob; a larger one in blocks of blockSize (Put Block), committed in order
// by one Put Block List, so only one block is ever held in memory. A block
// that fails is sent again on its own. Nothing is committed unless every
// byte of body was read: a body that fails or ends early (an S3 stream that
// broke, a checksum that did not match) leaves only uncommitted blocks,
// which blob storage discards. A SAS that has expired matches
// ErrSASRefused; body cannot be read again, so the caller starts over with
// a new URL.
func (c *Client) UploadPackageBlocks(ctx context.Context, blobURL string, body io.Reader, size, blockSize int64) error {
	if err := checkBlobURL("blob-put", blobURL); err != nil {
		return err
	}
	if size < -1 || blockSize <= 0 {
		return fmt.Errorf("d365 blob-put: the package size (or -1) and a block size are required")
	}
	if n := (size + blockSize - 1) / blockSize; size > 0 && n > MaxBlocks {
		return fmt.Errorf("d365 blob-put: %d bytes in blocks of %d would need %d blocks; blob storage allows %d", size, blockSize, n, MaxBlocks)
	}
	bufSize := blockSize
	if size >= 0 {
		bufSize = min(blockSize, size)
	}
	buf := make([]byte, bufSize)
	var ids []string
	var sent int64
	for {
		n, last, err := readBlock(body, buf, size, sent)
		if err != nil {
			of := ""
			if size >= 0 {
				of = fmt.Sprintf(" of %d", size)
			}
			return fmt.Errorf("d365 blob-put-block: read the package after %d%s bytes: %w", sent, of, err)
		}
		if len(ids) == 0 && last {
			return c.UploadPackage(ctx, blobURL, bytes.NewReader(buf[:n]), n)
		}
		if n > 0 {
			if len(ids) == MaxBlocks {
				return fmt.Errorf("d365 blob-put: the package is larger than %d blocks of %d bytes, which blob storage allows", MaxBlocks, blockSize)
			}
			id := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "block-%06d", len(ids)))
			if err := c.blobPut(ctx, "blob-put-block", withQuery(blobURL, "comp=block&blockid="+url.QueryEscape(id)), nil, buf[:n]); err != nil {
				return err
			}
			ids = append(ids, id)
			sent += n
		}
		if last {
			break
		}
	}
	var list bytes.Buffer
	list.WriteString(`<?xml version="1.0" encoding="utf-8"?><BlockList>`)
	for _, id := range ids {
		list.WriteString("<Latest>" + id + "</Latest>")
	}
	list.WriteString("</BlockList>")
	return c.blobPut(ctx, "blob-put-block-list", withQuery(blobURL, "comp=blocklist"),
		http.Header{"Content-Type": {"application/xml"}, "x-ms-blob-content-type": {"application/octet-stream"}}, list.Bytes())
}

// readBlock reads the next block of a package into buf: of a known size,
// exactly what is left up to len(buf); of an unknown size (-1), as much as
// buf holds, and last when body ended.
func readBlock(body io.Reader, buf []byte, size, sent int64) (n int64, last bool, err error) {
	if size >= 0 {
		n = min(int64(len(buf)), size-sent)
		if _, err := io.ReadFull(body, buf[:n]); err != nil {
			return 0, false, err
		}
		return n, sent+n == size, nil
	}
	m, err := io.ReadFull(body, buf)
	switch {
	case err == nil:
		return int64(m), false, nil
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return int64(m), true, nil
	}
	return 0, false, err
}

// withQuery adds q to a URL's query as it is written: the SAS's own
// parameters are not re-encoded.
func withQuery(u, q string) string {
	if strings.Contains(u, "?") {
		return u + "&" + q
	}
	return u + "?" + q
}

// blobPut PUTs a body held in memory to a blob URL (without the token),
// retried as any idempotent call.
func (c *Client) blobPut(ctx context.Context, op, u string, h http.Header, b []byte) error {
	resp, err := c.send(ctx, request{op: op, method: http.MethodPut, url: u, mode: retrySafe, header: h, body: bytesBody(b)})
	if err != nil {
		return err
	}
	return drainAndClose(resp)
}

// checkBlobURL checks a blob SAS URL before it is called. The URL is never
// echoed: its query holds the SAS signature.
func checkBlobURL(op, blobURL string) error {
	u, err := url.Parse(blobURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("d365 %s: bad blob URL", op)
	}
	if err := checkScheme(u); err != nil {
		return fmt.Errorf("d365 %s: %w", op, err)
	}
	return nil
}

// FetchBlob opens a blob SAS URL F&O handed out (error files, exported
// packages) without the bearer token.
func (c *Client) FetchBlob(ctx context.Context, blobURL string) (*Download, error) {
	if err := checkBlobURL("blob-get", blobURL); err != nil {
		return nil, err
	}
	resp, err := c.send(ctx, request{op: "blob-get", method: http.MethodGet, url: blobURL, mode: retrySafe})
	if err != nil {
		return nil, err
	}
	return &Download{Body: resp.Body, Size: resp.ContentLength}, nil
}

// ImportPackageRequest is ImportFromPackage's body.
type ImportPackageRequest struct {
	PackageURL        string `json:"packageUrl"`
	DefinitionGroupID string `json:"definitionGroupId"`
	ExecutionID       string `json:"executionId"` // empty: F&O makes one
	Execute           bool   `json:"execute"`
	Overwrite         bool   `json:"overwrite"` // must be false for composite entities
	LegalEntityID     string `json:"legalEntityId"`
}

// ImportFromPackage calls ImportFromPackage and returns the execution ID. It
// can take minutes (F&O unpacks the package first); give ctx a long deadline.
// It is never re-sent once it reached F&O.
func (c *Client) ImportFromPackage(ctx context.Context, in ImportPackageRequest) (string, error) {
	if in.ExecutionID == "" {
		// Name the execution ourselves (as Microsoft's Recurring
		// Integrations Scheduler does), so that it can still be followed if
		// the long call's answer is lost.
		in.ExecutionID = NewExecutionID(in.DefinitionGroupID, time.Now())
	}
	id, err := c.stringAction(ctx, "ImportFromPackage", in, retryUnsent)
	if err != nil {
		return in.ExecutionID, err
	}
	switch strings.Trim(strings.TrimSpace(id), "{}") {
	case "":
		// An empty value: the import runs under the ID that was sent, and
		// the caller needs that ID to follow it.
		return in.ExecutionID, nil
	case emptyGUID:
		return in.ExecutionID, fmt.Errorf("d365 ImportFromPackage: F&O answered the empty execution ID (the import did not start)")
	}
	return id, nil
}

// NewExecutionID makes an execution ID the way Microsoft's scheduler does:
// {definition group}-{yyyy-MM-dd_HH-mm-ss}-{random GUID}.
func NewExecutionID(definitionGroup string, t time.Time) string {
	var b [16]byte
	rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%s-%s-%x-%x-%x-%x-%x", definitionGroup, t.UTC().Format("2006-01-02_15-04-05"), b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// ExportPackageRequest is ExportToPackage's body.
type ExportPackageRequest struct {
	DefinitionGroupID string `json:"definitionGroupId"`
	PackageName       string `json:"packageName"`
	ExecutionID       string `json:"executionId"`
	ReExecute         bool   `json:"reExecute"`
	LegalEntityID     string `json:"legalEntityId"`
}

// ErrExportNotStarted: ExportToPackage answered the empty execution ID (or
// none): F&O did not start the export.
var ErrExportNotStarted = errors.New("d365 ExportToPackage: F&O answered the empty execution ID (the export did not start)")

// ExportToPackage starts an export and returns its execution ID. F&O's
// answer is read flat or nested ({"value":{"value":id}}); the empty GUID,
// which it answers when the export could not start, is
// ErrExportNotStarted. Give in.ExecutionID to follow the export by an ID
// chosen beforehand (NewExecutionID), even if the answer is lost; it is
// never re-sent once it reached F&O.
func (c *Client) ExportToPackage(ctx context.Context, in ExportPackageRequest) (string, error) {
	id, err := c.stringAction(ctx, "ExportToPackage", in, retryUnsent)
	if err != nil {
		return "", err
	}
	if id == "" || strings.Trim(id, "{}") == emptyGUID {
		return "", ErrExportNotStarted
	}
	return id, nil
}

// GetExportedPackageURL returns the exported package's SAS URL, or "" while
// the export is still running.
func (c *Client) GetExportedPackageURL(ctx context.Context, executionID string) (string, error) {
	return c.urlAction(ctx, "GetExportedPackageUrl", map[string]string{"executionId": executionID}, retrySafe)
}
