package d365

// Fuzz targets for the unexported decoders of what F&O (or its gateway)
// sends back. Each checks a property, not only "no panic".

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// nested wraps v in n levels of {"value":...}.
func nested(n int, v string) string {
	return strings.Repeat(`{"value":`, n) + v + strings.Repeat(`}`, n)
}

// FuzzODataValue: decodeValue finds "value" in any answer body;
// stringValue and boolValue read it. An accepted value is valid JSON; a
// value that is a plain JSON string or Boolean reads back exactly; nesting
// is bounded, so a deep answer costs linear time, not quadratic.
func FuzzODataValue(f *testing.F) {
	for _, s := range []string{
		`{"@odata.context":"https://contoso.operations.dynamics.com/data/$metadata#Edm.String","value":"Processed"}`,
		`{"@odata.context":"https://contoso.operations.dynamics.com/data/$metadata#Edm.Boolean","value":true}`,
		`{"value":"true"}`, `{"value":"False"}`, `{"value":"yes"}`, `{"value":1}`,
		`{"value":{"value":"6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b"}}`, // ExportToPackage as documented
		nested(3, `"x"`), nested(40, `"deep"`),
		`{"value":null}`, `{"value":[]}`, `{"value":""}`, `{"value":{}}`, `{"value":{"value":null}}`,
		`{"value":"a","value":"b"}`, `{"VALUE":"case"}`, `{"value":12345678901234567890123}`,
		`{"value":"\u0000\ud800"}`, `{"value":"` + "\xff\xfe" + `"}`,
		``, `null`, `[]`, `""`, `{}`, `{"value"`, `<html>502 Bad Gateway</html>`,
		`{"error":{"code":"","message":"An error has occurred."}}`,
		`{"value":"{\"BlobId\":\"{6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b}\",\"BlobUrl\":\"https://acct.blob.core.windows.net/dmf/x.zip?sv=2014&sig=SECRET\"}"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		v, err := decodeValue(raw)
		if err != nil {
			if v != nil {
				t.Fatalf("decodeValue(%q) gave a value and an error", raw)
			}
			return
		}
		if len(v) == 0 || !json.Valid(v) {
			t.Fatalf("decodeValue(%q) = %q: not a JSON value", raw, v)
		}
		start := time.Now()
		s, serr := stringValue(v)
		bv, berr := boolValue(v)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("reading a %d-byte value took %s", len(v), d)
		}
		var direct string
		if json.Unmarshal(v, &direct) == nil {
			if serr != nil || s != direct {
				t.Fatalf("stringValue(%q) = %q, %v; want %q", v, s, serr, direct)
			}
		}
		var db bool
		if json.Unmarshal(v, &db) == nil {
			if berr != nil || bv != db {
				t.Fatalf("boolValue(%q) = %v, %v; want %v", v, bv, berr, db)
			}
		}
		if berr == nil && serr == nil && !bytes.Equal(bytes.TrimSpace(v), []byte("true")) && !bytes.Equal(bytes.TrimSpace(v), []byte("false")) {
			// A Boolean read from a string is one of the spellings.
			switch s {
			case "true", "True", "TRUE":
				if !bv {
					t.Fatalf("boolValue(%q) = false", v)
				}
			case "false", "False", "FALSE", "":
				if bv {
					t.Fatalf("boolValue(%q) = true", v)
				}
			default:
				t.Fatalf("boolValue accepted %q", s)
			}
		}
	})
}

// FuzzStringValueRoundTrip: any string F&O sends as value, flat or nested
// once ({"value":{"value":s}}, the documented ExportToPackage form), comes
// back unchanged.
func FuzzStringValueRoundTrip(f *testing.F) {
	for _, s := range []string{"", "Processed", "00000000-0000-0000-0000-000000000000", "a\"b\\c\r\n", "\x00", "ü€𝄞", "\xff", "null", "{\"value\":1}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, _ := json.Marshal(s)
		var want string
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		for _, body := range []string{
			`{"@odata.context":"https://h/data/$metadata#Edm.String","value":` + string(b) + `}`,
			`{"value":{"value":` + string(b) + `}}`,
		} {
			v, err := decodeValue([]byte(body))
			if err != nil {
				t.Fatalf("decodeValue(%q): %v", body, err)
			}
			got, err := stringValue(v)
			if err != nil || got != want {
				t.Fatalf("stringValue(%q) = %q, %v; want %q", v, got, err, want)
			}
		}
	})
}

// FuzzParseRetryAfter: whatever the header says, the wait is never
// negative and never longer than maxRetryAfter; whole seconds in range are
// taken as they are.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "5", " 30 ", "-1", "1.5", "9999999999", "18446744074", "99999999999999999999",
		"+7", "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "soon", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d := parseRetryAfter(v)
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %s, want 0..%s", v, d, maxRetryAfter)
		}
	})
}

// FuzzCheckResponse: any status and body F&O, a gateway or a proxy sends.
// 2xx passes untouched; anything else is an *Error carrying the status and
// at most 8 KiB of the body (which is closed); 429 is a ThrottledError with
// a sane wait; the error's text never panics.
func FuzzCheckResponse(f *testing.F) {
	odata := `{"error":{"code":"","message":"An error has occurred.","innererror":{"message":"Execution ID x were not found","type":"","stacktrace":""}}}`
	stack := `{"error":{"code":"","message":"An error has occurred.","innererror":{"message":"Object reference not set","type":"","stacktrace":"at Details.were not found()"}}}`
	for _, s := range []struct {
		status int
		body   string
		ra     string
		op     uint8
	}{
		{200, `"6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b"`, "", 0},
		{204, ``, "", 1},
		{302, `<html>Object moved</html>`, "", 0},
		{400, odata, "", 2},
		{400, `{"error":{"code":"","message":"","innererror":{"message":"inner only"}}}`, "", 2},
		{400, `{"error":null}`, "", 2},
		{400, odata, "", 3}, {400, stack, "", 2}, {400, `Execution details for execution ID 'x' were not found.`, "", 2},
		{404, `{"error":{"code":"","message":"An error has occurred.","innererror":{"message":"Activity 99 was not found.","type":"AxODataException","stacktrace":"at X"}}}`, "", 0},
		{400, `{"Message":"An error has occurred.","ExceptionMessage":"Entity 'X' not found.","ExceptionType":"System.Exception","StackTrace":"at Y"}`, "", 0},
		{400, `{"odata.error":{"code":"","message":{"lang":"en-US","value":"An error has occurred."},"innererror":{"message":"cause"}}}`, "", 1},
		{403, "\ufeff<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.\nRequestId:x\nTime:y</Message></Error>", "", 1},
		{400, `{"error":{"code":"","message":"Bad https://h/x?sig=SECRETSIG&se=1 and Bearer eyJhbGciOi.eyJzdWIi.c2ln"}}`, "", 0},
		{400, `{"error":"text"}`, "", 2},
		{401, ``, "", 1},
		{429, `This request could not be processed at this time due to system experiencing high resource utilization. Retry the request after 30 seconds`, "30", 2},
		{429, ``, "9999999999", 0},
		{429, ``, "Wed, 21 Oct 2015 07:28:00 GMT", 0},
		{500, strings.Repeat("x", 9000), "", 1},
		{502, "<html>\x00\xff</html>", "", 1},
		{0, ``, "", 0}, {-1, ``, "", 0}, {999, `{}`, "", 0}, {100, ``, "", 0},
	} {
		f.Add(s.status, []byte(s.body), s.ra, s.op)
	}
	ops := []string{"enqueue", "dequeue", "GetExecutionSummaryStatus", "ack"}
	f.Fuzz(func(t *testing.T, status int, body []byte, retryAfter string, opIdx uint8) {
		op := ops[int(opIdx)%len(ops)]
		rc := &closeTracker{Reader: bytes.NewReader(body)}
		resp := &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {retryAfter}}, Body: rc}
		err := checkResponse(op, resp)
		if status >= 200 && status < 300 {
			if err != nil || rc.closed || rc.read {
				t.Fatalf("2xx: err %v, closed %v, read %v", err, rc.closed, rc.read)
			}
			return
		}
		if err == nil {
			t.Fatalf("status %d passed as success", status)
		}
		if !rc.closed {
			t.Fatal("error body not closed")
		}
		_ = err.Error()
		var fe *Error
		if !errors.As(err, &fe) {
			t.Fatalf("status %d: %T is not an *Error", status, err)
		}
		want := body
		if len(want) > maxErrorBody {
			want = want[:maxErrorBody]
		}
		if fe.StatusCode != status || fe.Op != op || fe.Body != string(want) {
			t.Fatalf("status %d: Error{%d %q body %d bytes}", status, fe.StatusCode, fe.Op, len(fe.Body))
		}
		if fe.Temporary() != IsTemporary(err) {
			t.Fatal("Temporary and IsTemporary disagree")
		}
		var te *ThrottledError
		if (status == http.StatusTooManyRequests) != errors.As(err, &te) {
			t.Fatalf("status %d: throttled = %v", status, errors.As(err, &te))
		}
		if te != nil && (te.RetryAfter < 0 || te.RetryAfter > maxRetryAfter || !fe.Temporary()) {
			t.Fatalf("429: RetryAfter %s, temporary %v", te.RetryAfter, fe.Temporary())
		}
		if op == "enqueue" && status >= 300 && status < 400 && (!errors.Is(err, ErrOnPremises) || !strings.Contains(err.Error(), strconv.Itoa(status))) {
			t.Fatalf("enqueue %d is not ErrOnPremises naming the status: %v", status, err)
		}
		d := readErrorBody([]byte(fe.Body))
		if errors.Is(err, ErrExecutionNotFound) && (status != http.StatusBadRequest || !executionOps[op] || !d.says("were not found")) {
			t.Fatalf("%s %d: ErrExecutionNotFound from %q", op, status, body)
		}
		if status == http.StatusBadRequest && executionOps[op] && d.says("were not found") && !errors.Is(err, ErrExecutionNotFound) {
			t.Fatalf("%s 400 saying \"were not found\" is not ErrExecutionNotFound: %v", op, err)
		}
		// The cause comes first, the generic summary after it; the raw
		// JSON is never the message.
		if fe.Summary != "" && !strings.HasSuffix(fe.Error(), ": "+fe.Message+" ("+fe.Summary+")") {
			t.Fatalf("Error() = %q does not put %q before (%q)", fe.Error(), fe.Message, fe.Summary)
		}
		if raw := bytes.TrimSpace(body); len(raw) > 0 && raw[0] == '{' && json.Valid(raw) && fe.Message == string(raw) {
			t.Fatalf("the raw JSON became the message: %q", fe.Message)
		}
		if len(fe.Message) > maxMessage+len("…") || strings.ContainsAny(fe.Message, "\r\n\x00") {
			t.Fatalf("message not bounded to one line: %q", fe.Message)
		}
	})
}

type closeTracker struct {
	io.Reader
	read, closed bool
}

func (c *closeTracker) Read(p []byte) (int, error) { c.read = true; return c.Reader.Read(p) }
func (c *closeTracker) Close() error               { c.closed = true; return nil }

// FuzzActivityID: an accepted activity ID is a bare GUID, needs no escaping
// in a URL path, and normalizes to itself.
func FuzzActivityID(f *testing.F) {
	for _, s := range []string{"6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b", "{6F2A1C3E-0B5D-4F6A-9E2B-7C8D9E0F1A2B}",
		"%7B6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b%7D", "%7b6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b%7d", " 6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b\n",
		"6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b/../x", "%", "%zz", "{}", "", "6f2a1c3e%2D0b5d-4f6a-9e2b-7c8d9e0f1a2b", "{{6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		got, err := ActivityID(id)
		if err != nil {
			// The ID is echoed, but bounded (at most 60 bytes, quoted).
			if len(err.Error()) > 60*4+100 {
				t.Fatalf("error echoes an unbounded ID: %d bytes", len(err.Error()))
			}
			return
		}
		if !guidPattern.MatchString(got) || url.PathEscape(got) != got {
			t.Fatalf("ActivityID(%q) = %q", id, got)
		}
		if again, err := ActivityID(got); err != nil || again != got {
			t.Fatalf("ActivityID(%q) = %q, %v: not stable", got, again, err)
		}
	})
}

// FuzzResolveDownloadLocation: a DownloadLocation is only ever resolved to
// the configured host, scheme and port (the bearer token goes nowhere
// else), and resolving is stable.
func FuzzResolveDownloadLocation(f *testing.F) {
	for _, s := range []string{
		"https://contoso.operations.dynamics.com/api/connector/download/6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b?correlation-id=c&blob=b",
		"http://contoso.operations.dynamics.com:80/api/connector/download/x?correlation-id=c&blob=b",
		"https://CONTOSO.operations.dynamics.com:443/x", "https://contoso.operations.dynamics.com:8443/x",
		"https://evil.example/x", "https://contoso.operations.dynamics.com.evil.example/x", "https://contoso.operations.dynamics.com@evil.example/x",
		"https://evil.example@contoso.operations.dynamics.com/x", "//contoso.operations.dynamics.com/x", "/relative", "ftp://contoso.operations.dynamics.com/x",
		"https://contoso.operations.dynamics.com%2F@evil/x", "https://[::1]:443/x", "http://127.0.0.1:8443/x", "", " ", "\x00", "https://contoso.operations.dynamics.com./x",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, loc string, loopback bool) {
		base := "https://contoso.operations.dynamics.com"
		if loopback {
			base = "http://127.0.0.1:8443"
		}
		c, err := New(Config{BaseURL: base, Tokens: StaticTokens("t")})
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.ResolveDownloadLocation(loc)
		if err != nil {
			return
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("resolved %q to unparseable %q", loc, got)
		}
		if !c.sameHost(u) || !strings.EqualFold(u.Hostname(), c.base.Hostname()) || u.Port() != c.base.Port() {
			t.Fatalf("ResolveDownloadLocation(%q) = %q, off the configured host %s", loc, got, base)
		}
		if again, err := c.ResolveDownloadLocation(got); err != nil || again != got {
			t.Fatalf("resolving %q again gave %q, %v", got, again, err)
		}
	})
}
