package d365

import (
	"mime"
	"net/url"
	"strings"
	"unicode/utf8"
)

// maxFileName bounds a file name taken from Content-Disposition.
const maxFileName = 200

// maxRawDisposition bounds the raw header handed back for the log.
const maxRawDisposition = 1 << 10

// attachmentName reads the file name of a Content-Disposition header and
// keeps only a safe base name. It reads the forms servers really send: a
// quoted or unquoted filename (unquoted up to the next ';', spaces and
// all), an RFC 5987 filename* (charset, language, percent-encoded name;
// preferred over filename), and RFC 2047 encoded words inside either.
// unreadable reports a header that tried to name a file, or could not be
// parsed, but gave no usable name: the caller should log it.
func attachmentName(h string) (name string, unreadable bool) {
	if strings.TrimSpace(h) == "" {
		return "", false
	}
	// filename* first; mime's own reading (which also joins RFC 2231
	// continuations) next; the plain filename last.
	var candidates []string
	lenient := dispositionParams(h)
	if v, ok := lenient["filename*"]; ok {
		if s, ok := decodeExtValue(v); ok {
			candidates = append(candidates, s)
		}
	}
	_, params, err := mime.ParseMediaType(h)
	if err == nil && params["filename"] != "" {
		candidates = append(candidates, params["filename"])
	}
	if v, ok := lenient["filename"]; ok {
		candidates = append(candidates, v)
	}
	for _, c := range candidates {
		// A name that would read differently if sent again (decoding or
		// stripping left an encoded word behind) is not taken.
		if n := safeFileName(decodeWords(c)); n != "" && safeFileName(decodeWords(n)) == n {
			return n, false
		}
	}
	return "", err != nil || strings.Contains(strings.ToLower(h), "filename")
}

// dispositionParams splits a header into lowercased parameter names and
// values without rejecting anything: a quoted value ends at its closing
// quote (backslash escapes honoured; unterminated, at the end), an unquoted
// one at the next ';'. The first occurrence of a name wins.
func dispositionParams(h string) map[string]string {
	params := map[string]string{}
	rest := h
	for {
		i := strings.IndexAny(rest, ";=")
		if i < 0 {
			return params
		}
		if rest[i] == ';' { // a segment without a value: the disposition type
			rest = rest[i+1:]
			continue
		}
		key := strings.ToLower(strings.TrimSpace(rest[:i]))
		after := strings.TrimLeft(rest[i+1:], " \t")
		var val string
		if strings.HasPrefix(after, `"`) {
			val, rest = unquote(after[1:])
			rest = skipToSemicolon(rest)
		} else {
			val, rest, _ = strings.Cut(after, ";")
			val = strings.TrimSpace(val)
		}
		if _, seen := params[key]; !seen && key != "" {
			params[key] = val
		}
	}
}

// unquote reads a quoted-string body up to its closing quote and returns
// the value and what follows the quote.
func unquote(s string) (string, string) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '"':
			return b.String(), s[i+1:]
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ""
}

// skipToSemicolon drops what follows a quoted value up to the next ';'.
func skipToSemicolon(s string) string {
	if _, after, ok := strings.Cut(s, ";"); ok {
		return after
	}
	return ""
}

// decodeExtValue reads an RFC 5987 value, charset'language'pct-encoded,
// in UTF-8 or ISO-8859-1 (the two charsets the RFC requires).
func decodeExtValue(v string) (string, bool) {
	charset, rest, ok := strings.Cut(v, "'")
	if !ok {
		return "", false
	}
	_, enc, ok := strings.Cut(rest, "'")
	if !ok {
		return "", false
	}
	raw, err := url.PathUnescape(enc)
	if err != nil {
		return "", false
	}
	switch strings.ToLower(strings.TrimSpace(charset)) {
	case "utf-8", "us-ascii":
		return raw, utf8.ValidString(raw)
	case "iso-8859-1":
		return latin1(raw), true
	}
	return "", false
}

// latin1 reads s as ISO-8859-1.
func latin1(s string) string {
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}

// decodeWords resolves RFC 2047 encoded words (=?UTF-8?B?...?=). A name
// whose words cannot be decoded is dropped rather than kept verbatim. Bytes
// that are not UTF-8 are read as ISO-8859-1, the header's own charset.
func decodeWords(s string) string {
	if strings.Contains(s, "=?") && strings.Contains(s, "?=") {
		d, err := new(mime.WordDecoder).DecodeHeader(s)
		if err != nil {
			return ""
		}
		s = d
	}
	if !utf8.ValidString(s) {
		s = latin1(s)
	}
	return s
}

// safeFileName reduces a name to a safe base name: no control, bidi or
// zero-width characters, nothing up to the last '/' or '\', trimmed; "" for
// nothing left, ".", ".." or a name longer than maxFileName bytes.
func safeFileName(name string) string {
	name = strings.Map(func(r rune) rune {
		if unsafeRune(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, strings.ToValidUTF8(name, ""))
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimSpace(name)
	if name == "" || name == "." || name == ".." || len(name) > maxFileName {
		return ""
	}
	return name
}

// rawDisposition is the header as handed back for a log line.
func rawDisposition(h string) string {
	if len(h) > maxRawDisposition {
		return h[:maxRawDisposition]
	}
	return h
}
