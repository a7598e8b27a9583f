// Package filingtest holds test helpers for what internal/imports/filing writes,
// shared by the tests of the packages that file.
package filingtest

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// CheckMalformedKey: whatever the SQS message ID, the key a malformed body
// is kept under is rejected/_malformed/<date>/<name>.event with a name of
// [A-Za-z0-9._-] only (valid UTF-8, no control characters, no '/'), and an
// SQS-style ID is used as is.
func CheckMalformedKey(t testing.TB, key, msgID string) {
	t.Helper()
	name, ok := strings.CutSuffix(key[strings.LastIndex(key, "/")+1:], ".event")
	if !ok || name == "" || strings.Trim(name, ".") == "" || len(name) > 100 {
		t.Fatalf("malformed kept at %q (message ID %q)", key, msgID)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			t.Fatalf("malformed kept at %q: %q in the name (message ID %q)", key, c, msgID)
		}
	}
	if !utf8.ValidString(key) || strings.IndexFunc(key, unicode.IsControl) >= 0 {
		t.Fatalf("malformed kept at %q", key)
	}
	if msgID != "" && len(msgID) <= 100 && strings.Trim(msgID, ".") != "" && strings.Trim(msgID, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" && name != msgID {
		t.Fatalf("safe message ID %q kept as %q", msgID, name)
	}
}
