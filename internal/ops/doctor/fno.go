package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/fno-bridge/s3-fno/internal/shared/fnoenv"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// zeroID is the message and job ID the cheap calls ask about: one F&O
// never issued, so nothing changes and the answer only shows the way
// there works.
const zeroID = "00000000-0000-0000-0000-000000000000"

// authorizePages is what to do about F&O's 401 (or 403): the app must be
// on both of F&O's lists.
func authorizePages(clientID string) string {
	return "in F&O, register the app " + clientID + " under System administration > Setup > Microsoft Entra applications " +
		"(mapped to a user with the rights to import), and on each recurring job (Data management > Recurring data jobs) " +
		"add and enable it on the job's Set up authorization policy tab"
}

// fno checks the secret, a token, F&O and every route's job, in that
// order: each needs the one before.
func (d *Doctor) fno(ctx context.Context, r *Report) {
	settings, ok := d.Stack.FnO()
	if !ok {
		r.add(Check{Name: "F&O", Result: Skip, Detail: "the F&O settings are not known",
			Fix: "give --stack NAME, or FNO_BASE_URL, FNO_TENANT_ID, FNO_CLIENT_ID and FNO_SECRET_ARN in --env-file or as --fno-* flags"})
		return
	}
	var cred d365.Credential
	c := d.within(ctx, func(ctx context.Context) Check { return d.secret(ctx, settings, &cred) })
	r.add(c)
	if c.Result == Fail {
		r.add(Check{Name: "Entra ID token", Result: Skip, Detail: "needs the secret"})
		return
	}
	hc, err := settings.HTTPClient()
	if err != nil {
		r.add(Check{Name: "Entra ID token", Result: Fail, Detail: err.Error(), Fix: "give a readable PEM file as FNO_CA_BUNDLE, or none"})
		return
	}
	source := "the Secrets Manager secret " + settings.SecretARN
	if settings.SecretARN == "" {
		source = "FNO_CLIENT_SECRET"
	}
	cfg := d365.Config{BaseURL: settings.BaseURL, TenantID: settings.TenantID, ClientID: settings.ClientID, Credential: cred,
		CredentialSource: source, AuthorityHost: settings.AuthorityHost, Namespace: settings.Namespace, HTTPClient: hc,
		Retry: d365.RetryPolicy{MaxAttempts: 2}}
	tokens, err := d365.NewTokenSource(cfg)
	if err == nil {
		c = d.within(ctx, func(ctx context.Context) Check { return token(ctx, tokens, settings) })
	} else {
		c = Check{Name: "Entra ID token", Result: Fail, Detail: err.Error(), Fix: "correct FNO_BASE_URL, FNO_TENANT_ID, FNO_CLIENT_ID or FNO_AUTHORITY_HOST"}
	}
	r.add(c)
	if c.Result == Fail {
		r.add(Check{Name: "F&O", Result: Skip, Detail: "needs a token"})
		return
	}
	cfg.Tokens = tokens
	client, err := d365.New(cfg)
	if err != nil {
		r.add(Check{Name: "F&O", Result: Fail, Detail: err.Error(), Fix: "correct FNO_BASE_URL"})
		return
	}
	c = d.within(ctx, func(ctx context.Context) Check { return reach(ctx, client, settings) })
	r.add(c)
	if c.Result == Fail {
		r.add(Check{Name: "routes' recurring jobs", Result: Skip, Detail: "needs F&O"})
		return
	}
	d.jobs(ctx, r, client, settings)
}

// secret reads the credential where the functions read it.
func (d *Doctor) secret(ctx context.Context, s fnoenv.Settings, cred *d365.Credential) Check {
	c := Check{Name: "secret", Result: OK}
	text := s.ClientSecret
	if s.SecretARN == "" {
		c.Detail = "given directly as FNO_CLIENT_SECRET (local runs only)"
	} else {
		c.Name = "secret " + s.SecretARN
		out, err := d.AWS.Secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &s.SecretARN})
		if err != nil {
			c.Result, c.Detail = Fail, why(err)
			c.Fix = "check FNO_SECRET_ARN names a secret in this account and region, and that your credentials (and the functions' roles) " +
				"may secretsmanager:GetSecretValue on it (and kms:Decrypt on its key, if it has its own)"
			return c
		}
		if out.SecretString == nil {
			return Check{Name: c.Name, Result: Fail, Detail: "the secret has no text value (SecretString)",
				Fix: `store the client secret's value, or {"clientSecret": "..."}, or {"certificatePem": "...", "password": "..."}`}
		}
		text, c.Detail = *out.SecretString, "readable"
	}
	parsed, err := fnoenv.ParseSecret(text)
	if err != nil {
		return Check{Name: c.Name, Result: Fail, Detail: err.Error(),
			Fix: `store the client secret's value, or {"clientSecret": "..."}, or {"certificatePem": "...", "password": "..."}`}
	}
	*cred = parsed
	return c
}

// token asks Entra ID for a token; its refusal says what to fix.
func token(ctx context.Context, tokens d365.TokenSource, s fnoenv.Settings) Check {
	c := Check{Name: "Entra ID token", Result: OK, Detail: "issued for app " + s.ClientID}
	if _, err := tokens.Token(ctx); err != nil {
		c.Result, c.Detail = Fail, err.Error()
		var ae *d365.AuthError
		if errors.As(err, &ae) {
			c.Detail = fmt.Sprintf("Entra ID refused the app %s: %s %s", s.ClientID, ae.Code, ae.OAuthError)
			c.Fix = ae.Fix()
		} else {
			c.Fix = "Entra ID did not answer: check FNO_AUTHORITY_HOST, FNO_TENANT_ID and the network way to it"
		}
	}
	return c
}

// reach makes one cheap F&O call (GetMessageStatus of an unknown ID).
func reach(ctx context.Context, c *d365.Client, s fnoenv.Settings) Check {
	ck := Check{Name: "F&O " + s.BaseURL, Result: OK}
	st, err := c.GetMessageStatus(ctx, zeroID)
	if err == nil {
		ck.Detail = "answers, and the app is authorized (GetMessageStatus of an unknown message: " + string(st) + ")"
		return ck
	}
	ck.Result, ck.Detail = Fail, err.Error()
	var fe *d365.Error
	switch {
	case errors.As(err, &fe) && (fe.StatusCode == http.StatusUnauthorized || fe.StatusCode == http.StatusForbidden):
		ck.Detail = fmt.Sprintf("F&O refused the app's token (%d)", fe.StatusCode)
		ck.Fix = authorizePages(s.ClientID)
	case errors.As(err, &fe):
		ck.Fix = "F&O answered with an error: check FNO_BASE_URL is the environment's URL and the environment is up"
	default:
		ck.Fix = "F&O did not answer: check FNO_BASE_URL and the network way to it"
	}
	return ck
}

// jobs asks F&O about every route's recurring job (jobstatus of an unknown
// job ID: read only).
func (d *Doctor) jobs(ctx context.Context, r *Report, client *d365.Client, s fnoenv.Settings) {
	var rts []routes.Route
	var err error
	if d.Routes != nil {
		rts, err = d.Routes(ctx)
	}
	if err != nil {
		r.add(Check{Name: "routes", Result: Fail, Detail: err.Error(),
			Fix: "give the functions a route table: the configuration document (s3fno config apply) or ROUTES"})
		return
	}
	if len(rts) == 0 {
		r.add(Check{Name: "routes", Result: Warn, Detail: "no routes: no file is imported", Fix: "configure routes"})
		return
	}
	for _, rt := range rts {
		r.add(d.within(ctx, func(ctx context.Context) Check { return job(ctx, client, rt, s) }))
	}
}

func job(ctx context.Context, client *d365.Client, rt routes.Route, s fnoenv.Settings) Check {
	c := Check{Name: "route " + rt.Name + " job " + rt.ActivityID, Result: OK, Detail: "F&O knows the recurring job and lets the app use it"}
	if rt.ActivityID == "" {
		return Check{Name: "route " + rt.Name, Result: Skip, Detail: "imports through the package API, not a recurring job"}
	}
	if _, adfs, _ := d365.Authority(s.AuthorityHost, s.TenantID); adfs {
		c.Result = Fail
		c.Detail = "the environment is on-premises (its authority is AD FS), and on-premises F&O has no recurring integrations: " +
			"every file of this route would be rejected"
		c.Fix = "import the route's files through the package API: make it a route of kind dataProject " +
			"(definitionGroupId, legalEntityId, and a package template for plain files)"
		return c
	}
	_, err := client.JobStatus(ctx, rt.ActivityID, zeroID)
	if err == nil {
		return c
	}
	c.Result, c.Detail = Fail, err.Error()
	var fe *d365.Error
	switch {
	case errors.As(err, &fe) && (fe.StatusCode == http.StatusUnauthorized || fe.StatusCode == http.StatusForbidden):
		c.Detail = fmt.Sprintf("F&O refused the app on this job (%d), though it accepts the app elsewhere", fe.StatusCode)
		c.Fix = "in F&O, open the recurring job " + rt.ActivityID + " (Data management > Recurring data jobs) and on its " +
			"Set up authorization policy tab add the app " + s.ClientID + " and enable it; the app itself is registered " +
			"(System administration > Setup > Microsoft Entra applications), since F&O answered it"
	case errors.As(err, &fe) && fe.StatusCode == http.StatusNotFound:
		c.Detail = "F&O knows no recurring job with this activity ID"
		c.Fix = "copy the job's ID from Data management > Recurring data jobs into the route's activityId"
	default:
		c.Fix = "F&O did not answer as expected: look at the detail"
	}
	return c
}
