package d365_test

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// The decoders below read what F&O sends. They must never panic, and the
// tolerant ones must never lose the text they were given.

// FuzzParseMessageID: an accepted ID is a GUID (braces optional), taken
// from an answer that is nothing but F&O's shapes: a bare or braced GUID,
// or JSON (a string, or an OData value wrapper) no longer than any such
// answer. It survives the JSON round trip the status calls make.
func FuzzParseMessageID(f *testing.F) {
	const id = "6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b"
	for _, s := range []string{`"` + id + `"`, id, "{" + strings.ToUpper(id) + "}", `{"value":"` + id + `"}`,
		`{"@odata.context":"https://h/data/$metadata#Edm.String","value":"` + id + `"}`, `{"value":{"value":"` + id + `"}}`,
		`{"value":"x"}`, `{"value":{"value":"y"}}`, `bare-id`, `"\u0001"`, ``, `{`, `"`,
		`{"value":"` + id + `","value":"other"}`, `{"value":null}`, `{"value":[]}`, `[]`, `null`,
		`"{6F2A1C3E-0B5D-4F6A-9E2B-7C8D9E0F1A2B}"`, `"` + id + `\u0000"`, "\xff\xfe" + id,
		strings.Repeat(`{"value":`, 20) + `"` + id + `"` + strings.Repeat(`}`, 20),
		`<html><body>Sign in ` + id + `</body></html>`, `Session expired. Request Id: ` + id, `Message ` + id + ` was queued.`,
		`"` + id + `"` + strings.Repeat(" ", 3000)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		id, err := d365.ParseMessageID(raw)
		if err != nil {
			if id != "" {
				t.Fatalf("ParseMessageID(%q) gave %q and an error", raw, id)
			}
			return
		}
		if !d365.IsMessageID(id) {
			t.Fatalf("ParseMessageID(%q) = %q: not a GUID", raw, id)
		}
		trimmed := bytes.TrimSpace(raw)
		if len(raw) > 2<<10 || !(json.Valid(trimmed) || d365.IsMessageID(string(trimmed))) {
			t.Fatalf("ParseMessageID(%q) = %q from an answer that is not F&O's", raw, id)
		}
		if trimmed[0] == '{' && !d365.IsMessageID(string(trimmed)) && !bytes.Contains(raw, []byte(`"value"`)) {
			t.Fatalf("ParseMessageID(%q) took an object that is not a value wrapper", raw)
		}
		b, _ := json.Marshal(map[string]string{"messageId": id})
		var back map[string]string
		if json.Unmarshal(b, &back) != nil || back["messageId"] != id {
			t.Fatalf("ID %q does not survive JSON encoding", id)
		}
	})
}

// FuzzAttachmentName: whatever Content-Disposition a server sends, the name
// read from it is a safe base name (no folder, no control, bidi or
// zero-width character, not "." or "..", valid UTF-8, at most 200 bytes,
// trimmed), and it reads back unchanged when sent again in the standard
// form; a header that gives no name is reported when it tried to.
func FuzzAttachmentName(f *testing.F) {
	for _, s := range []string{
		`attachment; filename="Customer groups.csv"`, `attachment; filename=Customer groups.csv`,
		`attachment; filename*=UTF-8''f%C3%BCr.csv`, `attachment; filename*=ISO-8859-1''f%FCr.csv`,
		`attachment; filename="fallback.csv"; filename*=UTF-8''f%C3%BCr.csv`,
		`attachment; filename="=?UTF-8?B?S3VuZGVuZ3J1cHBlbiDDpMO2w7wuY3N2?="`, `attachment; filename==?utf-8?Q?a_b.csv?=`,
		`attachment; filename="../../etc/passwd"`, `attachment; filename=..\..\x.zip`, `attachment; filename*=UTF-8''..%2F..%2Fx`,
		`attachment; filename="=?UTF-8?B?Li4vLi4vZXRjL3Bhc3N3ZA==?="`, "attachment; filename=\"a\u202eb\x00c\u0085.csv\"",
		`attachment; filename*0="a"; filename*1="b.csv"`, `attachment; filename=".."`, `attachment; filename="\"`, `attachment; filename="`,
		`attachment; filename*=UTF-8''%00%2e%2e`, `inline`, ``, `;;;`, `=`, `filename=x`, "attachment; filename=\xff\xfe.csv",
		`attachment; filename="=?UTF-8?Q?=2E=2E?="`, `attachment; filename="   "`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		name, unreadable := d365.AttachmentName(h)
		if name == "" {
			return
		}
		if unreadable {
			t.Fatalf("AttachmentName(%q) = %q but reports the header unreadable", h, name)
		}
		if !utf8.ValidString(name) || len(name) > 200 || name == "." || name == ".." || strings.TrimSpace(name) != name ||
			strings.ContainsAny(name, `/\`) {
			t.Fatalf("AttachmentName(%q) = %q: not a safe base name", h, name)
		}
		for _, r := range name {
			if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == 0x200b || r == 0xfeff || r == utf8.RuneError {
				t.Fatalf("AttachmentName(%q) = %q: holds %U", h, name, r)
			}
		}
		if again := mime.FormatMediaType("attachment", map[string]string{"filename": name}); again != "" {
			if got, _ := d365.AttachmentName(again); got != name {
				t.Fatalf("%q read back from %q as %q", name, again, got)
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
