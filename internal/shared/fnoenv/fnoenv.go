// Package fnoenv builds the F&O client from the functions' environment:
// FNO_BASE_URL, FNO_TENANT_ID, FNO_CLIENT_ID, FNO_SECRET_ARN and optionally
// FNO_AUTHORITY_HOST; for local runs also FNO_CLIENT_SECRET (instead of
// Secrets Manager) and FNO_CA_BUNDLE (a PEM file to trust, for the emulator).
//
// The secret is fetched lazily, on the first token request of an execution
// environment, and kept for a TTL: cold start stays free of network calls and
// a rotated secret is picked up without a redeploy.
package fnoenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

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
}

// NewClient builds the F&O client. It validates the settings now and
// fetches the secret only when the first token is needed.
func (s Settings) NewClient(sm SecretGetter, opt Options) (*d365.Client, error) {
	hc, err := s.httpClient()
	if err != nil {
		return nil, err
	}
	lt := &lazyTokens{settings: s, sm: sm, hc: hc, ttl: 15 * time.Minute}
	c, err := d365.New(d365.Config{
		BaseURL: s.BaseURL, TenantID: s.TenantID, ClientID: s.ClientID, AuthorityHost: s.AuthorityHost,
		Tokens: lt, HTTPClient: hc, Limiter: opt.Limiter, Logger: opt.Logger, Retry: opt.Retry,
	})
	if err != nil {
		return nil, fmt.Errorf("config: FNO_BASE_URL: %w", err)
	}
	return c, nil
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

// lazyTokens builds the MSAL-backed token source on first use and rebuilds
// it when the secret's TTL has passed.
type lazyTokens struct {
	settings Settings
	sm       SecretGetter
	hc       *http.Client
	ttl      time.Duration

	mu      sync.Mutex
	src     d365.TokenSource
	fetched time.Time
}

func (l *lazyTokens) Token(ctx context.Context) (string, error) {
	l.mu.Lock()
	if l.src == nil || time.Since(l.fetched) > l.ttl {
		cred, err := l.credential(ctx)
		if err != nil {
			l.mu.Unlock()
			return "", err
		}
		src, err := d365.NewTokenSource(d365.Config{
			BaseURL: l.settings.BaseURL, TenantID: l.settings.TenantID, ClientID: l.settings.ClientID,
			AuthorityHost: l.settings.AuthorityHost, Credential: cred, HTTPClient: l.hc,
		})
		if err != nil {
			l.mu.Unlock()
			return "", err
		}
		l.src, l.fetched = src, time.Now()
	}
	src := l.src
	l.mu.Unlock()
	return src.Token(ctx)
}

// credential reads the client secret or certificate. The secret string is
// either the client secret itself or JSON: {"clientSecret": "..."} or
// {"certificatePem": "...", "password": "..."}.
func (l *lazyTokens) credential(ctx context.Context) (d365.Credential, error) {
	secret := l.settings.ClientSecret
	if secret == "" {
		if l.sm == nil {
			return d365.Credential{}, fmt.Errorf("fno credentials: no Secrets Manager client")
		}
		out, err := l.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &l.settings.SecretARN})
		if err != nil {
			return d365.Credential{}, fmt.Errorf("fno credentials: read secret %s: %w", l.settings.SecretARN, err)
		}
		if out.SecretString == nil {
			return d365.Credential{}, fmt.Errorf("fno credentials: secret %s has no SecretString", l.settings.SecretARN)
		}
		secret = *out.SecretString
	}
	return ParseSecret(secret)
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
