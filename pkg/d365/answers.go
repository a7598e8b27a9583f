package d365

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Readers of what F&O (or whatever stands in front of it) answers: the
// enqueue answer, error bodies, and the redacted excerpts errors quote.

// maxIDAnswer bounds an enqueue answer: F&O's is a quoted GUID, and even
// wrapped with an @odata.context it is far below this.
const maxIDAnswer = 2 << 10

// maxSnippet bounds the excerpt of an answer an error quotes.
const maxSnippet = 256

// maxMessage bounds an error message taken from an answer.
const maxMessage = 1 << 10

// messageGUID is a message ID as F&O writes it: a GUID, braces optional.
var messageGUID = regexp.MustCompile(`^(\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$`)

// IsMessageID reports whether s has the shape of an F&O message ID: a GUID,
// with or without braces.
func IsMessageID(s string) bool { return messageGUID.MatchString(s) }

// ParseMessageID reads enqueue's answer body. Only the shapes F&O gives
// are accepted, with surrounding whitespace: a JSON string holding a GUID
// ("<guid>", what F&O sends), a bare or braced GUID, or that JSON string
// wrapped as an OData value ({"value":"<guid>"}, with @odata annotations,
// nested up to maxValueNesting deep). The ID is returned as F&O wrote it
// (case and braces kept). Anything else, a page or a sentence that merely
// contains a GUID included, is an error that says why; it does not quote
// the body (Enqueue's UnexpectedAnswerError does, redacted).
func ParseMessageID(raw []byte) (string, error) {
	if len(raw) > maxIDAnswer {
		return "", fmt.Errorf("the answer is more than %d bytes, longer than any message ID answer", maxIDAnswer)
	}
	return messageID(bytes.TrimSpace(raw), 0)
}

func messageID(t []byte, depth int) (string, error) {
	switch {
	case len(t) == 0:
		return "", errors.New("the answer is empty")
	case IsMessageID(string(t)):
		return string(t), nil
	case t[0] == '"':
		var s string
		if err := json.Unmarshal(t, &s); err != nil {
			return "", errors.New("the answer is not a JSON string")
		}
		if !IsMessageID(s) {
			return "", errors.New("the answer is a JSON string but not a GUID")
		}
		return s, nil
	case t[0] == '{':
		if depth >= maxValueNesting {
			return "", fmt.Errorf("the answer's value is nested more than %d levels deep", maxValueNesting)
		}
		v, err := wrappedValue(t)
		if err != nil {
			return "", err
		}
		return messageID(bytes.TrimSpace(v), depth+1)
	}
	return "", errors.New("the answer is not a message ID (a GUID, or a JSON string holding one)")
}

// wrappedValue reads an OData value wrapper: one JSON object whose only
// members are "value" (exactly once) and @-annotations such as
// @odata.context, with nothing after it.
func wrappedValue(t []byte) (json.RawMessage, error) {
	notWrapper := errors.New(`the answer is a JSON object but not an OData value ({"value":...})`)
	dec := json.NewDecoder(bytes.NewReader(t))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, notWrapper
	}
	var value json.RawMessage
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, notWrapper
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, notWrapper
		}
		switch {
		case key == "value" && value == nil:
			value = v
		case strings.HasPrefix(key, "@"):
		default:
			return nil, notWrapper
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') || value == nil {
		return nil, notWrapper
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, notWrapper
	}
	return value, nil
}

// idContentType reports whether an enqueue answer's Content-Type can carry
// a message ID: none, JSON, or plain text. An HTML page never does.
func idContentType(ct string) bool {
	if strings.TrimSpace(ct) == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "application/json", "text/json", "text/plain":
		return true
	}
	return strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// htmlPage reports whether a Content-Type is a web page's.
func htmlPage(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "text/html" || mt == "application/xhtml+xml")
}

// errorBody is what an error answer says.
type errorBody struct {
	code, message, summary string
	// structured: the body was JSON or XML (not text to quote).
	structured bool
}

// says reports whether the answer's own messages (never its stack trace
// or the rest of the body) contain s, in any case.
func (d errorBody) says(s string) bool {
	s = strings.ToLower(s)
	return strings.Contains(strings.ToLower(d.message), s) || strings.Contains(strings.ToLower(d.summary), s)
}

// jsonError covers the JSON error shapes F&O's stack answers with: OData v4
// {"error":{"code","message","innererror":{"message",...}}}, OData v3
// {"odata.error":{...,"message":{"lang","value"}}}, and ASP.NET Web API's
// {"Message","ExceptionMessage"}.
type jsonError struct {
	Error            *odataErrorDetail `json:"error"`
	ODataError       *odataErrorDetail `json:"odata.error"`
	Message          json.RawMessage   `json:"Message"`
	ExceptionMessage json.RawMessage   `json:"ExceptionMessage"`
}

type odataErrorDetail struct {
	Code       json.RawMessage `json:"code"`
	Message    json.RawMessage `json:"message"`
	InnerError *struct {
		Message           json.RawMessage `json:"message"`
		InternalException *struct {
			Message json.RawMessage `json:"message"`
		} `json:"internalexception"`
	} `json:"innererror"`
}

// blobError is Azure storage's XML error.
type blobError struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

// readErrorBody finds the code and the most specific message in an error
// answer. Messages are made one line, bounded and redacted.
func readErrorBody(raw []byte) errorBody {
	t := bytes.TrimSpace(bytes.TrimPrefix(raw, []byte("\ufeff")))
	var top, inner, code string
	var d errorBody
	var je jsonError
	switch {
	case len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(t):
		d.structured = true
		if json.Unmarshal(t, &je) != nil {
			return d
		}
		oe := je.Error
		if oe == nil {
			oe = je.ODataError
		}
		if oe != nil {
			code, top = jsonText(oe.Code), jsonText(oe.Message)
			if ie := oe.InnerError; ie != nil {
				inner = jsonText(ie.Message)
				if inner == "" && ie.InternalException != nil {
					inner = jsonText(ie.InternalException.Message)
				}
			}
		} else {
			top, inner = jsonText(je.Message), jsonText(je.ExceptionMessage)
		}
	case bytes.HasPrefix(t, []byte("<?xml")) || bytes.HasPrefix(t, []byte("<Error")):
		var be blobError
		if xml.Unmarshal(t, &be) != nil || (be.Code == "" && be.Message == "") {
			d.message = printable(string(raw), maxSnippet)
			return d
		}
		d.structured = true
		top, _, _ = strings.Cut(be.Message, "\n") // drop RequestId and Time
		code = be.Code
	default:
		d.message = printable(string(raw), maxSnippet)
		return d
	}
	d.code = printable(code, 100)
	top, inner = printable(top, maxMessage), printable(inner, maxMessage)
	if inner != "" && !strings.EqualFold(inner, top) {
		d.message, d.summary = inner, top
	} else if top != "" {
		d.message = top
	} else {
		d.message = inner
	}
	return d
}

// jsonText reads a JSON string, or an object's "value" string (OData v3
// messages); anything else reads as "".
func jsonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var v struct {
		Value string `json:"value"`
	}
	if json.Unmarshal(raw, &v) == nil {
		return v.Value
	}
	return ""
}

// redirectTarget is a Location for an error message: scheme, host and path
// only (a query may carry a sign-in state or a signature).
func redirectTarget(loc string) string {
	u, err := url.Parse(strings.TrimSpace(loc))
	if err != nil || loc == "" {
		return ""
	}
	u.RawQuery, u.Fragment, u.User, u.ForceQuery = "", "", nil, false
	return printable(u.String(), 200)
}

// snippet is the start of an answer for an error: redacted, one line, at
// most n bytes. Redaction runs on more than is shown, so a secret cut at
// the edge is still recognised.
func snippet(raw []byte, n int) string {
	return printable(string(raw[:min(len(raw), 4*n)]), n)
}

// printable makes s safe to quote in an error or log line: secrets
// blanked, invalid UTF-8 replaced, control and bidi characters and runs of
// whitespace turned into one space, at most n bytes (cut on a rune).
func printable(s string, n int) string {
	s = redact(strings.ToValidUTF8(s, "\uFFFD"))
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || unsafeRune(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	out := b.String()
	if len(out) > n {
		cut := n
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut] + "…"
	}
	return out
}

// unsafeRune: control characters (C0, DEL, C1) and the Unicode format
// characters that reorder or hide text (bidi overrides and isolates, zero
// width marks, the BOM), which can make a log line or file name read as
// something else.
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200b, r == 0x200c, r == 0x200d, r == 0x200e, r == 0x200f,
		r >= 0x202a && r <= 0x202e, r >= 0x2060 && r <= 0x2064, r >= 0x2066 && r <= 0x2069, r == 0xfeff:
		return true
	}
	return false
}

// secretPatterns find what may be a credential in text F&O, a gateway or a
// sign-in page sent back: bearer tokens, JWTs, PEM blocks, credential
// parameters in URLs or forms (a SAS signature is sig=), credential members
// of JSON, and long opaque letter-and-digit runs.
var secretPatterns = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+`), "$1$2[redacted]"},
	{regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`), "[redacted]"},
	{regexp.MustCompile(`-----BEGIN [A-Z0-9 ]+-----[\s\S]*?(?:-----END [A-Z0-9 ]+-----|$)`), "[redacted]"},
	{regexp.MustCompile(`(?i)(sig|signature|client_secret|client_assertion|access_token|refresh_token|id_token|token|code|password|pwd|secret|key|api_?key)=[^&\s"'<>;,]*`), "$1=[redacted]"},
	{regexp.MustCompile(`(?i)"(access_token|refresh_token|id_token|client_secret|clientSecret|client_assertion|password|secret|token|sig|signature|key|certificatePem)"(\s*):(\s*)"(?:[^"\\]|\\.)*"`), `"$1"$2:$3"[redacted]"`},
	{regexp.MustCompile(`[A-Za-z0-9+=~]{40,}`), ""}, // judged by opaqueRun
}

// redact blanks what secretPatterns find.
func redact(s string) string {
	for _, p := range secretPatterns {
		if p.repl == "" {
			s = p.re.ReplaceAllStringFunc(s, func(run string) string {
				if opaqueRun(run) {
					return "[redacted]"
				}
				return run
			})
			continue
		}
		s = p.re.ReplaceAllString(s, p.repl)
	}
	return s
}

// opaqueRun: a long run with both letters and digits (a key, a token, a
// signature), not a word.
func opaqueRun(s string) bool {
	letter, digit := false, false
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digit = true
		case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
			letter = true
		}
	}
	return letter && digit
}
