package dequeue_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/internal/ops/configdoc"
)

const testActivity = "5b6c2f1e-3a4d-4e8f-9a0b-1c2d3e4f5a6b"

func TestDecodeInput(t *testing.T) {
	t.Parallel()
	ok := []struct {
		name string
		raw  string
		want dequeue.Input
	}{
		{"minimal", `{"job":"customer-groups","activityId":"` + testActivity + `"}`,
			dequeue.Input{Job: "customer-groups", ActivityID: testActivity, Prefix: "outbound/customer-groups/"}},
		{"all fields", `{"job":"cg","activityId":"{` + strings.ToUpper(testActivity) + `}","prefix":"outbound/cg","unpack":true,"ackMissingFile":true}`,
			dequeue.Input{Job: "cg", ActivityID: strings.ToUpper(testActivity), Prefix: "outbound/cg/", Unpack: true, AckMissingFile: true}},
		{"blank prefix takes the default", `{"job":"a.b_c","activityId":"` + testActivity + `","prefix":"  "}`,
			dequeue.Input{Job: "a.b_c", ActivityID: testActivity, Prefix: "outbound/a.b_c/"}},
		{"whitespace around", " \n" + `{"job":" cg ","activityId":" ` + testActivity + ` "}` + "\n",
			dequeue.Input{Job: "cg", ActivityID: testActivity, Prefix: "outbound/cg/"}},
		{"recurring kind named", `{"job":"cg","kind":"Recurring","activityId":"` + testActivity + `"}`,
			dequeue.Input{Job: "cg", Kind: "recurring", ActivityID: testActivity, Prefix: "outbound/cg/"}},
		{"data project, minimal", `{"job":"vendors","kind":"dataProject","definitionGroupId":" Vendors export ","legalEntityId":"USMF"}`,
			dequeue.Input{Job: "vendors", Kind: "dataProject", DefinitionGroupID: "Vendors export", LegalEntityID: "USMF",
				PackageName: "vendors", Prefix: "outbound/vendors/"}},
		{"data project, all fields", `{"job":"v","kind":"DATAPROJECT","definitionGroupId":"Vendors export","legalEntityId":"usmf",` +
			`"packageName":"Vendor master.zip","reExecute":true,"unpack":true,"prefix":"outbound/erp/v"}`,
			dequeue.Input{Job: "v", Kind: "dataProject", DefinitionGroupID: "Vendors export", LegalEntityID: "usmf",
				PackageName: "Vendor master.zip", ReExecute: true, Unpack: true, Prefix: "outbound/erp/v/"}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := dequeue.DecodeInput([]byte(tc.raw), "outbound/")
			if err != nil {
				t.Fatalf("DecodeInput: %v", err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}

	bad := []struct {
		name, raw, field, mention string
	}{
		{"empty", ``, "", "empty"},
		{"null", `null`, "", "empty"},
		{"bad JSON", `{"job":"cg",`, "", "not valid JSON"},
		{"syntax error", `{"job" "cg"}`, "", "not valid JSON"},
		{"array", `[{"job":"cg"}]`, "", "JSON object"},
		{"string", `"cg"`, "", "JSON object"},
		{"trailing data", `{"job":"cg","activityId":"` + testActivity + `"} {}`, "", "after the JSON object"},
		{"missing job", `{"activityId":"` + testActivity + `"}`, "job", "required"},
		{"job not a string", `{"job":5,"activityId":"` + testActivity + `"}`, "job", "want a string"},
		{"job with slash", `{"job":"a/b","activityId":"` + testActivity + `"}`, "job", "letters"},
		{"job dot-dot", `{"job":"..","activityId":"` + testActivity + `"}`, "job", "letters"},
		{"missing activityId", `{"job":"cg"}`, "activityId", "required"},
		{"activityId not a GUID", `{"job":"cg","activityId":"customer-groups"}`, "activityId", "not a GUID"},
		{"activityId number", `{"job":"cg","activityId":42}`, "activityId", "want a string"},
		{"unpack not a bool", `{"job":"cg","activityId":"` + testActivity + `","unpack":"yes"}`, "unpack", "true or false"},
		{"ackMissingFile not a bool", `{"job":"cg","activityId":"` + testActivity + `","ackMissingFile":1}`, "ackMissingFile", "true or false"},
		{"prefix absolute", `{"job":"cg","activityId":"` + testActivity + `","prefix":"/out/"}`, "prefix", "must not start"},
		{"prefix dot-dot", `{"job":"cg","activityId":"` + testActivity + `","prefix":"out/../x/"}`, "prefix", "'..'"},
		{"prefix double slash", `{"job":"cg","activityId":"` + testActivity + `","prefix":"out//x/"}`, "prefix", "empty"},
		{"prefix control char", `{"job":"cg","activityId":"` + testActivity + `","prefix":"out\u0001/"}`, "prefix", "control"},
		{"unknown field", `{"job":"cg","activityId":"` + testActivity + `","entity":"x"}`, "entity", "unknown field"},
		{"unknown kind", `{"job":"cg","kind":"package","activityId":"` + testActivity + `"}`, "kind", `"dataProject"`},
		{"data project field on a recurring job", `{"job":"cg","activityId":"` + testActivity + `","definitionGroupId":"G"}`,
			"definitionGroupId", `only a job of kind "dataProject"`},
		{"reExecute false on a recurring job", `{"job":"cg","activityId":"` + testActivity + `","reExecute":false}`,
			"reExecute", `only a job of kind "dataProject"`},
		{"activityId on a data project job", `{"job":"v","kind":"dataProject","activityId":"` + testActivity +
			`","definitionGroupId":"G","legalEntityId":"USMF"}`, "activityId", "has none"},
		{"ackMissingFile false on a data project job", `{"job":"v","kind":"dataProject","ackMissingFile":false,` +
			`"definitionGroupId":"G","legalEntityId":"USMF"}`, "ackMissingFile", "has none"},
		{"another job's field spelt in another case", `{"job":"v","kind":"dataProject","AckMissingFile":false,` +
			`"definitionGroupId":"G","legalEntityId":"USMF"}`, "ackMissingFile", "has none"},
		{"data project field in capitals on a recurring job", `{"job":"cg","activityId":"` + testActivity + `","DEFINITIONGROUPID":""}`,
			"definitionGroupId", `only a job of kind "dataProject"`},
		{"missing definitionGroupId", `{"job":"v","kind":"dataProject","legalEntityId":"USMF"}`, "definitionGroupId", "required"},
		{"blank definitionGroupId", `{"job":"v","kind":"dataProject","definitionGroupId":" ","legalEntityId":"USMF"}`, "definitionGroupId", "required"},
		{"missing legalEntityId", `{"job":"v","kind":"dataProject","definitionGroupId":"G"}`, "legalEntityId", "required"},
		{"legalEntityId not a string", `{"job":"v","kind":"dataProject","definitionGroupId":"G","legalEntityId":1}`, "legalEntityId", "want a string"},
		{"reExecute not a bool", `{"job":"v","kind":"dataProject","definitionGroupId":"G","legalEntityId":"USMF","reExecute":"no"}`,
			"reExecute", "true or false"},
		{"packageName with a slash", `{"job":"v","kind":"dataProject","definitionGroupId":"G","legalEntityId":"USMF","packageName":"a/b"}`,
			"packageName", "no '/'"},
		{"packageName dot-dot", `{"job":"v","kind":"dataProject","definitionGroupId":"G","legalEntityId":"USMF","packageName":".."}`,
			"packageName", "'..'"},
		{"definitionGroupId control char", `{"job":"v","kind":"dataProject","definitionGroupId":"G\u0007","legalEntityId":"USMF"}`,
			"definitionGroupId", "control"},
		{"data project prefix outside outbound", `{"job":"v","kind":"dataProject","definitionGroupId":"G","legalEntityId":"USMF","prefix":"inbound/v/"}`,
			"prefix", "not under OUTBOUND_PREFIX"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := dequeue.DecodeInput([]byte(tc.raw), "outbound/")
			var ie *dequeue.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v, want an *InputError", err)
			}
			if ie.Field != tc.field {
				t.Errorf("Field = %q, want %q (%v)", ie.Field, tc.field, err)
			}
			if tc.field != "" && !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name the field %q", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

func FuzzDecodeInput(f *testing.F) {
	for _, s := range []string{
		`{"job":"customer-groups","activityId":"` + testActivity + `","prefix":"outbound/customer-groups/","unpack":false,"ackMissingFile":false}`,
		`{"job":"cg","activityId":"{` + testActivity + `}","unpack":true}`,
		`{"job":"cg","activityId":"` + testActivity + `","prefix":"a/b"}`,
		`{"job":"cg"}`, `{}`, `null`, `[]`, `{"job":`, `{"job":"a/../b","activityId":"x"}`,
		`{"job":"cg","activityId":"` + testActivity + `","prefix":"\u0000"}`,
		`{"job":"cg","activityId":"` + testActivity + `","prefix":"` + strings.Repeat("p", 512) + `"}`,
		`{"job":"cg","activityId":"` + testActivity + `","prefix":"a/./b//c/../"}`,
		`{"job":"cg","activityId":"` + testActivity + `","prefix":"a\u0085b/"}`,
		`{"job":"cg","job":"../x","activityId":"` + testActivity + `"}`,
		`{"JOB":"cg","ACTIVITYID":"` + testActivity + `"}`,
		`{"job":"cg","activityId":"` + testActivity + `","unpack":"true"}`,
		`{"job":"cg","activityId":"` + testActivity + `","extra":1}`,
		`{"job":"cg","activityId":"` + testActivity + `"}{"job":"other"}`,
		`{"job":"cg","activityId":"%7B` + testActivity + `%7D"}`,
		`{"job":"` + strings.Repeat("j", 129) + `","activityId":"` + testActivity + `"}`,
		`{"version":"0","id":"x","detail-type":"Scheduled Event","source":"aws.events","detail":{}}`,
		`{"job":"v","kind":"dataProject","definitionGroupId":"Vendors export","legalEntityId":"USMF","packageName":"p","reExecute":true}`,
		`{"job":"v","kind":"dataProject","definitionGroupId":"G","legalEntityId":"USMF","activityId":""}`,
		`{"job":"v","kind":"dataproject","definitionGroupId":"G\u0000","legalEntityId":"USMF","packageName":"a\\b"}`,
		`{"job":"v","kind":"recurring","activityId":"` + testActivity + `","packageName":""}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		in, err := dequeue.DecodeInput(raw, "outbound/")
		if err != nil {
			var ie *dequeue.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an *InputError", err)
			}
			return
		}
		if in.Job == "" || strings.ContainsAny(in.Job, "/\\") || in.Job == "." || in.Job == ".." {
			t.Fatalf("accepted job %q", in.Job)
		}
		if !strings.HasSuffix(in.Prefix, "/") || strings.HasPrefix(in.Prefix, "/") ||
			strings.Contains(in.Prefix, "//") || strings.Contains("/"+in.Prefix, "/../") {
			t.Fatalf("accepted prefix %q", in.Prefix)
		}
		if in.IsPackage() {
			if in.ActivityID != "" || in.AckMissingFile || in.DefinitionGroupID == "" || in.LegalEntityID == "" ||
				in.PackageName == "" || strings.ContainsAny(in.PackageName, "/\\") {
				t.Fatalf("accepted data project job %+v", in)
			}
		} else if len(in.ActivityID) != 36 || in.DefinitionGroupID != "" || in.PackageName != "" || in.LegalEntityID != "" || in.ReExecute {
			t.Fatalf("accepted recurring job %+v", in)
		}
		// A decoded input survives a round trip unchanged.
		again, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		back, err := dequeue.DecodeInput(again, "outbound/")
		if err != nil || back != in {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", in, again, back, err)
		}
	})
}

// TestConfigValidatesPackageJobs: the configuration document checks its
// jobs with this decoder (s3fno config validate, apply), so a package job
// it refuses is named there, with the field and the reason.
func TestConfigValidatesPackageJobs(t *testing.T) {
	t.Parallel()
	m := &configdoc.Manager{}
	good := `{"routes":[],"jobs":[{"job":"vendors","schedule":"cron(0 6 * * ? *)","kind":"dataProject",` +
		`"definitionGroupId":"Vendors export","legalEntityId":"USMF","unpack":true}]}`
	doc, err := m.Validate([]byte(good))
	if err != nil {
		t.Fatalf("a good package job: %v", err)
	}
	if in, err := dequeue.DecodeInput(doc.Jobs[0].Input, ""); err != nil || !in.IsPackage() || in.PackageName != "vendors" {
		t.Errorf("the schedule's input %s decodes to %+v, %v", doc.Jobs[0].Input, in, err)
	}
	for _, tc := range []struct{ job, want string }{
		{`"kind":"dataProject","legalEntityId":"USMF"`, `jobs[0] ("vendors"): input: definitionGroupId: required`},
		{`"kind":"dataProject","definitionGroupId":"G","legalEntityId":"USMF","activityId":"` + testActivity + `"`,
			`jobs[0] ("vendors"): input: activityId: a job of kind "dataProject" has none`},
		{`"kind":"dataProject","definitionGroupId":"G","legalEntityId":"USMF","ackMissingFile":true`,
			`jobs[0] ("vendors"): input: ackMissingFile: a job of kind "dataProject" has none`},
		{`"activityId":"` + testActivity + `","legalEntityId":"USMF"`, `jobs[0] ("vendors"): input: legalEntityId: only a job of kind "dataProject"`},
	} {
		_, err := m.Validate([]byte(`{"routes":[],"jobs":[{"job":"vendors","schedule":"rate(1 hour)",` + tc.job + `}]}`))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.job, err, tc.want)
		}
	}
}

// TestFailedPrefix: FAILED_PREFIX defaults to failed/, takes an override
// (with its "/"), and is refused when it and another prefix contain each
// other, naming both variables.
func TestFailedPrefix(t *testing.T) {
	for _, tc := range []struct{ failed, outbound, want, err string }{
		{"", "", "failed/", ""},
		{"errors", "", "errors/", ""},
		{"outbound/failed/", "", "", "FAILED_PREFIX \"outbound/failed/\" and OUTBOUND_PREFIX"},
		{"_state/", "", "", "FAILED_PREFIX \"_state/\" and STATE_PREFIX"},
		{"failed/", "failed/out/", "", "and OUTBOUND_PREFIX \"failed/out/\""},
	} {
		env := map[string]string{"BUCKET": "b", "FAILED_PREFIX": tc.failed, "OUTBOUND_PREFIX": tc.outbound}
		c, err := dequeue.ConfigFromEnv(func(k string) string { return env[k] })
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("FAILED_PREFIX %q, OUTBOUND_PREFIX %q: err = %v, want one saying %q", tc.failed, tc.outbound, err, tc.err)
		case tc.err == "" && (err != nil || c.FailedPrefix != tc.want):
			t.Errorf("FAILED_PREFIX %q: %q, %v; want %q", tc.failed, c.FailedPrefix, err, tc.want)
		}
	}
}
