package d365test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultTenantID is the tenant used when Options.TenantID is empty.
const DefaultTenantID = "8f6b3a52-1c0d-4e7a-9b2f-5d3c1e0a7b64"

// Options configures an Emulator. The zero value is a working emulator.
type Options struct {
	// TenantID, ClientID and ClientSecret are the Entra app the emulator
	// knows from the start. Defaults: DefaultTenantID, "fno-bridge-app",
	// "emulator-secret".
	TenantID, ClientID, ClientSecret string
	// TokenLifetime is the expires_in of issued tokens, measured on the fake
	// clock. Default 1h.
	TokenLifetime time.Duration
	// RevokeTokensWithSecret makes F&O answer 401 to a token issued from a
	// client secret the app no longer has (SetClientSecret replaced it) or
	// whose time is over (ExpireClientSecret), as if the token had been
	// revoked with its secret. Real Entra ID tokens stay valid until they
	// expire; this is the harsher case a client must also survive.
	RevokeTokensWithSecret bool
	// Unauthorized403 answers 403 instead of 401 when an app is not on an
	// activity's AllowedApps (which of the two F&O answers is not documented).
	Unauthorized403 bool
	// UnknownActivityStatus answers an unknown activity ID. Default 404.
	UnknownActivityStatus int
	// StaleAckStatus answers an ack whose CorrelationId/PopReceipt does not
	// match the latest dequeue. Default 400.
	StaleAckStatus int
	// VisibilityTimeout hides a dequeued message until it is acked or this
	// much fake time has passed. Default 30m, as documented for F&O.
	VisibilityTimeout time.Duration
	// HTTPDownloadLocation serves DownloadLocation as http://host:80/...,
	// the quirk the docs describe; clients must rewrite it.
	HTTPDownloadLocation bool
	// RawNewlinesInErrors makes GetExecutionErrors put raw CR/LF and an
	// unescaped quote inside each ErrorMessage, so the JSON inside the
	// string value is not strict JSON (as seen on large real results).
	RawNewlinesInErrors bool
	// KeepEnqueuedBodyBytes is how much of each enqueued body Messages()
	// keeps. Default 1 MiB; negative keeps nothing. Size and SHA-256 are
	// always recorded; bodies are streamed, never buffered beyond this.
	KeepEnqueuedBodyBytes int
	// Logf, if set, gets one line per request. Tokens, secrets and SAS
	// signatures are never logged.
	Logf func(format string, args ...any)

	// Addr is the F&O listener's address. Default "127.0.0.1:0". Only
	// 127.0.0.1 is accepted: the emulator never listens elsewhere.
	Addr string
	// UnknownMessageStatus is GetMessageStatus's value for an ID the
	// emulator never issued. Default "Unknown" (F&O's answer is not
	// documented).
	UnknownMessageStatus string
	// UnknownMessageHTTPStatus, if set to something other than 200, makes
	// GetMessageStatus answer an unknown ID with that status and an OData
	// error instead of a value.
	UnknownMessageHTTPStatus int
	// SASLifetime is how long blob SAS URLs stay valid on the fake clock.
	// Default 7 days (F&O deletes the blobs after 7 days).
	SASLifetime time.Duration
	// BlobRetention is how long a blob (an uploaded or exported package,
	// an error file) stays in blob storage on the fake clock: F&O deletes
	// them after 7 days, the default. After it, the blob answers 404
	// BlobNotFound, whatever the SAS. Negative keeps blobs for ever.
	BlobRetention time.Duration
	// ClientCertificate, if set, is the certificate whose key must have
	// signed client assertions (RS256/PS256/ES256). Without it any
	// well-formed assertion for a known client is accepted.
	ClientCertificate *x509.Certificate
	// ClockStart is the fake clock's initial time. Default: the real time
	// at New, truncated to the second.
	ClockStart time.Time
	// EnqueueAnswer is the shape of every enqueue answer (a Fault's
	// EnqueueAnswer overrides it). Default AnswerJSONString, F&O's own.
	EnqueueAnswer AnswerShape
	// EnhancedParallelPackageImport is F&O's Data management framework
	// parameter of that name: package imports of different data projects
	// may run at once. Without it, a package import that starts while
	// another runs anywhere in the environment fails; with it, only while
	// another of the same data project runs.
	EnhancedParallelPackageImport bool
	// OnPremises makes F&O an on-premises environment: the OData endpoints
	// (the package API among them) answer under
	// /namespaces/AXSF/data/... only, and the recurring-integration
	// endpoints, which on-premises environments do not have, answer 302 to
	// the sign-in page. Tokens come from AD FS (ADFSAuthorityURL), which
	// the emulator serves whatever this says.
	OnPremises bool
}

// Emulator is a running F&O + Entra ID + blob storage emulator. All methods
// are safe for concurrent use.
type Emulator struct {
	opts  Options
	clock *clock
	pki   *pki
	done  chan struct{} // closed by Close: aborts Delay sleeps
	once  sync.Once

	foURL, entraURL, blobURL, foreignURL string
	servers                              []*http.Server
	transport                            *http.Transport
	blobDir                              string
	sasKey                               []byte

	mu sync.Mutex
	st state
}

// New starts an emulator and returns it; call Close when done. It panics if
// it cannot start, like httptest.NewServer; use Start to get an error.
func New(opts Options) *Emulator {
	e, err := Start(opts)
	if err != nil {
		panic(err)
	}
	return e
}

// NewT is New plus t.Cleanup(e.Close).
func NewT(t testing.TB, opts Options) *Emulator {
	t.Helper()
	e, err := Start(opts)
	if err != nil {
		t.Fatalf("d365test: %v", err)
	}
	t.Cleanup(e.Close)
	return e
}

// Start is New returning an error instead of panicking.
func Start(opts Options) (*Emulator, error) {
	opts = withDefaults(opts)
	p, err := newPKI()
	if err != nil {
		return nil, fmt.Errorf("d365test: %w", err)
	}
	dir, err := os.MkdirTemp("", "d365test-blobs-*")
	if err != nil {
		return nil, fmt.Errorf("d365test: blob dir: %w", err)
	}
	e := &Emulator{
		opts:    opts,
		clock:   newClock(opts.ClockStart),
		pki:     p,
		done:    make(chan struct{}),
		blobDir: dir,
		sasKey:  []byte(newGUID() + newGUID()),
		st:      newState(),
	}
	e.st.apps[opts.ClientID] = &App{ClientID: opts.ClientID, ClientSecret: opts.ClientSecret}
	e.transport = &http.Transport{
		Proxy:               nil, // never route loopback traffic through an environment proxy
		TLSClientConfig:     &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	listeners := []struct {
		addr string
		h    http.Handler
		url  *string
		host string
	}{
		{opts.Addr, e.handler(hostFO), &e.foURL, ""},
		{"127.0.0.1:0", e.handler(hostEntra), &e.entraURL, ""},
		{"127.0.0.1:0", e.handler(hostBlob), &e.blobURL, ""},
		{"127.0.0.1:0", e.handler(hostForeign), &e.foreignURL, "localhost"},
	}
	for _, l := range listeners {
		u, err := e.listen(l.addr, l.h, l.host)
		if err != nil {
			e.Close()
			return nil, err
		}
		*l.url = u
	}
	return e, nil
}

func withDefaults(o Options) Options {
	if o.TenantID == "" {
		o.TenantID = DefaultTenantID
	}
	if o.ClientID == "" {
		o.ClientID = "fno-bridge-app"
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "emulator-secret"
	}
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = time.Hour
	}
	if o.UnknownActivityStatus == 0 {
		o.UnknownActivityStatus = http.StatusNotFound
	}
	if o.StaleAckStatus == 0 {
		o.StaleAckStatus = http.StatusBadRequest
	}
	if o.VisibilityTimeout <= 0 {
		o.VisibilityTimeout = 30 * time.Minute
	}
	if o.KeepEnqueuedBodyBytes == 0 {
		o.KeepEnqueuedBodyBytes = 1 << 20
	}
	if o.KeepEnqueuedBodyBytes < 0 {
		o.KeepEnqueuedBodyBytes = 0
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.UnknownMessageStatus == "" {
		o.UnknownMessageStatus = "Unknown"
	}
	if o.SASLifetime <= 0 {
		o.SASLifetime = 7 * 24 * time.Hour
	}
	if o.BlobRetention == 0 {
		o.BlobRetention = 7 * 24 * time.Hour
	}
	return o
}

// listen serves h over TLS on addr, which must be on 127.0.0.1. urlHost,
// if set, replaces the IP in the returned URL (the foreign host).
func (e *Emulator) listen(addr string, h http.Handler, urlHost string) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("d365test: address %q: %w", addr, err)
	}
	if host != "127.0.0.1" {
		return "", fmt.Errorf("d365test: refusing to listen on %q: only 127.0.0.1 is allowed", addr)
	}
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return "", fmt.Errorf("d365test: listen %s: %w", addr, err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{e.pki.leaf},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: time.Minute,
		// Handshake noise (clients that distrust the CA) is not news.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	e.servers = append(e.servers, srv)
	go srv.Serve(tls.NewListener(ln, cfg))
	port := ln.Addr().(*net.TCPAddr).Port
	if urlHost == "" {
		urlHost = "127.0.0.1"
	}
	return fmt.Sprintf("https://%s:%d", urlHost, port), nil
}

// Close stops every listener, aborts in-flight requests (including Delay
// faults) and removes stored blobs. It is safe to call more than once.
func (e *Emulator) Close() {
	e.once.Do(func() {
		close(e.done)
		for _, s := range e.servers {
			s.Close()
		}
		e.transport.CloseIdleConnections()
		os.RemoveAll(e.blobDir)
	})
}

// URL is the F&O base URL, e.g. https://127.0.0.1:PORT (no trailing slash).
func (e *Emulator) URL() string { return e.foURL }

// AuthorityURL is the Entra authority for MSAL: https://127.0.0.1:PORT/<tenant>.
// The Entra fake has its own listener, like login.microsoftonline.com.
func (e *Emulator) AuthorityURL() string { return e.entraURL + "/" + e.opts.TenantID }

// BlobURL is the blob storage listener's base URL (like
// https://<account>.blob.core.windows.net); SAS URLs point here.
func (e *Emulator) BlobURL() string { return e.blobURL }

// ForeignURL is the base URL of the foreign host that ForeignDownloadHost
// faults send clients to (https://localhost:PORT).
func (e *Emulator) ForeignURL() string { return e.foreignURL }

// TenantID is the Entra tenant the emulator serves.
func (e *Emulator) TenantID() string { return e.opts.TenantID }

// ClientID is the app registered from Options.
func (e *Emulator) ClientID() string { return e.opts.ClientID }

// ClientSecret is the current secret of the app registered from Options
// (SetClientSecret changes it).
func (e *Emulator) ClientSecret() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.apps[e.opts.ClientID].ClientSecret
}

// HTTPClient returns a client that trusts the emulator's CA, hence every
// listener. It ignores proxy settings from the environment.
func (e *Emulator) HTTPClient() *http.Client { return &http.Client{Transport: e.transport} }

// CertPEM is the PEM of the CA that signed every listener's certificate,
// for processes outside the test (write it to a file, pass it as env).
func (e *Emulator) CertPEM() []byte { return append([]byte(nil), e.pki.caPEM...) }

// CertPool is the CA as a pool, for building your own transport.
func (e *Emulator) CertPool() *x509.CertPool { return e.pki.pool.Clone() }

func (e *Emulator) logf(format string, args ...any) {
	if e.opts.Logf != nil {
		e.opts.Logf(format, args...)
	}
}

// baseHost is the F&O listener's host:port.
func (e *Emulator) baseHost() string { return strings.TrimPrefix(e.foURL, "https://") }
