package d365

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"github.com/cenkalti/backoff/v5"
)

// Config is everything a Client needs. BaseURL and either Credential (with
// TenantID and ClientID) or Tokens are required.
type Config struct {
	// BaseURL of the F&O environment, e.g. https://contoso.operations.dynamics.com.
	// http is accepted only for loopback hosts (tests, the local emulator).
	BaseURL string
	// TenantID and ClientID identify the Entra ID app registration.
	TenantID string
	ClientID string
	// Credential is the app's secret or certificate.
	Credential Credential
	// CredentialSource says where the credential is kept (e.g. "the
	// Secrets Manager secret arn:..."), for the fix an *AuthError suggests.
	CredentialSource string
	// AuthorityHost is Entra ID's login host; default
	// https://login.microsoftonline.com. An AD FS authority (on-premises
	// environments) is given whole, ending in /adfs
	// (https://adfs.contoso.com/adfs): it has no tenants, so TenantID is
	// then empty or "adfs".
	AuthorityHost string
	// Namespace is, for an on-premises environment, the namespace its
	// OData endpoints sit under: "AXSF" puts the package API at
	// <BaseURL>/namespaces/AXSF/data/... . Empty for the cloud.
	Namespace string
	// Tokens overrides the MSAL token source (tests, other identity setups).
	Tokens TokenSource
	// HTTPClient is used for F&O, Entra ID and blob requests. Its redirect
	// policy is replaced: redirects are never followed. Default: a client
	// with connect and header timeouts but no overall timeout, so large
	// bodies can stream for as long as the context allows.
	HTTPClient *http.Client
	// Retry bounds retries of throttled and transiently failing calls.
	Retry RetryPolicy
	// Limiter, if set, is waited on before every request to F&O, retries
	// included; the poller uses it to keep under its request budget.
	Limiter Limiter
	// Logger receives retry notices. Tokens and secrets are never logged.
	Logger *slog.Logger
}

// RetryPolicy bounds retries. Zero values take the defaults. Retries never
// outlive the context's deadline: a wait that would pass it ends the call
// with the last error instead.
type RetryPolicy struct {
	MaxAttempts     int           // default 6
	InitialInterval time.Duration // default 500ms
	MaxInterval     time.Duration // default 30s
}

// Limiter paces requests; *rate.Limiter from golang.org/x/time/rate is one.
type Limiter interface {
	Wait(ctx context.Context) error
}

// Client calls one F&O environment. It is safe for concurrent use.
type Client struct {
	base   *url.URL
	odata  string // the OData endpoints' path under base: "" or /namespaces/<Namespace>
	hc     *http.Client
	tokens TokenSource
	retry  RetryPolicy
	limit  Limiter
	log    *slog.Logger
}

// New checks cfg and builds a Client. It does not contact F&O or Entra ID.
func New(cfg Config) (*Client, error) {
	base, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	odata, err := namespacePath(cfg.Namespace)
	if err != nil {
		return nil, err
	}
	hc := noRedirects(cfg.HTTPClient)
	c := &Client{base: base, odata: odata, hc: hc, tokens: cfg.Tokens, retry: cfg.Retry, limit: cfg.Limiter, log: cfg.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.retry.MaxAttempts <= 0 {
		c.retry.MaxAttempts = 6
	}
	if c.retry.InitialInterval <= 0 {
		c.retry.InitialInterval = 500 * time.Millisecond
	}
	if c.retry.MaxInterval <= 0 {
		c.retry.MaxInterval = 30 * time.Second
	}
	if c.tokens == nil {
		ts, err := newMSALTokenSource(cfg, base, hc)
		if err != nil {
			return nil, err
		}
		c.tokens = ts
	}
	return c, nil
}

// BaseURL is the configured environment URL.
func (c *Client) BaseURL() string { return c.base.String() }

// noRedirects copies hc (default: a plain client whose calls are bounded
// only by their context, since bodies stream and ImportFromPackage can take
// minutes) with redirects turned off: a redirect must never carry the token
// or a client secret to another host.
func noRedirects(hc *http.Client) *http.Client {
	var c http.Client
	if hc != nil {
		c = *hc
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func parseBaseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("d365: BaseURL is required")
	}
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("d365: BaseURL %q is not an absolute URL", raw)
	}
	if err := checkScheme(u); err != nil {
		return nil, fmt.Errorf("d365: BaseURL %q: %w", raw, err)
	}
	u.Path, u.RawQuery, u.Fragment = strings.TrimRight(u.Path, "/"), "", ""
	return u, nil
}

var namespacePattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// CheckNamespace checks a Config.Namespace: empty, or letters, digits
// and '_'.
func CheckNamespace(ns string) error {
	if ns != "" && !namespacePattern.MatchString(ns) {
		return fmt.Errorf("d365: Namespace %q must be letters, digits or '_' (an on-premises environment's is AXSF)", truncate(ns, 60))
	}
	return nil
}

// namespacePath is the path of a Namespace's OData endpoints under the
// base URL.
func namespacePath(ns string) (string, error) {
	if err := CheckNamespace(ns); err != nil || ns == "" {
		return "", err
	}
	return "/namespaces/" + ns, nil
}

// checkScheme accepts https anywhere and http only on loopback.
func checkScheme(u *url.URL) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if IsLoopback(u.Hostname()) {
			return nil
		}
	}
	return ErrInsecureURL
}

// IsLoopback reports whether host is localhost or a loopback IP.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// endpoint joins the base URL with an unescaped path (escaped once, here)
// and an optional query.
func (c *Client) endpoint(path string, q url.Values) string {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawPath = ""
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

var guidPattern = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)

// ActivityID normalizes a recurring job's activity ID: Microsoft's examples
// wrap it in braces, sometimes URL-encoded (%7B...%7D); F&O takes the bare
// GUID, which is what goes on the wire.
func ActivityID(id string) (string, error) {
	t := strings.TrimSpace(id)
	if u, err := url.PathUnescape(t); err == nil {
		t = u
	}
	t = strings.TrimSuffix(strings.TrimPrefix(t, "{"), "}")
	if !guidPattern.MatchString(t) {
		return "", fmt.Errorf("d365: activity ID %q is not a GUID", truncate(id, 60))
	}
	return t, nil
}

// retryMode says when a request may be sent again.
type retryMode int

const (
	// retrySafe: idempotent or harmless to repeat (reads, dequeue, ack):
	// retried on 429, transient 5xx and transport errors.
	retrySafe retryMode = iota
	// retryUnsent: must never be processed twice (enqueue, ImportFromPackage):
	// retried only when F&O certainly did not act on it, i.e. a 429 or a
	// failure before the request headers were written.
	retryUnsent
)

// ErrOutcomeUnknown: the request went out but no usable answer came back,
// so F&O may or may not have acted on it. For an enqueue this means the
// file may be in F&O already: it must not be sent again blindly. When no
// answer came at all (the connection dropped, the deadline passed), the
// error wraps the transport's; when an answer came that the client cannot
// vouch for, the error is an *UnexpectedAnswerError saying what it was.
var ErrOutcomeUnknown = errors.New("d365: the request was sent but its outcome is unknown")

// errNoReopen: a streamed body was needed a second time and cannot be had.
var errNoReopen = errors.New("the body cannot be sent twice (no Reopen)")

// request describes one logical call; send may issue it several times.
type request struct {
	op     string
	method string
	url    string
	header http.Header
	// body returns a fresh body for each attempt, with its length (-1 if
	// unknown). nil means no body.
	body func(ctx context.Context) (io.ReadCloser, int64, error)
	auth bool // send the bearer token (only ever to the F&O host)
	mode retryMode
}

func bytesBody(b []byte) func(context.Context) (io.ReadCloser, int64, error) {
	return func(context.Context) (io.ReadCloser, int64, error) {
		return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
	}
}

// drainAndClose reads what is left of a short answer (at most maxErrorBody
// bytes), so the connection can be reused, and closes it.
func drainAndClose(resp *http.Response) error {
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	return resp.Body.Close()
}

// send performs r with retries and returns a 2xx response whose body the
// caller must close. Every other outcome is an error built by checkResponse
// or a transport error.
func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	if r.auth {
		u, err := url.Parse(r.url)
		if err != nil {
			return nil, fmt.Errorf("d365 %s: bad URL: %w", r.op, err)
		}
		if !c.sameHost(u) {
			return nil, fmt.Errorf("d365 %s: %w", r.op, ErrForeignHost)
		}
	}
	opts := []backoff.RetryOption{
		backoff.WithBackOff(&backoff.ExponentialBackOff{
			InitialInterval:     c.retry.InitialInterval,
			RandomizationFactor: 0.5,
			Multiplier:          2,
			MaxInterval:         c.retry.MaxInterval,
		}),
		backoff.WithMaxTries(uint(c.retry.MaxAttempts)),
		backoff.WithNotify(func(err error, wait time.Duration) {
			c.log.WarnContext(ctx, "d365: retrying", "op", r.op, "wait", wait, "error", err.Error())
		}),
	}
	if dl, ok := ctx.Deadline(); ok {
		// Give up with the real error rather than sleeping into the deadline.
		opts = append(opts, backoff.WithMaxElapsedTime(max(time.Until(dl), time.Nanosecond)))
	} else {
		opts = append(opts, backoff.WithMaxElapsedTime(0))
	}
	var last error
	refusedOnce := false
	return backoff.Retry(ctx, func() (*http.Response, error) {
		resp, sent, err := c.attempt(ctx, r)
		if err == nil {
			return resp, nil
		}
		var rf *refusal
		if errors.As(err, &rf) {
			err = rf.err
			if tr, ok := c.tokens.(TokenRefuser); ok && !refusedOnce && tr.Refused(ctx, rf.token) {
				refusedOnce, last = true, err
				return nil, err // once more, with the token the source hands out now
			}
		}
		if errors.Is(err, errNoReopen) && last != nil {
			return nil, backoff.Permanent(last) // the previous failure is the one to report
		}
		last = err
		var fe *Error
		if r.mode == retryUnsent && sent && !errors.As(err, &fe) {
			// No answer at all after the request went out.
			return nil, backoff.Permanent(fmt.Errorf("%w: %w", ErrOutcomeUnknown, err))
		}
		if ctx.Err() != nil {
			return nil, backoff.Permanent(err)
		}
		var throttled *ThrottledError
		if errors.As(err, &throttled) {
			return nil, err // never processed: always safe to send again
		}
		if r.mode == retryUnsent && sent {
			return nil, backoff.Permanent(err)
		}
		if errors.As(err, &fe) && !fe.Temporary() {
			return nil, backoff.Permanent(err)
		}
		if errors.Is(err, ErrForeignHost) || errors.Is(err, ErrInsecureURL) {
			return nil, backoff.Permanent(err)
		}
		return nil, err
	}, opts...)
}

// attempt sends r once. sent reports whether the request headers were
// written, after which F&O may have acted on it.
func (c *Client) attempt(ctx context.Context, r request) (resp *http.Response, sent bool, err error) {
	if c.limit != nil && r.auth {
		if err := c.limit.Wait(ctx); err != nil {
			// The budget cannot be met before the deadline: waiting and
			// asking again would not change that.
			return nil, false, backoff.Permanent(fmt.Errorf("d365 %s: rate limit: %w", r.op, err))
		}
	}
	var body io.ReadCloser
	var src *sourceBody
	size := int64(0)
	if r.body != nil {
		body, size, err = r.body(ctx)
		if err != nil {
			return nil, false, backoff.Permanent(fmt.Errorf("d365 %s: open body: %w", r.op, err))
		}
		src = &sourceBody{ReadCloser: body}
		body = src
		// net/http waits for its body writer before Do returns, even on
		// a cancelled request, and the writer may be stuck in a read of a
		// stalled source (an S3 stream that stopped): closing the source
		// when ctx ends frees it, so a send never outlives its deadline.
		defer context.AfterFunc(ctx, func() { src.ReadCloser.Close() })()
	}
	trace := &httptrace.ClientTrace{WroteHeaders: func() { sent = true }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), r.method, r.url, body)
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, false, fmt.Errorf("d365 %s: %w", r.op, err)
	}
	if body != nil {
		req.ContentLength = size // -1: unknown, sent chunked
		if size == 0 {
			body.Close()
			req.Body = http.NoBody
		}
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	var tok string
	if r.auth {
		tok, err = c.tokens.Token(ctx)
		if err != nil {
			if body != nil {
				body.Close()
			}
			err = fmt.Errorf("d365 %s: %w", r.op, err)
			if !tokenErrorTemporary(err) {
				// Entra ID's own refusal (a bad secret, an unknown app)
				// will not change on a retry.
				err = backoff.Permanent(err)
			}
			return nil, false, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err = c.hc.Do(req)
	if err != nil {
		if n, srcErr, cut := src.stop(size); cut {
			// Part of the body was never taken from its source, so
			// it never went out: neither F&O nor anything in between
			// can hold the whole request. That is a send that did not
			// happen, not one with an unknown outcome, and a retry
			// reopens the body.
			if srcErr != nil { // S3's stream broke, or its checksum did not match
				return nil, false, fmt.Errorf("d365 %s: reading the body to send failed after %d bytes: %w", r.op, n, srcErr)
			}
			return nil, false, fmt.Errorf("d365 %s: cut off after %d of %d bytes of the body: %w", r.op, n, size, redactURLError(err))
		}
		return nil, sent, fmt.Errorf("d365 %s: %w", r.op, redactURLError(err))
	}
	if err := checkResponse(r.op, resp); err != nil {
		var fe *Error
		if r.auth && errors.As(err, &fe) && fe.StatusCode == http.StatusUnauthorized {
			return nil, true, &refusal{err: err, token: tok}
		}
		return nil, true, err
	}
	return resp, true, nil
}

// refusal is F&O's 401 to the token a request carried, for send to tell
// the token source.
type refusal struct {
	err   error
	token string
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// redactURLError drops the query string (which may carry a SAS signature)
// from a *url.Error.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.RawQuery = ""
			return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
		}
	}
	return err
}

// sameHost reports whether u is on the configured F&O host and port.
func (c *Client) sameHost(u *url.URL) bool {
	return u.Scheme == c.base.Scheme && strings.EqualFold(u.Host, c.base.Host)
}

// tokenErrorTemporary reports whether a token failure may pass: Entra ID
// throttling or a server fault, or a transport failure with no answer.
func tokenErrorTemporary(err error) bool {
	var ae *AuthError
	if errors.As(err, &ae) {
		return false
	}
	var ce msalerrors.CallErr
	if errors.As(err, &ce) {
		if ce.Resp == nil {
			return true
		}
		return ce.Resp.StatusCode == http.StatusTooManyRequests || ce.Resp.StatusCode >= 500
	}
	var ue *url.Error
	return errors.As(err, &ue)
}

// sourceBody remembers how much of the request body was taken from its
// source and why the source stopped, to tell "the body never went out
// whole" from "the answer was lost". The transport may still be reading
// (HTTP/2 returns from Do before its writer goroutine ends), hence the lock.
type sourceBody struct {
	io.ReadCloser
	mu      sync.Mutex
	n       int64
	err     error
	stopped bool
}

// errStopped ends reads that come after the attempt was judged.
var errStopped = errors.New("d365: request attempt over")

func (b *sourceBody) Read(p []byte) (int, error) {
	// The source is read outside the lock: a stalled source must not
	// hold up stop. What a read brings after stop is never handed on.
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return 0, errStopped
	}
	b.n += int64(n)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// stop ends the body's reads and reports whether part of it was never
// read: fewer than size bytes, or, for a chunked body of unknown size, a
// source that failed (its end was never reached, so the last chunk was
// never written). Stopping first means nothing more can be read, so the
// verdict cannot be overtaken by a transport still writing.
func (b *sourceBody) stop(size int64) (n int64, srcErr error, cut bool) {
	if b == nil {
		return 0, nil, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	if size >= 0 {
		return b.n, b.err, b.n < size
	}
	return b.n, b.err, b.err != nil
}
