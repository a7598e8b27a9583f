// Package fnoenv builds the F&O client from the functions' environment:
// FNO_BASE_URL, FNO_TENANT_ID, FNO_CLIENT_ID, FNO_SECRET_ARN and optionally
// FNO_AUTHORITY_HOST; for local runs also FNO_CLIENT_SECRET (instead of
// Secrets Manager) and FNO_CA_BUNDLE (a PEM file to trust, for the emulator).
//
// The secret is fetched lazily, on the first token request of an execution
// environment, and read again every 15 minutes: cold start stays free of
// network calls and a rotated secret is picked up without a redeploy. When
// Entra ID refuses it (expired or wrong: a *d365.AuthError whose Fix names
// the Secrets Manager secret), it is read again at once, at most once a
// minute, and the credential is rebuilt only if the secret changed.
package fnoenv

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"golang.org/x/sync/singleflight"

	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// Settings are the F&O connection settings, read once at cold start.
type Settings struct {
	BaseURL       string
	TenantID      string
	ClientID      string
	SecretARN     string
	ClientSecret  string // local runs only
	AuthorityHost string
	CABundle      string // path of a PEM file to trust in addition to the system roots
}

// FromEnv reads and checks the settings; an error names the variable.
func FromEnv() (Settings, error) {
	s := Settings{
		BaseURL:       os.Getenv("FNO_BASE_URL"),
		TenantID:      os.Getenv("FNO_TENANT_ID"),
		ClientID:      os.Getenv("FNO_CLIENT_ID"),
		SecretARN:     os.Getenv("FNO_SECRET_ARN"),
		ClientSecret:  os.Getenv("FNO_CLIENT_SECRET"),
		AuthorityHost: os.Getenv("FNO_AUTHORITY_HOST"),
		CABundle:      os.Getenv("FNO_CA_BUNDLE"),
	}
	for _, v := range []struct{ name, val string }{
		{"FNO_BASE_URL", s.BaseURL}, {"FNO_TENANT_ID", s.TenantID}, {"FNO_CLIENT_ID", s.ClientID},
	} {
		if strings.TrimSpace(v.val) == "" {
			return Settings{}, fmt.Errorf("config: %s is required", v.name)
		}
	}
	if s.SecretARN == "" && s.ClientSecret == "" {
		return Settings{}, fmt.Errorf("config: FNO_SECRET_ARN is required (the Secrets Manager secret holding the client secret or certificate)")
	}
	return s, nil
}

// SecretGetter is the part of Secrets Manager the client needs.
type SecretGetter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Options tune the client beyond the settings.
type Options struct {
	Limiter d365.Limiter
	Logger  *slog.Logger
	Retry   d365.RetryPolicy
	// Now is the clock of the secret's re-reads; time.Now when nil.
	Now func() time.Time
}

// NewClient builds the F&O client. It validates the settings now and
// fetches the secret only when the first token is needed.
func (s Settings) NewClient(sm SecretGetter, opt Options) (*d365.Client, error) {
	c, _, err := s.newClient(sm, opt)
	return c, err
}

func (s Settings) newClient(sm SecretGetter, opt Options) (*d365.Client, *lazyTokens, error) {
	hc, err := s.httpClient()
	if err != nil {
		return nil, nil, err
	}
	lt := newLazyTokens(s, sm, hc, opt.Logger)
	if opt.Now != nil {
		lt.now = opt.Now
	}
	c, err := d365.New(d365.Config{
		BaseURL: s.BaseURL, TenantID: s.TenantID, ClientID: s.ClientID, AuthorityHost: s.AuthorityHost,
		Tokens: lt, HTTPClient: hc, Limiter: opt.Limiter, Logger: opt.Logger, Retry: opt.Retry,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("config: FNO_BASE_URL: %w", err)
	}
	return c, lt, nil
}

func (s Settings) httpClient() (*http.Client, error) {
	// No client-wide timeouts: bodies stream for as long as the
	// invocation's context allows.
	t := http.DefaultTransport.(*http.Transport).Clone()
	if s.CABundle != "" {
		pem, err := os.ReadFile(s.CABundle)
		if err != nil {
			return nil, fmt.Errorf("config: FNO_CA_BUNDLE: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("config: FNO_CA_BUNDLE %s holds no PEM certificate", s.CABundle)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: t}, nil
}

// Timings of the secret's reads.
const (
	// secretTTL: the secret is read again this long after the last read,
	// so a rotation is picked up even while the old secret still works.
	secretTTL = 15 * time.Minute
	// rereadEvery: when Entra ID refuses the secret it is read again at
	// once, but not more often than this.
	rereadEvery = time.Minute
	// readTimeout bounds one Secrets Manager read, which every waiting
	// caller shares.
	readTimeout = 30 * time.Second
)

// lazyTokens builds the MSAL-backed token source on first use. It reads
// the secret again every secretTTL, and at once (at most every
// rereadEvery) when Entra ID says the credential is invalid or expired,
// since it may just have been rotated. The source, and with it MSAL's
// token cache, is rebuilt only when the secret read differs from the one
// in use. No lock is held while Secrets Manager answers: one read at a
// time is shared by every caller that needs it.
type lazyTokens struct {
	settings Settings
	sm       SecretGetter
	hc       *http.Client
	log      *slog.Logger
	now      func() time.Time

	flight singleflight.Group

	mu     sync.Mutex
	src    d365.TokenSource
	sum    [sha256.Size]byte // of the secret text src was built from
	readAt time.Time         // when the secret was last read, or a read tried
	builds int               // token sources built so far
}

func newLazyTokens(s Settings, sm SecretGetter, hc *http.Client, log *slog.Logger) *lazyTokens {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &lazyTokens{settings: s, sm: sm, hc: hc, log: log, now: time.Now}
}

// Token hands out a token; a refused credential is read again and, if it
// changed, tried once more.
func (l *lazyTokens) Token(ctx context.Context) (string, error) {
	src, err := l.source(ctx)
	if err != nil {
		return "", err
	}
	tok, err := src.Token(ctx)
	var ae *d365.AuthError
	if err == nil || !errors.As(err, &ae) || !ae.InvalidClient() {
		return tok, err
	}
	l.mu.Lock()
	cur, due := l.src, l.now().Sub(l.readAt) >= rereadEvery
	l.mu.Unlock()
	if cur != src { // another caller has just read a new secret
		return cur.Token(ctx)
	}
	if !due {
		return "", err
	}
	l.log.WarnContext(ctx, "fno credentials: Entra ID refused the client credential; reading it again",
		"code", ae.Code, "source", l.where())
	fresh, changed, rerr := l.load(ctx)
	switch {
	case rerr != nil:
		return "", fmt.Errorf("%w (reading the secret again failed: %v)", err, rerr)
	case !changed:
		l.log.WarnContext(ctx, "fno credentials: the stored secret is the one Entra ID refused", "code", ae.Code, "fix", ae.Fix())
		return "", err
	}
	l.log.InfoContext(ctx, "fno credentials: the stored secret changed; using the new one", "code", ae.Code)
	return fresh.Token(ctx)
}

// source is the token source to use, read (again) when due. If a re-read
// fails, the source in use goes on serving.
func (l *lazyTokens) source(ctx context.Context) (d365.TokenSource, error) {
	l.mu.Lock()
	src, due := l.src, l.src == nil || l.now().Sub(l.readAt) >= secretTTL
	l.mu.Unlock()
	if !due {
		return src, nil
	}
	fresh, _, err := l.load(ctx)
	if err != nil {
		if src != nil {
			l.log.WarnContext(ctx, "fno credentials: could not read the secret again; going on with the one read before",
				"source", l.where(), "error", err.Error())
			return src, nil
		}
		return nil, err
	}
	return fresh, nil
}

// loaded is one read's outcome, shared by the callers that waited for it.
type loaded struct {
	src     d365.TokenSource
	changed bool
}

// load reads the secret and rebuilds the token source if it changed. One
// read runs at a time; callers join it and stop waiting when their
// context ends.
func (l *lazyTokens) load(ctx context.Context) (d365.TokenSource, bool, error) {
	ch := l.flight.DoChan("secret", func() (any, error) {
		l.mu.Lock()
		l.readAt = l.now()
		l.mu.Unlock()
		// Shared by every waiting caller: the first one's cancellation
		// must not end it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
		defer cancel()
		secret, err := l.readSecret(rctx)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256([]byte(secret))
		l.mu.Lock()
		if l.src != nil && sum == l.sum {
			src := l.src
			l.mu.Unlock()
			return loaded{src: src}, nil
		}
		l.mu.Unlock()
		src, err := l.build(secret)
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		l.src, l.sum = src, sum
		l.builds++
		l.mu.Unlock()
		return loaded{src: src, changed: true}, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, false, r.Err
		}
		v := r.Val.(loaded)
		return v.src, v.changed, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// build makes the MSAL-backed token source for a secret text (no network
// call: MSAL contacts Entra ID on the first token request).
func (l *lazyTokens) build(secret string) (d365.TokenSource, error) {
	cred, err := ParseSecret(secret)
	if err != nil {
		return nil, err
	}
	return d365.NewTokenSource(d365.Config{
		BaseURL: l.settings.BaseURL, TenantID: l.settings.TenantID, ClientID: l.settings.ClientID,
		AuthorityHost: l.settings.AuthorityHost, Credential: cred, CredentialSource: l.where(), HTTPClient: l.hc,
	})
}

// where names where the secret is kept, for logs and AuthError's fix.
func (l *lazyTokens) where() string {
	if l.settings.ClientSecret != "" {
		return "FNO_CLIENT_SECRET"
	}
	return "the Secrets Manager secret " + l.settings.SecretARN
}

// readSecret reads the secret text: FNO_CLIENT_SECRET for local runs, or
// the Secrets Manager secret. Errors never include the secret.
func (l *lazyTokens) readSecret(ctx context.Context) (string, error) {
	if l.settings.ClientSecret != "" {
		return l.settings.ClientSecret, nil
	}
	if l.sm == nil {
		return "", fmt.Errorf("fno credentials: no Secrets Manager client")
	}
	out, err := l.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &l.settings.SecretARN})
	if err != nil {
		return "", fmt.Errorf("fno credentials: read secret %s: %w", l.settings.SecretARN, err)
	}
	if out.SecretString == nil {
		return "", fmt.Errorf("fno credentials: secret %s has no SecretString", l.settings.SecretARN)
	}
	return *out.SecretString, nil
}

// ParseSecret turns the stored secret text into a credential. Errors never
// include the secret.
func ParseSecret(secret string) (d365.Credential, error) {
	t := strings.TrimSpace(secret)
	if strings.HasPrefix(t, "{") {
		var doc struct {
			ClientSecret   string `json:"clientSecret"`
			CertificatePEM string `json:"certificatePem"`
			Password       string `json:"password"`
		}
		if err := json.Unmarshal([]byte(t), &doc); err != nil {
			return d365.Credential{}, fmt.Errorf("fno credentials: the secret looks like JSON but does not parse")
		}
		switch {
		case doc.CertificatePEM != "":
			return d365.CertificateCredential([]byte(doc.CertificatePEM), doc.Password)
		case doc.ClientSecret != "":
			return d365.SecretCredential(doc.ClientSecret)
		}
		return d365.Credential{}, fmt.Errorf("fno credentials: the secret JSON has neither clientSecret nor certificatePem")
	}
	if strings.Contains(t, "-----BEGIN") {
		return d365.CertificateCredential([]byte(t), "")
	}
	return d365.SecretCredential(t)
}

// ClientFromEnv reads the settings and builds the client with Secrets
// Manager from awsCfg: what every function's main does.
func ClientFromEnv(awsCfg aws.Config, opt Options) (*d365.Client, error) {
	s, err := FromEnv()
	if err != nil {
		return nil, err
	}
	return s.NewClient(secretsmanager.NewFromConfig(awsCfg), opt)
}
