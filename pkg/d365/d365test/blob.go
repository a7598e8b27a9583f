package d365test

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// The blob storage fake: what F&O's package API hands out as SAS URLs. No
// bearer token is needed or wanted here; the signature in the query is the
// credential.

type blob struct {
	path     string // on disk (uploaded blobs), or
	data     []byte // in memory (error files, exported packages)
	size     int64
	md5      []byte
	modified time.Time
	etag     string
}

// sasURL signs a URL for blob name with permissions perms ("r", "rw").
func (e *Emulator) sasURL(name, perms string) string {
	se := e.clock.Now().Add(e.opts.SASLifetime).UTC().Format(time.RFC3339)
	q := url.Values{}
	q.Set("sv", "2021-08-06")
	q.Set("sr", "b")
	q.Set("sp", perms)
	q.Set("se", se)
	q.Set("sig", e.sign(perms, se, name))
	return e.blobURL + "/dmf/" + escapeBlobName(name) + "?" + q.Encode()
}

func (e *Emulator) sign(perms, se, name string) string {
	mac := hmac.New(sha256.New, e.sasKey)
	fmt.Fprintf(mac, "%s\n%s\n/dmf/%s", perms, se, name)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func escapeBlobName(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// authFailedText is Azure Storage's message for a SAS it does not accept.
const authFailedText = "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature."

// checkSAS verifies the signature, expiry (on the fake clock) and
// permission of a blob request. On failure it has answered.
func (e *Emulator) checkSAS(w http.ResponseWriter, r *http.Request, name string, need string) bool {
	q := r.URL.Query()
	sp, se, sig := q.Get("sp"), q.Get("se"), q.Get("sig")
	if sig == "" || se == "" || !hmac.Equal([]byte(sig), []byte(e.sign(sp, se, name))) {
		writeBlobError(w, http.StatusForbidden, "AuthenticationFailed", authFailedText,
			"Signature did not match. String to sign used was "+sp)
		return false
	}
	exp, err := time.Parse(time.RFC3339, se)
	now := e.clock.Now()
	if err != nil || !now.Before(exp) {
		writeBlobError(w, http.StatusForbidden, "AuthenticationFailed", authFailedText,
			fmt.Sprintf("Signature not valid in the specified time frame: Start [] - Expiry [%s] - Current [%s]", se, now.Format(time.RFC1123)))
		return false
	}
	if !strings.Contains(sp, need) {
		writeBlobError(w, http.StatusForbidden, "AuthorizationPermissionMismatch",
			"This request is not authorized to perform this operation using this permission.", "")
		return false
	}
	return true
}

func blobName(seg []string) string { return strings.Join(seg[1:], "/") }

func (e *Emulator) blobPut(w http.ResponseWriter, r *http.Request, c *call) {
	name := blobName(c.seg)
	if !e.checkSAS(w, r, name, "w") {
		return
	}
	switch bt := r.Header.Get("x-ms-blob-type"); {
	case bt == "":
		writeBlobError(w, http.StatusBadRequest, "MissingRequiredHeader",
			"An HTTP header that's mandatory for this request is not specified.", "x-ms-blob-type")
		return
	case bt != "BlockBlob":
		writeBlobError(w, http.StatusBadRequest, "InvalidHeaderValue",
			"The value for one of the HTTP headers is not in the correct format.", "x-ms-blob-type")
		return
	}
	if r.ContentLength < 0 {
		writeBlobError(w, http.StatusLengthRequired, "MissingContentLengthHeader",
			"Content-Length header value must be specified.", "")
		return
	}
	path, n, sum, ok := e.storeBody(w, r, c)
	if !ok {
		return
	}
	b := &blob{path: path, size: n, md5: sum, modified: e.clock.Now(), etag: newETag()}
	e.mu.Lock()
	if old := e.st.blobs[name]; old != nil && old.path != "" {
		os.Remove(old.path)
	}
	e.st.blobs[name] = b
	// Azure: Put Blob discards the blob's uncommitted blocks.
	for _, s := range e.st.staged[name] {
		os.Remove(s.path)
	}
	delete(e.st.staged, name)
	e.mu.Unlock()
	h := w.Header()
	h.Set("ETag", b.etag)
	h.Set("Last-Modified", b.modified.Format(http.TimeFormat))
	h.Set("Content-MD5", base64.StdEncoding.EncodeToString(b.md5))
	h.Set("x-ms-request-id", newGUID())
	h.Set("x-ms-version", "2021-08-06")
	h.Set("x-ms-request-server-encrypted", "true")
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func (e *Emulator) blobGet(w http.ResponseWriter, r *http.Request, c *call) {
	name := blobName(c.seg)
	if !e.checkSAS(w, r, name, "r") {
		return
	}
	e.mu.Lock()
	b := e.liveBlobLocked(name)
	e.mu.Unlock()
	if b == nil {
		writeBlobError(w, http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.", "")
		return
	}
	var src io.Reader = bytes.NewReader(b.data)
	if b.path != "" {
		f, err := os.Open(b.path)
		if err != nil { // replaced by a concurrent PUT
			writeBlobError(w, http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.", "")
			return
		}
		defer f.Close()
		src = f
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(b.size, 10))
	h.Set("ETag", b.etag)
	h.Set("Last-Modified", b.modified.Format(http.TimeFormat))
	h.Set("x-ms-blob-type", "BlockBlob")
	h.Set("x-ms-version", "2021-08-06")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	streamBody(w, c.fault, func(dst io.Writer) error {
		_, err := io.Copy(dst, src)
		return err
	})
}

func blobUnsupported(w http.ResponseWriter, _ *http.Request, _ *call) {
	writeBlobError(w, http.StatusBadRequest, "UnsupportedHttpVerb",
		"The resource doesn't support specified Http Verb.", "")
}

// putBlobLocked stores an in-memory blob (error files, exported packages).
func (e *Emulator) putBlobLocked(name string, data []byte) {
	sum := md5.Sum(data)
	e.st.blobs[name] = &blob{data: data, size: int64(len(data)), md5: sum[:], modified: e.clock.Now(), etag: newETag()}
}

// liveBlobLocked is the blob stored under name, or nil when there is none
// or it is older than Options.BlobRetention (F&O has deleted it).
func (e *Emulator) liveBlobLocked(name string) *blob {
	b := e.st.blobs[name]
	if b == nil || e.opts.BlobRetention < 0 || e.clock.Now().Before(b.modified.Add(e.opts.BlobRetention)) {
		return b
	}
	return nil
}

// newETag makes an ETag in Azure's style ("0x8D...").
func newETag() string { return `"0x` + strings.ToUpper(newGUID()[:16]) + `"` }

// Blob returns the content of a stored blob (an uploaded package, say).
func (e *Emulator) Blob(name string) ([]byte, bool) {
	e.mu.Lock()
	b := e.st.blobs[name]
	e.mu.Unlock()
	if b == nil {
		return nil, false
	}
	if b.path == "" {
		return append([]byte(nil), b.data...), true
	}
	data, err := os.ReadFile(b.path)
	return data, err == nil
}

// BlobSize returns a stored blob's size without reading it, so a check
// of a large upload costs no memory.
func (e *Emulator) BlobSize(name string) (int64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	b := e.st.blobs[name]
	if b == nil {
		return 0, false
	}
	return b.size, true
}

// writeBlobError writes Azure Storage's XML error body.
func writeBlobError(w http.ResponseWriter, status int, code, msg, detail string) {
	var extra string
	switch code {
	case "AuthenticationFailed":
		extra = "<AuthenticationErrorDetail>" + xmlEscape(detail) + "</AuthenticationErrorDetail>"
	case "MissingRequiredHeader", "InvalidHeaderValue":
		extra = "<HeaderName>" + xmlEscape(detail) + "</HeaderName>"
	}
	body := fmt.Sprintf("\ufeff<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code><Message>%s\nRequestId:%s\nTime:%s</Message>%s</Error>",
		code, xmlEscape(msg), newGUID(), time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z"), extra)
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("x-ms-error-code", code)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func xmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '"':
			b.WriteString("&quot;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339, s) }
