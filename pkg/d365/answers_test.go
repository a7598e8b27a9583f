package d365_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

const msgGUID = "6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b"

// cannedClient is a client whose every request is answered with status,
// header and body.
func cannedClient(t *testing.T, status int, header http.Header, body string) *d365.Client {
	t.Helper()
	c, err := d365.New(d365.Config{
		BaseURL: "https://contoso.operations.dynamics.com", Tokens: d365.StaticTokens("tok"),
		HTTPClient: &http.Client{Transport: cannedTransport{status: status, body: []byte(body), header: header}},
		Retry:      d365.RetryPolicy{MaxAttempts: 1, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func enqueueOne(c *d365.Client) (string, error) {
	return c.Enqueue(context.Background(), d365.EnqueueRequest{ActivityID: importActivity, Body: strings.NewReader("x"), Size: 1})
}

// Enqueue takes a message ID only from F&O's shapes, with a Content-Type
// that can carry one; every other answer is an outcome-unknown error that
// says what came back.
func TestEnqueueAnswers(t *testing.T) {
	t.Parallel()
	const (
		jsonCT = "application/json; charset=utf-8"
		htmlCT = "text/html; charset=utf-8"
		textCT = "text/plain; charset=utf-8"
	)
	braced := "{" + strings.ToUpper(msgGUID) + "}"
	tests := []struct {
		name, body, contentType string
		status                  int
		want                    string // "": an unknown outcome
	}{
		{"JSON string", `"` + msgGUID + `"`, jsonCT, 200, msgGUID},
		{"JSON string, no Content-Type", `"` + msgGUID + `"`, "", 200, msgGUID},
		{"JSON string, text/plain", `"` + msgGUID + `"`, textCT, 200, msgGUID},
		{"bare", msgGUID, jsonCT, 200, msgGUID},
		{"braced", braced, jsonCT, 200, braced},
		{"wrapped", `{"@odata.context":"https://contoso.operations.dynamics.com/data/$metadata#Edm.String","value":"` + msgGUID + `"}`, jsonCT, 200, msgGUID},
		{"JSON string sent as text/html", `"` + msgGUID + `"`, htmlCT, 200, ""},
		{"HTML without a GUID", `<html><body>Sign in</body></html>`, htmlCT, 200, ""},
		{"HTML with a GUID", `<html><body>Session expired. Request Id: ` + msgGUID + `</body></html>`, htmlCT, 200, ""},
		{"HTML with a GUID, said to be JSON", `<html><body>Request Id: ` + msgGUID + `</body></html>`, jsonCT, 200, ""},
		{"plain text with a GUID", `Message ` + msgGUID + ` was queued.`, textCT, 200, ""},
		{"empty", ``, jsonCT, 200, ""},
		{"oversized", `"` + msgGUID + `"` + strings.Repeat(" ", 8<<10), jsonCT, 200, ""},
		{"object of another shape", `{"messageId":"` + msgGUID + `"}`, jsonCT, 200, ""},
		{"202, not 200", `"` + msgGUID + `"`, jsonCT, 202, ""},
		{"unparseable Content-Type", `"` + msgGUID + `"`, "json;;=", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			if tt.contentType != "" {
				h.Set("Content-Type", tt.contentType)
			}
			id, err := enqueueOne(cannedClient(t, tt.status, h, tt.body))
			if tt.want != "" {
				if err != nil || id != tt.want {
					t.Fatalf("Enqueue = %q, %v; want %q", id, err, tt.want)
				}
				return
			}
			var ua *d365.UnexpectedAnswerError
			if id != "" || !errors.Is(err, d365.ErrOutcomeUnknown) || !errors.As(err, &ua) {
				t.Fatalf("Enqueue = %q, %v; want an UnexpectedAnswerError (outcome unknown)", id, err)
			}
			if ua.Status != tt.status || ua.ContentType != tt.contentType || len(ua.Snippet) > 300 ||
				!strings.HasPrefix(tt.body, strings.TrimSuffix(ua.Snippet, "…")) {
				t.Fatalf("the error does not carry what came back: %+v", ua)
			}
			if msg := err.Error(); !strings.Contains(msg, "an answer came back") || strings.Contains(msg, "no answer") {
				t.Fatalf("Error() = %q", msg)
			}
		})
	}
}

// An answer cut off after its headers is an unknown outcome that still
// says an answer came back.
func TestEnqueueAnswerCutOff(t *testing.T) {
	t.Parallel()
	broken := errors.New("connection reset")
	c, err := d365.New(d365.Config{
		BaseURL: "https://contoso.operations.dynamics.com", Tokens: d365.StaticTokens("tok"),
		HTTPClient: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			io.Copy(io.Discard, r.Body)
			return &http.Response{StatusCode: 200, ContentLength: 38, Request: r,
				Header: http.Header{"Content-Type": {"application/json"}},
				Body:   io.NopCloser(io.MultiReader(strings.NewReader(`"6f2a1c3e`), &failingSource{r: strings.NewReader(""), err: broken}))}, nil
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = enqueueOne(c)
	var ua *d365.UnexpectedAnswerError
	if !errors.As(err, &ua) || !errors.Is(err, d365.ErrOutcomeUnknown) || !errors.Is(err, broken) || ua.Snippet != `"6f2a1c3e` {
		t.Fatalf("err = %v, want an UnexpectedAnswerError wrapping the read error", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The snippet an UnexpectedAnswerError quotes never holds a token, a SAS
// signature or a secret, and is bounded.
func TestUnexpectedAnswerIsRedacted(t *testing.T) {
	t.Parallel()
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2NvbnRvc28ifQ.c2lnbmF0dXJlLXBhcnQ"
	body := `<html><script>var t="Bearer emu.0123456789abcdef0123456789abcdef0123456789abcdef"; var j="` + jwt +
		`";</script><a href="https://acct.blob.core.windows.net/dmf/x.zip?sv=2014-02-14&sig=U2VjcmV0U2lnbmF0dXJl%2B%3D&se=2026">x</a>` +
		`{"client_secret":"Abc8Q~s3cr3t.value_123"} ` + strings.Repeat("padding ", 100) + `</html>`
	_, err := enqueueOne(cannedClient(t, 200, http.Header{"Content-Type": {"text/html"}}, body))
	var ua *d365.UnexpectedAnswerError
	if !errors.As(err, &ua) {
		t.Fatalf("err = %v", err)
	}
	for _, secret := range []string{"emu.0123456789abcdef", jwt, "U2VjcmV0U2lnbmF0dXJl", "s3cr3t"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error holds %q: %v", secret, err)
		}
	}
	if !strings.Contains(ua.Snippet, "[redacted]") || len(ua.Snippet) > 256+len("…") {
		t.Errorf("snippet %q (%d bytes)", ua.Snippet, len(ua.Snippet))
	}
}

// The emulator answers each shape; only F&O's own give the message's ID.
func TestEnqueueAnswerShapesFromTheEmulator(t *testing.T) {
	t.Parallel()
	for _, shape := range d365test.AnswerShapes {
		t.Run(string(shape), func(t *testing.T) {
			t.Parallel()
			e, c := newEmulatorClient(t, d365test.Options{})
			e.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, EnqueueAnswer: shape})
			id, err := enqueueOne(c)
			msgs := e.Messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages stored, want 1", len(msgs))
			}
			if shape.CarriesID() {
				if err != nil || strings.ToLower(strings.Trim(id, "{}")) != msgs[0].ID {
					t.Fatalf("Enqueue = %q, %v; want message %s", id, err, msgs[0].ID)
				}
				return
			}
			var ua *d365.UnexpectedAnswerError
			if id != "" || !errors.As(err, &ua) || !errors.Is(err, d365.ErrOutcomeUnknown) || ua.Status != http.StatusOK {
				t.Fatalf("Enqueue = %q, %v; want an UnexpectedAnswerError", id, err)
			}
			if n := e.Requests("enqueue"); n != 1 {
				t.Fatalf("%d enqueue requests: an unknown outcome must not be re-sent", n)
			}
		})
	}
	t.Run("session expired from a front door, nothing stored", func(t *testing.T) {
		t.Parallel()
		e, c := newEmulatorClient(t, d365test.Options{})
		e.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, Status: http.StatusOK, EnqueueAnswer: d365test.AnswerSessionExpired})
		_, err := enqueueOne(c)
		var ua *d365.UnexpectedAnswerError
		if !errors.As(err, &ua) || !strings.HasPrefix(ua.ContentType, "text/html") || !strings.Contains(ua.Snippet, "Session expired") {
			t.Fatalf("err = %v", err)
		}
		if len(e.Messages()) != 0 {
			t.Fatal("a front door's answer stored a message")
		}
	})
}

// F&O's errors carry a generic message and the cause in innererror: the
// error shows the cause first and keeps both.
func TestErrorShowsTheCauseFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("unknown activity", func(t *testing.T) {
		t.Parallel()
		_, c := newEmulatorClient(t, d365test.Options{})
		const unknown = "99999999-2222-3333-4444-555555555555"
		_, err := c.Enqueue(ctx, d365.EnqueueRequest{ActivityID: unknown, Body: strings.NewReader("x"), Size: 1})
		var fe *d365.Error
		if !errors.As(err, &fe) || fe.StatusCode != http.StatusNotFound {
			t.Fatalf("err = %v, want a 404 *Error", err)
		}
		want := "d365 enqueue: 404 Not Found: Activity " + unknown + " was not found. (An error has occurred.)"
		if err.Error() != want || fe.Message != "Activity "+unknown+" was not found." || fe.Summary != "An error has occurred." {
			t.Fatalf("Error() = %q (Message %q, Summary %q), want %q", err.Error(), fe.Message, fe.Summary, want)
		}
		if !strings.Contains(fe.Body, `"innererror"`) {
			t.Fatalf("Body %q is not the raw answer", fe.Body)
		}
	})
	t.Run("app not allowed on the activity", func(t *testing.T) {
		t.Parallel()
		e, c := newEmulatorClient(t, d365test.Options{})
		e.AddActivity(importActivity, d365test.Activity{AllowedApps: []string{"some-other-app"}})
		_, err := enqueueOne(c)
		var fe *d365.Error
		if !errors.As(err, &fe) || fe.StatusCode != http.StatusUnauthorized || !strings.Contains(fe.Message, e.ClientID()) ||
			!strings.HasSuffix(err.Error(), "(An error has occurred.)") {
			t.Fatalf("err = %v", err)
		}
	})
	// A Cause fault gives F&O's error body on any F&O endpoint.
	for _, tc := range []struct {
		endpoint string
		call     func(c *d365.Client) error
	}{
		{"enqueue", func(c *d365.Client) error { _, err := enqueueOne(c); return err }},
		{"dequeue", func(c *d365.Client) error { _, err := c.Dequeue(ctx, exportActivity); return err }},
		{"GetMessageStatus", func(c *d365.Client) error { _, err := c.GetMessageStatus(ctx, msgGUID); return err }},
		{"GetExecutionSummaryStatus", func(c *d365.Client) error { _, err := c.GetExecutionSummaryStatus(ctx, "x"); return err }},
		{"jobstatus", func(c *d365.Client) error { _, err := c.JobStatus(ctx, importActivity, msgGUID); return err }},
	} {
		t.Run("Cause fault on "+tc.endpoint, func(t *testing.T) {
			t.Parallel()
			e, c := newEmulatorClient(t, d365test.Options{})
			cause := "Cause on " + tc.endpoint + ": the data project is locked."
			e.Inject(d365test.Fault{Endpoint: tc.endpoint, Status: http.StatusBadRequest, Cause: cause})
			err := tc.call(c)
			var fe *d365.Error
			if !errors.As(err, &fe) || fe.Message != cause || fe.Summary != "An error has occurred." ||
				!strings.HasSuffix(err.Error(), ": "+cause+" (An error has occurred.)") {
				t.Fatalf("err = %v", err)
			}
			if errors.Is(err, d365.ErrExecutionNotFound) {
				t.Fatal("a 400 that does not say the execution was not found is ErrExecutionNotFound")
			}
		})
	}
}

// ErrExecutionNotFound comes only from the execution-ID actions, and only
// when the error's message says so, not its stack trace.
func TestExecutionNotFoundOnlyWhereItApplies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	odata := func(message, inner, stack string) string {
		return `{"error":{"code":"","message":"` + message + `","innererror":{"message":"` + inner +
			`","type":"Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataException","stacktrace":"` + stack + `"}}}`
	}
	notFound := odata("An error has occurred.", "Execution details for execution ID 'x' were not found.", "at X")
	for _, tt := range []struct {
		name, body string
		call       func(c *d365.Client) error
		want       bool
	}{
		{"GetExecutionSummaryStatus, cause in innererror", notFound,
			func(c *d365.Client) error { _, err := c.GetExecutionSummaryStatus(ctx, "x"); return err }, true},
		{"GetExecutionSummaryStatus, cause on top", odata("Execution details for execution ID 'x' were not found.", "", ""),
			func(c *d365.Client) error { _, err := c.GetExecutionSummaryStatus(ctx, "x"); return err }, true},
		{"GetExecutionErrors", notFound,
			func(c *d365.Client) error { _, err := c.GetExecutionErrors(ctx, "x"); return err }, true},
		{"GetImportStagingErrorFileURL", notFound,
			func(c *d365.Client) error { _, err := c.GetImportStagingErrorFileURL(ctx, "x", "E"); return err }, true},
		{"only the stack trace says it", odata("An error has occurred.", "Object reference not set to an instance of an object.", "at Records.were not found()"),
			func(c *d365.Client) error { _, err := c.GetExecutionSummaryStatus(ctx, "x"); return err }, false},
		{"GetMessageStatus", notFound,
			func(c *d365.Client) error { _, err := c.GetMessageStatus(ctx, msgGUID); return err }, false},
		{"ImportFromPackage", notFound, func(c *d365.Client) error {
			_, err := c.ImportFromPackage(ctx, d365.ImportPackageRequest{PackageURL: "https://acct.blob.core.windows.net/x", DefinitionGroupID: "g"})
			return err
		}, false},
		{"enqueue", notFound, func(c *d365.Client) error { _, err := enqueueOne(c); return err }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(cannedClient(t, http.StatusBadRequest, http.Header{"Content-Type": {"application/json"}}, tt.body))
			if err == nil || errors.Is(err, d365.ErrExecutionNotFound) != tt.want {
				t.Fatalf("err = %v; ErrExecutionNotFound want %v", err, tt.want)
			}
		})
	}
}

// A redirect on enqueue is ErrOnPremises and names the status it was.
func TestOnPremisesNamesTheStatus(t *testing.T) {
	t.Parallel()
	for _, status := range []int{301, 302, 307, 308} {
		h := http.Header{"Location": {"https://adfs.contoso.local/adfs/ls/?SAMLRequest=abc&sig=SECRET"}}
		_, err := enqueueOne(cannedClient(t, status, h, "<html>Object moved</html>"))
		if !errors.Is(err, d365.ErrOnPremises) {
			t.Fatalf("%d: err = %v, want ErrOnPremises", status, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, http.StatusText(status)) || !strings.Contains(msg, "adfs.contoso.local/adfs/ls/") ||
			strings.Contains(msg, "SECRET") || (status != 302 && strings.Contains(msg, "302")) {
			t.Fatalf("%d: %q does not name the redirect as it was", status, msg)
		}
	}
}

// Entra ID's refusals come back as an *AuthError with the AADSTS code and
// what to do, never with the secret, and are not retried.
func TestAuthErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		setup   func(e *d365test.Emulator, cfg *d365.Config)
		code    string
		fixHas  string
		invalid bool
	}{
		{"wrong secret", func(e *d365test.Emulator, cfg *d365.Config) { e.SetClientSecret("rotated-" + e.ClientSecret()) },
			"AADSTS7000215", "Secret ID", true},
		{"expired secret", func(e *d365test.Emulator, cfg *d365.Config) { e.ExpireClientSecret() },
			"AADSTS7000222", "add a new client secret", true},
		{"unknown app", func(e *d365test.Emulator, cfg *d365.Config) { cfg.ClientID = "no-such-app" },
			"AADSTS700016", "client ID", false},
		{"unknown tenant", func(e *d365test.Emulator, cfg *d365.Config) { cfg.TenantID = "00000000-1111-2222-3333-444444444444" },
			"AADSTS90002", "tenant ID", false},
		{"disabled app", func(e *d365test.Emulator, cfg *d365.Config) {
			e.Inject(d365test.Fault{Endpoint: "token", AADSTS: 7000112})
		}, "AADSTS7000112", "disabled", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEmulator(t, d365test.Options{})
			secret := e.ClientSecret()
			cred, _ := d365.SecretCredential(secret)
			cfg := clientConfig(e, cred)
			cfg.CredentialSource = "the Secrets Manager secret fno-test"
			tt.setup(e, &cfg)
			c, err := d365.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.GetMessageStatus(ctx, msgGUID)
			var ae *d365.AuthError
			if !errors.As(err, &ae) || ae.Code != tt.code || ae.InvalidClient() != tt.invalid {
				t.Fatalf("err = %v, want an AuthError %s", err, tt.code)
			}
			if !strings.Contains(ae.Fix(), tt.fixHas) || !strings.Contains(err.Error(), tt.code) || !strings.Contains(err.Error(), ae.Fix()) {
				t.Fatalf("Error() = %q, Fix() = %q", err.Error(), ae.Fix())
			}
			if tt.invalid && !strings.Contains(ae.Fix(), cfg.CredentialSource) {
				t.Fatalf("Fix() = %q does not say where the secret is kept", ae.Fix())
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(ae.Description, secret) {
				t.Fatalf("the error holds the secret: %v", err)
			}
			if e.TotalRequests() != 0 {
				t.Fatal("an F&O request went out without a token")
			}
			if d365.IsTemporary(err) {
				t.Fatal("a refusal is temporary")
			}
		})
	}
}

// After the secret is put right (rotated in Entra ID, the new one in the
// client), the next call goes through.
func TestAuthErrorPassesOnceTheSecretIsRight(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, d365test.Options{})
	e.ExpireClientSecret()
	cred, _ := d365.SecretCredential(e.ClientSecret())
	c, _ := d365.New(clientConfig(e, cred))
	var ae *d365.AuthError
	if _, err := c.GetMessageStatus(context.Background(), msgGUID); !errors.As(err, &ae) || ae.Code != "AADSTS7000222" {
		t.Fatalf("err = %v, want AADSTS7000222", err)
	}
	e.SetClientSecret("renewed-secret")
	cred, _ = d365.SecretCredential("renewed-secret")
	c, _ = d365.New(clientConfig(e, cred))
	if _, err := c.GetMessageStatus(context.Background(), msgGUID); err != nil {
		t.Fatalf("with the renewed secret: %v", err)
	}
}

// Download reads the file name from the forms of Content-Disposition
// servers send, and hands back a header it could not read.
func TestDownloadContentDispositionForms(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tt := range []struct {
		header, want string
		unreadable   bool
	}{
		{`attachment; filename=Customer groups.csv`, "Customer groups.csv", false},
		{`attachment; filename="=?UTF-8?B?S3VuZGVuZ3J1cHBlbiDDpMO2w7wuY3N2?="`, "Kundengruppen äöü.csv", false},
		{`attachment; filename*=UTF-8''Vendor%20groups%20%E2%82%AC.csv`, "Vendor groups €.csv", false},
		{`attachment; filename="../../outbound/other-job/x.csv"`, "x.csv", false},
		{`attachment; filename="=?x-klingon?B?AAAA?="`, "", true},
	} {
		e, c := newEmulatorClient(t, d365test.Options{})
		e.QueueExport(exportActivity, d365test.Export{Body: []byte("x"), Size: 1, ContentDisposition: tt.header})
		d, err := c.Dequeue(ctx, exportActivity)
		if err != nil || d == nil {
			t.Fatal(d, err)
		}
		dl, err := c.Download(ctx, *d.DownloadLocation)
		if err != nil {
			t.Fatal(err)
		}
		dl.Body.Close()
		if dl.FileName != tt.want || (dl.UnreadableDisposition == tt.header) != tt.unreadable {
			t.Errorf("%s: FileName %q, UnreadableDisposition %q; want %q, unreadable %v", tt.header, dl.FileName, dl.UnreadableDisposition, tt.want, tt.unreadable)
		}
	}
	// A name the emulator builds from FileName (non-ASCII: filename*) reads back.
	e, c := newEmulatorClient(t, d365test.Options{})
	e.QueueExport(exportActivity, d365test.Export{Body: []byte("x"), Size: 1, FileName: "Débiteurs 2026.csv"})
	d, _ := c.Dequeue(ctx, exportActivity)
	dl, err := c.Download(ctx, *d.DownloadLocation)
	if err != nil {
		t.Fatal(err)
	}
	dl.Body.Close()
	if dl.FileName != "Débiteurs 2026.csv" || !bytes.Equal([]byte(dl.UnreadableDisposition), nil) {
		t.Fatalf("FileName %q", dl.FileName)
	}
}
