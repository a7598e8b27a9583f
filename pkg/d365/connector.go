package d365

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// EnqueueRequest is one file (or data package) for a recurring import job.
type EnqueueRequest struct {
	ActivityID string // the recurring job's activity ID (a GUID)
	Entity     string // entity display name; required for File jobs, empty for Data package jobs
	Company    string // legal entity; optional
	// ExternalID is sent as x-ms-dyn-externalidentifier and echoed back by
	// jobstatus; use something that identifies the source file.
	ExternalID string
	// Body is streamed as is; Size is its exact length (-1 if unknown, sent
	// chunked). Nothing is buffered. A Body that is also an io.Closer is
	// closed once the first attempt is over, or as soon as ctx ends: that
	// frees a send stuck reading a stalled source.
	Body io.Reader
	Size int64
	// Reopen, if set, yields a fresh copy of the body. It is used only when
	// F&O certainly did not act on the first attempt (429, a failure
	// before the request went out, or a body cut off before its end).
	// Without it, no attempt is repeated.
	Reopen func(ctx context.Context) (io.ReadCloser, error)
}

// Enqueue streams a file to POST /api/connector/enqueue/{activityId} and
// returns F&O's message ID. Enqueue is never re-sent once its body may have
// reached F&O: the service has no de-duplication.
func (c *Client) Enqueue(ctx context.Context, in EnqueueRequest) (string, error) {
	activity, err := ActivityID(in.ActivityID)
	if err != nil {
		return "", fmt.Errorf("d365 enqueue: %w", err)
	}
	if in.Body == nil || in.Size == 0 {
		// F&O would take an empty file and fail it later; an unset Size
		// would silently send nothing.
		return "", fmt.Errorf("d365 enqueue: a body and its size (or -1 if unknown) are required; empty files are not sent")
	}
	q := url.Values{}
	if in.Entity != "" {
		q.Set("entity", in.Entity)
	}
	if in.Company != "" {
		q.Set("company", in.Company)
	}
	h := http.Header{"Content-Type": {"application/octet-stream"}}
	if in.ExternalID != "" {
		h.Set("x-ms-dyn-externalidentifier", in.ExternalID)
	}
	first := true
	resp, err := c.send(ctx, request{
		op: "enqueue", method: http.MethodPost, auth: true, mode: retryUnsent, header: h,
		url: c.endpoint("/api/connector/enqueue/"+activity, q),
		body: func(ctx context.Context) (io.ReadCloser, int64, error) {
			if first {
				first = false
				if rc, ok := in.Body.(io.ReadCloser); ok {
					return rc, in.Size, nil
				}
				return io.NopCloser(in.Body), in.Size, nil
			}
			if in.Reopen == nil {
				return nil, 0, errNoReopen
			}
			rc, err := in.Reopen(ctx)
			return rc, in.Size, err
		},
	})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	// From here on F&O may hold the file: an answer that is not F&O's
	// leaves it there without an ID we know.
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxIDAnswer+1))
	if err != nil {
		return "", unexpectedAnswer("enqueue", resp, raw, "the answer was cut off", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", unexpectedAnswer("enqueue", resp, raw, "F&O answers an accepted file with 200", nil)
	}
	if ct := resp.Header.Get("Content-Type"); !idContentType(ct) {
		return "", unexpectedAnswer("enqueue", resp, raw, "F&O answers with JSON, not this Content-Type", nil)
	}
	id, err := ParseMessageID(raw)
	if err != nil {
		return "", unexpectedAnswer("enqueue", resp, raw, err.Error(), nil)
	}
	return id, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// DequeuedFile is dequeue's answer. Raw keeps the answer as received, since
// the ack must echo it.
type DequeuedFile struct {
	CorrelationID            string  `json:"CorrelationId"`
	PopReceipt               string  `json:"PopReceipt"`
	DownloadLocation         *string `json:"DownloadLocation"`
	IsDownloadFileExist      *bool   `json:"IsDownLoadFileExist"`
	FileDownloadErrorMessage *string `json:"FileDownLoadErrorMessage"`
	LastDequeueDateTime      *string `json:"LastDequeueDateTime"`

	Raw json.RawMessage `json:"-"`
}

// HasFile reports whether the answer points at a file to download: a
// DownloadLocation is present and IsDownLoadFileExist is not false.
func (d *DequeuedFile) HasFile() bool {
	return d.DownloadLocation != nil && *d.DownloadLocation != "" &&
		(d.IsDownloadFileExist == nil || *d.IsDownloadFileExist)
}

// Redelivered reports whether F&O has handed this message out before.
func (d *DequeuedFile) Redelivered() bool {
	return d.LastDequeueDateTime != nil && *d.LastDequeueDateTime != ""
}

// Dequeue calls GET /api/connector/dequeue/{activityId}. It returns nil and
// no error when the queue is empty (204).
func (c *Client) Dequeue(ctx context.Context, activityID string) (*DequeuedFile, error) {
	activity, err := ActivityID(activityID)
	if err != nil {
		return nil, fmt.Errorf("d365 dequeue: %w", err)
	}
	resp, err := c.send(ctx, request{
		op: "dequeue", method: http.MethodGet, auth: true, mode: retrySafe,
		url: c.endpoint("/api/connector/dequeue/"+activity, nil),
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("d365 dequeue: read answer: %w", err)
	}
	return DecodeDequeue(resp.StatusCode, raw)
}

// DecodeDequeue reads a dequeue answer: nil for 204 or an empty body.
func DecodeDequeue(status int, raw []byte) (*DequeuedFile, error) {
	if status == http.StatusNoContent || len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	var d DequeuedFile
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("d365 dequeue: answer is not the expected JSON: %w", err)
	}
	if d.CorrelationID == "" {
		return nil, fmt.Errorf("d365 dequeue: answer has no CorrelationId: %s", snippet(raw, 200))
	}
	d.Raw = append(json.RawMessage(nil), raw...)
	return &d, nil
}

// Download is an open export body.
type Download struct {
	Body io.ReadCloser
	Size int64 // -1 when F&O did not say
	// FileName is the name from Content-Disposition, reduced to a safe base
	// name (no folders, no control or bidi characters), or "" when there is
	// none.
	FileName string
	// UnreadableDisposition is the raw Content-Disposition header (at most
	// 1 KiB) when it could not be parsed or tried to name a file, but no
	// usable name could be read from it, for the caller to log; "" otherwise.
	UnreadableDisposition string
}

// Download opens a DownloadLocation with the bearer token. F&O sometimes
// hands out http://host:80/...; a location on the configured host is
// rewritten to the configured scheme and port. A location on any other host
// is refused with ErrForeignHost before any token is fetched.
func (c *Client) Download(ctx context.Context, location string) (*Download, error) {
	u, err := c.ResolveDownloadLocation(location)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(ctx, request{op: "download", method: http.MethodGet, url: u, auth: true, mode: retrySafe})
	if err != nil {
		return nil, err
	}
	if htmlPage(resp.Header.Get("Content-Type")) && resp.Header.Get("Content-Disposition") == "" {
		// A sign-in or gateway page with status 200 (F&O's own answer
		// names the file it serves): landing it would replace the export,
		// which the acknowledgement then gives up.
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxSnippet))
		resp.Body.Close()
		return nil, unexpectedAnswer("download", resp, raw, "F&O serves an export as a file, never as an HTML page (a sign-in or gateway page)", nil)
	}
	d := &Download{Body: resp.Body, Size: resp.ContentLength}
	h := resp.Header.Get("Content-Disposition")
	name, unreadable := attachmentName(h)
	d.FileName = name
	if unreadable {
		d.UnreadableDisposition = rawDisposition(h)
	}
	return d, nil
}

// ResolveDownloadLocation checks a DownloadLocation and returns the URL to
// fetch: on the configured host, with the configured scheme and port.
func (c *Client) ResolveDownloadLocation(location string) (string, error) {
	if strings.TrimSpace(location) == "" {
		return "", fmt.Errorf("d365 download: %w", ErrNoDownloadLocation)
	}
	u, err := url.Parse(location)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("d365 download: DownloadLocation %q is not an absolute URL", truncate(location, 200))
	}
	if !strings.EqualFold(u.Hostname(), c.base.Hostname()) {
		return "", fmt.Errorf("d365 download: DownloadLocation host %q: %w", u.Hostname(), ErrForeignHost)
	}
	switch {
	case u.Scheme == c.base.Scheme && u.Port() == c.base.Port():
	case u.Scheme == "http" && (u.Port() == "" || u.Port() == "80"),
		u.Scheme == "https" && (u.Port() == "" || u.Port() == "443"):
		// The documented quirk: http://host:80 for an https environment.
	default:
		return "", fmt.Errorf("d365 download: DownloadLocation %s://%s: %w", u.Scheme, u.Host, ErrForeignHost)
	}
	// Always the configured scheme and host exactly, so that send's own
	// same-host check agrees even for "HOST:" (an empty port) or another
	// casing. User info is never wanted in a location that gets the bearer
	// token.
	u.Scheme, u.Host, u.User = c.base.Scheme, c.base.Host, nil
	return u.String(), nil
}

// Ack calls POST /api/connector/ack/{activityId} with the dequeue answer
// echoed as received.
func (c *Client) Ack(ctx context.Context, activityID string, d *DequeuedFile) error {
	if d == nil {
		return fmt.Errorf("d365 ack: nothing to acknowledge")
	}
	activity, err := ActivityID(activityID)
	if err != nil {
		return fmt.Errorf("d365 ack: %w", err)
	}
	body := []byte(d.Raw)
	if len(body) == 0 {
		var err error
		body, err = json.Marshal(map[string]any{
			"CorrelationId": d.CorrelationID, "PopReceipt": d.PopReceipt, "DownloadLocation": d.DownloadLocation,
		})
		if err != nil {
			return fmt.Errorf("d365 ack: %w", err)
		}
	}
	resp, err := c.send(ctx, request{
		op: "ack", method: http.MethodPost, auth: true, mode: retrySafe,
		url:    c.endpoint("/api/connector/ack/"+activity, nil),
		header: http.Header{"Content-Type": {"application/json"}},
		body:   bytesBody(body),
	})
	if err != nil {
		return err
	}
	return drainAndClose(resp)
}

// JobStatus is the legacy jobstatus answer.
type JobStatus struct {
	// DataJobStatus is nil when F&O does not know the job ID.
	DataJobStatus *struct {
		DataProject              string `json:"DataProject"`
		DataJobIdentifier        string `json:"DataJobIdentifier"`
		ExternalIdentifier       string `json:"ExternalIdentifier"`
		ExecutionIdentifier      string `json:"ExecutionIdentifier"`
		DataJobStartedDateTime   string `json:"DataJobStartedDateTime"`
		DataJobCompletedDateTime string `json:"DataJobCompletedDateTime"`
		DataJobState             int    `json:"DataJobState"`
	} `json:"DataJobStatus"`
	ExecutionLog    string            `json:"ExecutionLog"`
	ExecutionDetail []json.RawMessage `json:"ExecutionDetail"`
}

// JobStatus calls the undocumented GET /api/connector/jobstatus/{activityId}?jobId=.
func (c *Client) JobStatus(ctx context.Context, activityID, messageID string) (*JobStatus, error) {
	activity, err := ActivityID(activityID)
	if err != nil {
		return nil, fmt.Errorf("d365 jobstatus: %w", err)
	}
	resp, err := c.send(ctx, request{
		op: "jobstatus", method: http.MethodGet, auth: true, mode: retrySafe,
		url: c.endpoint("/api/connector/jobstatus/"+activity, url.Values{"jobId": {messageID}}),
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var js JobStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&js); err != nil {
		return nil, fmt.Errorf("d365 jobstatus: %w", err)
	}
	return &js, nil
}
