package d365

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
)

// TokenSource hands out bearer tokens for the F&O environment. The MSAL
// source caches them, so calling Token for every request costs one Entra ID
// round trip per token lifetime, not per call.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// TokenRefuser is what a TokenSource may also be. Told that F&O answered
// 401 to a token it handed out (revoked with its secret, say), it stops
// handing that token out and reports whether a request may be sent again
// with the one it hands out now; the client then sends the request once
// more (F&O did not act on a request it refused).
type TokenRefuser interface {
	Refused(ctx context.Context, token string) bool
}

// Credential proves the app's identity to Entra ID: a client secret or a
// certificate.
type Credential struct {
	cred confidential.Credential
	kind string
}

// SecretCredential is a client-secret credential.
func SecretCredential(secret string) (Credential, error) {
	if secret == "" {
		return Credential{}, fmt.Errorf("d365: empty client secret")
	}
	c, err := confidential.NewCredFromSecret(secret)
	if err != nil {
		return Credential{}, fmt.Errorf("d365: client secret: %w", err)
	}
	return Credential{cred: c, kind: "secret"}, nil
}

// CertificateCredential is a certificate credential from PEM holding the
// certificate and its private key (password optional, for an encrypted key).
func CertificateCredential(pemData []byte, password string) (Credential, error) {
	certs, key, err := confidential.CertFromPEM(pemData, password)
	if err != nil {
		return Credential{}, fmt.Errorf("d365: certificate: %w", err)
	}
	c, err := confidential.NewCredFromCert(certs, key)
	if err != nil {
		return Credential{}, fmt.Errorf("d365: certificate: %w", err)
	}
	return Credential{cred: c, kind: "certificate"}, nil
}

// msalTokenSource acquires client-credentials tokens through MSAL, whose
// in-memory cache answers until the token is close to expiry.
type msalTokenSource struct {
	app                        confidential.Client
	scope                      []string
	tenantID, clientID, source string
	adfs                       bool // the authority is AD FS, not Entra ID
}

// DefaultAuthorityHost is Entra ID's public-cloud login host.
const DefaultAuthorityHost = "https://login.microsoftonline.com"

func newMSALTokenSource(cfg Config, base *url.URL, hc *http.Client) (*msalTokenSource, error) {
	authority, adfs, err := Authority(cfg.AuthorityHost, cfg.TenantID)
	if err != nil {
		return nil, err
	}
	if cfg.ClientID == "" {
		return nil, fmt.Errorf("d365: ClientID is required")
	}
	if cfg.Credential.kind == "" {
		return nil, fmt.Errorf("d365: a Credential (secret or certificate) is required")
	}
	opts := []confidential.Option{confidential.WithHTTPClient(hc)}
	if au, _ := url.Parse(authority); adfs || !isMicrosoftLoginHost(au.Hostname()) {
		// Instance discovery asks login.microsoftonline.com about the
		// authority, which a private authority (AD FS, the emulator)
		// cannot pass.
		opts = append(opts, confidential.WithInstanceDiscovery(false))
	}
	app, err := confidential.New(authority, cfg.ClientID, cfg.Credential.cred, opts...)
	if err != nil {
		return nil, fmt.Errorf("d365: MSAL client: %w", err)
	}
	tenant := cfg.TenantID
	if adfs {
		tenant = adfsTenant
	}
	return &msalTokenSource{app: app, scope: []string{base.Scheme + "://" + base.Host + "/.default"},
		tenantID: tenant, clientID: cfg.ClientID, source: cfg.CredentialSource, adfs: adfs}, nil
}

// adfsTenant is what MSAL calls an AD FS authority's tenant: it has none.
const adfsTenant = "adfs"

// Authority is the MSAL authority for an AuthorityHost and tenant:
// <host>/<tenant> for Entra ID (host default DefaultAuthorityHost), or, for
// a host given as an AD FS authority (a URL whose path is /adfs, as
// on-premises F&O environments sign in with), that URL itself, with adfs
// true. AD FS has no tenants: tenant must then be empty or "adfs". MSAL
// for Go's confidential client accepts such an authority and discovers its
// endpoints at <host>/adfs/.well-known/openid-configuration.
func Authority(host, tenant string) (authority string, adfs bool, err error) {
	if host == "" {
		host = DefaultAuthorityHost
	}
	au, err := url.Parse(strings.TrimRight(host, "/"))
	if err != nil || au.Host == "" || au.RawQuery != "" || au.Fragment != "" {
		return "", false, fmt.Errorf("d365: AuthorityHost %q is not a URL", host)
	}
	if au.Scheme != "https" {
		return "", false, fmt.Errorf("d365: AuthorityHost %q: MSAL requires https", host)
	}
	switch {
	case strings.EqualFold(au.Path, "/adfs"):
		if tenant != "" && !strings.EqualFold(tenant, adfsTenant) {
			return "", false, fmt.Errorf("d365: TenantID %q: an AD FS authority (%s) has no tenants; give %q or nothing", tenant, host, adfsTenant)
		}
		return au.Scheme + "://" + au.Host + "/adfs", true, nil
	case au.Path != "":
		return "", false, fmt.Errorf("d365: AuthorityHost %q: give Entra ID's host alone (https://login.microsoftonline.com) "+
			"or an AD FS authority ending in /adfs (https://adfs.contoso.com/adfs)", host)
	case tenant == "":
		return "", false, fmt.Errorf("d365: TenantID is required")
	}
	return au.String() + "/" + url.PathEscape(tenant), false, nil
}

func isMicrosoftLoginHost(h string) bool {
	for _, s := range []string{"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn", "login.partner.microsoftonline.cn"} {
		if h == s {
			return true
		}
	}
	return false
}

func (s *msalTokenSource) Token(ctx context.Context) (string, error) {
	res, err := s.app.AcquireTokenByCredential(ctx, s.scope)
	if err != nil {
		if ae := authError(err, s.tenantID, s.clientID, s.source); ae != nil {
			ae.ADFS = s.adfs
			return "", ae
		}
		return "", fmt.Errorf("d365: acquire token: %w", err)
	}
	return res.AccessToken, nil
}

// NewTokenSource is the MSAL-backed token source New builds from cfg
// (BaseURL, TenantID, ClientID, Credential, CredentialSource,
// AuthorityHost, HTTPClient), for callers that assemble the credential
// lazily. When Entra ID refuses the credential, Token returns an
// *AuthError.
func NewTokenSource(cfg Config) (TokenSource, error) {
	base, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	return newMSALTokenSource(cfg, base, noRedirects(cfg.HTTPClient))
}
