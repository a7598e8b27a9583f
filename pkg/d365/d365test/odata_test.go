package d365test_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

func TestODataAnswerShape(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	id := v.enqueue(actImport, "Customer groups", "f.csv", []byte("a"))
	v.e.Script(d365test.Rule{Outcome: d365test.Outcome{TargetErrorKeysFile: []byte("k")}})
	v.e.RunToCompletion()
	exec := v.execID(id)
	for _, tc := range []struct {
		action string
		args   any
		ctx    string
		value  string
	}{
		{"GetMessageStatus", map[string]string{"messageId": id}, "#Edm.String", `"Processed"`},
		{"GetMessageStatus", map[string]string{"messageId": "{" + strings.ToUpper(id) + "}"}, "#Edm.String", `"Processed"`},
		{"GenerateImportTargetErrorKeysFile", map[string]string{"executionId": exec, "entityName": "Customer groups"}, "#Edm.Boolean", `true`},
	} {
		t.Run(tc.action, func(t *testing.T) {
			r := v.fo(http.MethodPost, "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."+tc.action,
				mustJSON(t, tc.args), "Content-Type", "application/json")
			var m map[string]json.RawMessage
			if r.StatusCode != 200 || json.Unmarshal(r.body, &m) != nil || len(m) != 2 {
				t.Fatalf("%d %s", r.StatusCode, r.body)
			}
			if got := string(m["@odata.context"]); got != `"`+v.e.URL()+"/data/$metadata"+tc.ctx+`"` {
				t.Errorf("@odata.context = %s", got)
			}
			if got := string(m["value"]); got != tc.value {
				t.Errorf("value = %s, want %s", got, tc.value)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestODataRejects(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	for _, tc := range []struct {
		name, action, body string
		status             int
		want               string
	}{
		{"messageId without underscore", "GetExecutionIdByMessageId", `{"messageId":"x"}`, 400, "messageId"},
		{"missing parameter", "GetMessageStatus", `{}`, 400, "messageId"},
		{"wrong type", "GetMessageStatus", `{"messageId":5}`, 400, "Edm.String"},
		{"bool as string", "ImportFromPackage", `{"packageUrl":"x","definitionGroupId":"g","execute":"true"}`, 400, "Edm.Boolean"},
		{"not JSON", "GetMessageStatus", `messageId=x`, 400, "JSON"},
		{"unknown action", "GetMessageStatuses", `{}`, 404, "No HTTP resource"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := v.fo(http.MethodPost, "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."+tc.action,
				[]byte(tc.body), "Content-Type", "application/json")
			if r.StatusCode != tc.status {
				t.Fatalf("%d, want %d: %s", r.StatusCode, tc.status, r.body)
			}
			if msg := odataError(t, r.body); !strings.Contains(msg, tc.want) {
				t.Errorf("message %q does not mention %q", msg, tc.want)
			}
		})
	}
	r := v.fo(http.MethodGet, "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetMessageStatus", nil)
	if r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET on an action: %d", r.StatusCode)
	}
}

func TestUnknownMessageStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		opts   d365test.Options
		status int
		value  string
	}{
		{"default", d365test.Options{}, 200, "Unknown"},
		{"other value", d365test.Options{UnknownMessageStatus: "Enqueued"}, 200, "Enqueued"},
		{"error status", d365test.Options{UnknownMessageHTTPStatus: 404}, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := setup(t, tc.opts)
			a := v.action("GetMessageStatus", map[string]string{"messageId": "11111111-2222-4333-8444-555555555555"})
			if a.status != tc.status {
				t.Fatalf("%d %s", a.status, a.body)
			}
			if tc.status == 200 && string(a.value) != `"`+tc.value+`"` {
				t.Errorf("value %s", a.value)
			}
			if tc.status != 200 {
				odataError(t, a.body)
			}
		})
	}
}

func TestExecutionErrorsText(t *testing.T) {
	t.Parallel()
	rows := []d365test.ExecutionError{
		{RecordId: "1", Field: "CustGroup", ErrorMessage: `Value "X" is not valid.`},
		{RecordId: "2", Field: "", ErrorMessage: "Line one\nLine two <&>"},
	}
	for _, tc := range []struct {
		name   string
		raw    bool
		strict bool
	}{{"strict JSON", false, true}, {"raw newlines", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := setup(t, d365test.Options{RawNewlinesInErrors: tc.raw})
			id := v.enqueue(actImport, "Customer groups", "f.csv", []byte("a"))
			v.e.Script(d365test.Rule{Outcome: d365test.Outcome{Status: "ProcessedWithErrors", Errors: rows}})
			v.e.RunToCompletion()
			text := v.str("GetExecutionErrors", map[string]string{"executionId": v.execID(id)})
			var got []d365test.ExecutionError
			err := json.Unmarshal([]byte(text), &got)
			if tc.strict {
				if err != nil || len(got) != 2 || got[0] != rows[0] || got[1] != rows[1] {
					t.Fatalf("inner text %q: %v %+v", text, err, got)
				}
				if !strings.Contains(text, `"RecordId":"1"`) || !strings.Contains(text, "<&>") {
					t.Errorf("field names or HTML escaping: %s", text)
				}
				return
			}
			if err == nil {
				t.Fatalf("inner text is strict JSON; want raw CR/LF and quotes: %q", text)
			}
			if !strings.Contains(text, "\r\n") || !strings.Contains(text, `Value "X" is not valid.`) || !strings.HasPrefix(text, `[{"RecordId":"1","Field":"CustGroup","ErrorMessage":"`) {
				t.Errorf("inner text %q", text)
			}
		})
	}
}

func TestErrorFiles(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	withFiles := v.enqueue(actImport, "Customer groups", "bad.csv", []byte("a"))
	clean := v.enqueue(actImport, "Customer groups", "good.csv", []byte("a"))
	v.e.Script(d365test.Rule{ExternalIDContains: "bad", Outcome: d365test.Outcome{
		Status: "ProcessedWithErrors", StagingErrorFile: []byte("staging rows"),
		TargetErrorKeysFile: []byte("target keys"), TargetKeysEmptyPolls: 2,
	}})
	v.e.RunToCompletion()
	args := func(id string) map[string]string {
		return map[string]string{"executionId": v.execID(id), "entityName": "Customer groups"}
	}
	fetch := func(u string) string {
		t.Helper()
		r := v.do(context.Background(), http.MethodGet, u, nil)
		if r.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", u, r.StatusCode, r.body)
		}
		return string(r.body)
	}

	if u := v.str("GetImportStagingErrorFileUrl", args(clean)); u != "" {
		t.Errorf("staging URL without errors: %q", u)
	}
	u := v.str("GetImportStagingErrorFileUrl", args(withFiles))
	if !strings.HasPrefix(u, v.e.BlobURL()+"/") || fetch(u) != "staging rows" {
		t.Errorf("staging URL %q", u)
	}

	if got := v.action("GenerateImportTargetErrorKeysFile", args(clean)).value; string(got) != "false" {
		t.Errorf("Generate without target errors: %s", got)
	}
	if u := v.str("GetImportTargetErrorKeysFileUrl", args(withFiles)); u != "" {
		t.Errorf("target keys URL before Generate: %q", u)
	}
	if got := v.action("GenerateImportTargetErrorKeysFile", args(withFiles)).value; string(got) != "true" {
		t.Errorf("Generate: %s", got)
	}
	for i := 0; i < 2; i++ {
		if u := v.str("GetImportTargetErrorKeysFileUrl", args(withFiles)); u != "" {
			t.Fatalf("poll %d: %q, want empty", i+1, u)
		}
	}
	u = v.str("GetImportTargetErrorKeysFileUrl", args(withFiles))
	if u == "" || fetch(u) != "target keys" {
		t.Errorf("target keys URL %q", u)
	}
	if v.e.BlobSawToken() {
		t.Error("BlobSawToken after token-less GETs")
	}
}

func TestEntityExecutionSummaryList(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	id := v.enqueue(actImport, "Customer groups", "f.csv", []byte("a"))
	v.e.RunToCompletion()
	a := v.action("GetEntityExecutionSummaryStatusList", map[string]string{"executionId": v.execID(id)})
	var list []map[string]any
	if a.status != 200 || json.Unmarshal(a.value, &list) != nil || len(list) != 1 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if list[0]["EntityName"] != "Customer groups" || list[0]["ExecutionStatus"] != "Succeeded" || list[0]["TargetStatus"] != "Succeeded" {
		t.Errorf("%v", list[0])
	}
}
