package fnoenv_test

import (
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/internal/shared/fnoenv"
)

// FuzzParseSecret: any SecretString in Secrets Manager. It becomes a
// credential or an error, never a panic, and the error never holds the
// secret (or the password or key inside it): errors are logged.
func FuzzParseSecret(f *testing.F) {
	for _, s := range []string{
		"s3cr3t-value~with.chars", `{"clientSecret":"abc123456789012345678901"}`, `{"certificatePem":"-----BEGIN CERTIFICATE-----\nMIIBnotreally\n-----END CERTIFICATE-----","password":"hunter2hunter2hunter2"}`,
		`{"clientSecret":""}`, `{"clientSecret":null}`, `{"clientSecret":123}`, `{"clientSecret":"a","clientSecret":"b"}`, `{}`, `{`, `{"x":1} trailing`,
		"-----BEGIN PRIVATE KEY-----\nAAAAsecretsecretsecretsecret\n-----END PRIVATE KEY-----", "-----BEGIN", "", "   ", "\x00", "[]", "null",
		`{"certificatePem":"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIsecretsecretsecretsecret\n-----END ENCRYPTED PRIVATE KEY-----","password":"pw"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, secret string) {
		_, err := fnoenv.ParseSecret(secret)
		if err == nil {
			if strings.TrimSpace(secret) == "" {
				t.Fatal("an empty secret was accepted")
			}
			return
		}
		msg := err.Error()
		if s := strings.TrimSpace(secret); len(s) >= 24 && strings.Contains(msg, s) {
			t.Fatalf("the error holds the secret: %v", err)
		}
		// Every 24-byte run of a PEM body or JSON value stays out too.
		for _, line := range strings.FieldsFunc(secret, func(r rune) bool { return r == '\n' || r == '"' }) {
			if len(line) >= 24 && !strings.HasPrefix(line, "-----") && strings.Contains(msg, line) {
				t.Fatalf("the error holds part of the secret (%q): %v", line, err)
			}
		}
	})
}
