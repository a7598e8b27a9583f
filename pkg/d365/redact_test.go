package d365

import (
	"strings"
	"testing"
)

// redact blanks what may be a credential and keeps what an operator needs
// to read an answer: GUIDs, execution IDs, hosts and paths, sentences.
func TestRedact(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in         string
		gone, kept []string
	}{
		{`Authorization: Bearer emu.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef`,
			[]string{"emu.0123"}, []string{"Authorization: Bearer"}},
		{`token eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJl here`, []string{"eyJhbGci", "c2lnbmF0dXJl"}, []string{"token", "here"}},
		{`https://acct.blob.core.windows.net/dmf/x.zip?sv=2014-02-14&sr=b&sig=AbC%2Bd%2F123%3D&se=2026-01-01`,
			[]string{"AbC%2Bd"}, []string{"acct.blob.core.windows.net/dmf/x.zip", "sv=2014-02-14", "se=2026-01-01"}},
		{`{"access_token":"abc.def","client_secret" : "Xy8Q~secret.value"}`, []string{"abc.def", "Xy8Q~secret"}, []string{`"access_token"`}},
		{`client_secret=Xy8Q~secret&grant_type=client_credentials`, []string{"Xy8Q~secret"}, []string{"grant_type=client_credentials"}},
		{"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY----- after", []string{"MIIEvQ"}, []string{"after"}},
		{`key AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCd end`, []string{"AbCdEfGhIjKlMnOp"}, []string{"key", "end"}},
		{`Execution details for execution ID 'Import-2026-01-01_00-00-00-6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b' were not found.`,
			nil, []string{"Import-2026-01-01_00-00-00-6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b", "were not found"}},
		{`POST /data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetExecutionSummaryStatus`, nil,
			[]string{"/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetExecutionSummaryStatus"}},
		{`Session expired. Request Id: {6F2A1C3E-0B5D-4F6A-9E2B-7C8D9E0F1A2B}`, nil, []string{"{6F2A1C3E-0B5D-4F6A-9E2B-7C8D9E0F1A2B}"}},
	} {
		got := redact(tt.in)
		for _, g := range tt.gone {
			if strings.Contains(got, g) {
				t.Errorf("redact(%q) = %q: still holds %q", tt.in, got, g)
			}
		}
		for _, k := range tt.kept {
			if !strings.Contains(got, k) {
				t.Errorf("redact(%q) = %q: lost %q", tt.in, got, k)
			}
		}
	}
}

// printable makes one bounded line: no control or bidi characters, no
// invalid UTF-8, cut on a rune boundary.
func TestPrintable(t *testing.T) {
	t.Parallel()
	got := printable("a\r\n\tb\x00c\u202ed\xffé"+strings.Repeat("é", 100), 20)
	if got != "a b c d\uFFFD"+strings.Repeat("é", 5)+"…" {
		t.Fatalf("printable = %q", got)
	}
}
