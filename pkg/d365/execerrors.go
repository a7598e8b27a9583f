package d365

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ExecutionError is one row of GetExecutionErrors.
type ExecutionError struct {
	RecordID     string `json:"RecordId"`
	Field        string `json:"Field"`
	ErrorMessage string `json:"ErrorMessage"`
}

// ExecutionErrors is GetExecutionErrors' answer. Raw always holds the text
// F&O sent (the JSON array inside the string value, or the whole answer when
// even that could not be read), so nothing is lost when parsing is only
// partly possible; Lenient says the rows came from the tolerant reader.
type ExecutionErrors struct {
	Rows    []ExecutionError
	Raw     string
	Lenient bool
}

// GetExecutionErrors calls GetExecutionErrors. F&O answers a JSON array
// serialized into a string, whose messages may hold raw newlines and
// unescaped quotes; such text is read leniently rather than rejected.
func (c *Client) GetExecutionErrors(ctx context.Context, executionID string) (*ExecutionErrors, error) {
	v, raw, err := c.action(ctx, "GetExecutionErrors", map[string]string{"executionId": executionID}, retrySafe)
	if err != nil {
		if raw != nil { // a 200 whose body was not JSON: keep and read it anyway
			return ParseExecutionErrorsAnswer(raw), nil
		}
		return nil, err
	}
	return parseExecutionErrorsValue(v), nil
}

// ParseExecutionErrorsAnswer reads a whole GetExecutionErrors answer body,
// valid JSON or not. It never fails: what it cannot read stays in Raw.
func ParseExecutionErrorsAnswer(body []byte) *ExecutionErrors {
	if v, err := decodeValue(body); err == nil {
		return parseExecutionErrorsValue(v)
	}
	// Not JSON at all (raw control characters in the outer string): take
	// the text between `"value":"` and the closing `"}`.
	text := string(body)
	if i := strings.Index(text, `"value"`); i >= 0 {
		rest := text[i+len(`"value"`):]
		rest = strings.TrimLeft(rest, " \t\r\n:")
		rest = strings.TrimPrefix(rest, `"`)
		if j := strings.LastIndex(rest, `"`); j >= 0 {
			rest = rest[:j]
		}
		text = unescapeLenient(rest)
	}
	out := ParseExecutionErrors(text)
	out.Raw, out.Lenient = string(body), true // the answer as sent: nothing is lost
	return out
}

func parseExecutionErrorsValue(v json.RawMessage) *ExecutionErrors {
	v = bytes.TrimSpace(v)
	if len(v) > 0 && v[0] == '[' { // an array sent as is, not in a string
		return ParseExecutionErrors(string(v))
	}
	s, err := stringValue(v)
	if err != nil {
		return &ExecutionErrors{Raw: string(v), Lenient: true}
	}
	return ParseExecutionErrors(s)
}

// ParseExecutionErrors reads the JSON array text F&O puts in the value
// string. Strict JSON first; failing that, a tolerant scan that finds each
// "RecordId"/"Field"/"ErrorMessage" key and takes everything up to the next
// key as its value, so raw quotes and newlines inside messages survive.
func ParseExecutionErrors(text string) *ExecutionErrors {
	out := &ExecutionErrors{Raw: text}
	t := strings.TrimSpace(text)
	if t == "" || t == "[]" {
		return out
	}
	if err := json.Unmarshal([]byte(t), &out.Rows); err == nil {
		return out
	}
	out.Rows, out.Lenient = scanExecutionErrors(t), true
	return out
}

// errorKey finds a key where a key can start: after '{' or ','. A message
// that itself contains `, "Field": ` can still be cut there; Raw keeps the
// whole text.
var errorKey = regexp.MustCompile(`[{,]\s*"(RecordId|Field|ErrorMessage)"\s*:\s*`)

func scanExecutionErrors(t string) []ExecutionError {
	locs := errorKey.FindAllStringSubmatchIndex(t, -1)
	var rows []ExecutionError
	var cur *ExecutionError
	for i, m := range locs {
		key := t[m[2]:m[3]]
		end := len(t)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		val := trimValue(t[m[1]:end])
		if key == "RecordId" || cur == nil {
			rows = append(rows, ExecutionError{})
			cur = &rows[len(rows)-1]
		}
		switch key {
		case "RecordId":
			cur.RecordID = val
		case "Field":
			cur.Field = val
		case "ErrorMessage":
			cur.ErrorMessage = val
		}
	}
	return rows
}

// trimValue cuts the separators between one value and the next key and
// strips the value's own quotes.
func trimValue(v string) string {
	v = strings.TrimRight(v, " \t\r\n")
	for strings.HasSuffix(v, ",") || strings.HasSuffix(v, "{") || strings.HasSuffix(v, "}") || strings.HasSuffix(v, "]") {
		v = strings.TrimRight(v[:len(v)-1], " \t\r\n")
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return unescapeLenient(v[1 : len(v)-1])
	}
	if v == "null" {
		return ""
	}
	return unescapeLenient(strings.Trim(v, `"`))
}

// unescapeLenient resolves JSON escapes where they are well formed and
// leaves everything else as it stands.
func unescapeLenient(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch c := s[i+1]; c {
		case '"', '\\', '/':
			b.WriteByte(c)
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			if i+6 <= len(s) {
				if n, err := strconv.ParseUint(s[i+2:i+6], 16, 16); err == nil {
					b.WriteRune(rune(n))
					i += 5
					continue
				}
			}
			b.WriteString(`\u`)
		default:
			b.WriteByte('\\')
			b.WriteByte(c)
		}
		i++
	}
	return b.String()
}

// String summarises the errors for logs and result documents.
func (e *ExecutionErrors) String() string {
	return fmt.Sprintf("%d execution error(s)", len(e.Rows))
}
