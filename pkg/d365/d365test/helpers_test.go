package d365test_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

const (
	actImport  = "6c4e8f53-2d0a-4b7e-9f13-8a5c2b7d9e01"
	actOrdered = "0b9d2c71-5e43-4f8a-a6b2-3c1d7e8f9a02"
	actPackage = "a1f0e9d8-7c6b-4a59-8e4d-3c2b1a0f9e03"
	actExport  = "d4c3b2a1-0f9e-4d8c-b7a6-958473625104"
)

// env is an emulator plus a plain net/http client holding a valid token.
type env struct {
	t     *testing.T
	e     *d365test.Emulator
	hc    *http.Client
	token string
}

func setup(t *testing.T, opts d365test.Options) *env {
	t.Helper()
	e := d365test.NewT(t, opts)
	e.AddActivity(actImport, d365test.Activity{Name: "Import customer groups"})
	e.AddActivity(actOrdered, d365test.Activity{Name: "Ordered import", InOrder: true})
	e.AddActivity(actPackage, d365test.Activity{Name: "Package import", Kind: d365test.Package, InOrder: true})
	e.AddActivity(actExport, d365test.Activity{Name: "Export", Kind: d365test.Package})
	v := &env{t: t, e: e, hc: e.HTTPClient()}
	v.token = v.tokenFor(e.ClientID(), e.ClientSecret())
	return v
}

// tokenFor gets a v2 token with a client secret, failing the test if it
// cannot.
func (v *env) tokenFor(clientID, secret string) string {
	v.t.Helper()
	resp := v.postForm(v.e.AuthorityURL()+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret},
		"scope": {v.e.URL() + "/.default"},
	})
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(resp.body, &tok) != nil || tok.AccessToken == "" {
		v.t.Fatalf("token: %d %s", resp.StatusCode, resp.body)
	}
	return tok.AccessToken
}

type result struct {
	*http.Response
	body []byte
}

func (v *env) postForm(u string, form url.Values) result {
	v.t.Helper()
	return v.do(context.Background(), http.MethodPost, u, strings.NewReader(form.Encode()),
		"Content-Type", "application/x-www-form-urlencoded")
}

// do sends a request and reads the whole answer. hdr is name, value pairs;
// a "Authorization" of "" sends none.
func (v *env) do(ctx context.Context, method, u string, body io.Reader, hdr ...string) result {
	v.t.Helper()
	r, err := v.try(ctx, method, u, body, hdr...)
	if err != nil {
		v.t.Fatalf("%s %s: %v", method, u, err)
	}
	return r
}

func (v *env) try(ctx context.Context, method, u string, body io.Reader, hdr ...string) (result, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return result{}, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] != "" {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := v.hc.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{Response: resp, body: b}, err
	}
	return result{Response: resp, body: b}, nil
}

func (v *env) bearer() []string { return []string{"Authorization", "Bearer " + v.token} }

// fo calls an F&O path with the token.
func (v *env) fo(method, path string, body []byte, hdr ...string) result {
	v.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	return v.do(context.Background(), method, v.e.URL()+path, rd, append(v.bearer(), hdr...)...)
}

func (v *env) enqueue(activity, entity, externalID string, body []byte) string {
	v.t.Helper()
	q := url.Values{}
	if entity != "" {
		q.Set("entity", entity)
	}
	r := v.fo(http.MethodPost, "/api/connector/enqueue/"+activity+"?"+q.Encode(), body,
		"x-ms-dyn-externalidentifier", externalID)
	if r.StatusCode != http.StatusOK {
		v.t.Fatalf("enqueue: %d %s", r.StatusCode, r.body)
	}
	var id string
	if err := json.Unmarshal(r.body, &id); err != nil {
		v.t.Fatalf("enqueue answer %q is not a JSON string: %v", r.body, err)
	}
	return id
}

// odata is an OData action's answer.
type odata struct {
	status  int
	context string
	value   json.RawMessage
	body    []byte
}

func (v *env) action(name string, args any) odata {
	v.t.Helper()
	b, err := json.Marshal(args)
	if err != nil {
		v.t.Fatal(err)
	}
	r := v.fo(http.MethodPost, "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."+name, b,
		"Content-Type", "application/json")
	out := odata{status: r.StatusCode, body: r.body}
	if r.StatusCode == http.StatusOK {
		var w struct {
			Context string          `json:"@odata.context"`
			Value   json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(r.body, &w); err != nil {
			v.t.Fatalf("%s: answer %s: %v", name, r.body, err)
		}
		out.context, out.value = w.Context, w.Value
	}
	return out
}

// str calls an action expected to answer 200 with a string value.
func (v *env) str(name string, args any) string {
	v.t.Helper()
	a := v.action(name, args)
	if a.status != http.StatusOK {
		v.t.Fatalf("%s: %d %s", name, a.status, a.body)
	}
	var s string
	if err := json.Unmarshal(a.value, &s); err != nil {
		v.t.Fatalf("%s: value %s is not a string", name, a.value)
	}
	return s
}

func (v *env) status(id string) string {
	v.t.Helper()
	return v.str("GetMessageStatus", map[string]string{"messageId": id})
}

func (v *env) execID(id string) string {
	v.t.Helper()
	return v.str("GetExecutionIdByMessageId", map[string]string{"_messageId": id})
}

// odataError decodes the OData error shape, failing if it is not that.
func odataError(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error *struct {
			Code       *string `json:"code"`
			Message    string  `json:"message"`
			InnerError *struct {
				Message    string  `json:"message"`
				Type       string  `json:"type"`
				Stacktrace *string `json:"stacktrace"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil || e.Error.Code == nil ||
		e.Error.InnerError == nil || e.Error.InnerError.Stacktrace == nil || e.Error.InnerError.Type == "" {
		t.Fatalf("not an OData error: %s", body)
	}
	return e.Error.Message + " | " + e.Error.InnerError.Message
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
