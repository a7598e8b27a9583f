package d365test

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The AD FS fake: what an on-premises F&O environment signs in with. It is
// served on the Entra listener under /adfs (ADFSAuthorityURL), for the
// apps the emulator knows: just enough of AD FS 2019 for MSAL's
// client-credentials flow against an AD FS authority.

// OnPremisesNamespace is the namespace an on-premises environment serves
// its OData endpoints under (Options.OnPremises).
const OnPremisesNamespace = "AXSF"

// ADFSAuthorityURL is the AD FS authority for MSAL:
// https://127.0.0.1:PORT/adfs (no tenant; AD FS has none).
func (e *Emulator) ADFSAuthorityURL() string { return e.entraURL + "/adfs" }

// adfsRoute maps /adfs/... on the Entra listener; ok is false for other
// paths.
func (e *Emulator) adfsRoute(seg []string) (route, bool) {
	if len(seg) == 0 || seg[0] != "adfs" {
		return route{}, false
	}
	switch strings.ToLower(strings.Join(seg[1:], "/")) {
	case ".well-known/openid-configuration":
		return route{endpoint: "openid-configuration", seg: seg, h: e.adfsOpenIDConfig}, true
	case "oauth2/token":
		return route{endpoint: "token", seg: seg, h: e.adfsToken}, true
	}
	return route{endpoint: "entra-other", h: notFound}, true
}

func (e *Emulator) adfsOpenIDConfig(w http.ResponseWriter, _ *http.Request, _ *call) {
	base := e.ADFSAuthorityURL()
	host := strings.TrimPrefix(e.entraURL, "https://")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                 base,
		"authorization_endpoint": base + "/oauth2/authorize/",
		"token_endpoint":         base + "/oauth2/token/",
		"jwks_uri":               base + "/discovery/keys",
		// AD FS names its token issuer with http, not https.
		"access_token_issuer":                   "http://" + host + "/adfs/services/trust",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic", "private_key_jwt", "windows_client_authentication"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token", "code token", "code id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "allatclaims", "aza", "user_impersonation"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"microsoft_multi_refresh_token":         true,
	})
}

// adfsToken is AD FS's token endpoint for the client-credentials grant: a
// client secret or a client assertion (RS256, x5t), and a scope of
// "<F&O URL>/.default" (as MSAL asks) or a resource of the F&O URL.
func (e *Emulator) adfsToken(w http.ResponseWriter, r *http.Request, c *call) {
	if r.Method != http.MethodPost {
		adfsError(w, http.StatusMethodNotAllowed, "invalid_request", "The token endpoint only accepts POST requests.")
		return
	}
	if err := r.ParseForm(); err != nil {
		adfsError(w, http.StatusBadRequest, "invalid_request", "The request body must be application/x-www-form-urlencoded.")
		return
	}
	f := r.PostForm
	if gt := f.Get("grant_type"); gt != "client_credentials" {
		adfsError(w, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("The grant type %q is not supported here.", gt))
		return
	}
	clientID := f.Get("client_id")
	e.mu.Lock()
	app := e.st.apps[clientID]
	var a App
	if app != nil {
		a = *app
	}
	e.mu.Unlock()
	if app == nil || a.Disabled {
		adfsError(w, http.StatusBadRequest, "invalid_client",
			"MSIS9607: The 'client_id' parameter in the request is invalid. No registered client is found with this identifier.")
		return
	}
	grant := TokenGrant{ClientID: clientID, Version: 2, ADFS: true}
	fromSecret, ok := e.adfsCredential(w, f, a, &grant)
	if !ok {
		return
	}
	if grant.Scope, ok = e.adfsResource(f); !ok {
		adfsError(w, http.StatusBadRequest, "invalid_scope",
			fmt.Sprintf("MSIS9605: The client is not allowed to access the requested resource (%s).", f.Get("scope")+f.Get("resource")))
		return
	}
	tok := "adfs." + strings.ReplaceAll(newGUID()+newGUID(), "-", "")
	e.mu.Lock()
	e.st.tokens[tok] = token{appID: clientID, expires: e.clock.Now().Add(e.opts.TokenLifetime), secret: fromSecret}
	e.st.grants = append(e.st.grants, grant)
	e.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	// AD FS writes the token type in lower case.
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": int(e.opts.TokenLifetime / time.Second),
		"scope": grant.Scope})
}

// adfsCredential checks a token request's client secret or assertion.
func (e *Emulator) adfsCredential(w http.ResponseWriter, f url.Values, a App, grant *TokenGrant) (fromSecret string, ok bool) {
	const refused = "MSIS9622: Client authentication failed. Please verify the credential provided for client authentication is valid."
	switch {
	case f.Get("client_secret") != "":
		sent := f.Get("client_secret")
		current := subtle.ConstantTimeCompare([]byte(sent), []byte(a.ClientSecret)) == 1 && !a.SecretExpired
		if !current && !a.hasOtherSecret(sent) {
			adfsError(w, http.StatusBadRequest, "invalid_client", refused)
			return "", false
		}
		grant.Credential = "secret"
		return sent, true
	case f.Get("client_assertion") != "" && f.Get("client_assertion_type") == assertionType:
		thumb, err := e.checkAssertion(f.Get("client_assertion"), a.ClientID)
		if err != nil {
			adfsError(w, http.StatusBadRequest, "invalid_client", refused)
			return "", false
		}
		grant.Credential, grant.Thumbprint = "assertion", thumb
		return "", true
	}
	adfsError(w, http.StatusBadRequest, "invalid_client", "A client secret or a client assertion is required for the client_credentials grant.")
	return "", false
}

// adfsResource is the scope (or resource) asked for, when it is F&O's.
func (e *Emulator) adfsResource(f url.Values) (string, bool) {
	if res := f.Get("resource"); res != "" {
		return res, e.isFOResource(res)
	}
	return e.checkScope(f.Get("scope"))
}

// adfsError writes AD FS's OAuth error shape: no error_codes, and an MSIS
// code, where the emulator knows AD FS's, leading the description.
func adfsError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// onPremisesRedirect answers a recurring-integration call on an
// on-premises environment, which does not have them: 302 to the sign-in.
func (e *Emulator) onPremisesRedirect(w http.ResponseWriter, _ *http.Request, _ *call) {
	w.Header().Set("Location", e.ADFSAuthorityURL()+"/ls/?wa=wsignin1.0")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusFound)
}
