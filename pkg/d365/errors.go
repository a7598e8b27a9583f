package d365

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Sentinel errors callers test with errors.Is.
var (
	// ErrForeignHost: a URL F&O handed back points at a host other than the
	// configured one, so it is refused before any token is sent.
	ErrForeignHost = errors.New("d365: refusing to send the bearer token to a host other than the configured F&O host")
	// ErrInsecureURL: plain http is accepted only for loopback addresses.
	ErrInsecureURL = errors.New("d365: only https URLs are accepted (http only for loopback)")
	// ErrExecutionNotFound: the execution-ID actions (GetExecutionSummaryStatus
	// and the others in executionOps) answer 400 "... were not found" until
	// the execution record exists; keep polling.
	ErrExecutionNotFound = errors.New("d365: execution not found yet")
	// ErrOnPremises: enqueue answered a redirect (3xx), which is what
	// on-premises environments do: recurring integrations are not supported
	// there. The wrapped *Error names the status.
	ErrOnPremises = errors.New("d365: the environment redirected enqueue: recurring integrations are not supported on-premises")
	// ErrNoDownloadLocation: dequeue answered 200 with a null DownloadLocation.
	ErrNoDownloadLocation = errors.New("d365: dequeue answer has no DownloadLocation")
	// ErrSASRefused: blob storage answered 403 AuthenticationFailed to a
	// SAS URL F&O handed out: its signature has expired (or was never
	// valid). Asking F&O for a new URL is the remedy; retrying this one
	// is not.
	ErrSASRefused = errors.New("d365: blob storage refused the SAS URL (expired or not valid); ask F&O for a new one")
)

// maxErrorBody bounds how much of an error answer is read and kept.
const maxErrorBody = 8 << 10

// Error is a non-2xx answer from F&O (or a blob host).
type Error struct {
	Op         string // the operation, e.g. "enqueue" or "GetMessageStatus"
	StatusCode int
	Code       string // the error code, when the body had one
	// Message is the most specific cause the answer gives: OData's
	// innererror.message when there is one, else error.message; for a
	// body that is not a known error shape, its text (shortened, secrets
	// blanked). Never the raw JSON.
	Message string
	// Summary is the answer's top-level message when Message came from
	// deeper in it and differs: often F&O's generic "An error has occurred.".
	Summary string
	Body    string // the raw answer, at most 8 KiB
}

// Error reads "d365 op: 404 Not Found: <cause> (<summary>)": the specific
// cause first.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "d365 %s: %s", e.Op, statusLine(e.StatusCode))
	if e.Code != "" {
		fmt.Fprintf(&b, " (code %s)", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Summary != "" {
		b.WriteString(" (" + e.Summary + ")")
	}
	return b.String()
}

// statusLine is "404 Not Found", or the bare number for an unknown status.
func statusLine(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

// Temporary reports whether the same request may succeed later: throttling
// and the transient server faults F&O is known for (500, 502, 503, 504).
func (e *Error) Temporary() bool {
	switch e.StatusCode {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// ThrottledError is a 429 answer. F&O does not process a throttled request,
// so it is always safe to send again after RetryAfter.
type ThrottledError struct {
	Answer     *Error // the 429 answer itself
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%s (retry after %s)", e.Answer.Error(), e.RetryAfter)
}

// Unwrap lets errors.As find the *Error.
func (e *ThrottledError) Unwrap() error { return e.Answer }

// As lets the retry loop (cenkalti/backoff) see the server's Retry-After.
func (e *ThrottledError) As(target any) bool {
	if t, ok := target.(**backoff.RetryAfterError); ok {
		*t = &backoff.RetryAfterError{Duration: e.RetryAfter}
		return true
	}
	return false
}

// IsTemporary reports whether err is an F&O answer worth retrying later
// (429 or a transient 5xx).
func IsTemporary(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Temporary()
}

// UnexpectedAnswerError: after the request went out, an answer came back
// that is not one F&O gives to this call (a sign-in or gateway page with
// status 200, text around a GUID, an empty or oversized body, an answer cut
// off). F&O may or may not have acted on the request, so it matches
// ErrOutcomeUnknown; unlike a lost answer, it says what came back.
type UnexpectedAnswerError struct {
	Op          string
	Status      int
	ContentType string
	// ContentLength is the answer's declared length, -1 when not given.
	ContentLength int64
	// Snippet is the answer's first bytes (at most maxSnippet), with
	// anything that looks like a token, secret or SAS signature blanked.
	Snippet string
	Reason  string // why it is not a usable answer
	Err     error  // what broke reading it, if anything
}

func (e *UnexpectedAnswerError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "d365 %s: an answer came back but it is not one F&O gives, so the outcome is unknown: %s", e.Op, statusLine(e.Status))
	ct := e.ContentType
	if ct == "" {
		ct = "none"
	}
	fmt.Fprintf(&b, ", Content-Type %s", ct)
	if e.ContentLength >= 0 {
		fmt.Fprintf(&b, ", %d bytes", e.ContentLength)
	}
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Snippet != "" {
		fmt.Fprintf(&b, "; it began %q", e.Snippet)
	} else {
		b.WriteString("; its body was empty")
	}
	return b.String()
}

// Unwrap makes the error match ErrOutcomeUnknown (and the read error, if any).
func (e *UnexpectedAnswerError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrOutcomeUnknown, e.Err}
	}
	return []error{ErrOutcomeUnknown}
}

// unexpectedAnswer builds the UnexpectedAnswerError for a 2xx answer that
// was read (raw is what was read of it).
func unexpectedAnswer(op string, resp *http.Response, raw []byte, reason string, err error) error {
	return &UnexpectedAnswerError{
		Op: op, Status: resp.StatusCode, ContentType: printable(resp.Header.Get("Content-Type"), 200),
		ContentLength: resp.ContentLength, Snippet: snippet(raw, maxSnippet), Reason: reason, Err: err,
	}
}

// executionOps are the actions whose 400 "... were not found" means the
// execution does not exist yet (ErrExecutionNotFound).
var executionOps = map[string]bool{
	"GetExecutionSummaryStatus": true, "GetExecutionErrors": true, "GetImportStagingErrorFileUrl": true,
	"GenerateImportTargetErrorKeysFile": true, "GetImportTargetErrorKeysFileUrl": true,
	"GetEntityExecutionSummaryStatusList": true, "GetExecutionSummaryPageUrl": true, "GetExportedPackageUrl": true,
}

// checkResponse turns a non-2xx answer into a typed error, reading at most
// maxErrorBody bytes of it, and closes the body. A 2xx answer is returned
// untouched (nil error).
func checkResponse(op string, resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	d := readErrorBody(raw)
	e := Error{Op: op, StatusCode: resp.StatusCode, Code: d.code, Message: d.message, Summary: d.summary, Body: string(raw)}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return &ThrottledError{Answer: &e, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"))}
	case op == "enqueue" && resp.StatusCode >= 300 && resp.StatusCode < 400:
		if loc := redirectTarget(resp.Header.Get("Location")); loc != "" && !d.structured {
			e.Message = "redirected to " + loc
		}
		return fmt.Errorf("%w: %w", ErrOnPremises, &e)
	case resp.StatusCode == http.StatusBadRequest && executionOps[op] && d.says("were not found"):
		return fmt.Errorf("%w: %w", ErrExecutionNotFound, &e)
	case resp.StatusCode == http.StatusForbidden && strings.HasPrefix(op, "blob-") &&
		(e.Code == "AuthenticationFailed" || resp.Header.Get("x-ms-error-code") == "AuthenticationFailed"):
		return fmt.Errorf("%w: %w", ErrSASRefused, &e)
	}
	return &e
}

// maxRetryAfter caps the wait a Retry-After can ask for. No invocation
// lives this long, so a larger value only means "give up on this call",
// which the retry loop does anyway once the wait would pass the deadline.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads Retry-After as seconds or an HTTP date; F&O sends
// seconds. A missing or unreadable value means "soon" (1 s). The result is
// within 0..maxRetryAfter, so a huge number of seconds cannot overflow
// time.Duration.
func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(n) * time.Second
	} else if errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(v, "-") {
		return maxRetryAfter
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return min(d, maxRetryAfter)
		}
		return 0
	}
	return time.Second
}
