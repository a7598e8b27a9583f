package fnoenv

import (
	"context"
	"errors"
	"log/slog"

	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// LogRefusal logs, at ERROR, an Entra ID refusal of the app's credentials
// found in err: the one failure that stops every file, so it names the
// AADSTS code and what to do. It reports whether err was one. Neither the
// secret nor a token is in the error.
func LogRefusal(ctx context.Context, log *slog.Logger, err error) bool {
	var ae *d365.AuthError
	if !errors.As(err, &ae) {
		return false
	}
	log.ErrorContext(ctx, "Entra ID refused the app's credentials: every call to F&O fails until this is fixed",
		"aadsts", ae.Code, "oauthError", ae.OAuthError, "fix", ae.Fix(), "clientId", ae.ClientID, "error", err.Error())
	return true
}
