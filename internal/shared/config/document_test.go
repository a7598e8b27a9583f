package config_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/internal/shared/config"
)

const act = "5d3c1e0a-7b64-4e7a-9b2f-8f6b3a521c0d"

func TestParse(t *testing.T) {
	t.Parallel()
	good := `{"routes":[{"route":"customers","activityId":"` + act + `","entity":"Customer groups"}],
	  "jobs":[{"job":"groups","schedule":"cron(0 6 * * ? *)","timezone":"Europe/Amsterdam","activityId":"` + act + `","prefix":"outbound/groups/"},
	          {"job":"vendors","schedule":"rate(1 hour)","enabled":false,"activityId":"` + act + `"}]}`
	d, err := config.Parse([]byte(good), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := d.Routes.Lookup("customers"); !ok || r.Entity != "Customer groups" {
		t.Errorf("route %+v %v", r, ok)
	}
	if len(d.Jobs) != 2 || d.Jobs[0].Timezone != "Europe/Amsterdam" || !d.Jobs[0].Enabled || d.Jobs[1].Enabled || d.Jobs[1].Timezone != "UTC" {
		t.Errorf("jobs %+v", d.Jobs)
	}
	var in map[string]any
	if err := json.Unmarshal(d.Jobs[0].Input, &in); err != nil {
		t.Fatal(err)
	}
	if in["job"] != "groups" || in["prefix"] != "outbound/groups/" || in["schedule"] != nil || in["timezone"] != nil {
		t.Errorf("the dequeue function's input %v: the job's fields without its schedule", in)
	}
	empty, err := config.Parse([]byte(`{"routes":[],"jobs":[]}`), nil)
	if err != nil || empty.Routes.Len() != 0 || !empty.Routes.Loaded() {
		t.Errorf("a document without routes (an export-only stack): %v", err)
	}

	job := func(extra string) string {
		return `{"routes":[],"jobs":[{"job":"groups","activityId":"` + act + `"` + extra + `}]}`
	}
	for _, tc := range []struct{ doc, want string }{
		{``, "not a configuration document"},
		{`[]`, "not a configuration document"},
		{`{"routes":[],"jobs":[]} {}`, "more than one"},
		{`{"routes":[],"jobs":[],"exportJobs":[]}`, `unknown field "exportJobs"`},
		{`{"routes":[{"route":"a","activityId":"x","entity":"E"}]}`, `routes[0] ("a"): activityId: "x" is not a GUID`},
		{`{"routes":[{"route":"a","activityId":"` + act + `","entity":"E"},{"route":"a","activityId":"` + act + `","entity":"E"}]}`,
			`routes[1] ("a"): route: "a" is configured twice`},
		{job(`,"schedule":"rate(1 hour)"`) + ``, ""},
		{job(``), `jobs[0] ("groups"): schedule:`},
		{job(`,"schedule":"rate(5 minute)"`), `write rate(5 minutes)`},
		{job(`,"schedule":"rate(1 hours)"`), `write rate(1 hour)`},
		{job(`,"schedule":"rate(0 minutes)"`), "whole number from 1"},
		{job(`,"schedule":"cron(0 6 * * *)"`), "six fields"},
		{job(`,"schedule":"cron(0 6 * * MON *)"`), `exactly one of day-of-month and day-of-week`},
		{job(`,"schedule":"at(2026-01-01T00:00:00)"`), "rate(<n> <unit>) or cron("},
		{job(`,"schedule":"rate(1 hour)","timezone":"Mars/Olympus"`), `timezone: "Mars/Olympus"`},
		{job(`,"schedule":"rate(1 hour)","enabled":"yes"`), "enabled: not true or false"},
		{`{"jobs":[{"job":"a b","schedule":"rate(1 hour)"}]}`, `job: "a b" must be`},
		{`{"jobs":[{"job":"a","schedule":"rate(1 hour)"},{"job":"a","schedule":"rate(2 hours)"}]}`, `jobs[1] ("a"): job: "a" is configured twice`},
	} {
		_, err := config.Parse([]byte(tc.doc), nil)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.doc, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.doc, err, tc.want)
		}
	}

	// The job check sees the input and its error is the job's.
	_, err = config.Parse([]byte(job(`,"schedule":"rate(1 hour)"`)), func(in json.RawMessage) error {
		return errors.New("prefix: must be under outbound/")
	})
	if err == nil || err.Error() != `jobs[0] ("groups"): prefix: must be under outbound/` {
		t.Errorf("job check error %v", err)
	}
}

// TestParseAtScale: a thousand routes and two hundred jobs, each found.
func TestParseAtScale(t *testing.T) {
	t.Parallel()
	doc := config.Sample(1000, 200)
	d, err := config.Parse(doc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Routes.Len() != 1000 || len(d.Jobs) != 200 {
		t.Fatalf("%d routes, %d jobs", d.Routes.Len(), len(d.Jobs))
	}
	for i := range 1000 {
		if _, ok := d.Routes.Lookup(fmt.Sprintf("route-%04d", i)); !ok {
			t.Fatalf("route-%04d not found", i)
		}
	}
}
