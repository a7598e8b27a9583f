package d365test_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"

	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

func TestOpenIDConfiguration(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	authority, _ := url.Parse(v.e.AuthorityURL())
	for _, tc := range []struct{ name, path, tokenSuffix string }{
		{"v2", "/v2.0/.well-known/openid-configuration", "/oauth2/v2.0/token"},
		{"v1", "/.well-known/openid-configuration", "/oauth2/token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := v.do(context.Background(), http.MethodGet, v.e.AuthorityURL()+tc.path, nil)
			var doc map[string]any
			if r.StatusCode != http.StatusOK || json.Unmarshal(r.body, &doc) != nil {
				t.Fatalf("%d %s", r.StatusCode, r.body)
			}
			for _, k := range []string{"token_endpoint", "authorization_endpoint", "issuer"} {
				s, _ := doc[k].(string)
				u, err := url.Parse(s)
				if err != nil || u.Host != authority.Host {
					t.Errorf("%s = %q, want a URL on %s (MSAL checks the issuer host)", k, s, authority.Host)
				}
			}
			if got := doc["token_endpoint"]; got != v.e.AuthorityURL()+tc.tokenSuffix {
				t.Errorf("token_endpoint = %v", got)
			}
		})
	}
	r := v.do(context.Background(), http.MethodGet, strings.Replace(v.e.AuthorityURL(), v.e.TenantID(), "other-tenant", 1)+"/v2.0/.well-known/openid-configuration", nil)
	if r.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown tenant: %d", r.StatusCode)
	}
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	e := v.e
	v2, v1 := e.AuthorityURL()+"/oauth2/v2.0/token", e.AuthorityURL()+"/oauth2/token"
	good := func(mod func(url.Values)) url.Values {
		f := url.Values{"grant_type": {"client_credentials"}, "client_id": {e.ClientID()},
			"client_secret": {e.ClientSecret()}, "scope": {e.URL() + "/.default"}}
		if mod != nil {
			mod(f)
		}
		return f
	}
	assertion := func(iss string) string {
		enc := func(v any) string { b, _ := json.Marshal(v); return b64url(b) }
		return enc(map[string]string{"alg": "PS256", "typ": "JWT", "x5t#S256": "dGh1bWI="}) + "." +
			enc(map[string]string{"iss": iss, "sub": iss, "aud": v2}) + "." + b64url([]byte("sig"))
	}
	tests := []struct {
		name     string
		endpoint string
		form     url.Values
		status   int
		errCode  string
	}{
		{"secret", v2, good(nil), 200, ""},
		{"MSAL extra scopes", v2, good(func(f url.Values) { f.Set("scope", e.URL()+"/.default openid offline_access profile") }), 200, ""},
		{"double slash scope", v2, good(func(f url.Values) { f.Set("scope", e.URL()+"//.default") }), 200, ""},
		{"wrong secret", v2, good(func(f url.Values) { f.Set("client_secret", "nope") }), 401, "invalid_client"},
		{"no credential", v2, good(func(f url.Values) { f.Del("client_secret") }), 401, "invalid_client"},
		{"unknown client", v2, good(func(f url.Values) { f.Set("client_id", "who") }), 400, "unauthorized_client"},
		{"wrong scope", v2, good(func(f url.Values) { f.Set("scope", "https://other.example/.default") }), 400, "invalid_scope"},
		{"scope without .default", v2, good(func(f url.Values) { f.Set("scope", e.URL()) }), 400, "invalid_scope"},
		{"grant type", v2, good(func(f url.Values) { f.Set("grant_type", "password") }), 400, "unsupported_grant_type"},
		{"assertion", v2, good(func(f url.Values) {
			f.Del("client_secret")
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
			f.Set("client_assertion", assertion(e.ClientID()))
		}), 200, ""},
		{"assertion for another client", v2, good(func(f url.Values) {
			f.Del("client_secret")
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
			f.Set("client_assertion", assertion("someone-else"))
		}), 401, "invalid_client"},
		{"malformed assertion", v2, good(func(f url.Values) {
			f.Del("client_secret")
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
			f.Set("client_assertion", "not-a-jwt")
		}), 401, "invalid_client"},
		{"v1 resource", v1, good(func(f url.Values) { f.Del("scope"); f.Set("resource", e.URL()) }), 200, ""},
		{"v1 wrong resource", v1, good(func(f url.Values) { f.Del("scope"); f.Set("resource", "https://x.example") }), 400, "invalid_resource"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := v.postForm(tc.endpoint, tc.form)
			if r.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", r.StatusCode, tc.status, r.body)
			}
			var body map[string]any
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatalf("not JSON: %s", r.body)
			}
			if tc.status != 200 {
				if body["error"] != tc.errCode || !strings.HasPrefix(body["error_description"].(string), "AADSTS") {
					t.Errorf("error body %s, want error %q with an AADSTS description", r.body, tc.errCode)
				}
				return
			}
			if body["token_type"] != "Bearer" || body["access_token"] == "" || body["expires_in"] == nil || body["ext_expires_in"] == nil {
				t.Errorf("token body %s", r.body)
			}
			// The token works on F&O.
			tok, _ := body["access_token"].(string)
			got := v.do(context.Background(), http.MethodPost, e.URL()+"/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetMessageStatus",
				strings.NewReader(`{"messageId":"x"}`), "Authorization", "Bearer "+tok)
			if got.StatusCode != 200 {
				t.Errorf("F&O with the new token: %d", got.StatusCode)
			}
		})
	}
}

func TestTokenExpiresOnFakeClock(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{TokenLifetime: 10 * time.Minute})
	call := func() int {
		return v.fo(http.MethodGet, "/api/connector/dequeue/"+actExport, nil).StatusCode
	}
	if got := call(); got != http.StatusNoContent {
		t.Fatalf("fresh token: %d", got)
	}
	v.e.Advance(10*time.Minute - time.Second)
	if got := call(); got != http.StatusNoContent {
		t.Fatalf("just before expiry: %d", got)
	}
	v.e.Advance(time.Second)
	if got := call(); got != http.StatusUnauthorized {
		t.Fatalf("expired token: %d, want 401", got)
	}
}

func TestMSALSecret(t *testing.T) {
	t.Parallel()
	e := d365test.NewT(t, d365test.Options{})
	cred, err := confidential.NewCredFromSecret(e.ClientSecret())
	if err != nil {
		t.Fatal(err)
	}
	app := msalApp(t, e, cred)
	ctx := context.Background()
	res, err := app.AcquireTokenByCredential(ctx, []string{e.URL() + "/.default"})
	if err != nil {
		t.Fatalf("MSAL: %v", err)
	}
	if _, err := app.AcquireTokenByCredential(ctx, []string{e.URL() + "/.default"}); err != nil {
		t.Fatalf("MSAL again: %v", err)
	}
	if got := e.TokenRequests(); got != 1 {
		t.Errorf("token requests = %d, want 1 (the second comes from MSAL's cache)", got)
	}
	req, _ := http.NewRequest(http.MethodGet, e.URL()+"/api/connector/dequeue/"+actExport, nil)
	req.Header.Set("Authorization", "Bearer "+res.AccessToken)
	e.AddActivity(actExport, d365test.Activity{})
	resp, err := e.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("dequeue with MSAL's token: %d", resp.StatusCode)
	}
}

func TestMSALCertificate(t *testing.T) {
	t.Parallel()
	cert, key := selfSigned(t)
	other, _ := selfSigned(t)
	for _, tc := range []struct {
		name       string
		registered *x509.Certificate
		ok         bool
	}{
		{"unchecked", nil, true},
		{"signed by the registered cert", cert, true},
		{"registered cert differs", other, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := d365test.NewT(t, d365test.Options{ClientCertificate: tc.registered})
			cred, err := confidential.NewCredFromCert([]*x509.Certificate{cert}, key)
			if err != nil {
				t.Fatal(err)
			}
			_, err = msalApp(t, e, cred).AcquireTokenByCredential(context.Background(), []string{e.URL() + "/.default"})
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok {
				g := e.Grants()
				if len(g) != 1 || g[0].Credential != "assertion" || g[0].Thumbprint == "" {
					t.Errorf("grants = %+v, want one assertion grant with a thumbprint", g)
				}
			}
		})
	}
}

// msalApp is an MSAL confidential client of e's Entra ID for e's app.
func msalApp(t *testing.T, e *d365test.Emulator, cred confidential.Credential) confidential.Client {
	t.Helper()
	app, err := confidential.New(e.AuthorityURL(), e.ClientID(), cred,
		confidential.WithHTTPClient(e.HTTPClient()), confidential.WithInstanceDiscovery(false))
	if err != nil {
		t.Fatal(err)
	}
	return app
}

func selfSigned(t *testing.T) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "app"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
