package fnoenv

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fno-bridge/s3-fno/internal/shared/notify"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// LogRefusal tells of an Entra ID (or AD FS) refusal of the app's credentials found in
// err: the one failure that stops every file. It logs it at ERROR with the
// AADSTS code and what to do, and notifies a person (n may be nil) at most
// once an hour for a code. It reports whether err was one. Neither the
// secret nor a token is in the error.
func LogRefusal(ctx context.Context, log *slog.Logger, n *notify.Notifier, err error) bool {
	var ae *d365.AuthError
	if !errors.As(err, &ae) {
		return false
	}
	who, codeName := "Entra ID", "AADSTS code"
	if ae.ADFS {
		who, codeName = "AD FS", "MSIS code"
	}
	log.ErrorContext(ctx, who+" refused the app's credentials: every call to F&O fails until this is fixed",
		"aadsts", ae.Code, "oauthError", ae.OAuthError, "fix", ae.Fix(), "clientId", ae.ClientID, "error", err.Error())
	code := ae.Code
	if code == "" {
		code = ae.OAuthError
	}
	n.Send(ctx, notify.Event{Kind: notify.Credentials, ID: code + " " + time.Now().UTC().Format("2006-01-02T15"),
		What: code + " for app " + ae.ClientID,
		Body: who + " refused the app's credentials, so every call to F&O fails and files wait (in inbound/ or the import dead-letter queue) until this is fixed. " + ae.Fix(),
		Fields: [][2]string{{codeName, ae.Code}, {"OAuth error", ae.OAuthError}, {"App (client) ID", ae.ClientID},
			{"Tenant", ae.TenantID}, {"Credential kept in", ae.Source}}})
	return true
}

// observing tells observe the status of each answer from host.
type observing struct {
	next    http.RoundTripper
	host    string
	observe func(status int)
}

func (o observing) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := o.next.RoundTrip(r)
	if err == nil && strings.EqualFold(r.URL.Host, o.host) {
		o.observe(resp.StatusCode)
	}
	return resp, err
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}
