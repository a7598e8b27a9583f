package d365_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

const (
	importActivity = "6b4b1d4e-25f4-4c43-a8a8-1d2e3f4a5b6c"
	exportActivity = "0c9f8e7d-6c5b-4a39-8271-605f4e3d2c1b"
)

// newEmulator starts an emulator with one import and one export job.
func newEmulator(t *testing.T, opts d365test.Options) *d365test.Emulator {
	t.Helper()
	e := d365test.NewT(t, opts)
	e.AddActivity(importActivity, d365test.Activity{Name: "Import customer groups"})
	e.AddActivity(exportActivity, d365test.Activity{Name: "Export customer groups", Kind: d365test.Package})
	return e
}

// newClient is a real client (MSAL tokens from the emulator's Entra ID)
// with fast retries.
func newClient(t testing.TB, e *d365test.Emulator) *d365.Client {
	t.Helper()
	cred, err := d365.SecretCredential(e.ClientSecret())
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(e, cred)
	cfg.Retry = d365.RetryPolicy{InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond}
	c, err := d365.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newEmulatorClient is newEmulator and a newClient for it.
func newEmulatorClient(t *testing.T, opts d365test.Options) (*d365test.Emulator, *d365.Client) {
	t.Helper()
	e := newEmulator(t, opts)
	return e, newClient(t, e)
}

// clientConfig is the Config of a client of e's F&O and Entra ID that
// proves itself with cred.
func clientConfig(e *d365test.Emulator, cred d365.Credential) d365.Config {
	au, _ := url.Parse(e.AuthorityURL())
	return d365.Config{BaseURL: e.URL(), TenantID: e.TenantID(), ClientID: e.ClientID(), Credential: cred,
		AuthorityHost: au.Scheme + "://" + au.Host, HTTPClient: e.HTTPClient()}
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestEnqueueStreamsAndTracksTheMessage(t *testing.T) {
	t.Parallel()
	e, c := newEmulatorClient(t, d365test.Options{})
	ctx := context.Background()
	body := bytes.Repeat([]byte("CUSTGROUP,Name\r\n10,Wholesale\r\n"), 1000)

	id, err := c.Enqueue(ctx, d365.EnqueueRequest{
		ActivityID: importActivity, Entity: "Customer groups", Company: "USMF",
		ExternalID: "inbound/customers/groups 1.csv", Body: bytes.NewReader(body), Size: int64(len(body)),
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs := e.Messages()
	if len(msgs) != 1 {
		t.Fatalf("emulator holds %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.ID != id || m.Entity != "Customer groups" || m.Company != "USMF" || m.ExternalID != "inbound/customers/groups 1.csv" ||
		m.Size != int64(len(body)) || m.SHA256 != sha(body) {
		t.Fatalf("message %+v does not match what was sent (id %s)", m, id)
	}

	// Follow it: in flight, then terminal.
	if s, err := c.GetMessageStatus(ctx, id); err != nil || s != d365.StatusEnqueued || s.Terminal() {
		t.Fatalf("status before processing = %q, %v", s, err)
	}
	if x, err := c.GetExecutionIDByMessageID(ctx, id); err != nil || x != "" {
		t.Fatalf("execution ID before processing = %q, %v; want empty", x, err)
	}
	e.RunToCompletion()
	s, err := c.GetMessageStatus(ctx, id)
	if err != nil || s != d365.StatusProcessed || !s.Succeeded() {
		t.Fatalf("status after processing = %q, %v", s, err)
	}
	x, err := c.GetExecutionIDByMessageID(ctx, id)
	if err != nil || x == "" {
		t.Fatalf("execution ID = %q, %v", x, err)
	}
	if es, err := c.GetExecutionSummaryStatus(ctx, x); err != nil || es != d365.ExecSucceeded {
		t.Fatalf("execution status = %q, %v", es, err)
	}
	if errs, err := c.GetExecutionErrors(ctx, x); err != nil || len(errs.Rows) != 0 || errs.Raw != "[]" {
		t.Fatalf("execution errors = %+v, %v", errs, err)
	}
	// One token for all of the above: MSAL's cache answered the rest.
	if n := e.TokenRequests(); n != 1 {
		t.Fatalf("token requests = %d, want 1", n)
	}
}

func TestExecutionNotFoundBeforeItExists(t *testing.T) {
	t.Parallel()
	_, c := newEmulatorClient(t, d365test.Options{})
	_, err := c.GetExecutionSummaryStatus(context.Background(), "Import-2026-11-22-no-such-execution")
	if !errors.Is(err, d365.ErrExecutionNotFound) {
		t.Fatalf("err = %v, want ErrExecutionNotFound", err)
	}
	var fe *d365.Error
	if !errors.As(err, &fe) || fe.StatusCode != http.StatusBadRequest {
		t.Fatalf("err = %#v, want a 400 *d365.Error", err)
	}
}

func TestProcessedWithErrorsBringsRowsAndErrorFiles(t *testing.T) {
	t.Parallel()
	for _, raw := range []bool{false, true} {
		t.Run(map[bool]string{false: "strict JSON", true: "raw newlines and quotes"}[raw], func(t *testing.T) {
			t.Parallel()
			e, c := newEmulatorClient(t, d365test.Options{RawNewlinesInErrors: raw})
			ctx := context.Background()
			e.Script(d365test.Rule{ActivityID: importActivity, Outcome: d365test.Outcome{
				Status: "ProcessedWithErrors",
				Errors: []d365test.ExecutionError{
					{RecordId: "5637144576", Field: "CustGroup", ErrorMessage: "Customer group 99 does not exist."},
					{RecordId: "5637144577", Field: "", ErrorMessage: "Field Name must be filled in."},
				},
				StagingErrorFile:     []byte("staging errors csv"),
				TargetErrorKeysFile:  []byte("target keys csv"),
				TargetKeysEmptyPolls: 2,
			}})
			id, err := c.Enqueue(ctx, d365.EnqueueRequest{ActivityID: importActivity, Entity: "Customer groups", Body: strings.NewReader("x"), Size: 1})
			if err != nil {
				t.Fatal(err)
			}
			e.RunToCompletion()
			s, err := c.GetMessageStatus(ctx, id)
			if err != nil || s != d365.StatusProcessedWithErrors || !s.Terminal() || s.Succeeded() {
				t.Fatalf("status = %q, %v", s, err)
			}
			x, err := c.GetExecutionIDByMessageID(ctx, id)
			if err != nil || x == "" {
				t.Fatal(x, err)
			}
			if es, err := c.GetExecutionSummaryStatus(ctx, x); err != nil || es != d365.ExecPartiallySucceeded || !es.Terminal() {
				t.Fatalf("execution status = %q, %v", es, err)
			}
			errs, err := c.GetExecutionErrors(ctx, x)
			if err != nil {
				t.Fatal(err)
			}
			if len(errs.Rows) != 2 || errs.Rows[0].RecordID != "5637144576" || errs.Rows[1].RecordID != "5637144577" ||
				!strings.Contains(errs.Rows[0].ErrorMessage, "Customer group 99 does not exist.") || errs.Rows[0].Field != "CustGroup" {
				t.Fatalf("rows = %#v", errs.Rows)
			}
			if errs.Lenient != raw || !strings.Contains(errs.Raw, "Field Name must be filled in.") {
				t.Fatalf("lenient = %v, raw = %q", errs.Lenient, errs.Raw)
			}

			stagingURL, err := c.GetImportStagingErrorFileURL(ctx, x, "Customer groups")
			if err != nil || stagingURL == "" {
				t.Fatalf("staging URL %q, %v", stagingURL, err)
			}
			if got := fetch(t, c, stagingURL); got != "staging errors csv" {
				t.Fatalf("staging file = %q", got)
			}
			if ok, err := c.GenerateImportTargetErrorKeysFile(ctx, x, "Customer groups"); err != nil || !ok {
				t.Fatalf("GenerateImportTargetErrorKeysFile = %v, %v", ok, err)
			}
			var keysURL string
			for i := 0; i < 5 && keysURL == ""; i++ {
				if keysURL, err = c.GetImportTargetErrorKeysFileURL(ctx, x, "Customer groups"); err != nil {
					t.Fatal(err)
				}
			}
			if keysURL == "" || e.Requests("GetImportTargetErrorKeysFileUrl") != 3 {
				t.Fatalf("keys URL %q after %d polls", keysURL, e.Requests("GetImportTargetErrorKeysFileUrl"))
			}
			if got := fetch(t, c, keysURL); got != "target keys csv" {
				t.Fatalf("target keys file = %q", got)
			}
			if e.BlobSawToken() {
				t.Fatal("the bearer token was sent to the blob host")
			}
		})
	}
}

func fetch(t *testing.T, c *d365.Client, u string) string {
	t.Helper()
	d, err := c.FetchBlob(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Body.Close()
	b, err := io.ReadAll(d.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDequeueDownloadAck(t *testing.T) {
	t.Parallel()
	for _, httpLoc := range []bool{false, true} {
		t.Run(map[bool]string{false: "https location", true: "http://host:80 location"}[httpLoc], func(t *testing.T) {
			t.Parallel()
			e, c := newEmulatorClient(t, d365test.Options{HTTPDownloadLocation: httpLoc})
			ctx := context.Background()
			if d, err := c.Dequeue(ctx, exportActivity); err != nil || d != nil {
				t.Fatalf("empty queue: %v, %v; want nil, nil (204)", d, err)
			}
			body := []byte("PK fake package bytes")
			corr := e.QueueExport(exportActivity, d365test.Export{Body: body, Size: int64(len(body)), FileName: "groups.zip"})
			d, err := c.Dequeue(ctx, exportActivity)
			if err != nil || d == nil {
				t.Fatalf("dequeue = %v, %v", d, err)
			}
			if d.CorrelationID != corr || !d.HasFile() || d.Redelivered() {
				t.Fatalf("dequeued %+v", d)
			}
			if httpLoc && !strings.HasPrefix(*d.DownloadLocation, "http://") {
				t.Fatalf("emulator option not in effect: %s", *d.DownloadLocation)
			}
			dl, err := c.Download(ctx, *d.DownloadLocation)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(dl.Body)
			dl.Body.Close()
			if err != nil || !bytes.Equal(got, body) || dl.Size != int64(len(body)) || dl.FileName != "groups.zip" {
				t.Fatalf("download = %q (size %d, name %q), %v", got, dl.Size, dl.FileName, err)
			}
			if err := c.Ack(ctx, exportActivity, d); err != nil {
				t.Fatal(err)
			}
			if a := e.Acked(exportActivity); len(a) != 1 || a[0] != corr {
				t.Fatalf("acked %v, want [%s]", a, corr)
			}
			e.Advance(31 * time.Minute)
			if d, err := c.Dequeue(ctx, exportActivity); err != nil || d != nil {
				t.Fatalf("after ack: %v, %v; want nothing more", d, err)
			}
		})
	}
}

// TestDownloadAnsweredByAnHTMLPageIsRefused: a sign-in or gateway page
// served with status 200 in place of the export is an unexpected answer,
// not an export; the next download gets the file.
func TestDownloadAnsweredByAnHTMLPageIsRefused(t *testing.T) {
	t.Parallel()
	for _, shape := range []d365test.AnswerShape{d365test.AnswerHTML, d365test.AnswerSessionExpired} {
		t.Run(string(shape), func(t *testing.T) {
			t.Parallel()
			e, c := newEmulatorClient(t, d365test.Options{})
			ctx := context.Background()
			body := []byte("ID,NAME\n1,one\n")
			e.QueueExport(exportActivity, d365test.Export{Body: body, Size: int64(len(body))})
			d, err := c.Dequeue(ctx, exportActivity)
			if err != nil || d == nil {
				t.Fatalf("dequeue = %v, %v", d, err)
			}
			e.Inject(d365test.Fault{Endpoint: "download", Count: 1, Status: http.StatusOK, EnqueueAnswer: shape})
			dl, err := c.Download(ctx, *d.DownloadLocation)
			var ua *d365.UnexpectedAnswerError
			if !errors.As(err, &ua) || ua.Op != "download" || !strings.Contains(ua.ContentType, "text/html") || dl != nil {
				t.Fatalf("download answered by a page: %+v, %v; want an UnexpectedAnswerError", dl, err)
			}
			dl, err = c.Download(ctx, *d.DownloadLocation)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(dl.Body)
			dl.Body.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("the download after: %q, %v", got, err)
			}
		})
	}
	// An export that is an HTML file, served as one and named: F&O's own
	// answer, landed like any other.
	t.Run("an HTML export", func(t *testing.T) {
		t.Parallel()
		e, c := newEmulatorClient(t, d365test.Options{})
		ctx := context.Background()
		body := []byte("<html><body>report</body></html>")
		e.QueueExport(exportActivity, d365test.Export{Body: body, Size: int64(len(body)), FileName: "report.html", ContentType: "text/html; charset=utf-8"})
		d, err := c.Dequeue(ctx, exportActivity)
		if err != nil || d == nil {
			t.Fatalf("dequeue = %v, %v", d, err)
		}
		dl, err := c.Download(ctx, *d.DownloadLocation)
		if err != nil {
			t.Fatalf("an HTML export with its file name: %v", err)
		}
		got, _ := io.ReadAll(dl.Body)
		dl.Body.Close()
		if !bytes.Equal(got, body) || dl.FileName != "report.html" {
			t.Fatalf("download = %q as %q", got, dl.FileName)
		}
	})
}

func TestUnackedExportIsRedelivered(t *testing.T) {
	t.Parallel()
	e, c := newEmulatorClient(t, d365test.Options{})
	ctx := context.Background()
	corr := e.QueueExport(exportActivity, d365test.Export{Body: []byte("x"), Size: 1})
	first, err := c.Dequeue(ctx, exportActivity)
	if err != nil || first == nil {
		t.Fatal(first, err)
	}
	if d, _ := c.Dequeue(ctx, exportActivity); d != nil {
		t.Fatal("a dequeued message must stay hidden for the visibility timeout")
	}
	e.Advance(31 * time.Minute)
	again, err := c.Dequeue(ctx, exportActivity)
	if err != nil || again == nil || again.CorrelationID != corr || !again.Redelivered() || again.PopReceipt == first.PopReceipt {
		t.Fatalf("redelivery = %+v, %v", again, err)
	}
	// The first receipt is stale now.
	var fe *d365.Error
	if err := c.Ack(ctx, exportActivity, first); !errors.As(err, &fe) || fe.StatusCode != http.StatusBadRequest {
		t.Fatalf("stale ack: %v, want 400", err)
	}
	if err := c.Ack(ctx, exportActivity, again); err != nil {
		t.Fatal(err)
	}
}

func TestForeignDownloadLocationIsRefusedWithoutSendingTheToken(t *testing.T) {
	t.Parallel()
	e, c := newEmulatorClient(t, d365test.Options{})
	ctx := context.Background()
	e.QueueExport(exportActivity, d365test.Export{Body: []byte("secret export"), Size: 13})
	e.Inject(d365test.Fault{Endpoint: "dequeue", Count: 1, ForeignDownloadHost: true})
	d, err := c.Dequeue(ctx, exportActivity)
	if err != nil || d == nil {
		t.Fatal(d, err)
	}
	if _, err := c.Download(ctx, *d.DownloadLocation); !errors.Is(err, d365.ErrForeignHost) {
		t.Fatalf("download from %s: %v, want ErrForeignHost", *d.DownloadLocation, err)
	}
	if e.ForeignHostSawToken() || e.Requests("foreign-download") != 0 {
		t.Fatal("the foreign host was contacted")
	}
}

func TestRetries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("429 with Retry-After then success", func(t *testing.T) {
		t.Parallel()
		e, c := newEmulatorClient(t, d365test.Options{})
		e.Inject(d365test.Fault{Endpoint: "GetMessageStatus", Count: 1, Status: 429, RetryAfter: 1})
		if _, err := c.GetMessageStatus(ctx, "6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b"); err != nil {
			t.Fatal(err)
		}
		if n := e.Requests("GetMessageStatus"); n != 2 {
			t.Fatalf("requests = %d, want 2", n)
		}
	})
	for _, status := range []int{500, 502, 503} {
		t.Run("transient "+http.StatusText(status)+" on dequeue then success", func(t *testing.T) {
			t.Parallel()
			e, c := newEmulatorClient(t, d365test.Options{})
			e.QueueExport(exportActivity, d365test.Export{Body: []byte("x"), Size: 1})
			e.Inject(d365test.Fault{Endpoint: "dequeue", Count: 2, Status: status})
			d, err := c.Dequeue(ctx, exportActivity)
			if err != nil || d == nil {
				t.Fatal(d, err)
			}
			if n := e.Requests("dequeue"); n != 3 {
				t.Fatalf("requests = %d, want 3", n)
			}
		})
	}
	t.Run("permanent 4xx is not retried", func(t *testing.T) {
		t.Parallel()
		e, c := newEmulatorClient(t, d365test.Options{})
		_, err := c.Dequeue(ctx, "11111111-2222-3333-4444-555555555555")
		var fe *d365.Error
		if !errors.As(err, &fe) || fe.StatusCode != http.StatusNotFound || fe.Temporary() {
			t.Fatalf("unknown activity: %v", err)
		}
		if n := e.Requests("dequeue"); n != 1 {
			t.Fatalf("requests = %d, want 1", n)
		}
	})
	t.Run("retries give up at the deadline with the real error", func(t *testing.T) {
		t.Parallel()
		e, c := newEmulatorClient(t, d365test.Options{})
		e.Inject(d365test.Fault{Endpoint: "GetMessageStatus", Status: 429, RetryAfter: 120})
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := c.GetMessageStatus(ctx, "6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b")
		var te *d365.ThrottledError
		if !errors.As(err, &te) || te.RetryAfter != 120*time.Second || ctx.Err() != nil {
			t.Fatalf("err = %v (ctx %v), want the 429 before the deadline passed", err, ctx.Err())
		}
		if n := e.Requests("GetMessageStatus"); n != 1 {
			t.Fatalf("requests = %d, want 1", n)
		}
	})
}

func TestEnqueueIsNeverResentOnceItMayHaveArrived(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	body := bytes.Repeat([]byte("a"), 256<<10)
	reopen := func(ctx context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	tests := []struct {
		name         string
		fault        d365test.Fault
		reopen       bool
		wantErr      bool
		wantRequests int
		wantMessages int
	}{
		{"502 is not resent", d365test.Fault{Endpoint: "enqueue", Count: 1, Status: 502}, true, true, 1, 0},
		{"500 is not resent", d365test.Fault{Endpoint: "enqueue", Count: 1, Status: 500}, true, true, 1, 0},
		{"429 is resent from a reopened body", d365test.Fault{Endpoint: "enqueue", Count: 1, Status: 429, RetryAfter: 1}, true, false, 2, 1},
		{"429 without a way to reopen the body is reported", d365test.Fault{Endpoint: "enqueue", Count: 1, Status: 429, RetryAfter: 1}, false, true, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, c := newEmulatorClient(t, d365test.Options{})
			e.Inject(tt.fault)
			req := d365.EnqueueRequest{ActivityID: importActivity, Entity: "Customer groups", Body: bytes.NewReader(body), Size: int64(len(body))}
			if tt.reopen {
				req.Reopen = reopen
			}
			_, err := c.Enqueue(ctx, req)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.fault.Status == 429 && err != nil {
				var te *d365.ThrottledError
				if !errors.As(err, &te) {
					t.Fatalf("err = %v, want the ThrottledError", err)
				}
			}
			if n := e.Requests("enqueue"); n != tt.wantRequests {
				t.Fatalf("enqueue requests = %d, want %d", n, tt.wantRequests)
			}
			if msgs := e.Messages(); len(msgs) != tt.wantMessages || (len(msgs) == 1 && msgs[0].SHA256 != sha(body)) {
				t.Fatalf("messages = %d, want %d with the whole body", len(msgs), tt.wantMessages)
			}
		})
	}
}

func TestEnqueueOutcomeUnknown(t *testing.T) {
	t.Parallel()
	e, c := newEmulatorClient(t, d365test.Options{})
	// F&O stores the message but the answer does not arrive in time.
	e.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, Delay: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := c.Enqueue(ctx, d365.EnqueueRequest{ActivityID: importActivity, Entity: "Customer groups", Body: strings.NewReader("x"), Size: 1,
		Reopen: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("x")), nil }})
	if !errors.Is(err, d365.ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
	}
	if n := e.Requests("enqueue"); n != 1 || len(e.Messages()) != 1 {
		t.Fatalf("%d enqueue requests, %d messages; want the one, not re-sent", n, len(e.Messages()))
	}
}

func TestActivityIDWithBracesReachesTheJob(t *testing.T) {
	t.Parallel()
	e, c := newEmulatorClient(t, d365test.Options{})
	for _, id := range []string{"{" + strings.ToUpper(importActivity) + "}", "%7B" + importActivity + "%7D"} {
		if _, err := c.Enqueue(context.Background(), d365.EnqueueRequest{ActivityID: id, Body: strings.NewReader("x"), Size: 1}); err != nil {
			t.Fatalf("activity %s: %v", id, err)
		}
	}
	if n := len(e.Messages()); n != 2 {
		t.Fatalf("messages = %d, want 2", n)
	}
}

func TestEnqueueRefusesAnUnsizedOrEmptyBody(t *testing.T) {
	t.Parallel()
	e, c := newEmulatorClient(t, d365test.Options{})
	if _, err := c.Enqueue(context.Background(), d365.EnqueueRequest{ActivityID: importActivity, Body: strings.NewReader("data")}); err == nil {
		t.Fatal("Size 0 with a body must be refused, not sent empty")
	}
	if e.Requests("enqueue") != 0 {
		t.Fatal("a request went out")
	}
}

func TestJobStatus(t *testing.T) {
	t.Parallel()
	e, c := newEmulatorClient(t, d365test.Options{})
	ctx := context.Background()
	id, err := c.Enqueue(ctx, d365.EnqueueRequest{ActivityID: importActivity, ExternalID: "a.csv", Body: strings.NewReader("x"), Size: 1})
	if err != nil {
		t.Fatal(err)
	}
	e.RunToCompletion()
	js, err := c.JobStatus(ctx, importActivity, id)
	if err != nil || js.DataJobStatus == nil || js.DataJobStatus.DataJobState != 5 || js.DataJobStatus.ExternalIdentifier != "a.csv" {
		t.Fatalf("jobstatus = %+v, %v; want Processed (5) for a.csv", js, err)
	}
	js, err = c.JobStatus(ctx, importActivity, "6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b")
	if err != nil || js.DataJobStatus != nil {
		t.Fatalf("unknown job: %+v, %v; want no DataJobStatus", js, err)
	}
}

func TestUnauthorizedApp(t *testing.T) {
	t.Parallel()
	e, c := newEmulatorClient(t, d365test.Options{})
	e.AddActivity(importActivity, d365test.Activity{AllowedApps: []string{"some-other-app"}})
	_, err := c.Enqueue(context.Background(), d365.EnqueueRequest{ActivityID: importActivity, Body: strings.NewReader("x"), Size: 1})
	var fe *d365.Error
	if !errors.As(err, &fe) || fe.StatusCode != http.StatusUnauthorized {
		t.Fatalf("err = %v, want 401", err)
	}
	if strings.Contains(err.Error(), "Bearer") {
		t.Fatalf("error text carries the token: %v", err)
	}
}

func TestWrongSecretFailsAtTokenTime(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, d365test.Options{})
	cred, _ := d365.SecretCredential("not-the-secret")
	c, err := d365.New(clientConfig(e, cred))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetMessageStatus(context.Background(), "x")
	var ae *d365.AuthError
	if !errors.As(err, &ae) || ae.Code != "AADSTS7000215" || !ae.InvalidClient() {
		t.Fatalf("err = %v, want an AuthError AADSTS7000215", err)
	}
	if strings.Contains(err.Error(), "not-the-secret") {
		t.Fatal("the secret appears in the error")
	}
	if e.TotalRequests() != 0 || e.TokenRequests() != 1 {
		t.Fatalf("%d F&O requests, %d token requests; want none and one (a refusal is not retried)", e.TotalRequests(), e.TokenRequests())
	}
}

func TestPackageAPI(t *testing.T) {
	t.Parallel()
	e, c := newEmulatorClient(t, d365test.Options{})
	ctx := context.Background()
	pkg := packageZip(t, "Customer groups", "Customer groups.csv")

	w, err := c.GetAzureWriteURL(ctx, "groups-001.zip")
	if err != nil || w.BlobURL == "" || w.BlobID == "" {
		t.Fatalf("write URL %+v, %v", w, err)
	}
	if err := c.UploadPackage(ctx, w.BlobURL, bytes.NewReader(pkg), int64(len(pkg))); err != nil {
		t.Fatal(err)
	}
	x, err := c.ImportFromPackage(ctx, d365.ImportPackageRequest{PackageURL: w.BlobURL, DefinitionGroupID: "CustGroupsImport",
		Execute: true, Overwrite: true, LegalEntityID: "USMF"})
	if err != nil || x == "" {
		t.Fatalf("ImportFromPackage = %q, %v", x, err)
	}
	e.RunToCompletion()
	if s, err := c.GetExecutionSummaryStatus(ctx, x); err != nil || s != d365.ExecSucceeded {
		t.Fatalf("status %q, %v", s, err)
	}
	// The same project again without overwrite: F&O refuses.
	_, err = c.ImportFromPackage(ctx, d365.ImportPackageRequest{PackageURL: w.BlobURL, DefinitionGroupID: "CustGroupsImport", LegalEntityID: "USMF"})
	var fe *d365.Error
	if !errors.As(err, &fe) || fe.StatusCode != http.StatusBadRequest || !strings.Contains(fe.Message, "overwrite") {
		t.Fatalf("err = %v, want 400 about overwrite", err)
	}

	ex, err := c.ExportToPackage(ctx, d365.ExportPackageRequest{DefinitionGroupID: "CustGroupsExport", PackageName: "groups", LegalEntityID: "USMF"})
	if err != nil || ex == "" {
		t.Fatalf("ExportToPackage = %q, %v", ex, err)
	}
	u, err := c.GetExportedPackageURL(ctx, ex)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; u == "" && i < 5; i++ {
		e.Tick()
		if u, err = c.GetExportedPackageURL(ctx, ex); err != nil {
			t.Fatal(err)
		}
	}
	if u == "" || fetch(t, c, u) == "" {
		t.Fatalf("exported package URL %q", u)
	}
	e.Inject(d365test.Fault{Endpoint: "ExportToPackage", Count: 1, EmptyExecutionID: true})
	if _, err := c.ExportToPackage(ctx, d365.ExportPackageRequest{DefinitionGroupID: "CustGroupsExport", PackageName: "g2"}); err == nil {
		t.Fatal("the empty execution ID must be an error")
	}
	if e.BlobSawToken() {
		t.Fatal("the bearer token was sent to the blob host")
	}
}

// packageZip builds a minimal data package: Manifest.xml, PackageHeader.xml
// and one data file at the root.
func packageZip(t *testing.T, entity, file string) []byte {
	t.Helper()
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	add := func(name, text string) {
		w, err := z.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, text)
	}
	add("Manifest.xml", `<?xml version="1.0" encoding="utf-8"?>
<DataManagementPackageManifest xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.microsoft.com/dynamics/2015/01/DataManagement">
<DefinitionGroupName>CustGroupsImport</DefinitionGroupName><PackageEntityList><DataManagementPackageEntityData>
<EntityMapList/><EntityName>`+entity+`</EntityName><InputFilePath>`+file+`</InputFilePath><SourceFormat>CSV-Unicode</SourceFormat>
</DataManagementPackageEntityData></PackageEntityList></DataManagementPackageManifest>`)
	add("PackageHeader.xml", `<?xml version="1.0" encoding="utf-8"?>
<DataManagementPackageHeader xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.microsoft.com/dynamics/2015/01/DataManagement">
<Description>test</Description><ManifestType>Microsoft.Dynamics.AX.Framework.Tools.DataManagement.Serialization.DataManagementPackageManifest</ManifestType>
<PackageType>DefinitionGroup</PackageType><PackageVersion>1</PackageVersion></DataManagementPackageHeader>`)
	add(file, "CUSTGROUP,NAME\r\n10,Wholesale\r\n")
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCertificateCredential(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "fno-bridge"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)

	e := newEmulator(t, d365test.Options{ClientCertificate: cert})
	cred, err := d365.CertificateCredential(certAndKeyPEM(der, key), "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := d365.New(clientConfig(e, cred))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetMessageStatus(context.Background(), "6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b"); err != nil {
		t.Fatalf("a certificate-signed assertion should be accepted: %v", err)
	}

	// A different key is refused by Entra ID.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	der2, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &other.PublicKey, other)
	bad, _ := d365.CertificateCredential(certAndKeyPEM(der2, other), "")
	c2, _ := d365.New(clientConfig(e, bad))
	if _, err := c2.GetMessageStatus(context.Background(), "x"); err == nil {
		t.Fatal("an assertion signed by another key must be refused")
	}
}

// certAndKeyPEM is the PEM CertificateCredential reads: a certificate (DER)
// and its private key.
func certAndKeyPEM(der []byte, key *rsa.PrivateKey) []byte {
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})...)
}

// failingSource hands out the first n bytes of body, then fails, as an S3
// stream does when it breaks or its checksum does not match.
type failingSource struct {
	r   io.Reader
	err error
}

func (f *failingSource) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func TestEnqueueSourceFailureIsNotAnUnknownOutcome(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	body := bytes.Repeat([]byte("b"), 512<<10)
	broken := errors.New("s3 stream broke")
	for _, tt := range []struct {
		name         string
		reopen       bool
		wantRequests int
		wantMessages int
	}{
		{"reopened and sent whole", true, 2, 1},
		{"reported when it cannot be reopened", false, 1, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, c := newEmulatorClient(t, d365test.Options{})
			req := d365.EnqueueRequest{ActivityID: importActivity, Entity: "Customer groups", Size: int64(len(body)),
				Body: &failingSource{r: bytes.NewReader(body[:300<<10]), err: broken}}
			if tt.reopen {
				req.Reopen = func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			}
			_, err := c.Enqueue(ctx, req)
			if errors.Is(err, d365.ErrOutcomeUnknown) {
				t.Fatalf("err = %v: a body that never went out whole cannot have been taken", err)
			}
			if tt.reopen && err != nil {
				t.Fatalf("err = %v, want the reopened body sent", err)
			}
			if !tt.reopen && !errors.Is(err, broken) {
				t.Fatalf("err = %v, want the source's error", err)
			}
			if n := e.Requests("enqueue"); n != tt.wantRequests {
				t.Fatalf("enqueue requests = %d, want %d", n, tt.wantRequests)
			}
			if msgs := e.Messages(); len(msgs) != tt.wantMessages || (len(msgs) == 1 && msgs[0].SHA256 != sha(body)) {
				t.Fatalf("messages = %d, want %d with the whole body", len(msgs), tt.wantMessages)
			}
		})
	}
}

// stallingBody hands out the first part of a body, then stalls until it is
// closed, and then goes on with the rest without an error: a source that
// never fails, so only the count of bytes read can tell the send was cut.
type stallingBody struct {
	first, rest io.Reader
	closed      chan struct{}
	once        sync.Once
}

func (s *stallingBody) Read(p []byte) (int, error) {
	n, err := s.first.Read(p)
	if err == io.EOF {
		<-s.closed
		return s.rest.Read(p)
	}
	return n, err
}

func (s *stallingBody) Close() error { s.once.Do(func() { close(s.closed) }); return nil }

// TestEnqueueConnectionReset: F&O drops the connection in the middle of a
// body. If the client had passed on every byte of the body, F&O may hold
// the file: outcome unknown, never re-sent. If part of the body had not
// even been read from its source (here the source stalls until the send's
// deadline closes it), nobody can hold the whole request: it is reported
// as not sent, and a later delivery sends it whole.
func TestEnqueueConnectionReset(t *testing.T) {
	t.Parallel()
	t.Run("after the whole body was sent", func(t *testing.T) {
		t.Parallel()
		e, c := newEmulatorClient(t, d365test.Options{})
		body := bytes.Repeat([]byte("x"), 1000) // read whole into the transport's buffer before the reset
		e.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, ResetAfterBytes: 100})
		_, err := c.Enqueue(context.Background(), d365.EnqueueRequest{ActivityID: importActivity, Body: bytes.NewReader(body), Size: int64(len(body)),
			Reopen: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }})
		if !errors.Is(err, d365.ErrOutcomeUnknown) {
			t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
		}
		if n := e.Requests("enqueue"); n != 1 {
			t.Fatalf("%d enqueue requests: re-sent although F&O may hold it", n)
		}
	})
	t.Run("before the body was read to its end", func(t *testing.T) {
		t.Parallel()
		e, c := newEmulatorClient(t, d365test.Options{})
		// Large enough that the connection fails long before the rest
		// could all be written, once the stall ends at the deadline.
		body := bytes.Repeat([]byte("y"), 64<<20)
		e.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, ResetAfterBytes: 64 << 10})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := c.Enqueue(ctx, d365.EnqueueRequest{ActivityID: importActivity, Size: int64(len(body)),
			Body: &stallingBody{first: bytes.NewReader(body[:64<<10]), rest: bytes.NewReader(body[64<<10:]), closed: make(chan struct{})}})
		if err == nil || errors.Is(err, d365.ErrOutcomeUnknown) {
			t.Fatalf("err = %v, want a send that did not happen", err)
		}
		if n := len(e.Messages()); n != 0 {
			t.Fatalf("F&O holds %d messages", n)
		}
		if _, err := c.Enqueue(context.Background(), d365.EnqueueRequest{ActivityID: importActivity, Body: bytes.NewReader(body), Size: int64(len(body))}); err != nil {
			t.Fatalf("the redelivery: %v", err)
		}
		if msgs := e.Messages(); len(msgs) != 1 || msgs[0].SHA256 != sha(body) {
			t.Fatalf("%d messages; want one, whole", len(msgs))
		}
	})
}
