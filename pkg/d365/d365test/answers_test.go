package d365test_test

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

var anyGUID = regexp.MustCompile(`[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}`)

// Each enqueue answer shape: its Content-Type, whether it carries the
// stored message's ID, and how.
func TestEnqueueAnswerShapes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		shape    d365test.AnswerShape
		mimeType string
		body     func(id string) string // nil: not compared whole
		hasID    bool                   // the body holds the message ID somewhere
		carries  bool                   // a client may read the ID from it
	}{
		{d365test.AnswerJSONString, "application/json", func(id string) string { return `"` + id + `"` }, true, true},
		{d365test.AnswerBareGUID, "application/json", func(id string) string { return id }, true, true},
		{d365test.AnswerBracedGUID, "application/json", func(id string) string { return "{" + strings.ToUpper(id) + "}" }, true, true},
		{d365test.AnswerWrapped, "application/json", nil, true, true},
		{d365test.AnswerHTML, "text/html", nil, false, false},
		{d365test.AnswerSessionExpired, "text/html", nil, false, false},
		{d365test.AnswerPlainText, "text/plain", nil, true, false},
		{d365test.AnswerEmpty, "application/json", func(string) string { return "" }, false, false},
	} {
		t.Run(string(tc.shape), func(t *testing.T) {
			t.Parallel()
			v := setup(t, d365test.Options{EnqueueAnswer: tc.shape})
			r := v.fo(http.MethodPost, "/api/connector/enqueue/"+actImport, []byte("a"))
			msgs := v.e.Messages()
			if r.StatusCode != http.StatusOK || len(msgs) != 1 {
				t.Fatalf("%d, %d messages; want 200 and the message stored", r.StatusCode, len(msgs))
			}
			id := msgs[0].ID
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != tc.mimeType {
				t.Errorf("Content-Type %q, want %s", r.Header.Get("Content-Type"), tc.mimeType)
			}
			if tc.body != nil && string(r.body) != tc.body(id) {
				t.Errorf("body %q, want %q", r.body, tc.body(id))
			}
			if got := strings.Contains(strings.ToLower(string(r.body)), id); got != tc.hasID {
				t.Errorf("body %q holds the ID: %v, want %v", r.body, got, tc.hasID)
			}
			switch tc.shape {
			case d365test.AnswerWrapped:
				var w struct {
					Context string `json:"@odata.context"`
					Value   string `json:"value"`
				}
				if json.Unmarshal(r.body, &w) != nil || w.Value != id || !strings.HasSuffix(w.Context, "#Edm.String") {
					t.Errorf("wrapped answer %s", r.body)
				}
			case d365test.AnswerSessionExpired:
				if !strings.Contains(string(r.body), "Session expired.") || !anyGUID.Match(r.body) {
					t.Errorf("front-door page %s has no request ID", r.body)
				}
			}
			if tc.shape.CarriesID() != tc.carries {
				t.Errorf("CarriesID = %v", tc.shape.CarriesID())
			}
		})
	}
}

// A fault picks the shape for one enqueue; with a Status it is a front
// door's answer and nothing is stored.
func TestEnqueueAnswerFault(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	v.e.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, EnqueueAnswer: d365test.AnswerHTML})
	r := v.fo(http.MethodPost, "/api/connector/enqueue/"+actImport, []byte("a"))
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") || len(v.e.Messages()) != 1 {
		t.Fatalf("%s %q, %d messages", r.Header.Get("Content-Type"), r.body, len(v.e.Messages()))
	}
	v.e.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, Status: http.StatusOK, EnqueueAnswer: d365test.AnswerSessionExpired})
	r = v.fo(http.MethodPost, "/api/connector/enqueue/"+actImport, []byte("a"))
	if r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), "Session expired.") || len(v.e.Messages()) != 1 {
		t.Fatalf("%d %q, %d messages; want the page and nothing stored", r.StatusCode, r.body, len(v.e.Messages()))
	}
	// The next enqueue answers F&O's way again.
	if id := v.enqueue(actImport, "", "", []byte("b")); id != v.e.Messages()[1].ID {
		t.Fatalf("id %q", id)
	}
	if _, err := d365test.ParseAnswerShape("nonsense"); err == nil {
		t.Fatal("an unknown shape name was accepted")
	}
	for _, s := range d365test.AnswerShapes {
		if got, err := d365test.ParseAnswerShape(strings.ToUpper(string(s))); err != nil || got != s {
			t.Errorf("ParseAnswerShape(%q) = %q, %v", s, got, err)
		}
	}
}

// F&O's error answers: the generic message on top, the cause in
// innererror.message. Unknown activities and connector errors always; a
// Cause fault on any F&O endpoint.
func TestGenericErrorBodies(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	const unknown = "11111111-2222-4333-8444-555555555555"
	r := v.fo(http.MethodGet, "/api/connector/dequeue/"+unknown, nil)
	if got := odataError(t, r.body); r.StatusCode != http.StatusNotFound || got != "An error has occurred. | Activity "+unknown+" was not found." {
		t.Fatalf("unknown activity: %d %q", r.StatusCode, got)
	}
	r = v.fo(http.MethodPost, "/api/connector/ack/"+actExport, []byte(`{}`))
	if got := odataError(t, r.body); r.StatusCode != http.StatusBadRequest || !strings.HasPrefix(got, "An error has occurred. | The ack body") {
		t.Fatalf("bad ack: %d %q", r.StatusCode, got)
	}
	for _, tc := range []struct{ endpoint, method, path string }{
		{"enqueue", http.MethodPost, "/api/connector/enqueue/" + actImport},
		{"dequeue", http.MethodGet, "/api/connector/dequeue/" + actExport},
		{"jobstatus", http.MethodGet, "/api/connector/jobstatus/" + actImport + "?jobId=x"},
		{"GetMessageStatus", http.MethodPost, "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetMessageStatus"},
	} {
		cause := "Cause for " + tc.endpoint
		v.e.Inject(d365test.Fault{Endpoint: tc.endpoint, Count: 1, Status: http.StatusInternalServerError, Cause: cause})
		r := v.fo(tc.method, tc.path, []byte(`{"messageId":"x"}`))
		if got := odataError(t, r.body); r.StatusCode != http.StatusInternalServerError || got != "An error has occurred. | "+cause {
			t.Errorf("%s: %d %q", tc.endpoint, r.StatusCode, got)
		}
	}
	// An endpoint-less Cause fault reaches every F&O endpoint.
	v.e.Inject(d365test.Fault{Count: 2, Status: http.StatusBadRequest, Cause: "everywhere"})
	for _, p := range []string{"/api/connector/dequeue/" + actExport, "/api/connector/enqueue/" + actImport} {
		r := v.fo(http.MethodGet, p, nil)
		if got := odataError(t, r.body); got != "An error has occurred. | everywhere" {
			t.Errorf("%s: %q", p, got)
		}
	}
}

// The Entra side can refuse the secret as Entra ID does: rotated (wrong
// secret), expired, or any code by fault.
func TestEntraRefusals(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	token := func(secret string) (int, string, []int) {
		r := v.postForm(v.e.AuthorityURL()+"/oauth2/v2.0/token", url.Values{
			"grant_type": {"client_credentials"}, "client_id": {v.e.ClientID()}, "client_secret": {secret},
			"scope": {v.e.URL() + "/.default"},
		})
		var body struct {
			Error string `json:"error"`
			Codes []int  `json:"error_codes"`
		}
		json.Unmarshal(r.body, &body)
		return r.StatusCode, body.Error, body.Codes
	}
	old := v.e.ClientSecret()
	v.e.ExpireClientSecret()
	if st, e, codes := token(old); st != http.StatusUnauthorized || e != "invalid_client" || len(codes) != 1 || codes[0] != 7000222 {
		t.Fatalf("expired: %d %s %v", st, e, codes)
	}
	v.e.SetClientSecret("rotated")
	if v.e.ClientSecret() != "rotated" {
		t.Fatalf("ClientSecret() = %q after SetClientSecret", v.e.ClientSecret())
	}
	if st, e, codes := token(old); st != http.StatusUnauthorized || e != "invalid_client" || len(codes) != 1 || codes[0] != 7000215 {
		t.Fatalf("old secret after rotation: %d %s %v", st, e, codes)
	}
	if st, _, _ := token("rotated"); st != http.StatusOK {
		t.Fatalf("new secret: %d", st)
	}
	for code, want := range map[int]string{7000112: "unauthorized_client", 700016: "unauthorized_client", 90002: "invalid_request", 7000215: "invalid_client", 123: "invalid_request"} {
		v.e.Inject(d365test.Fault{Endpoint: "token", Count: 1, AADSTS: code})
		if st, e, codes := token("rotated"); st < 400 || e != want || len(codes) != 1 || codes[0] != code {
			t.Errorf("fault %d: %d %s %v", code, st, e, codes)
		}
	}
	v.e.AddApp(d365test.App{ClientID: "off", ClientSecret: "s", Disabled: true})
	r := v.postForm(v.e.AuthorityURL()+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"off"},
		"client_secret": {"s"}, "scope": {v.e.URL() + "/.default"}})
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(string(r.body), "AADSTS7000112") {
		t.Fatalf("disabled app: %d %s", r.StatusCode, r.body)
	}
}

// Export.ContentDisposition is download's header as given.
func TestExportContentDisposition(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	const h = `attachment; filename=Customer groups.csv`
	v.e.QueueExport(actExport, d365test.Export{Body: []byte("x"), ContentDisposition: h, FileName: "ignored.csv"})
	v.e.QueueExport(actExport, d365test.Export{Body: []byte("y"), FileName: "Débiteurs.csv"})
	for _, want := range []string{h, `attachment; filename*=utf-8''D%C3%A9biteurs.csv`} {
		r := v.fo(http.MethodGet, "/api/connector/dequeue/"+actExport, nil)
		var d struct{ DownloadLocation string }
		if err := json.Unmarshal(r.body, &d); err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(d.DownloadLocation)
		dl := v.fo(http.MethodGet, u.RequestURI(), nil)
		if got := dl.Header.Get("Content-Disposition"); got != want {
			t.Errorf("Content-Disposition %q, want %q", got, want)
		}
	}
}
