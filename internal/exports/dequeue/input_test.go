package dequeue_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
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
		if len(in.ActivityID) != 36 {
			t.Fatalf("accepted activityId %q", in.ActivityID)
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
