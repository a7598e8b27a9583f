package d365

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
)

// AuthError: Entra ID (or, on-premises, AD FS) refused to issue a token for the app (an expired or
// wrong client secret, an unknown app or tenant, a disabled app). It will
// not pass by retrying; Fix says what to do. It never holds the secret or a
// token: the description is Entra ID's, with secrets blanked.
type AuthError struct {
	Code        string // the AADSTS code, e.g. "AADSTS7000222"; "" if Entra ID gave none
	OAuthError  string // the OAuth error, e.g. "invalid_client"
	StatusCode  int
	Description string // Entra ID's error_description, redacted and bounded
	TenantID    string
	ClientID    string
	// Source is where the credential is kept (Config.CredentialSource),
	// named in the fix.
	Source string
	// ADFS: the refusal is AD FS's (an on-premises environment's
	// authority), whose codes are MSIS ones, not Entra ID's.
	ADFS bool
	// Err is an errors.CallErr (MSAL's error type) holding Entra ID's
	// answer; the request, which carried the credential, is left out.
	Err error
}

// Error says what Entra ID refused and what to do about it.
func (e *AuthError) Error() string {
	var b strings.Builder
	who := "Entra ID"
	if e.ADFS {
		who = "AD FS"
	}
	b.WriteString("d365: " + who + " refused a token for app " + e.ClientID + ": ")
	switch {
	case e.Code != "" && e.OAuthError != "":
		b.WriteString(e.Code + " (" + e.OAuthError + ")")
	case e.Code != "":
		b.WriteString(e.Code)
	case e.OAuthError != "":
		b.WriteString(e.OAuthError)
	default:
		b.WriteString(statusLine(e.StatusCode))
	}
	if d := e.shortDescription(); d != "" {
		b.WriteString(": " + d)
	}
	b.WriteString(". Fix: " + e.Fix())
	return b.String()
}

// shortDescription is the description without its AADSTS prefix and the
// trace, correlation and timestamp tail.
func (e *AuthError) shortDescription() string {
	d := e.Description
	if i := strings.Index(d, " Trace ID:"); i >= 0 {
		d = d[:i]
	}
	d = strings.TrimSpace(strings.TrimPrefix(d, e.Code+":"))
	return strings.TrimSuffix(d, ".")
}

// Unwrap gives MSAL's error.
func (e *AuthError) Unwrap() error { return e.Err }

// InvalidClient reports whether Entra ID refused the credential itself (an
// expired or wrong secret, a certificate it does not know): reading the
// credential again may help, as it may just have been rotated.
func (e *AuthError) InvalidClient() bool {
	switch e.Code {
	case "AADSTS7000222", "AADSTS7000215", "AADSTS700027":
		return true
	}
	return e.OAuthError == "invalid_client"
}

// Fix says what an operator should do about the refusal.
func (e *AuthError) Fix() string {
	app := "the app registration " + e.ClientID
	where := e.Source
	if where == "" {
		where = "the client secret setting"
	}
	if e.ADFS {
		return "check client " + e.ClientID + " and its secret or certificate in AD FS (the application group's server application) against " +
			where + ", and that the F&O URL is an identifier of the group's Web API"
	}
	switch e.Code {
	case "AADSTS7000222":
		return "the client secret has expired: add a new client secret to " + app +
			" in Entra ID (Certificates & secrets) and put its value in " + where
	case "AADSTS7000215":
		return "the client secret is wrong: put the secret's Value (not its Secret ID) from " + app +
			" (Certificates & secrets), or a new secret's, in " + where
	case "AADSTS700027":
		return "Entra ID does not accept the certificate: upload its public part to " + app +
			" (Certificates & secrets), or put a registered certificate and key in " + where
	case "AADSTS700016":
		return "Entra ID has no app " + e.ClientID + " in tenant " + e.TenantID +
			": check the configured client ID (the app registration's Application (client) ID) and tenant ID"
	case "AADSTS90002":
		return "tenant " + e.TenantID + " does not exist: check the configured tenant ID (the app registration's Directory (tenant) ID)"
	case "AADSTS7000112":
		return "the app " + e.ClientID + " is disabled in tenant " + e.TenantID +
			": enable it again (Enterprise applications, Properties, Enabled for users to sign in) or ask a tenant administrator"
	case "AADSTS500011":
		return "the F&O environment is not known in tenant " + e.TenantID + ": check the configured F&O URL and tenant ID"
	}
	if e.InvalidClient() {
		return "check the credential in " + where + " against " + app + " (Certificates & secrets)"
	}
	return "check the app registration " + e.ClientID + " and the tenant ID against Entra ID's message"
}

// entraErrorBody is the token endpoint's error answer.
type entraErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Codes       []int  `json:"error_codes"`
}

var (
	aadstsCode = regexp.MustCompile(`\bAADSTS(\d+)\b`)
	msisCode   = regexp.MustCompile(`\bMSIS(\d+)\b`) // AD FS's
)

// maxAuthDescription bounds the description kept from Entra ID.
const maxAuthDescription = 600

// authError turns MSAL's error for a refused token request into an
// *AuthError: a 4xx answer (not 429) from Entra ID with its OAuth error
// body, which MSAL surfaces as an errors.CallErr holding the response. It
// returns nil for anything else (no answer, throttling, a server fault).
func authError(err error, tenantID, clientID, source string) *AuthError {
	var ce msalerrors.CallErr
	if !errors.As(err, &ce) || ce.Resp == nil {
		return nil
	}
	status := ce.Resp.StatusCode
	if status < 400 || status >= 500 || status == http.StatusTooManyRequests {
		return nil
	}
	var raw []byte
	if ce.Resp.Body != nil {
		raw, _ = io.ReadAll(io.LimitReader(ce.Resp.Body, maxErrorBody))
		ce.Resp.Body = io.NopCloser(bytes.NewReader(raw)) // still readable by others
	}
	var body entraErrorBody
	if json.Unmarshal(raw, &body) != nil || (body.Error == "" && len(body.Codes) == 0) {
		return nil
	}
	code := ""
	if len(body.Codes) > 0 {
		code = "AADSTS" + strconv.Itoa(body.Codes[0])
	} else if m := aadstsCode.FindStringSubmatch(body.Description); m != nil {
		code = "AADSTS" + m[1]
	} else if m := msisCode.FindStringSubmatch(body.Description); m != nil {
		code = "MSIS" + m[1]
	}
	// Keep the answer for errors.As, but not the request that carried
	// the credential.
	resp := *ce.Resp
	resp.Request, resp.TLS = nil, nil
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	return &AuthError{
		Code: code, OAuthError: printable(body.Error, 100), StatusCode: status,
		Description: printable(body.Description, maxAuthDescription),
		TenantID:    tenantID, ClientID: clientID, Source: source,
		Err: msalerrors.CallErr{Resp: &resp, Err: fmt.Errorf("Entra ID answered %s", statusLine(status))},
	}
}
