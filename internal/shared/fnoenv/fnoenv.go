// Package fnoenv builds the F&O client from the functions' environment:
// FNO_BASE_URL, FNO_TENANT_ID, FNO_CLIENT_ID, FNO_SECRET_ARN and optionally
// FNO_AUTHORITY_HOST (Entra ID's host, or an on-premises environment's AD
// FS authority, https://<host>/adfs) and FNO_NAMESPACE (an on-premises
// environment's OData namespace, AXSF); for local runs also FNO_CLIENT_SECRET (instead of
// Secrets Manager) and FNO_CA_BUNDLE (a PEM file to trust, for the emulator).
//
// The secret is fetched lazily, on the first token request of an execution
// environment, and read again every 15 minutes: cold start stays free of
// network calls and a rotated secret is picked up without a redeploy. When
// Entra ID refuses it (expired or wrong: a *d365.AuthError whose Fix names
// the Secrets Manager secret), it is read again at once, at most once a
// minute, and the credential is rebuilt only if the secret changed. MSAL's
// token cache lives as long as the credential, so a token serves its whole
// lifetime across re-reads.
//
// When F&O answers 401 to a token (it was revoked with the secret it came
// from after a rotation, or it expired early), the secret is read again
// too (at most once a minute), the token is dropped, and the request is
// sent once more with a fresh token when its body can be sent again.
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
	Namespace     string // on-premises: the OData endpoints' namespace (AXSF)
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
		Namespace:     strings.TrimSpace(os.Getenv("FNO_NAMESPACE")),
		CABundle:      os.Getenv("FNO_CA_BUNDLE"),
	}
	for _, v := range []struct{ name, val string }{{"FNO_BASE_URL", s.BaseURL}, {"FNO_CLIENT_ID", s.ClientID}} {
		if strings.TrimSpace(v.val) == "" {
			return Settings{}, fmt.Errorf("config: %s is required", v.name)
		}
	}
	if s.SecretARN == "" && s.ClientSecret == "" {
		return Settings{}, fmt.Errorf("config: FNO_SECRET_ARN is required (the Secrets Manager secret holding the client secret or certificate)")
	}
	if err := s.check(); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// check checks the sign-in authority and the namespace now, so that a
// setting that cannot work stops the function at cold start, naming it.
func (s Settings) check() error {
	_, adfs, err := d365.Authority(s.AuthorityHost, s.TenantID)
	switch {
	case err != nil && strings.TrimSpace(s.TenantID) == "":
		return fmt.Errorf("config: FNO_TENANT_ID is required (the Entra ID tenant; %q with an AD FS authority in FNO_AUTHORITY_HOST)", "adfs")
	case err != nil:
		return fmt.Errorf("config: FNO_AUTHORITY_HOST %q, FNO_TENANT_ID %q: %w", s.AuthorityHost, s.TenantID, err)
	case adfs && s.Namespace == "":
		return fmt.Errorf("config: FNO_NAMESPACE is required with an AD FS authority (FNO_AUTHORITY_HOST %s): an on-premises "+
			"environment serves the package API under /namespaces/<namespace>, normally AXSF", s.AuthorityHost)
	}
	if err := d365.CheckNamespace(s.Namespace); err != nil {
		return fmt.Errorf("config: FNO_NAMESPACE: %w", err)
	}
	return nil
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
	// Observe, when set, hears the status of every answer from the F&O
	// host (the metrics count throttling and server errors).
	Observe func(status int)
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
	if opt.Observe != nil {
		hc.Transport = observing{next: hc.Transport, host: hostOf(s.BaseURL), observe: opt.Observe}
	}
	lt := newLazyTokens(s, sm, hc, opt.Logger)
	if opt.Now != nil {
		lt.now = opt.Now
	}
	// MSAL talks to Entra ID over hc, and so does the F&O client, which
	// tells lt of a token F&O refused (lt is a d365.TokenRefuser).
	c, err := d365.New(d365.Config{
		BaseURL: s.BaseURL, TenantID: s.TenantID, ClientID: s.ClientID, AuthorityHost: s.AuthorityHost, Namespace: s.Namespace,
		Tokens: lt, HTTPClient: hc, Limiter: opt.Limiter, Logger: opt.Logger, Retry: opt.Retry,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("config: FNO_BASE_URL: %w", err)
	}
	return c, lt, nil
}

// HTTPClient is the client the F&O client and MSAL talk through: system
// roots plus FNO_CA_BUNDLE. The operator's tool checks each link with it.
func (s Settings) HTTPClient() (*http.Client, error) { return s.httpClient() }

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
	// rereadEvery: when Entra ID refuses the secret, or F&O a token, the
	// secret is read again at once, but not more often than this; F&O's
	// refusals are acted on no more often than this either.
	rereadEvery = time.Minute
	// readTimeout bounds one Secrets Manager read, which every waiting
	// caller shares, and likewise a new token source's first token request.
	readTimeout = 30 * time.Second
)

// lazyTokens builds the MSAL-backed token source on first use. It reads
// the secret again every secretTTL, and at once (at most every
// rereadEvery) when Entra ID says the credential is invalid or expired,
// or F&O refuses a token, since the secret may just have been rotated. The
// source, and with it MSAL's token cache, is rebuilt only when the secret
// read differs from the one in use, or, from the same credential, to drop
// a token F&O refused (d365.TokenSource has no other way to make MSAL
// forget it). No lock is held while Secrets Manager answers: one read at
// a time is shared by every caller that needs it.
type lazyTokens struct {
	settings Settings
	sm       SecretGetter
	hc       *http.Client
	log      *slog.Logger
	now      func() time.Time

	flight singleflight.Group

	mu        sync.Mutex
	src       d365.TokenSource
	gen       uint64            // counts the sources put in src
	cred      d365.Credential   // src's credential
	sum       [sha256.Size]byte // of the secret text src was built from
	readAt    time.Time         // when the secret was last read, or a read tried
	current   [sha256.Size]byte // of the token src last handed out; zero when none yet
	refusedAt time.Time         // when an F&O refusal was last acted on
	builds    int               // token sources built from a secret read
	drops     int               // token sources rebuilt to drop a refused token
}

func newLazyTokens(s Settings, sm SecretGetter, hc *http.Client, log *slog.Logger) *lazyTokens {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &lazyTokens{settings: s, sm: sm, hc: hc, log: log, now: time.Now}
}

var _ d365.TokenRefuser = (*lazyTokens)(nil)

// Token hands out a token; a refused credential is read again and, if it
// changed, tried once more.
func (l *lazyTokens) Token(ctx context.Context) (string, error) {
	src, err := l.source(ctx)
	if err != nil {
		return "", err
	}
	tok, err := l.tokenFrom(ctx, src)
	var ae *d365.AuthError
	if err == nil || !errors.As(err, &ae) || !ae.InvalidClient() {
		return tok, err
	}
	l.mu.Lock()
	cur, due := l.src, l.now().Sub(l.readAt) >= rereadEvery
	l.mu.Unlock()
	if cur != src { // another caller has just read a new secret
		return l.tokenFrom(ctx, cur)
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
	return l.tokenFrom(ctx, fresh)
}

// tokenFrom asks src for a token. Until the source in use has handed one
// out, its MSAL cache is empty and MSAL would send every concurrent caller
// to Entra ID: they share one request instead, each waiting no longer
// than its context allows.
func (l *lazyTokens) tokenFrom(ctx context.Context, src d365.TokenSource) (string, error) {
	l.mu.Lock()
	gen, first := l.gen, l.src == src && l.current == [sha256.Size]byte{}
	l.mu.Unlock()
	if !first {
		return l.ask(ctx, src)
	}
	ch := l.flight.DoChan(fmt.Sprintf("token %d", gen), func() (any, error) {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
		defer cancel()
		return l.ask(tctx, src)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// ask asks src for a token and remembers (as a hash) which one the source
// in use handed out last, to tell a refusal of it from one of a token
// already replaced.
func (l *lazyTokens) ask(ctx context.Context, src d365.TokenSource) (string, error) {
	tok, err := src.Token(ctx)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(tok))
	l.mu.Lock()
	if l.src == src {
		l.current = sum
	}
	l.mu.Unlock()
	return tok, nil
}

// Refused is told that F&O answered 401 to tok: the token was revoked
// (with the secret it came from, after a rotation) or expired early. If
// tok is still the token in use, it reads the secret again when the last
// read is a minute old; if the secret changed, the new source serves,
// otherwise the source is rebuilt from the same credential, which drops
// MSAL's cache and the refused token with it. It acts at most once every
// rereadEvery (a fresh token that F&O refuses too would not be helped by
// another), and callers that arrive meanwhile share the outcome. It
// reports whether a request may be sent again with the token Token hands
// out now.
func (l *lazyTokens) Refused(ctx context.Context, tok string) bool {
	sum := sha256.Sum256([]byte(tok))
	l.mu.Lock()
	replaced := l.current != sum
	l.mu.Unlock()
	if replaced {
		return true
	}
	ch := l.flight.DoChan("refused", func() (any, error) {
		ctx := context.WithoutCancel(ctx)
		l.mu.Lock()
		if l.current != sum {
			l.mu.Unlock()
			return true, nil
		}
		now := l.now()
		if !l.refusedAt.IsZero() && now.Sub(l.refusedAt) < rereadEvery {
			l.mu.Unlock()
			return false, nil
		}
		l.refusedAt = now
		src, cred, reread := l.src, l.cred, now.Sub(l.readAt) >= rereadEvery
		l.mu.Unlock()
		l.log.WarnContext(ctx, "fno credentials: F&O refused the access token (401); getting a new one",
			"readingSecretAgain", reread, "source", l.where())
		if reread {
			_, changed, err := l.load(ctx)
			switch {
			case err != nil:
				l.log.WarnContext(ctx, "fno credentials: could not read the secret again; getting a new token with the one read before",
					"source", l.where(), "error", err.Error())
			case changed:
				l.log.InfoContext(ctx, "fno credentials: the stored secret changed; using the new one")
				return true, nil
			}
		}
		fresh, err := l.tokenSource(cred)
		if err != nil {
			return false, nil
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.src == src {
			l.src, l.current = fresh, [sha256.Size]byte{}
			l.gen++
			l.drops++
		}
		return true, nil
	})
	select {
	case r := <-ch:
		return r.Val.(bool)
	case <-ctx.Done():
		return false
	}
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
		cred, err := ParseSecret(secret)
		if err != nil {
			return nil, err
		}
		src, err := l.tokenSource(cred)
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		l.src, l.cred, l.sum, l.current = src, cred, sum, [sha256.Size]byte{}
		l.gen++
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

// tokenSource makes an MSAL-backed token source, with an empty token
// cache, for a credential (no network call: MSAL contacts Entra ID on the
// first token request).
func (l *lazyTokens) tokenSource(cred d365.Credential) (d365.TokenSource, error) {
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
