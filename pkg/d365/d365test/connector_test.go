package d365test_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

var lowerGUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestActivityIDForms(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		opts   d365test.Options
		path   string
		status int
	}{
		{"plain", d365test.Options{}, "/api/connector/enqueue/" + actImport, 200},
		{"upper case", d365test.Options{}, "/api/connector/enqueue/" + strings.ToUpper(actImport), 200},
		{"braces", d365test.Options{}, "/api/connector/enqueue/{" + actImport + "}", 200},
		{"encoded braces", d365test.Options{}, "/api/connector/enqueue/%7B" + strings.ToUpper(actImport) + "%7D", 200},
		{"lang prefix", d365test.Options{}, "/en/api/connector/enqueue/%7B" + actImport + "%7D", 200},
		{"lang-region prefix", d365test.Options{}, "/en-us/api/connector/enqueue/" + actImport, 200},
		{"unknown", d365test.Options{}, "/api/connector/enqueue/11111111-2222-4333-8444-555555555555", 404},
		{"not a GUID", d365test.Options{}, "/api/connector/enqueue/customers", 404},
		{"unknown, configured status", d365test.Options{UnknownActivityStatus: 400}, "/api/connector/enqueue/11111111-2222-4333-8444-555555555555", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := setup(t, tc.opts)
			r := v.fo(http.MethodPost, tc.path, []byte("data"))
			if r.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", r.StatusCode, tc.status, r.body)
			}
			want := 0
			if tc.status == 200 {
				want = 1
				if m := v.e.Messages(); m[0].ActivityID != actImport {
					t.Errorf("ActivityID = %q", m[0].ActivityID)
				}
			}
			if got := len(v.e.Messages()); got != want {
				t.Errorf("%d messages, want %d", got, want)
			}
		})
	}
}

func TestEnqueue(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{KeepEnqueuedBodyBytes: 10})
	body := bytes.Repeat([]byte("0123456789"), 100)
	q := url.Values{"entity": {"Customer groups"}, "company": {"USMF"}}
	r := v.fo(http.MethodPost, "/api/connector/enqueue/"+actImport+"?"+q.Encode(), body,
		"x-ms-dyn-externalidentifier", "inbound/cg/file one.csv", "Content-Type", "text/csv")
	if r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%d %s %q", r.StatusCode, r.Header.Get("Content-Type"), r.body)
	}
	if !bytes.HasPrefix(r.body, []byte(`"`)) || !bytes.HasSuffix(r.body, []byte(`"`)) {
		t.Fatalf("body %q is not a quoted JSON string", r.body)
	}
	id := string(r.body[1 : len(r.body)-1])
	if !lowerGUID.MatchString(id) {
		t.Fatalf("message ID %q is not a lowercase GUID", id)
	}
	sum := sha256.Sum256(body)
	m := v.e.Messages()[0]
	want := d365test.Message{ID: id, ActivityID: actImport, Entity: "Customer groups", Company: "USMF",
		ExternalID: "inbound/cg/file one.csv", Size: 1000, SHA256: hex.EncodeToString(sum[:]),
		Body: body[:10], Status: "Enqueued", EnqueuedAt: v.e.Now()}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Errorf("message\n got %+v\nwant %+v", m, want)
	}

	// No dedup: the same file and external ID again is a new message.
	id2 := v.enqueue(actImport, "Customer groups", "inbound/cg/file one.csv", body)
	if id2 == id || len(v.e.Messages()) != 2 {
		t.Errorf("second enqueue: id %s, %d messages; want a new message", id2, len(v.e.Messages()))
	}

	// A chunked body (unknown length) is read to the end.
	pr, pw := io.Pipe()
	go func() { pw.Write(body); pw.Close() }()
	r = v.do(context.Background(), http.MethodPost, v.e.URL()+"/api/connector/enqueue/"+actImport, pr, v.bearer()...)
	if r.StatusCode != 200 || v.e.Messages()[2].Size != 1000 {
		t.Errorf("chunked enqueue: %d, size %d", r.StatusCode, v.e.Messages()[2].Size)
	}
}

func TestEnqueueKeepsNothingWhenNegative(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{KeepEnqueuedBodyBytes: -1})
	v.enqueue(actImport, "", "", []byte("abc"))
	if m := v.e.Messages()[0]; len(m.Body) != 0 || m.Size != 3 {
		t.Errorf("Body %q Size %d", m.Body, m.Size)
	}
}

// step is what the status actions say after a number of ticks.
type step struct {
	message, execution string // execution "" = GetExecutionSummaryStatus is a 400 "were not found"
	hasExecID          bool
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	errs := []d365test.ExecutionError{{RecordId: "5637144576", Field: "CustGroup", ErrorMessage: "Group 99 does not exist."}}
	tests := []struct {
		name    string
		outcome d365test.Outcome
		steps   []step // after 0, 1, 2, 3, 4 ticks
		errors  string
	}{
		{"default processed", d365test.Outcome{}, []step{
			{"Enqueued", "", false}, {"Preprocessing", "", false}, {"Processing", "Executing", true},
			{"Processed", "Succeeded", true}, {"Processed", "Succeeded", true}}, "[]"},
		{"with errors", d365test.Outcome{Status: "ProcessedWithErrors", Errors: errs}, []step{
			{"Enqueued", "", false}, {"Preprocessing", "", false}, {"Processing", "Executing", true},
			{"ProcessedWithErrors", "PartiallySucceeded", true}, {"ProcessedWithErrors", "PartiallySucceeded", true}},
			`[{"RecordId":"5637144576","Field":"CustGroup","ErrorMessage":"Group 99 does not exist."}]`},
		{"preprocessing error", d365test.Outcome{Status: "PreProcessingError", Errors: errs}, []step{
			{"Enqueued", "", false}, {"Preprocessing", "", false}, {"PreProcessingError", "Failed", true},
			{"PreProcessingError", "Failed", true}, {"PreProcessingError", "Failed", true}},
			`[{"RecordId":"5637144576","Field":"CustGroup","ErrorMessage":"Group 99 does not exist."}]`},
		{"post-processing failed", d365test.Outcome{Status: "PostProcessingFailed"}, []step{
			{"Enqueued", "", false}, {"Preprocessing", "", false}, {"Processing", "Executing", true},
			{"PostProcessingFailed", "Failed", true}, {"PostProcessingFailed", "Failed", true}}, "[]"},
		{"canceled execution", d365test.Outcome{Status: "ProcessedWithErrors", ExecutionStatus: "Canceled"}, []step{
			{"Enqueued", "", false}, {"Preprocessing", "", false}, {"Processing", "Executing", true},
			{"ProcessedWithErrors", "Canceled", true}, {"ProcessedWithErrors", "Canceled", true}}, "[]"},
		{"never processed", d365test.Outcome{NeverProcess: true}, []step{
			{"Enqueued", "", false}, {"Enqueued", "", false}, {"Enqueued", "", false},
			{"Enqueued", "", false}, {"Enqueued", "", false}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := setup(t, d365test.Options{})
			id := v.enqueue(actImport, "Customer groups", "f.csv", []byte("a"))
			v.e.Script(d365test.Rule{MessageID: id, Outcome: tc.outcome})
			var execID string
			for i, want := range tc.steps {
				if i > 0 {
					v.e.Tick()
				}
				if got := v.status(id); got != want.message {
					t.Fatalf("after %d ticks: message status %q, want %q", i, got, want.message)
				}
				gotExec := v.execID(id)
				if want.hasExecID == (gotExec == "00000000-0000-0000-0000-000000000000") {
					t.Fatalf("after %d ticks: execution ID %q", i, gotExec)
				}
				if !want.hasExecID {
					continue
				}
				execID = gotExec
				a := v.action("GetExecutionSummaryStatus", map[string]string{"executionId": execID})
				if want.execution == "" {
					if a.status != 400 || !strings.Contains(odataError(t, a.body), "were not found") {
						t.Fatalf("after %d ticks: %d %s, want 400 were not found", i, a.status, a.body)
					}
					continue
				}
				if got := v.str("GetExecutionSummaryStatus", map[string]string{"executionId": execID}); got != want.execution {
					t.Fatalf("after %d ticks: execution status %q, want %q", i, got, want.execution)
				}
			}
			if tc.errors == "" {
				return
			}
			if got := v.str("GetExecutionErrors", map[string]string{"executionId": execID}); got != tc.errors {
				t.Errorf("GetExecutionErrors = %s, want %s", got, tc.errors)
			}
			if got := v.e.Messages()[0].ExecutionID; got != execID {
				t.Errorf("Messages().ExecutionID = %q, want %q", got, execID)
			}
		})
	}
}

func TestExecutionSummaryBeforeExecutionExists(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	if got := v.execID("11111111-2222-4333-8444-555555555555"); got != "00000000-0000-0000-0000-000000000000" {
		t.Errorf("GetExecutionIdByMessageId of an unknown message: %q", got)
	}
	a := v.action("GetExecutionSummaryStatus", map[string]string{"executionId": "nope"})
	if a.status != http.StatusBadRequest || !strings.Contains(odataError(t, a.body), "were not found") {
		t.Fatalf("%d %s", a.status, a.body)
	}
}

func TestInOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		activity string
		serial   bool
	}{
		{"in-order file job", actOrdered, true},
		{"plain file job", actImport, false},
		{"in-order package job (order does not apply)", actPackage, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := setup(t, d365test.Options{})
			a := v.enqueue(tc.activity, "Customer groups", "1.csv", []byte("1"))
			b := v.enqueue(tc.activity, "Customer groups", "2.csv", []byte("2"))
			for i := 0; i < 3; i++ {
				v.e.Tick()
				got := v.status(b)
				if tc.serial && got != "Enqueued" {
					t.Fatalf("tick %d: second message %s while the first is unfinished", i+1, got)
				}
				if !tc.serial && got != v.status(a) {
					t.Fatalf("tick %d: second %s, first %s; want lockstep", i+1, got, v.status(a))
				}
			}
			if got := v.status(a); got != "Processed" {
				t.Fatalf("first after 3 ticks: %s", got)
			}
			v.e.RunToCompletion()
			if got := v.status(b); got != "Processed" {
				t.Fatalf("second at the end: %s", got)
			}
		})
	}
}

func TestInOrderStuckMessageBlocks(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	v.e.Script(d365test.Rule{ExternalIDContains: "bad", Outcome: d365test.Outcome{NeverProcess: true}})
	v.enqueue(actOrdered, "Wrong name", "bad.csv", []byte("1"))
	b := v.enqueue(actOrdered, "Customer groups", "good.csv", []byte("2"))
	v.e.RunToCompletion()
	if got := v.status(b); got != "Enqueued" {
		t.Errorf("message behind a stuck one: %s, want Enqueued", got)
	}
}

func TestRules(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	v.e.Script(d365test.Rule{Outcome: d365test.Outcome{Status: "PostProcessingFailed"}})
	v.e.Script(d365test.Rule{ActivityID: "{" + strings.ToUpper(actImport) + "}", Outcome: d365test.Outcome{Status: "ProcessedWithErrors"}})
	v.e.Script(d365test.Rule{Entity: "customer GROUPS", Outcome: d365test.Outcome{Status: "Processed"}})
	v.e.Script(d365test.Rule{ExternalIDContains: "-bad", Outcome: d365test.Outcome{Status: "PreProcessingError"}})
	ids := map[string]string{
		"PostProcessingFailed": v.enqueue(actOrdered, "Vendors", "x.csv", nil),
		"ProcessedWithErrors":  v.enqueue(actImport, "Vendors", "y.csv", nil),
		"Processed":            v.enqueue(actImport, "Customer groups", "z.csv", nil),
		"PreProcessingError":   v.enqueue(actImport, "Customer groups", "z-bad.csv", nil),
	}
	byID := v.enqueue(actImport, "Customer groups", "z-bad.csv", nil)
	v.e.Script(d365test.Rule{MessageID: byID, Outcome: d365test.Outcome{Status: "Processed"}})
	ids["Processed (by message ID, latest rule)"] = byID
	v.e.RunToCompletion()
	for want, id := range ids {
		if got := v.status(id); got != strings.Fields(want)[0] {
			t.Errorf("%s: got %s", want, got)
		}
	}
}

func TestScriptRejectsUnknownStatus(t *testing.T) {
	t.Parallel()
	e := d365test.NewT(t, d365test.Options{})
	defer func() {
		if recover() == nil {
			t.Error("Script accepted Status \"Failed\"")
		}
	}()
	e.Script(d365test.Rule{Outcome: d365test.Outcome{Status: "Failed"}})
}

// dequeue returns the raw dequeue answer (nil for 204).
func (v *env) dequeue(activity string) (map[string]any, []byte) {
	v.t.Helper()
	r := v.fo(http.MethodGet, "/api/connector/dequeue/"+activity, nil)
	switch r.StatusCode {
	case http.StatusNoContent:
		if len(r.body) != 0 {
			v.t.Fatalf("204 with a body: %q", r.body)
		}
		return nil, nil
	case http.StatusOK:
		var m map[string]any
		if err := json.Unmarshal(r.body, &m); err != nil {
			v.t.Fatalf("dequeue answer %s: %v", r.body, err)
		}
		return m, r.body
	}
	v.t.Fatalf("dequeue: %d %s", r.StatusCode, r.body)
	return nil, nil
}

func (v *env) ack(activity string, body []byte) int {
	v.t.Helper()
	return v.fo(http.MethodPost, "/api/connector/ack/"+activity, body, "Content-Type", "application/json").StatusCode
}

func TestDequeueAckRedelivery(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{TokenLifetime: 24 * time.Hour})
	if m, _ := v.dequeue(actExport); m != nil {
		t.Fatalf("empty queue answered %v", m)
	}
	corr := v.e.QueueExport(actExport, d365test.Export{Body: []byte("PK zip bytes"), FileName: "export.zip"})
	first, raw := v.dequeue(actExport)
	keys := []string{}
	for k := range first {
		keys = append(keys, k)
	}
	wantKeys := "CorrelationId DownloadLocation FileDownLoadErrorMessage IsDownLoadFileExist LastDequeueDateTime PopReceipt"
	if got := strings.Join(sortStrings(keys), " "); got != wantKeys {
		t.Fatalf("fields %s, want exactly %s", got, wantKeys)
	}
	if first["CorrelationId"] != corr || first["LastDequeueDateTime"] != nil || first["IsDownLoadFileExist"] != true ||
		first["FileDownLoadErrorMessage"] != nil {
		t.Fatalf("first dequeue %s", raw)
	}
	loc, _ := first["DownloadLocation"].(string)
	wantLoc := v.e.URL() + "/api/connector/download/" + actExport + "?correlation-id=" + corr + "&blob="
	if !strings.HasPrefix(loc, wantLoc) {
		t.Fatalf("DownloadLocation %q, want prefix %q", loc, wantLoc)
	}
	// Hidden for the visibility timeout (30 minutes on the fake clock).
	if m, _ := v.dequeue(actExport); m != nil {
		t.Fatal("dequeued again at once")
	}
	v.e.Advance(30*time.Minute - time.Second)
	if m, _ := v.dequeue(actExport); m != nil {
		t.Fatal("dequeued again before 30 minutes")
	}
	v.e.Advance(time.Second)
	second, raw2 := v.dequeue(actExport)
	if second == nil || second["CorrelationId"] != corr || second["PopReceipt"] == first["PopReceipt"] {
		t.Fatalf("re-delivery %s after %s", raw2, raw)
	}
	if got, want := second["LastDequeueDateTime"], v.e.Now().Add(-30*time.Minute).Format("2006-01-02T15:04:05"); got != want {
		t.Errorf("LastDequeueDateTime %v, want %v (the previous dequeue)", got, want)
	}
	if got := v.ack(actExport, raw); got != http.StatusBadRequest {
		t.Errorf("ack with the stale receipt: %d, want 400", got)
	}
	if got := v.e.Acked(actExport); len(got) != 0 {
		t.Fatalf("stale ack recorded: %v", got)
	}
	three, _ := json.Marshal(map[string]any{"CorrelationId": corr, "PopReceipt": second["PopReceipt"], "DownloadLocation": second["DownloadLocation"]})
	if got := v.ack(actExport, three); got != http.StatusOK {
		t.Fatalf("ack with 3 fields: %d", got)
	}
	if got := v.ack(actExport, raw2); got != http.StatusOK {
		t.Errorf("repeated ack with the latest receipt: %d", got)
	}
	if got := v.e.Acked(actExport); len(got) != 1 || got[0] != corr {
		t.Errorf("Acked = %v", got)
	}
	if got := v.e.Pending(actExport); got != 0 {
		t.Errorf("Pending = %d", got)
	}
	v.e.Advance(2 * time.Hour)
	if m, _ := v.dequeue(actExport); m != nil {
		t.Error("acked message handed out again")
	}
	if got := v.status(corr); got != "Acked" {
		t.Errorf("GetMessageStatus of the export: %s", got)
	}
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func TestAckRejects(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{StaleAckStatus: http.StatusConflict})
	v.e.QueueExport(actExport, d365test.Export{Body: []byte("a")})
	d, raw := v.dequeue(actExport)
	for _, tc := range []struct {
		name, activity string
		body           string
		status         int
	}{
		{"not JSON", actExport, "nope", 400},
		{"no receipt", actExport, fmt.Sprintf(`{"CorrelationId":%q}`, d["CorrelationId"]), 400},
		{"wrong receipt", actExport, fmt.Sprintf(`{"CorrelationId":%q,"PopReceipt":"x"}`, d["CorrelationId"]), http.StatusConflict},
		{"unknown correlation", actExport, `{"CorrelationId":"11111111-2222-4333-8444-555555555555","PopReceipt":"x"}`, http.StatusConflict},
		{"other activity", actImport, string(raw), http.StatusConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := v.ack(tc.activity, []byte(tc.body)); got != tc.status {
				t.Errorf("status %d, want %d", got, tc.status)
			}
		})
	}
	if v.e.Pending(actExport) != 1 || len(v.e.Acked(actExport)) != 0 {
		t.Error("a rejected ack changed the queue")
	}
}

func TestExportsInQueueOrder(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{VisibilityTimeout: time.Minute})
	a := v.e.QueueExport(actExport, d365test.Export{Body: []byte("a")})
	b := v.e.QueueExport(actExport, d365test.Export{Body: []byte("b")})
	d1, _ := v.dequeue(actExport)
	d2, _ := v.dequeue(actExport)
	if d1["CorrelationId"] != a || d2["CorrelationId"] != b {
		t.Fatalf("order %v %v", d1["CorrelationId"], d2["CorrelationId"])
	}
	if v.e.Pending(actExport) != 2 {
		t.Errorf("Pending = %d, want 2 (dequeued is not acked)", v.e.Pending(actExport))
	}
	v.e.Advance(time.Minute)
	if d, _ := v.dequeue(actExport); d["CorrelationId"] != a {
		t.Errorf("after the custom visibility timeout: %v", d)
	}
}

func TestDownload(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	const big = 8<<20 + 3
	gen := func(w io.Writer) error {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for left := int64(big); left > 0; {
			n := min(left, int64(len(chunk)))
			if _, err := w.Write(chunk[:n]); err != nil {
				return err
			}
			left -= n
		}
		return nil
	}
	small := v.e.QueueExport(actExport, d365test.Export{Body: []byte("small body")})
	huge := v.e.QueueExport(actExport, d365test.Export{Generate: gen, Size: big})
	unsized := v.e.QueueExport(actExport, d365test.Export{Generate: gen})
	locs := map[string]string{}
	for i := 0; i < 3; i++ {
		d, _ := v.dequeue(actExport)
		locs[d["CorrelationId"].(string)] = d["DownloadLocation"].(string)
	}
	for _, tc := range []struct {
		name       string
		corr       string
		size       int64
		contentLen int64
	}{
		{"body", small, 10, 10},
		{"generated with size", huge, big, big},
		{"generated without size", unsized, big, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(http.MethodGet, locs[tc.corr], nil)
			req.Header.Set("Authorization", "Bearer "+v.token)
			resp, err := v.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			if err != nil || resp.StatusCode != 200 || n != tc.size || resp.ContentLength != tc.contentLen {
				t.Errorf("status %d, %d bytes (err %v), Content-Length %d", resp.StatusCode, n, err, resp.ContentLength)
			}
		})
	}
	t.Run("without token", func(t *testing.T) {
		r := v.do(context.Background(), http.MethodGet, locs[small], nil)
		if r.StatusCode != http.StatusUnauthorized {
			t.Errorf("%d, want 401", r.StatusCode)
		}
	})
	t.Run("wrong blob", func(t *testing.T) {
		r := v.fo(http.MethodGet, "/api/connector/download/"+actExport+"?correlation-id="+small+"&blob=11111111-2222-4333-8444-555555555555", nil)
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("%d, want 404", r.StatusCode)
		}
	})
}

func TestHTTPDownloadLocation(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{HTTPDownloadLocation: true})
	corr := v.e.QueueExport(actExport, d365test.Export{Body: []byte("zip")})
	d, _ := v.dequeue(actExport)
	loc, _ := d["DownloadLocation"].(string)
	u, err := url.Parse(loc)
	if err != nil || u.Scheme != "http" || u.Host != "127.0.0.1:80" {
		t.Fatalf("DownloadLocation %q, want http://127.0.0.1:80/...", loc)
	}
	// A client that forces https on the configured host gets the file.
	base, _ := url.Parse(v.e.URL())
	u.Scheme, u.Host = base.Scheme, base.Host
	r := v.do(context.Background(), http.MethodGet, u.String(), nil, v.bearer()...)
	if r.StatusCode != 200 || string(r.body) != "zip" || u.Query().Get("correlation-id") != corr {
		t.Errorf("rewritten %s: %d %q", u, r.StatusCode, r.body)
	}
}

func TestJobStatus(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	id := v.enqueue(actImport, "Customer groups", "cg.csv", []byte("a"))
	v.e.Script(d365test.Rule{MessageID: id, Outcome: d365test.Outcome{Status: "ProcessedWithErrors"}})
	get := func(jobID string) map[string]any {
		t.Helper()
		r := v.fo(http.MethodGet, "/api/connector/jobstatus/"+actImport+"?jobId="+url.QueryEscape(jobID), nil)
		var m map[string]any
		if r.StatusCode != 200 || json.Unmarshal(r.body, &m) != nil {
			t.Fatalf("%d %s", r.StatusCode, r.body)
		}
		return m
	}
	for ticks, want := range []float64{0, 4, 4, 6} {
		if ticks > 0 {
			v.e.Tick()
		}
		st, _ := get(id)["DataJobStatus"].(map[string]any)
		if st == nil || st["DataJobState"] != want || st["ExternalIdentifier"] != "cg.csv" || st["DataJobIdentifier"] != id {
			t.Fatalf("after %d ticks: %v, want DataJobState %v", ticks, st, want)
		}
	}
	js := get(id)
	st := js["DataJobStatus"].(map[string]any)
	if st["ExecutionIdentifier"] != v.e.Messages()[0].ExecutionID || st["DataProject"] != "Import customer groups" {
		t.Errorf("DataJobStatus %v", st)
	}
	detail, _ := js["ExecutionDetail"].([]any)
	if len(detail) != 1 || detail[0].(map[string]any)["EntityName"] != "Customer groups" {
		t.Errorf("ExecutionDetail %v", js["ExecutionDetail"])
	}
	if got := get("11111111-2222-4333-8444-555555555555"); got["DataJobStatus"] != nil {
		t.Errorf("unknown job: %v", got)
	}
}
