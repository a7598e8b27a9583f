package d365test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The Entra ID fake: just enough of login.microsoftonline.com for MSAL's
// client-credentials flow and for the v1 resource= flow.

type token struct {
	appID   string
	expires time.Time // fake clock
	// secret is the client secret the token was issued from; "" for a
	// client assertion.
	secret string
}

// TokenGrant records one token the Entra fake issued.
type TokenGrant struct {
	ClientID   string
	Credential string // "secret" or "assertion"
	Scope      string // v2 scope, or v1 resource
	Version    int    // 2 for /oauth2/v2.0/token, 1 for /oauth2/token
	// Thumbprint is the assertion's x5t#S256 (or x5t) header, if any.
	Thumbprint string
	// ADFS: issued by the AD FS fake (ADFSAuthorityURL), not Entra ID.
	ADFS bool
}

// Grants returns the tokens issued so far, oldest first.
func (e *Emulator) Grants() []TokenGrant {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]TokenGrant(nil), e.st.grants...)
}

func (e *Emulator) entraRoute(r *http.Request, seg []string) route {
	if rt, ok := e.adfsRoute(seg); ok {
		return rt
	}
	is := func(want ...string) bool {
		if len(seg) != len(want) {
			return false
		}
		for i := 1; i < len(want); i++ {
			if !strings.EqualFold(seg[i], want[i]) {
				return false
			}
		}
		return true
	}
	switch {
	case is("common", "discovery", "instance") && strings.EqualFold(seg[0], "common"):
		return route{endpoint: "instance-discovery", seg: seg, h: e.instanceDiscovery}
	case is("t", "v2.0", ".well-known", "openid-configuration"):
		return route{endpoint: "openid-configuration", seg: seg, h: e.openIDConfig(2)}
	case is("t", ".well-known", "openid-configuration"):
		return route{endpoint: "openid-configuration", seg: seg, h: e.openIDConfig(1)}
	case is("t", "oauth2", "v2.0", "token"):
		return route{endpoint: "token", seg: seg, h: e.tokenEndpoint(2)}
	case is("t", "oauth2", "token"):
		return route{endpoint: "token", seg: seg, h: e.tokenEndpoint(1)}
	}
	return route{endpoint: "entra-other", h: notFound}
}

func (e *Emulator) tenantOK(w http.ResponseWriter, seg []string) bool {
	if len(seg) > 0 && strings.EqualFold(seg[0], e.opts.TenantID) {
		return true
	}
	e.entraError(w, http.StatusBadRequest, "invalid_request", 90002,
		fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID.", first(seg)))
	return false
}

func (e *Emulator) openIDConfig(version int) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *call) {
		if !e.tenantOK(w, c.seg) {
			return
		}
		base := e.entraURL + "/" + e.opts.TenantID
		doc := map[string]any{
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
			"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
			"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
			"subject_types_supported":               []string{"pairwise"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"tenant_region_scope":                   "EU",
			"cloud_instance_name":                   "microsoftonline.com",
		}
		if version == 2 {
			doc["issuer"] = base + "/v2.0"
			doc["token_endpoint"] = base + "/oauth2/v2.0/token"
			doc["authorization_endpoint"] = base + "/oauth2/v2.0/authorize"
			doc["jwks_uri"] = base + "/discovery/v2.0/keys"
		} else {
			doc["issuer"] = base + "/"
			doc["token_endpoint"] = base + "/oauth2/token"
			doc["authorization_endpoint"] = base + "/oauth2/authorize"
			doc["jwks_uri"] = base + "/discovery/keys"
		}
		writeJSON(w, http.StatusOK, doc)
	}
}

// instanceDiscovery answers MSAL's instance discovery harmlessly: the
// emulator's host is its own only alias.
func (e *Emulator) instanceDiscovery(w http.ResponseWriter, r *http.Request, c *call) {
	h := strings.TrimPrefix(e.entraURL, "https://")
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": e.entraURL + "/" + e.opts.TenantID + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata":                  []any{map[string]any{"preferred_network": h, "preferred_cache": h, "aliases": []string{h}}},
	})
}

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

func (e *Emulator) tokenEndpoint(version int) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *call) {
		f, app, ok := e.tokenRequest(w, r, c)
		if !ok {
			return
		}
		grant := TokenGrant{ClientID: app.ClientID, Version: version}
		fromSecret, ok := e.checkCredential(w, f, app, &grant)
		if !ok {
			return
		}
		if grant.Scope, ok = e.tokenScope(w, f, version); !ok {
			return
		}
		e.issueToken(w, f, version, grant, fromSecret)
	}
}

// tokenRequest checks a token request's method, tenant, form and grant
// type, and finds its app; on a refusal it has answered and ok is false.
func (e *Emulator) tokenRequest(w http.ResponseWriter, r *http.Request, c *call) (url.Values, App, bool) {
	if r.Method != http.MethodPost {
		e.entraError(w, http.StatusMethodNotAllowed, "invalid_request", 900561, "The endpoint only accepts POST requests.")
		return nil, App{}, false
	}
	if !e.tenantOK(w, c.seg) {
		return nil, App{}, false
	}
	if err := r.ParseForm(); err != nil {
		e.entraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must be application/x-www-form-urlencoded.")
		return nil, App{}, false
	}
	f := r.PostForm
	if gt := f.Get("grant_type"); gt != "client_credentials" {
		e.entraError(w, http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("The app requested an unsupported grant type '%s'.", gt))
		return nil, App{}, false
	}
	clientID := f.Get("client_id")
	if c.fault != nil && c.fault.AADSTS != 0 {
		e.entraCode(w, c.fault.AADSTS, clientID)
		return nil, App{}, false
	}
	e.mu.Lock()
	var app App
	known := e.st.apps[clientID] != nil
	if known {
		app = *e.st.apps[clientID]
	}
	e.mu.Unlock()
	switch {
	case !known:
		e.entraCode(w, 700016, clientID)
		return nil, App{}, false
	case app.Disabled:
		e.entraCode(w, 7000112, clientID)
		return nil, App{}, false
	}
	app.ClientID = clientID
	return f, app, true
}

// checkCredential checks the client secret or assertion and fills the
// grant's credential; fromSecret is the secret a token is issued from.
func (e *Emulator) checkCredential(w http.ResponseWriter, f url.Values, app App, grant *TokenGrant) (fromSecret string, ok bool) {
	switch {
	case f.Get("client_secret") != "":
		sent := f.Get("client_secret")
		switch {
		case subtle.ConstantTimeCompare([]byte(sent), []byte(app.ClientSecret)) == 1:
			if app.SecretExpired {
				e.entraCode(w, 7000222, app.ClientID)
				return "", false
			}
		case !app.hasOtherSecret(sent):
			e.entraCode(w, 7000215, app.ClientID)
			return "", false
		}
		grant.Credential = "secret"
		return sent, true
	case f.Get("client_assertion") != "":
		if f.Get("client_assertion_type") != assertionType {
			e.entraError(w, http.StatusBadRequest, "invalid_request", 50027, "client_assertion_type must be "+assertionType+".")
			return "", false
		}
		thumb, err := e.checkAssertion(f.Get("client_assertion"), app.ClientID)
		if err != nil {
			e.entraError(w, http.StatusUnauthorized, "invalid_client", 700027,
				"Client assertion failed signature validation or is malformed: "+err.Error())
			return "", false
		}
		grant.Credential, grant.Thumbprint = "assertion", thumb
		return "", true
	default:
		e.entraError(w, http.StatusUnauthorized, "invalid_client", 7000216,
			"'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
		return "", false
	}
}

// tokenScope is the v2 scope (or v1 resource) asked for, when it is F&O's.
func (e *Emulator) tokenScope(w http.ResponseWriter, f url.Values, version int) (string, bool) {
	if version == 2 {
		scope, ok := e.checkScope(f.Get("scope"))
		if !ok {
			e.entraError(w, http.StatusBadRequest, "invalid_scope", 1002012,
				fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", f.Get("scope")))
		}
		return scope, ok
	}
	res := f.Get("resource")
	if !e.isFOResource(res) {
		e.entraError(w, http.StatusBadRequest, "invalid_resource", 500011,
			fmt.Sprintf("The resource principal named %s was not found in the tenant named %s.", res, e.opts.TenantID))
		return "", false
	}
	return res, true
}

// issueToken records and answers a new token, in the endpoint version's
// shape.
func (e *Emulator) issueToken(w http.ResponseWriter, f url.Values, version int, grant TokenGrant, fromSecret string) {
	tok := "emu." + strings.ReplaceAll(newGUID()+newGUID(), "-", "")
	now := e.clock.Now()
	e.mu.Lock()
	e.st.tokens[tok] = token{appID: grant.ClientID, expires: now.Add(e.opts.TokenLifetime), secret: fromSecret}
	e.st.grants = append(e.st.grants, grant)
	e.mu.Unlock()
	secs := int(e.opts.TokenLifetime / time.Second)
	w.Header().Set("Cache-Control", "no-store, no-cache")
	if version == 2 {
		writeJSON(w, http.StatusOK, map[string]any{
			"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok,
		})
		return
	}
	// The v1 endpoint sends its numbers as strings.
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": strconv.Itoa(secs), "ext_expires_in": strconv.Itoa(secs),
		"expires_on": strconv.FormatInt(now.Add(e.opts.TokenLifetime).Unix(), 10),
		"not_before": strconv.FormatInt(now.Unix(), 10), "resource": f.Get("resource"), "access_token": tok,
	})
}

// checkScope accepts "<F&O URL>/.default" (also with the double slash some
// clients send), plus the OIDC scopes MSAL appends.
func (e *Emulator) checkScope(scope string) (string, bool) {
	var resource string
	for _, s := range strings.Fields(scope) {
		switch strings.ToLower(s) {
		case "openid", "offline_access", "profile":
			continue
		}
		r, ok := strings.CutSuffix(s, "/.default")
		if !ok || resource != "" || !e.isFOResource(r) {
			return "", false
		}
		resource = s
	}
	return resource, resource != ""
}

func (e *Emulator) isFOResource(r string) bool {
	return strings.EqualFold(strings.TrimRight(r, "/"), e.foURL)
}

// checkAssertion checks a client assertion JWT: three base64url parts,
// iss and sub equal to the client ID, and, when Options.ClientCertificate is
// set, a signature by that certificate's key. It returns the thumbprint
// header.
func (e *Emulator) checkAssertion(jwt, clientID string) (string, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("not a JWS compact serialization")
	}
	var hdr struct {
		Alg     string `json:"alg"`
		X5t     string `json:"x5t"`
		X5tS256 string `json:"x5t#S256"`
	}
	var claims struct {
		Iss string `json:"iss"`
		Sub string `json:"sub"`
		Aud any    `json:"aud"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return "", fmt.Errorf("header: %w", err)
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return "", fmt.Errorf("claims: %w", err)
	}
	if claims.Iss != clientID || claims.Sub != clientID {
		return "", fmt.Errorf("iss and sub must be the client ID")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) == 0 {
		return "", fmt.Errorf("signature is not base64url")
	}
	if cert := e.opts.ClientCertificate; cert != nil {
		sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if err := verifyJWS(hdr.Alg, cert.PublicKey, sum[:], sig); err != nil {
			return "", err
		}
	}
	if hdr.X5tS256 != "" {
		return hdr.X5tS256, nil
	}
	return hdr.X5t, nil
}

func verifyJWS(alg string, pub any, digest, sig []byte) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256":
			return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig)
		case "PS256":
			return rsa.VerifyPSS(k, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		}
	case *ecdsa.PublicKey:
		if alg == "ES256" && len(sig) == 64 {
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			if ecdsa.Verify(k, digest, r, s) {
				return nil
			}
			return fmt.Errorf("bad ES256 signature")
		}
	}
	return fmt.Errorf("unsupported or mismatched alg %q for the registered certificate", alg)
}

func decodeSegment(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// entraCodes are Entra ID's answers for the codes the emulator gives, by
// AADSTS number: status, OAuth error, message (%[1]s the client ID, %[2]s
// the tenant).
var entraCodes = map[int]struct {
	status int
	oauth  string
	msg    string
}{
	7000215: {http.StatusUnauthorized, "invalid_client", "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%[1]s'."},
	7000222: {http.StatusUnauthorized, "invalid_client", "The provided client secret keys for app '%[1]s' are expired. Create new keys for the app, or use certificate credentials."},
	700016:  {http.StatusBadRequest, "unauthorized_client", "Application with identifier '%[1]s' was not found in the directory '%[2]s'."},
	90002:   {http.StatusBadRequest, "invalid_request", "Tenant '%[2]s' not found. Check to make sure you have the correct tenant ID."},
	7000112: {http.StatusBadRequest, "unauthorized_client", "Application '%[1]s' is disabled."},
}

// entraCode answers a token request with Entra ID's error for code.
func (e *Emulator) entraCode(w http.ResponseWriter, code int, clientID string) {
	c, ok := entraCodes[code]
	if !ok {
		c.status, c.oauth, c.msg = http.StatusBadRequest, "invalid_request", "Injected error for app '%[1]s'."
	}
	e.entraError(w, c.status, c.oauth, code, fmt.Sprintf(c.msg, clientID, e.opts.TenantID))
}

// SetClientSecret rotates the secret of the app registered from Options:
// from now on only secret is accepted (the old one, and any added with
// AddClientSecret, is answered with AADSTS7000215), and it has not expired.
func (e *Emulator) SetClientSecret(secret string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.st.apps[e.opts.ClientID]
	a.ClientSecret, a.SecretExpired, a.OtherSecrets = secret, false, nil
}

// AddClientSecret gives the app registered from Options another valid
// secret besides its current one, as Entra ID allows while a secret is
// rotated: both are accepted until SetClientSecret leaves one.
// ClientSecret still names the current one.
func (e *Emulator) AddClientSecret(secret string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.st.apps[e.opts.ClientID]
	a.OtherSecrets = append(append([]string(nil), a.OtherSecrets...), secret)
}

// hasOtherSecret reports whether secret is one of a's OtherSecrets.
func (a *App) hasOtherSecret(secret string) bool {
	for _, s := range a.OtherSecrets {
		if subtle.ConstantTimeCompare([]byte(secret), []byte(s)) == 1 {
			return true
		}
	}
	return false
}

// secretValid reports whether a token issued from secret still stands
// with RevokeTokensWithSecret: secret is a's current, unexpired secret or
// one of its OtherSecrets.
func (a *App) secretValid(secret string) bool {
	return (secret == a.ClientSecret && !a.SecretExpired) || a.hasOtherSecret(secret)
}

// ExpireClientSecret makes the current secret of the app registered from
// Options expire: it is answered with AADSTS7000222 until SetClientSecret.
func (e *Emulator) ExpireClientSecret() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.apps[e.opts.ClientID].SecretExpired = true
}

// entraError writes Entra's error shape.
func (e *Emulator) entraError(w http.ResponseWriter, status int, code string, aadsts int, msg string) {
	now := e.clock.Now()
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts, msg, newGUID(), newGUID(), now.Format("2006-01-02 15:04:05Z")),
		"error_codes":       []int{aadsts},
		"timestamp":         now.Format("2006-01-02 15:04:05Z"),
		"trace_id":          newGUID(),
		"correlation_id":    newGUID(),
		"error_uri":         e.entraURL + "/error?code=" + strconv.Itoa(aadsts),
	})
}

// authenticate checks an F&O request's bearer token: known, not expired on
// the fake clock, issued to an app F&O knows and, with
// Options.RevokeTokensWithSecret, issued from the app's current, unexpired
// secret. It returns the client ID.
func (e *Emulator) authenticate(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.st.tokens[tok]
	if !ok || !now.Before(t.expires) {
		return "", false
	}
	app := e.st.apps[t.appID]
	if app == nil || app.NotInFO {
		return "", false
	}
	if e.opts.RevokeTokensWithSecret && t.secret != "" && !app.secretValid(t.secret) {
		return "", false
	}
	return t.appID, true
}

// unauthorized answers like F&O: a bare status with a Bearer challenge.
func (e *Emulator) unauthorized(w http.ResponseWriter, status int) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization_uri="%s/oauth2/authorize", error="invalid_token"`, e.AuthorityURL()))
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
