package d365test_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// writeURL calls GetAzureWriteUrl and parses its doubly encoded value.
func (v *env) writeURL(name string) (blobID, blobURL string) {
	v.t.Helper()
	inner := v.str("GetAzureWriteUrl", map[string]string{"uniqueFileName": name})
	var w struct{ BlobId, BlobUrl string } // F&O's JSON names
	if err := json.Unmarshal([]byte(inner), &w); err != nil {
		v.t.Fatalf("GetAzureWriteUrl value %q is not JSON in a string: %v", inner, err)
	}
	return w.BlobId, w.BlobUrl
}

func (v *env) putBlob(u string, body []byte, hdr ...string) result {
	v.t.Helper()
	return v.do(context.Background(), http.MethodPut, u, bytes.NewReader(body), hdr...)
}

func TestGetAzureWriteURL(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	id, u := v.writeURL("pkg 1.zip")
	if !regexp.MustCompile(`^\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}$`).MatchString(id) {
		t.Errorf("BlobId %q, want {GUID}", id)
	}
	p, err := url.Parse(u)
	if err != nil || !strings.HasPrefix(u, v.e.BlobURL()+"/dmf/pkg%201.zip?") || p.Query().Get("sig") == "" || p.Query().Get("se") == "" {
		t.Fatalf("BlobUrl %q", u)
	}
	if strings.HasPrefix(v.e.BlobURL(), v.e.URL()) {
		t.Errorf("blob host %s is the F&O host", v.e.BlobURL())
	}
}

func TestBlobPut(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	_, u := v.writeURL("p.zip")
	bt := []string{"x-ms-blob-type", "BlockBlob"}
	tamper := func(u string) string {
		p, _ := url.Parse(u)
		q := p.Query()
		q.Set("sig", "AAAA"+q.Get("sig")[4:])
		p.RawQuery = q.Encode()
		return p.String()
	}
	for _, tc := range []struct {
		name   string
		url    string
		hdr    []string
		status int
		code   string
	}{
		{"no blob type", u, nil, 400, "MissingRequiredHeader"},
		{"page blob", u, []string{"x-ms-blob-type", "PageBlob"}, 400, "InvalidHeaderValue"},
		{"bad signature", tamper(u), bt, 403, "AuthenticationFailed"},
		{"no signature", strings.Split(u, "?")[0], bt, 403, "AuthenticationFailed"},
		{"ok", u, bt, 201, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := v.putBlob(tc.url, []byte("package"), tc.hdr...)
			if r.StatusCode != tc.status {
				t.Fatalf("%d, want %d: %s", r.StatusCode, tc.status, r.body)
			}
			if tc.code != "" && (!bytes.Contains(r.body, []byte("<Code>"+tc.code+"</Code>")) || r.Header.Get("x-ms-error-code") != tc.code) {
				t.Errorf("body %s", r.body)
			}
		})
	}
	if got, ok := v.e.Blob("p.zip"); !ok || string(got) != "package" {
		t.Fatalf("stored blob %q %v", got, ok)
	}
	if r := v.do(context.Background(), http.MethodGet, u, nil); r.StatusCode != 200 || string(r.body) != "package" {
		t.Errorf("GET with the write SAS: %d %q", r.StatusCode, r.body)
	}
	if v.e.BlobSawToken() {
		t.Fatal("BlobSawToken before any token was sent")
	}
	// A streamed body without Content-Length is refused, as by Azure.
	req, _ := http.NewRequest(http.MethodPut, u, struct{ *strings.Reader }{strings.NewReader("x")})
	req.Header.Set("x-ms-blob-type", "BlockBlob")
	if resp, err := v.hc.Do(req); err != nil || resp.StatusCode != http.StatusLengthRequired {
		t.Errorf("chunked PUT: %v %v", resp.StatusCode, err)
	}
	v.putBlob(u, []byte("again"), append(bt, v.bearer()...)...)
	if !v.e.BlobSawToken() {
		t.Error("BlobSawToken did not record a bearer token")
	}
	if v.e.Requests("blob-put") != 7 || v.e.TotalRequests() != 1 {
		t.Errorf("blob-put %d, F&O total %d", v.e.Requests("blob-put"), v.e.TotalRequests())
	}
}

func TestSASExpires(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{TokenLifetime: 30 * 24 * time.Hour})
	_, u := v.writeURL("p.zip")
	v.e.Advance(7*24*time.Hour - time.Minute)
	if r := v.putBlob(u, []byte("a"), "x-ms-blob-type", "BlockBlob"); r.StatusCode != 201 {
		t.Fatalf("before expiry: %d", r.StatusCode)
	}
	v.e.Advance(time.Minute)
	r := v.putBlob(u, []byte("a"), "x-ms-blob-type", "BlockBlob")
	if r.StatusCode != 403 || !bytes.Contains(r.body, []byte("AuthenticationFailed")) {
		t.Fatalf("after 7 days: %d %s", r.StatusCode, r.body)
	}
}

// upload puts a package where GetAzureWriteUrl says and returns the URL.
func (v *env) upload(name string, pkg []byte) string {
	v.t.Helper()
	_, u := v.writeURL(name)
	if r := v.putBlob(u, pkg, "x-ms-blob-type", "BlockBlob"); r.StatusCode != 201 {
		v.t.Fatalf("PUT: %d %s", r.StatusCode, r.body)
	}
	return u
}

func zipOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for n, b := range files {
		f, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// unzip reads a zip into a map.
func unzip(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		var buf bytes.Buffer
		buf.ReadFrom(rc)
		rc.Close()
		out[f.Name] = buf.Bytes()
	}
	return out
}

func utf16LE(s string) []byte {
	out := []byte{0xFF, 0xFE}
	for _, u := range utf16.Encode([]rune(s)) {
		out = binary.LittleEndian.AppendUint16(out, u)
	}
	return out
}

func TestImportFromPackage(t *testing.T) {
	t.Parallel()
	good := d365test.NewPackage("CG import", d365test.PackageEntity{Name: "Customer groups", Data: []byte("a,b\r\n")})
	files := unzip(t, good)
	utf16Pkg := map[string][]byte{}
	for n, b := range files {
		utf16Pkg[n] = b
		if strings.HasSuffix(n, ".xml") {
			utf16Pkg[n] = utf16LE(strings.Replace(string(b), `<?xml version="1.0" encoding="utf-8"?>`+"\n", "", 1))
		}
	}
	nested := map[string][]byte{}
	for n, b := range files {
		nested["pkg/"+n] = b
	}
	noData := map[string][]byte{"Manifest.xml": files["Manifest.xml"], "PackageHeader.xml": files["PackageHeader.xml"]}
	for _, tc := range []struct {
		name     string
		pkg      []byte
		setup    func(e *d365test.Emulator)
		args     map[string]any
		wantErr  string
		entities []string
	}{
		{name: "valid, server-made execution ID", pkg: good, entities: []string{"Customer groups"}},
		{name: "valid, client execution ID", pkg: good, args: map[string]any{"executionId": "CG-2026-01-01_00-00-00-X"}},
		{name: "UTF-16 XML", pkg: zipOf(t, utf16Pkg)},
		{name: "known entity", pkg: good, setup: func(e *d365test.Emulator) { e.AddEntity("customer groups") }},
		{name: "unknown entity", pkg: good, setup: func(e *d365test.Emulator) { e.AddEntity("Vendors") },
			wantErr: "Entity Customer groups does not exist in the target environment"},
		{name: "project exists", pkg: good, setup: func(e *d365test.Emulator) { e.AddProject("CG import") },
			wantErr: "exists and overwrite has not been specified"},
		{name: "project exists, overwrite", pkg: good, setup: func(e *d365test.Emulator) { e.AddProject("CG import") },
			args: map[string]any{"overwrite": true}},
		{name: "folder inside the zip", pkg: zipOf(t, nested), wantErr: "at the root"},
		{name: "data file missing", pkg: zipOf(t, noData), wantErr: "InputFilePath"},
		{name: "no PackageHeader", pkg: zipOf(t, map[string][]byte{"Manifest.xml": files["Manifest.xml"], "Customer groups.csv": nil}), wantErr: "PackageHeader.xml"},
		{name: "raw file instead of a package", pkg: []byte("a,b\r\n"), wantErr: "not a valid zip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := setup(t, d365test.Options{})
			if tc.setup != nil {
				tc.setup(v.e)
			}
			args := map[string]any{"packageUrl": v.upload("p.zip", tc.pkg), "definitionGroupId": "CG import",
				"executionId": "", "execute": true, "overwrite": false, "legalEntityId": "USMF"}
			for k, x := range tc.args {
				args[k] = x
			}
			a := v.action("ImportFromPackage", args)
			if tc.wantErr != "" {
				if a.status != 400 || !strings.Contains(odataError(t, a.body), tc.wantErr) {
					t.Fatalf("%d %s, want 400 with %q", a.status, a.body, tc.wantErr)
				}
				if n := len(v.e.Executions()); n != 0 {
					t.Errorf("a refused import created %d executions", n)
				}
				return
			}
			var id string
			if a.status != 200 || json.Unmarshal(a.value, &id) != nil || id == "" {
				t.Fatalf("%d %s", a.status, a.body)
			}
			if want, _ := args["executionId"].(string); want != "" && id != want {
				t.Errorf("execution ID %q, want the client's %q", id, want)
			}
			for i, want := range []string{"NotRun", "Executing", "Succeeded", "Succeeded"} {
				if i > 0 {
					v.e.Tick()
				}
				if got := v.str("GetExecutionSummaryStatus", map[string]string{"executionId": id}); got != want {
					t.Fatalf("after %d ticks: %s, want %s", i, got, want)
				}
			}
			x := v.e.Executions()[0]
			if x.ID != id || x.DefinitionGroupID != "CG import" || x.LegalEntityID != "USMF" || x.PackageBlob != "p.zip" ||
				len(x.Entities) != 1 || x.Entities[0] != "Customer groups" {
				t.Errorf("execution %+v", x)
			}
		})
	}
}

func TestImportFromPackageRules(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	v.e.Script(d365test.Rule{Entity: "Vendors", Outcome: d365test.Outcome{
		Status: "ProcessedWithErrors", Errors: []d365test.ExecutionError{{RecordId: "1", ErrorMessage: "bad"}}}})
	pkg := d365test.NewPackage("V", d365test.PackageEntity{Name: "Vendors", Data: []byte("x")})
	id := v.str("ImportFromPackage", map[string]any{"packageUrl": v.upload("v.zip", pkg), "definitionGroupId": "V",
		"executionId": "", "execute": true, "overwrite": false, "legalEntityId": "USMF"})
	v.e.RunToCompletion()
	if got := v.str("GetExecutionSummaryStatus", map[string]string{"executionId": id}); got != "PartiallySucceeded" {
		t.Errorf("status %s", got)
	}
	if got := v.str("GetExecutionErrors", map[string]string{"executionId": id}); !strings.Contains(got, `"ErrorMessage":"bad"`) {
		t.Errorf("errors %s", got)
	}
	// execute=false stages only.
	id2 := v.str("ImportFromPackage", map[string]any{"packageUrl": v.upload("v2.zip", pkg), "definitionGroupId": "V",
		"executionId": "", "execute": false, "overwrite": true, "legalEntityId": "USMF"})
	v.e.RunToCompletion()
	if got := v.str("GetExecutionSummaryStatus", map[string]string{"executionId": id2}); got != "NotRun" {
		t.Errorf("execute=false: %s", got)
	}
}

func TestImportFromPackageBadURL(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{TokenLifetime: 30 * 24 * time.Hour})
	u := v.upload("p.zip", d365test.NewPackage("G", d365test.PackageEntity{Name: "E"}))
	_, notUploaded := v.writeURL("never.zip")
	for _, tc := range []struct{ name, url string }{
		{"not a blob URL", "https://example.com/p.zip"},
		{"never uploaded", notUploaded},
		{"expired SAS", u},
	} {
		if tc.name == "expired SAS" {
			v.e.Advance(8 * 24 * time.Hour)
		}
		a := v.action("ImportFromPackage", map[string]any{"packageUrl": tc.url, "definitionGroupId": "G", "overwrite": true})
		if a.status != 400 {
			t.Errorf("%s: %d %s", tc.name, a.status, a.body)
		}
	}
}

func TestSlowImportStillCreatesExecution(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	u := v.upload("p.zip", d365test.NewPackage("G", d365test.PackageEntity{Name: "E"}))
	v.e.Inject(d365test.Fault{Endpoint: "ImportFromPackage", Count: 1, Delay: 200 * time.Second})
	body := `{"packageUrl":` + string(mustJSON(t, u)) + `,"definitionGroupId":"G","executionId":"G-1","execute":true,"overwrite":false,"legalEntityId":"USMF"}`
	err := v.abandon(func() bool { return len(v.e.Executions()) == 1 }, http.MethodPost,
		"/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.ImportFromPackage", body)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want the client's cancel", err)
	}
	// The emulator is not blocked by the slow answer, and the execution exists.
	if got := v.str("GetExecutionSummaryStatus", map[string]string{"executionId": "G-1"}); got != "NotRun" {
		t.Errorf("status %s", got)
	}
}

func TestExportToPackage(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{TokenLifetime: 30 * 24 * time.Hour})
	custom := d365test.NewPackage("Vendors export", d365test.PackageEntity{Name: "Vendors", Data: []byte("V1")})
	v.e.SetExportPackage("Vendors export", custom)
	for _, tc := range []struct {
		action, group string
		extra         map[string]any
		want          []byte
	}{
		{"ExportToPackage", "Customers export", nil, nil},
		{"ExportToPackageAsync", "Vendors export", nil, custom},
		{"ExportToPackagePreview", "Customers export", map[string]any{"count": 10}, nil},
	} {
		t.Run(tc.action, func(t *testing.T) {
			args := map[string]any{"definitionGroupId": tc.group, "packageName": "out", "executionId": "",
				"reExecute": false, "legalEntityId": "USMF"}
			for k, x := range tc.extra {
				args[k] = x
			}
			id := v.str(tc.action, args)
			if id == "" || id == "00000000-0000-0000-0000-000000000000" {
				t.Fatalf("execution ID %q", id)
			}
			if u := v.str("GetExportedPackageUrl", map[string]string{"executionId": id}); u != "" {
				t.Fatalf("URL before the export ran: %q", u)
			}
			v.e.Tick()
			if got := v.str("GetExecutionSummaryStatus", map[string]string{"executionId": id}); got != "Succeeded" {
				t.Fatalf("status %s", got)
			}
			u := v.str("GetExportedPackageUrl", map[string]string{"executionId": id})
			if !strings.HasPrefix(u, v.e.BlobURL()+"/") {
				t.Fatalf("URL %q", u)
			}
			r := v.do(context.Background(), http.MethodGet, u, nil)
			if r.StatusCode != 200 {
				t.Fatalf("GET %d", r.StatusCode)
			}
			if tc.want != nil && !bytes.Equal(r.body, tc.want) {
				t.Error("not the package set with SetExportPackage")
			}
			if _, ok := unzip(t, r.body)["Manifest.xml"]; !ok {
				t.Error("exported package has no Manifest.xml")
			}
		})
	}
	t.Run("URL expires with the blob", func(t *testing.T) {
		id := v.str("ExportToPackage", map[string]any{"definitionGroupId": "G", "packageName": "p"})
		v.e.Tick()
		u := v.str("GetExportedPackageUrl", map[string]string{"executionId": id})
		v.e.Advance(7 * 24 * time.Hour)
		if r := v.do(context.Background(), http.MethodGet, u, nil); r.StatusCode != 403 {
			t.Errorf("after 7 days: %d", r.StatusCode)
		}
	})
	t.Run("empty GUID fault", func(t *testing.T) {
		v.e.Inject(d365test.Fault{Endpoint: "ExportToPackage", Count: 1, EmptyExecutionID: true})
		before := len(v.e.Executions())
		if id := v.str("ExportToPackage", map[string]any{"definitionGroupId": "G", "packageName": "p"}); id != "00000000-0000-0000-0000-000000000000" {
			t.Errorf("id %q", id)
		}
		if len(v.e.Executions()) != before {
			t.Error("the faulted export started")
		}
	})
}

// TestPackageExportLifecycle: an export F&O runs for a while (Executing
// over several batch runs), ends PartiallySucceeded with execution errors
// and its package, whose URL comes only after a few empty answers; one
// that ends Failed stores no package; before an execution exists every
// execution action answers 400.
func TestPackageExportLifecycle(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{TokenLifetime: 30 * 24 * time.Hour})
	v.e.Script(d365test.Rule{ActivityID: "Slow export", Outcome: d365test.Outcome{
		ExecutionStatus: "PartiallySucceeded", RunTicks: 2, URLEmptyPolls: 2,
		Errors: []d365test.ExecutionError{{RecordId: "5", Field: "NAME", ErrorMessage: "too long"}}}})
	v.e.Script(d365test.Rule{ActivityID: "Broken export", Outcome: d365test.Outcome{Status: "PreProcessingError",
		Errors: []d365test.ExecutionError{{ErrorMessage: "The entity Vendors V2 is not in the data project"}}}})
	exec := func(id string) map[string]string { return map[string]string{"executionId": id} }

	if a := v.action("GetExecutionSummaryStatus", exec("Slow export-1")); a.status != 400 || !strings.Contains(string(a.body), "were not found") {
		t.Fatalf("before ExportToPackage: %d %s", a.status, a.body)
	}
	id := v.str("ExportToPackage", map[string]any{"definitionGroupId": "Slow export", "packageName": "p",
		"executionId": "Slow export-1", "reExecute": false, "legalEntityId": "USMF"})
	if id != "Slow export-1" {
		t.Fatalf("execution ID %q, want the one sent", id)
	}
	for tick := range 3 {
		if got := v.str("GetExecutionSummaryStatus", exec(id)); got != "Executing" {
			t.Fatalf("after %d ticks: %s, want Executing", tick, got)
		}
		if u := v.str("GetExportedPackageUrl", exec(id)); u != "" {
			t.Fatalf("URL while executing: %q", u)
		}
		if tick < 2 {
			v.e.Tick()
		}
	}
	v.e.Tick()
	if got := v.str("GetExecutionSummaryStatus", exec(id)); got != "PartiallySucceeded" {
		t.Fatalf("status %s", got)
	}
	if got := v.str("GetExecutionErrors", exec(id)); !strings.Contains(got, "too long") {
		t.Errorf("errors %s", got)
	}
	var u string
	for polls := 0; u == ""; polls++ {
		if polls > 2 {
			t.Fatal("no URL after URLEmptyPolls empty answers")
		}
		u = v.str("GetExportedPackageUrl", exec(id))
		if u != "" && polls != 2 {
			t.Fatalf("URL after %d empty answers, want 2", polls)
		}
	}
	if r := v.do(context.Background(), http.MethodGet, u, nil); r.StatusCode != 200 {
		t.Fatalf("GET %d", r.StatusCode)
	}

	failed := v.str("ExportToPackage", map[string]any{"definitionGroupId": "Broken export", "packageName": "p"})
	v.e.RunToCompletion()
	if got := v.str("GetExecutionSummaryStatus", exec(failed)); got != "Failed" {
		t.Fatalf("status %s", got)
	}
	if u := v.str("GetExportedPackageUrl", exec(failed)); u != "" {
		t.Errorf("a failed export has a package URL %q", u)
	}
	if got := v.str("GetExecutionErrors", exec(failed)); !strings.Contains(got, "not in the data project") {
		t.Errorf("errors %s", got)
	}
	if a := v.action("ExportToPackage", map[string]any{"definitionGroupId": "G", "packageName": "p", "executionId": id}); a.status != 400 {
		t.Errorf("an execution ID used before: %d %s", a.status, a.body)
	}
}

// TestExportedPackageIsDeletedAfterSevenDays: a package F&O exported is in
// blob storage for 7 days; after that even a fresh SAS URL finds no blob.
func TestExportedPackageIsDeletedAfterSevenDays(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{TokenLifetime: 30 * 24 * time.Hour})
	id := v.str("ExportToPackage", map[string]any{"definitionGroupId": "G", "packageName": "p"})
	v.e.Tick()
	exec := map[string]string{"executionId": id}
	v.e.Advance(7*24*time.Hour - time.Minute)
	if r := v.do(context.Background(), http.MethodGet, v.str("GetExportedPackageUrl", exec), nil); r.StatusCode != 200 {
		t.Fatalf("on day 7: %d", r.StatusCode)
	}
	v.e.Advance(time.Minute)
	r := v.do(context.Background(), http.MethodGet, v.str("GetExportedPackageUrl", exec), nil)
	if r.StatusCode != 404 || !bytes.Contains(r.body, []byte("BlobNotFound")) {
		t.Fatalf("after 7 days: %d %s", r.StatusCode, r.body)
	}

	keep := setup(t, d365test.Options{TokenLifetime: 30 * 24 * time.Hour, BlobRetention: -1, SASLifetime: 30 * 24 * time.Hour})
	id = keep.str("ExportToPackage", map[string]any{"definitionGroupId": "G", "packageName": "p"})
	keep.e.Tick()
	keep.e.Advance(20 * 24 * time.Hour)
	if r := keep.do(context.Background(), http.MethodGet, keep.str("GetExportedPackageUrl", map[string]string{"executionId": id}), nil); r.StatusCode != 200 {
		t.Errorf("with BlobRetention -1 after 20 days: %d", r.StatusCode)
	}
}
