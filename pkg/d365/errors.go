package d365

import (
	"encoding/json"
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
	// ErrExecutionNotFound: GetExecutionSummaryStatus answers 400 "... were
	// not found" until the execution record exists; keep polling.
	ErrExecutionNotFound = errors.New("d365: execution not found yet")
	// ErrOnPremises: enqueue answered 302, which is what on-premises
	// environments do: recurring integrations are not supported there.
	ErrOnPremises = errors.New("d365: the environment redirected (302): recurring integrations are not supported on-premises")
	// ErrNoDownloadLocation: dequeue answered 200 with a null DownloadLocation.
	ErrNoDownloadLocation = errors.New("d365: dequeue answer has no DownloadLocation")
)

// maxErrorBody bounds how much of an error answer is read and kept.
const maxErrorBody = 8 << 10

// Error is a non-2xx answer from F&O (or Entra ID, or a blob host).
type Error struct {
	Op         string // the operation, e.g. "enqueue" or "GetMessageStatus"
	StatusCode int
	Code       string // OData error code, when the body had one
	Message    string // OData error message, or the body text
	Body       string // the raw answer, at most 8 KiB
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	if e.Code != "" {
		return fmt.Sprintf("d365 %s: %d %s: %s", e.Op, e.StatusCode, e.Code, msg)
	}
	return fmt.Sprintf("d365 %s: %d: %s", e.Op, e.StatusCode, msg)
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

// odataError is the body OData actions answer errors with.
type odataError struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			Message string `json:"message"`
		} `json:"innererror"`
	} `json:"error"`
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
	e := Error{Op: op, StatusCode: resp.StatusCode, Body: string(raw)}
	var oe odataError
	if json.Unmarshal(raw, &oe) == nil && (oe.Error.Message != "" || oe.Error.Code != "") {
		e.Code = oe.Error.Code
		e.Message = oe.Error.Message
		if e.Message == "" {
			e.Message = oe.Error.InnerError.Message
		}
	} else {
		e.Message = strings.TrimSpace(string(raw))
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return &ThrottledError{Answer: &e, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"))}
	case op == "enqueue" && resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fmt.Errorf("%w: %w", ErrOnPremises, &e)
	case resp.StatusCode == http.StatusBadRequest && strings.Contains(e.Message+e.Body, "were not found"):
		return fmt.Errorf("%w: %w", ErrExecutionNotFound, &e)
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
