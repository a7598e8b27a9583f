package d365_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// cannedTransport answers every request with one status and body.
type cannedTransport struct {
	status int
	body   []byte
	header http.Header
}

func (c cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	h := c.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	return &http.Response{StatusCode: c.status, Header: h, Body: io.NopCloser(bytes.NewReader(c.body)),
		ContentLength: int64(len(c.body)), Request: r}, nil
}

const fuzzActivity = "6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b"

// contentTypeOf is the Content-Type a server would give body: HTML for a
// page, JSON otherwise.
func contentTypeOf(body []byte) string {
	if bytes.HasPrefix(bytes.TrimSpace(body), []byte("<")) {
		return "text/html; charset=utf-8"
	}
	return "application/json; charset=utf-8"
}

// FuzzClientAnswers sends one answer (any status, any body) to every call
// of the client and checks what each makes of it: an error or a usable
// result, never a panic; GetExecutionErrors never loses a 200 answer; a
// URL that may carry a SAS signature is never echoed in an error; the
// empty GUID is never taken for an execution ID.
func FuzzClientAnswers(f *testing.F) {
	const ctx = `{"@odata.context":"https://contoso.operations.dynamics.com/data/$metadata#Edm.String",`
	for _, s := range []struct {
		status int
		body   string
	}{
		{200, `"` + fuzzActivity + `"`},
		{200, `{"value":"` + fuzzActivity + `"}`},
		{200, ctx + `"value":"Processed"}`},
		{200, ctx + `"value":"PROCESSEDWITHERRORS"}`},
		{200, ctx + `"value":"00000000-0000-0000-0000-000000000000"}`},
		{200, ctx + `"value":"{00000000-0000-0000-0000-000000000000}"}`},
		{200, ctx + `"value":{"value":"00000000-0000-0000-0000-000000000000"}}`},
		{200, ctx + `"value":{"value":"Export-2026-01-01_00-00-00-` + fuzzActivity + `"}}`},
		{200, `{"@odata.context":"https://h/data/$metadata#Edm.Boolean","value":true}`},
		{200, ctx + `"value":"{\"BlobId\":\"{` + fuzzActivity + `}\",\"BlobUrl\":\"https://acct.blob.core.windows.net/dmf/x.zip?sv=2014-02-14&sr=b&sig=SECRETSIG&se=2026-01-01\"}"}`},
		{200, ctx + `"value":"{\"BlobId\":\"{` + fuzzActivity + `}\",\"BlobUrl\":\"https://acct.blob.core.windows.net/dmf/x.zip?sv=2014-02-14&sig=SECRETSIG`}, // cut off
		{200, ctx + `"value":{"BlobId":"x","BlobUrl":"https://acct.blob.core.windows.net/dmf/x.zip?sig=SECRETSIG"}}`},
		{200, ctx + `"value":"https://acct.blob.core.windows.net/dmf/err.csv?sig=SECRETSIG"}`},
		{200, ctx + `"value":["https://acct.blob.core.windows.net/dmf/err.csv?sig=SECRETSIG"]}`},
		{200, ctx + `"value":"[{\"RecordId\":\"479625\",\"Field\":\"\",\"ErrorMessage\":\"Customer group \"10\" already exists\r\n\"}]"}`},
		{200, ctx + "\"value\":\"[{\\\"RecordId\\\":\\\"1\\\",\\\"ErrorMessage\\\":\\\"raw\nnewline\\\"}]\"}"},
		{200, `{"CorrelationId":"c","PopReceipt":"p","DownloadLocation":"https://contoso.operations.dynamics.com/api/connector/download/x?correlation-id=c&blob=b","IsDownLoadFileExist":true,"FileDownLoadErrorMessage":null,"LastDequeueDateTime":null}`},
		{200, `{"CorrelationId":"c","PopReceipt":"p","DownloadLocation":null,"IsDownLoadFileExist":false}`},
		{200, `{"DataJobStatus":{"DataProject":"p","DataJobIdentifier":"` + fuzzActivity + `","ExternalIdentifier":"XX.xlsx","ExecutionIdentifier":"e","DataJobStartedDateTime":"2016-08-27T20:58:15","DataJobCompletedDateTime":"","DataJobState":8},"ExecutionLog":"","ExecutionDetail":null}`},
		{200, `{"DataJobStatus":{"DataJobState":"PreProcessError"}}`},
		{200, `{"DataJobStatus":{"DataJobState":1e400}}`},
		{200, `{"DataJobStatus":null}`},
		{204, ``},
		{200, ``}, {200, `null`}, {200, `[]`}, {200, `<html>Sign in</html>`},
		{200, fuzzActivity}, {200, `{` + strings.ToUpper(fuzzActivity) + `}`}, {201, `"` + fuzzActivity + `"`},
		{200, `<html><body>Session expired. Request Id: ` + fuzzActivity + `</body></html>`},
		{200, `Message ` + fuzzActivity + ` was queued.`}, {200, `{"id":"` + fuzzActivity + `"}`},
		{200, `<html><a href="https://acct.blob.core.windows.net/x?sig=SECRETSIG">` + fuzzActivity + `</a></html>`},
		{301, ``}, {307, `<html>Object moved</html>`},
		{302, `Object moved`},
		{400, `{"error":{"code":"","message":"Execution ID x were not found"}}`},
		{400, `{"error":{"code":"","message":"Package ... exists and overwrite has not been specified"}}`},
		{401, ``}, {404, `{}`}, {429, `throttled`}, {500, `{"error":{}}`}, {502, `<html>Bad Gateway</html>`},
	} {
		f.Add(s.status, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 599 {
			status = 100 + (status%500+500)%500
		}
		c, err := d365.New(d365.Config{
			BaseURL: "https://contoso.operations.dynamics.com", Tokens: d365.StaticTokens("tok"),
			HTTPClient: &http.Client{Transport: cannedTransport{status: status, body: body, header: http.Header{"Retry-After": {"0"}, "Content-Type": {contentTypeOf(body)}}}},
			Retry:      d365.RetryPolicy{MaxAttempts: 1, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ok := status >= 200 && status < 300
		mayHoldSAS := bytes.Contains(body, []byte("sig="))
		// noSAS is for the calls whose answer is a blob URL.
		noSAS := func(call string, err error) {
			if ok && err != nil && mayHoldSAS && strings.Contains(err.Error(), "sig=") {
				t.Fatalf("%s: the error echoes a SAS signature: %v", call, err)
			}
		}

		id, err := c.Enqueue(ctx, d365.EnqueueRequest{ActivityID: fuzzActivity, Body: strings.NewReader("x"), Size: 1})
		var ua *d365.UnexpectedAnswerError
		switch {
		case err == nil && (status != http.StatusOK || !d365.IsMessageID(id)):
			t.Fatalf("Enqueue: %d answer %q gave ID %q", status, body, id)
		case err == nil && !(json.Valid(bytes.TrimSpace(body)) || d365.IsMessageID(string(bytes.TrimSpace(body)))):
			t.Fatalf("Enqueue: ID %q read from %q, which is not one of F&O's shapes", id, body)
		case err != nil && ok && (!errors.Is(err, d365.ErrOutcomeUnknown) || !errors.As(err, &ua)):
			t.Fatalf("Enqueue: a 2xx answer without a usable ID must be an UnexpectedAnswerError (ErrOutcomeUnknown), got %v", err)
		case ua != nil && (ua.Status != status || len(ua.Snippet) > 300 || !strings.Contains(err.Error(), "an answer came back")):
			t.Fatalf("Enqueue: %+v does not say what came back", ua)
		case ua != nil && mayHoldSAS && strings.Contains(err.Error(), "SECRETSIG"):
			t.Fatalf("Enqueue: the error quotes a SAS signature: %v", err)
		case status >= 300 && status < 400 && (!errors.Is(err, d365.ErrOnPremises) || !strings.Contains(err.Error(), fmt.Sprint(status))):
			t.Fatalf("Enqueue: %d is not ErrOnPremises naming the status: %v", status, err)
		}

		if st, err := c.GetMessageStatus(ctx, fuzzActivity); err == nil && d365.ParseMessageStatus(string(st)) != st {
			t.Fatalf("GetMessageStatus: %q is not normalized", st)
		}
		if eid, err := c.GetExecutionIDByMessageID(ctx, fuzzActivity); err == nil && strings.Trim(eid, "{}") == "00000000-0000-0000-0000-000000000000" {
			t.Fatalf("GetExecutionIDByMessageID returned the empty GUID")
		}
		if es, err := c.GetExecutionSummaryStatus(ctx, "e"); err == nil && d365.ParseExecutionStatus(string(es)) != es {
			t.Fatalf("GetExecutionSummaryStatus: %q is not normalized", es)
		}
		ee, err := c.GetExecutionErrors(ctx, "e")
		if ok {
			if err != nil || ee == nil {
				t.Fatalf("GetExecutionErrors: a %d answer failed: %v", status, err)
			}
			if ee.Raw == "" && (len(ee.Rows) != 0 || len(bytes.TrimSpace(body)) > 0 && !json.Valid(body)) {
				// Only an empty value ("", null) may leave Raw empty.
				t.Fatalf("GetExecutionErrors: answer %q lost", body)
			}
		} else if err == nil {
			t.Fatalf("GetExecutionErrors: a %d answer passed", status)
		}
		_, _ = c.GenerateImportTargetErrorKeysFile(ctx, "e", "Customer groups")
		w, err := c.GetAzureWriteURL(ctx, "x.zip")
		noSAS("GetAzureWriteURL", err)
		if err == nil && w.BlobURL == "" {
			t.Fatal("GetAzureWriteURL: no BlobUrl and no error")
		}
		for name, call := range map[string]func() (string, error){
			"GetImportStagingErrorFileURL": func() (string, error) { return c.GetImportStagingErrorFileURL(ctx, "e", "E") },
			"GetImportTargetErrorKeysFileURL": func() (string, error) {
				return c.GetImportTargetErrorKeysFileURL(ctx, "e", "E")
			},
			"GetExportedPackageURL": func() (string, error) { return c.GetExportedPackageURL(ctx, "e") },
		} {
			_, err := call()
			noSAS(name, err)
		}
		xid, err := c.ExportToPackage(ctx, d365.ExportPackageRequest{DefinitionGroupID: "g"})
		if err == nil && (xid == "" || strings.Trim(xid, "{}") == "00000000-0000-0000-0000-000000000000") {
			t.Fatalf("ExportToPackage returned %q", xid)
		}
		iid, err := c.ImportFromPackage(ctx, d365.ImportPackageRequest{DefinitionGroupID: "g", PackageURL: "https://acct.blob.core.windows.net/x"})
		if iid == "" || err == nil && strings.Trim(iid, "{}") == "00000000-0000-0000-0000-000000000000" {
			t.Fatalf("ImportFromPackage lost the execution ID: %q, %v", iid, err)
		}
		d, err := c.Dequeue(ctx, fuzzActivity)
		if err == nil && d != nil {
			if d.CorrelationID == "" || !bytes.Equal(d.Raw, body) {
				t.Fatalf("Dequeue: %+v from %q", d, body)
			}
			_ = c.Ack(ctx, fuzzActivity, d)
			if d.HasFile() {
				_, _ = c.ResolveDownloadLocation(*d.DownloadLocation)
			}
		}
		if err == nil && d == nil && status != http.StatusNoContent && len(bytes.TrimSpace(body)) != 0 {
			t.Fatalf("Dequeue: %d %q read as an empty queue", status, body)
		}
		js, err := c.JobStatus(ctx, fuzzActivity, fuzzActivity)
		if err == nil && js == nil {
			t.Fatal("JobStatus: nil without an error")
		}
	})
}
