package d365_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// The decoders below read what F&O sends. They must never panic, and the
// tolerant ones must never lose the text they were given.

func FuzzParseMessageID(f *testing.F) {
	for _, s := range []string{`"6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b"`, `{"value":"x"}`, `{"value":{"value":"y"}}`, `bare-id`, `"\u0001"`, ``, `{`, `"`,
		`{"value":"6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b","value":"other"}`, `{"value":null}`, `{"value":[]}`, `[]`, `null`,
		`"{6F2A1C3E-0B5D-4F6A-9E2B-7C8D9E0F1A2B}"`, `"6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b\u0000"`, "\xff\xfe6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b",
		strings.Repeat(`{"value":`, 20) + `"6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b"` + strings.Repeat(`}`, 20),
		`<html><body>Sign in 6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b</body></html>`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		id, err := d365.ParseMessageID(raw)
		if err == nil && id == "" {
			t.Fatalf("ParseMessageID(%q) returned an empty ID without an error", raw)
		}
		if err == nil {
			// An ID must survive the JSON round trip the status calls make.
			b, _ := json.Marshal(map[string]string{"messageId": id})
			var back map[string]string
			if json.Unmarshal(b, &back) != nil || back["messageId"] != id {
				t.Fatalf("ID %q does not survive JSON encoding", id)
			}
		}
	})
}

func FuzzParseExecutionErrors(f *testing.F) {
	for _, s := range []string{
		`[]`, ``, `[{"RecordId":"1","Field":"","ErrorMessage":"m"}]`,
		"[{\"RecordId\":\"1\",\"Field\":\"F\",\"ErrorMessage\":\"a \"b\"\r\nc\"}]",
		`[{"RecordId":`, `"RecordId":"x"`, `{"ErrorMessage":"\u12"}`, `\`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		got := d365.ParseExecutionErrors(text)
		if got.Raw != text {
			t.Fatalf("raw text lost: %q became %q", text, got.Raw)
		}
	})
}

func FuzzParseExecutionErrorsAnswer(f *testing.F) {
	for _, s := range []string{
		`{"@odata.context":"x","value":"[]"}`,
		`{"value":"[{\"RecordId\":\"1\",\"Field\":\"\",\"ErrorMessage\":\"m\"}]"}`,
		"{\"value\":\"[{\\\"RecordId\\\":\\\"1\\\",\\\"ErrorMessage\\\":\\\"a\nb\\\"}]\"}",
		`{"value":[{"RecordId":"2"}]}`, `{"value":null}`, `<html>`, ``,
		`{"value":"[{\"RecordId\":\"1\",\"Field\":\"F\",\"ErrorMessage\":\"say \"hi\", \"Field\": no\"}]"}`,
		"{\"value\":\"[{\\\"RecordId\\\":\\\"1\\\"\x00}]\"}", `{"value":"[{\"RecordId\":\"\ud800\"}]"}`, `{"value":{"value":"[]"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got := d365.ParseExecutionErrorsAnswer(body)
		if got == nil {
			t.Fatal("nil result")
		}
		if len(body) > 0 && got.Raw == "" && len(got.Rows) == 0 && strings.TrimSpace(string(body)) != "" {
			// Everything was dropped: only acceptable when the value was an
			// empty array or empty string.
			var w struct{ Value json.RawMessage }
			if json.Unmarshal(body, &w) != nil {
				t.Fatalf("unparseable answer %q left nothing in Raw", body)
			}
		}
	})
}

func FuzzDecodeDequeue(f *testing.F) {
	for _, s := range []string{
		`{"CorrelationId":"c","PopReceipt":"p","DownloadLocation":"https://h/x","IsDownLoadFileExist":true,"FileDownLoadErrorMessage":null,"LastDequeueDateTime":null}`,
		`{"CorrelationId":"c","DownloadLocation":null}`, `{}`, `null`, `[]`, ``, `{"IsDownLoadFileExist":"yes"}`,
		`{"CorrelationId":"c","PopReceipt":"p","DownloadLocation":"","IsDownLoadFileExist":null}`,
		`{"CorrelationId":"c","PopReceipt":"p","DownloadLocation":"https://h/x","IsDownLoadFileExist":false,"FileDownLoadErrorMessage":"File not found"}`,
		`{"CorrelationId":"a","CorrelationId":"b"}`, `{"correlationid":"lower"}`, `{"CorrelationId":123}`, `{"CorrelationId":"c\u0000/../x"}`,
		`{"CorrelationId":"c","LastDequeueDateTime":"2026-01-01T00:00:00Z"}`, `{"CorrelationId":"c"} trailing`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := d365.DecodeDequeue(http.StatusOK, raw)
		if err == nil && d != nil {
			if d.CorrelationID == "" {
				t.Fatalf("accepted an answer without CorrelationId: %q", raw)
			}
			if string(d.Raw) != string(raw) {
				t.Fatalf("Raw (echoed by ack) differs from the answer")
			}
			_ = d.HasFile()
			_ = d.Redelivered()
		}
	})
}
