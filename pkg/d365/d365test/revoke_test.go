package d365test_test

import (
	"net/http"
	"testing"

	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// By default a token outlives a rotation or expiry of the secret it came
// from, as in Entra ID; with RevokeTokensWithSecret F&O refuses it, and
// TokenSecret tells which secret each token came from.
func TestTokensAndTheirSecret(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		revoke bool
		retire func(e *d365test.Emulator)
		want   int
	}{
		{"rotated, kept", false, func(e *d365test.Emulator) { e.SetClientSecret("rotated") }, http.StatusNoContent},
		{"expired, kept", false, func(e *d365test.Emulator) { e.ExpireClientSecret() }, http.StatusNoContent},
		{"rotated, revoked", true, func(e *d365test.Emulator) { e.SetClientSecret("rotated") }, http.StatusUnauthorized},
		{"expired, revoked", true, func(e *d365test.Emulator) { e.ExpireClientSecret() }, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := setup(t, d365test.Options{RevokeTokensWithSecret: tc.revoke})
			call := func(tok string) int {
				return v.fo(http.MethodGet, "/api/connector/dequeue/"+actExport, nil, "Authorization", "Bearer "+tok).StatusCode
			}
			old := v.e.ClientSecret()
			if s, ok := v.e.TokenSecret(v.token); !ok || s != old {
				t.Fatalf("TokenSecret = %q, %v; want %q", s, ok, old)
			}
			if _, ok := v.e.TokenSecret("emu.unknown"); ok {
				t.Fatal("TokenSecret of a token never issued")
			}
			if got := call(v.token); got != http.StatusNoContent {
				t.Fatalf("before: %d", got)
			}
			tc.retire(v.e)
			if got := call(v.token); got != tc.want {
				t.Fatalf("old token after the secret was retired: %d, want %d", got, tc.want)
			}
			v.e.SetClientSecret("renewed")
			fresh := v.tokenFor(v.e.ClientID(), "renewed")
			if s, ok := v.e.TokenSecret(fresh); !ok || s != "renewed" {
				t.Fatalf("TokenSecret(new token) = %q, %v", s, ok)
			}
			if got := call(fresh); got != http.StatusNoContent {
				t.Fatalf("token of the renewed secret: %d", got)
			}
		})
	}
}

// While a secret is rotated the app has two: tokens come from either, and
// with RevokeTokensWithSecret those of the old one stop working only when
// SetClientSecret removes it.
func TestAddClientSecretOverlap(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{RevokeTokensWithSecret: true})
	call := func(tok string) int {
		return v.fo(http.MethodGet, "/api/connector/dequeue/"+actExport, nil, "Authorization", "Bearer "+tok).StatusCode
	}
	old := v.e.ClientSecret()
	v.e.AddClientSecret("second")
	if v.e.ClientSecret() != old {
		t.Fatalf("ClientSecret() = %q after AddClientSecret, want %q", v.e.ClientSecret(), old)
	}
	second := v.tokenFor(v.e.ClientID(), "second")
	if s, ok := v.e.TokenSecret(second); !ok || s != "second" {
		t.Fatalf("TokenSecret = %q, %v", s, ok)
	}
	again := v.tokenFor(v.e.ClientID(), old)
	for _, tok := range []string{v.token, second, again} {
		if got := call(tok); got != http.StatusNoContent {
			t.Fatalf("during the overlap: %d", got)
		}
	}
	v.e.SetClientSecret("second")
	if got := call(v.token); got != http.StatusUnauthorized {
		t.Fatalf("token of the removed secret: %d, want 401", got)
	}
	if got := call(second); got != http.StatusNoContent {
		t.Fatalf("token of the remaining secret: %d", got)
	}
	v.e.SetClientSecret("third")
	if got := call(second); got != http.StatusUnauthorized {
		t.Fatalf("token of a secret removed by SetClientSecret: %d, want 401", got)
	}
}
