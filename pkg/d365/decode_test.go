package d365_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// Only F&O's shapes of the enqueue answer give a message ID; the ID is
// the GUID as F&O wrote it.
func TestParseMessageID(t *testing.T) {
	t.Parallel()
	const id = "6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b"
	upper := "{" + strings.ToUpper(id) + "}"
	tests := []struct {
		name, in, want string // want "": not an ID
	}{
		{"JSON string (what F&O sends)", `"` + id + `"`, id},
		{"JSON string with whitespace", " \"" + id + "\"\r\n", id},
		{"bare", id, id},
		{"bare with whitespace", "\t" + id + "\n", id},
		{"braced", upper, upper},
		{"braced inside a JSON string", `"` + upper + `"`, upper},
		{"wrapped in value", `{"value":"` + id + `"}`, id},
		{"wrapped with odata context", `{"@odata.context":"https://h/data/$metadata#Edm.String","value":"` + id + `"}`, id},
		{"wrapped twice", `{"value":{"value":"` + id + `"}}`, id},
		{"wrapped with spaces", ` { "value" : "` + id + `" } `, id},
		{"empty", ``, ""},
		{"whitespace only", " \r\n", ""},
		{"empty JSON string", `""`, ""},
		{"JSON string that is not a GUID", `"ok"`, ""},
		{"JSON string with text around the GUID", `"id: ` + id + `"`, ""},
		{"GUID with a control character", `"` + id + `\u0001"`, ""},
		{"broken quotes", `"` + id, ""},
		{"object of another shape", `{"id":"` + id + `"}`, ""},
		{"wrapper with another member", `{"value":"` + id + `","status":"ok"}`, ""},
		{"value twice", `{"value":"` + id + `","value":"` + id + `"}`, ""},
		{"wrapper with trailing text", `{"value":"` + id + `"} ok`, ""},
		{"value that is not a string", `{"value":42}`, ""},
		{"null value", `{"value":null}`, ""},
		{"nested too deep", strings.Repeat(`{"value":`, 5) + `"` + id + `"` + strings.Repeat(`}`, 5), ""},
		{"array", `["` + id + `"]`, ""},
		{"HTML page without a GUID", `<html><body>Sign in</body></html>`, ""},
		{"HTML page with a GUID", `<html><body>Session expired. Request Id: ` + id + `</body></html>`, ""},
		{"plain text with a GUID", `Message ` + id + ` was queued.`, ""},
		{"two GUIDs", id + " " + id, ""},
		{"GUID with trailing text", id + "x", ""},
		{"oversized", `"` + id + `"` + strings.Repeat(" ", 4<<10), ""},
		{"not UTF-8", "\xff\xfe" + id, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d365.ParseMessageID([]byte(tt.in))
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseMessageID(%q) = %q, want an error", tt.in, got)
				}
				if strings.Contains(err.Error(), id) {
					t.Fatalf("the error quotes the answer: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseMessageID(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			if !d365.IsMessageID(got) {
				t.Fatalf("%q is not a message ID", got)
			}
		})
	}
}

func TestParseMessageStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in                  string
		want                d365.MessageStatus
		terminal, succeeded bool
	}{
		{"Enqueued", d365.StatusEnqueued, false, false},
		{"processing", d365.StatusProcessing, false, false},
		{"PreProcessing", d365.StatusPreprocessing, false, false},
		{"Processed", d365.StatusProcessed, true, true},
		{"PROCESSEDWITHERRORS", d365.StatusProcessedWithErrors, true, false},
		{"PreProcessingError", d365.StatusPreProcessingError, true, false},
		{"PostProcessingFailed", d365.StatusPostProcessingFailed, true, false},
		{"PostProcessingError", d365.StatusPostProcessingFailed, true, false},
		{"Downloaded", "Downloaded", false, false},
		{"Unknown", "Unknown", false, false},
	}
	for _, tt := range tests {
		got := d365.ParseMessageStatus(tt.in)
		if got != tt.want || got.Terminal() != tt.terminal || got.Succeeded() != tt.succeeded {
			t.Errorf("ParseMessageStatus(%q) = %q (terminal %v, succeeded %v), want %q (%v, %v)",
				tt.in, got, got.Terminal(), got.Succeeded(), tt.want, tt.terminal, tt.succeeded)
		}
	}
}

func TestParseExecutionStatus(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]struct {
		s                   d365.ExecutionStatus
		terminal, succeeded bool
	}{
		"NotRun": {d365.ExecNotRun, false, false}, "executing": {d365.ExecExecuting, false, false},
		"Succeeded": {d365.ExecSucceeded, true, true}, "PartiallySucceeded": {d365.ExecPartiallySucceeded, true, false},
		"Failed": {d365.ExecFailed, true, false}, "Canceled": {d365.ExecCanceled, true, false},
		"Unknown": {d365.ExecUnknown, true, false}, "Cancelled": {"Cancelled", true, false},
		"Queued": {"Queued", false, false}, "Bad request": {"Bad request", false, false},
	} {
		got := d365.ParseExecutionStatus(in)
		if got != want.s || got.Terminal() != want.terminal || got.Succeeded() != want.succeeded {
			t.Errorf("ParseExecutionStatus(%q) = %q (%v, %v), want %+v", in, got, got.Terminal(), got.Succeeded(), want)
		}
	}
}

func TestParseExecutionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		text    string
		want    []d365.ExecutionError
		lenient bool
	}{
		{"empty array", `[]`, nil, false},
		{"empty text", ``, nil, false},
		{"strict JSON", `[{"RecordId":"479625","Field":"","ErrorMessage":"Currency EURX does not exist."}]`,
			[]d365.ExecutionError{{RecordID: "479625", ErrorMessage: "Currency EURX does not exist."}}, false},
		{"raw newline and quotes inside a message",
			"[{\"RecordId\":\"1\",\"Field\":\"CustGroup\",\"ErrorMessage\":\"Value \"X1\" is not valid.\r\nCheck the \"Customer groups\" entity\"},{\"RecordId\":\"2\",\"Field\":\"\",\"ErrorMessage\":\"ok \\\"escaped\\\" too\"}]",
			[]d365.ExecutionError{
				{RecordID: "1", Field: "CustGroup", ErrorMessage: "Value \"X1\" is not valid.\r\nCheck the \"Customer groups\" entity"},
				{RecordID: "2", ErrorMessage: `ok "escaped" too`},
			}, true},
		{"keys with spaces and unicode escape", "[ { \"RecordId\" : \"7\" , \"Field\" : \"Name\" , \"ErrorMessage\" : \"caf\\u00e9 \"broken\" } ]",
			[]d365.ExecutionError{{RecordID: "7", Field: "Name", ErrorMessage: `café "broken`}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := d365.ParseExecutionErrors(tt.text)
			if got.Raw != tt.text {
				t.Fatalf("Raw = %q, want the text unchanged %q", got.Raw, tt.text)
			}
			if got.Lenient != tt.lenient {
				t.Fatalf("Lenient = %v, want %v", got.Lenient, tt.lenient)
			}
			if len(got.Rows) != len(tt.want) {
				t.Fatalf("rows = %#v, want %#v", got.Rows, tt.want)
			}
			for i := range tt.want {
				if got.Rows[i] != tt.want[i] {
					t.Errorf("row %d = %#v, want %#v", i, got.Rows[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseExecutionErrorsAnswerNotJSON(t *testing.T) {
	t.Parallel()
	// The outer OData answer itself carries raw control characters: not JSON.
	body := "{\"@odata.context\":\"x\",\"value\":\"[{\\\"RecordId\\\":\\\"5\\\",\\\"Field\\\":\\\"\\\",\\\"ErrorMessage\\\":\\\"line1\nline2\\\"}]\"}"
	got := d365.ParseExecutionErrorsAnswer([]byte(body))
	if len(got.Rows) != 1 || got.Rows[0].RecordID != "5" || got.Rows[0].ErrorMessage != "line1\nline2" {
		t.Fatalf("rows = %#v", got.Rows)
	}
	if !strings.Contains(got.Raw, "line1\nline2") {
		t.Fatalf("raw text lost: %q", got.Raw)
	}
}

func TestDecodeDequeue(t *testing.T) {
	t.Parallel()
	if d, err := d365.DecodeDequeue(http.StatusNoContent, nil); d != nil || err != nil {
		t.Fatalf("204: got %v, %v; want nil, nil", d, err)
	}
	if d, err := d365.DecodeDequeue(http.StatusOK, []byte("  ")); d != nil || err != nil {
		t.Fatalf("empty 200: got %v, %v; want nil, nil", d, err)
	}
	raw := `{"CorrelationId":"c1","PopReceipt":"p1","DownloadLocation":"https://h/api/connector/download/a?correlation-id=c1&blob=b",` +
		`"IsDownLoadFileExist":true,"FileDownLoadErrorMessage":null,"LastDequeueDateTime":null}`
	d, err := d365.DecodeDequeue(http.StatusOK, []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if d.CorrelationID != "c1" || d.PopReceipt != "p1" || !d.HasFile() || d.Redelivered() || string(d.Raw) != raw {
		t.Fatalf("decoded %+v", d)
	}
	missing := `{"CorrelationId":"c2","PopReceipt":"p2","DownloadLocation":null,"IsDownLoadFileExist":false,"FileDownLoadErrorMessage":"blob gone","LastDequeueDateTime":"2026-11-22T10:00:00Z"}`
	d, err = d365.DecodeDequeue(http.StatusOK, []byte(missing))
	if err != nil {
		t.Fatal(err)
	}
	if d.HasFile() || !d.Redelivered() || *d.FileDownloadErrorMessage != "blob gone" {
		t.Fatalf("decoded %+v", d)
	}
	if _, err := d365.DecodeDequeue(http.StatusOK, []byte(`{"PopReceipt":"p"}`)); err == nil {
		t.Fatal("an answer without CorrelationId must be an error")
	}
	if _, err := d365.DecodeDequeue(http.StatusOK, []byte(`<html>`)); err == nil {
		t.Fatal("a non-JSON answer must be an error")
	}
}

func TestResolveDownloadLocation(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"https://contoso.operations.dynamics.com", "https://127.0.0.1:8443"} {
		c, err := d365.New(d365.Config{BaseURL: base, Tokens: d365.StaticTokens("t")})
		if err != nil {
			t.Fatal(err)
		}
		host := strings.TrimPrefix(base, "https://")
		hostname := strings.Split(host, ":")[0]
		tests := []struct {
			loc, want string
			err       error
		}{
			{base + "/api/connector/download/a?correlation-id=c&blob=b", base + "/api/connector/download/a?correlation-id=c&blob=b", nil},
			{"http://" + hostname + ":80/api/connector/download/a?blob=b", base + "/api/connector/download/a?blob=b", nil},
			{"http://" + hostname + "/api/connector/download/a", base + "/api/connector/download/a", nil},
			{"https://evil.example.com/api/connector/download/a", "", d365.ErrForeignHost},
			{"https://" + hostname + ".evil.example.com/x", "", d365.ErrForeignHost},
			{"https://" + hostname + ":9999/x", "", d365.ErrForeignHost},
			{"", "", d365.ErrNoDownloadLocation},
		}
		for _, tt := range tests {
			got, err := c.ResolveDownloadLocation(tt.loc)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Errorf("base %s: ResolveDownloadLocation(%q) error = %v, want %v", base, tt.loc, err, tt.err)
				}
				continue
			}
			if err != nil || got != tt.want {
				t.Errorf("base %s: ResolveDownloadLocation(%q) = %q, %v; want %q", base, tt.loc, got, err, tt.want)
			}
		}
	}
}

func TestActivityIDForms(t *testing.T) {
	t.Parallel()
	const want = "6B4B1D4E-25F4-4C43-A8A8-1D2E3F4A5B6C"
	for _, in := range []string{want, "{" + want + "}", "%7B" + want + "%7D", " " + want + " "} {
		if got, err := d365.ActivityID(in); err != nil || got != want {
			t.Errorf("ActivityID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "not-a-guid", "../dequeue/" + want, want + "/x"} {
		if _, err := d365.ActivityID(in); err == nil {
			t.Errorf("ActivityID(%q) accepted", in)
		}
	}
}

func TestNewRejectsInsecureBaseURL(t *testing.T) {
	t.Parallel()
	for url, ok := range map[string]bool{
		"https://contoso.operations.dynamics.com": true,
		"http://127.0.0.1:8080":                   true,
		"http://localhost:8080":                   true,
		"http://[::1]:8080":                       true,
		"http://contoso.operations.dynamics.com":  false,
		"ftp://contoso":                           false,
		"contoso.operations.dynamics.com":         false,
		"":                                        false,
	} {
		_, err := d365.New(d365.Config{BaseURL: url, Tokens: d365.StaticTokens("t")})
		if (err == nil) != ok {
			t.Errorf("New(BaseURL %q) error = %v, want ok=%v", url, err, ok)
		}
	}
}

func TestDownloadFileName(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		h, want    string
		unreadable bool
	}{
		{``, "", false},
		{`attachment`, "", false},
		{`attachment; filename="Customer groups.csv"`, "Customer groups.csv", false},
		{`attachment; filename=Customer groups.csv`, "Customer groups.csv", false},
		{`attachment; filename=Customer groups.csv; size=12`, "Customer groups.csv", false},
		{`attachment;filename=groups.csv`, "groups.csv", false},
		{`attachment; FileName="groups.csv"`, "groups.csv", false},
		{`attachment; filename="a \"quoted\" name.csv"`, `a "quoted" name.csv`, false},
		{`attachment; filename*=UTF-8''f%C3%BCr.csv`, "für.csv", false},
		{`attachment; filename*=utf-8''Customer%20groups.csv`, "Customer groups.csv", false},
		{`attachment; filename="fallback.csv"; filename*=UTF-8''f%C3%BCr.csv`, "für.csv", false},
		{`attachment; filename*=UTF-8''f%C3%BCr.csv; filename="fallback.csv"`, "für.csv", false},
		{`attachment; filename*=ISO-8859-1''f%FCr.csv`, "für.csv", false},
		{`attachment; filename*=UTF-8''bad%ZZ.csv; filename="fallback.csv"`, "fallback.csv", false},
		{`attachment; filename="=?UTF-8?B?S3VuZGVuZ3J1cHBlbiDDpMO2w7wuY3N2?="`, "Kundengruppen äöü.csv", false},
		{`attachment; filename==?utf-8?Q?Customer_groups.csv?=`, "Customer groups.csv", false},
		{`attachment; filename="=?x-unknown?B?S3VuZGVu?="`, "", true},
		{`attachment; filename="../../etc/passwd"`, "passwd", false},
		{`attachment; filename="C:\\x\\pkg.zip"`, "pkg.zip", false},
		{`attachment; filename=..\..\pkg.zip`, "pkg.zip", false},
		{`attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd`, "passwd", false},
		{`attachment; filename="=?UTF-8?B?Li4vLi4vZXRjL3Bhc3N3ZA==?="`, "passwd", false},
		{`attachment; filename="evil` + "\u202e" + `vsc.exe"`, "evilvsc.exe", false},
		{`attachment; filename="a` + "\u0085\u200b" + `b.csv"`, "ab.csv", false},
		{`attachment; filename=".."`, "", true},
		{`attachment; filename="."`, "", true},
		{`attachment; filename=""`, "", true},
		{`attachment; filename="` + strings.Repeat("x", 201) + `"`, "", true},
		{`garbage;;`, "", true},
		{`attachment; filename`, "", true},
	} {
		got, unreadable := d365.AttachmentName(tt.h)
		if got != tt.want || unreadable != tt.unreadable {
			t.Errorf("AttachmentName(%q) = %q, unreadable %v; want %q, %v", tt.h, got, unreadable, tt.want, tt.unreadable)
		}
	}
}
