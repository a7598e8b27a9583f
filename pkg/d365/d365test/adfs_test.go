package d365test_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// TestADFSTokenEndpoint: AD FS's discovery document and token endpoint, in
// its own shapes (lower-case token type, errors without error_codes), for
// the apps the emulator knows.
func TestADFSTokenEndpoint(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	e := v.e
	r := v.do(context.Background(), http.MethodGet, e.ADFSAuthorityURL()+"/.well-known/openid-configuration", nil)
	var doc map[string]any
	if r.StatusCode != http.StatusOK || json.Unmarshal(r.body, &doc) != nil || doc["issuer"] != e.ADFSAuthorityURL() ||
		!strings.HasPrefix(doc["access_token_issuer"].(string), "http://") {
		t.Fatalf("discovery: %d %s", r.StatusCode, r.body)
	}
	token := e.ADFSAuthorityURL() + "/oauth2/token"
	form := func(mod map[string]string) url.Values {
		f := url.Values{"grant_type": {"client_credentials"}, "client_id": {e.ClientID()}, "client_secret": {e.ClientSecret()},
			"scope": {e.URL() + "/.default"}}
		for k, v := range mod {
			f.Set(k, v)
		}
		return f
	}
	ok := v.postForm(token, form(nil))
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if ok.StatusCode != http.StatusOK || json.Unmarshal(ok.body, &tok) != nil || tok.TokenType != "bearer" {
		t.Fatalf("token: %d %s", ok.StatusCode, ok.body)
	}
	if got := v.do(context.Background(), http.MethodPost, e.URL()+"/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetAzureWriteUrl",
		strings.NewReader(`{"uniqueFileName":"a.zip"}`), "Authorization", "Bearer "+tok.AccessToken, "Content-Type", "application/json"); got.StatusCode != http.StatusOK {
		t.Fatalf("F&O refused an AD FS token: %d %s", got.StatusCode, got.body)
	}
	for _, tc := range []struct {
		name string
		mod  map[string]string
		code string
	}{
		{"unknown client", map[string]string{"client_id": "nobody"}, "MSIS9607"},
		{"wrong secret", map[string]string{"client_secret": "wrong"}, "MSIS9622"},
		{"other resource", map[string]string{"scope": "https://other.example/.default"}, "MSIS9605"},
		{"resource form", map[string]string{"scope": "", "resource": e.URL()}, ""},
	} {
		r := v.postForm(token, form(tc.mod))
		var body map[string]any
		_ = json.Unmarshal(r.body, &body)
		switch {
		case tc.code == "" && r.StatusCode != http.StatusOK:
			t.Errorf("%s: %d %s", tc.name, r.StatusCode, r.body)
		case tc.code != "" && (r.StatusCode != http.StatusBadRequest || !strings.HasPrefix(body["error_description"].(string), tc.code) || body["error_codes"] != nil):
			t.Errorf("%s: %d %s; want 400 with %s and no error_codes", tc.name, r.StatusCode, r.body, tc.code)
		}
	}
}

// TestOnPremisesRoutes: an on-premises environment answers the OData
// actions under /namespaces/AXSF only, and redirects the connector to the
// sign-in before asking for a token.
func TestOnPremisesRoutes(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{OnPremises: true})
	const action = "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetAzureWriteUrl"
	body := `{"uniqueFileName":"a.zip"}`
	r := v.fo(http.MethodPost, "/namespaces/AXSF"+action, []byte(body), "Content-Type", "application/json")
	var ans map[string]any
	if r.StatusCode != http.StatusOK || json.Unmarshal(r.body, &ans) != nil ||
		!strings.HasPrefix(ans["@odata.context"].(string), v.e.URL()+"/namespaces/AXSF/data/$metadata#") {
		t.Fatalf("namespaced action: %d %s", r.StatusCode, r.body)
	}
	if r := v.fo(http.MethodPost, action, []byte(body), "Content-Type", "application/json"); r.StatusCode != http.StatusNotFound {
		t.Errorf("action without the namespace: %d, want 404", r.StatusCode)
	}
	noFollow := &http.Client{Transport: v.hc.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Post(v.e.URL()+"/api/connector/enqueue/"+actImport+"?entity=E", "text/csv", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), v.e.ADFSAuthorityURL()) {
		t.Errorf("enqueue on-premises: %d %q, want 302 to AD FS", resp.StatusCode, resp.Header.Get("Location"))
	}
}
