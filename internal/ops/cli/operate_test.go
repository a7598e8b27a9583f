package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"

	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/ops/cli"
	"github.com/fno-bridge/s3-fno/internal/ops/doctor"
	"github.com/fno-bridge/s3-fno/internal/ops/routectl"
	"github.com/fno-bridge/s3-fno/internal/ops/status"
	"github.com/fno-bridge/s3-fno/internal/ops/where"
	"github.com/fno-bridge/s3-fno/internal/shared/config"
)

// TestPauseStatusResume: pause holds a route's files while they arrive,
// status shows them waiting and the route paused, resume sends them in
// their order; the other route goes on meanwhile.
func TestPauseStatusResume(t *testing.T) {
	r := newRig(t, pipelinetest.Routes, pipelinetest.FIFO{}, nil)
	if code, out, errOut := r.run("pause", "customers", "--reason", "month-end close"); code != 0 || !strings.Contains(out, "paused") {
		t.Fatalf("pause: %d %s %s", code, out, errOut)
	}
	// A second pause changes nothing and tells of the first.
	var again routectl.Result
	if code := r.runJSON(&again, "pause", "customers", "--reason", "another"); code != 0 || again.Changed || !again.Paused ||
		again.Marker == nil || again.Marker.Reason != "month-end close" || again.Marker.At.IsZero() {
		t.Errorf("pause again: exit %d, %+v", code, again)
	}
	for _, k := range []string{"inbound/customers/1-first.csv", "inbound/customers/2-second.csv", "inbound/vendors/v.csv"} {
		r.drop(k, "row\n")
	}
	r.enqueueAll()
	if got := len(r.emu.Messages()); got != 1 {
		t.Fatalf("%d files reached F&O while customers was paused, want vendors' one", got)
	}
	var rep status.Report
	if code := r.runJSON(&rep, "status"); code != 0 {
		t.Fatalf("status: exit %d", code)
	}
	i := slices.IndexFunc(rep.Routes, func(rv status.RouteView) bool { return rv.Route == "customers" })
	if i < 0 || rep.Routes[i].Paused == nil || rep.Routes[i].Paused.Reason != "month-end close" || rep.Routes[i].Waiting != 2 {
		t.Fatalf("status of customers: %+v", rep.Routes)
	}
	if code, out, _ := r.run("status"); code != 0 || !strings.Contains(out, "month-end close") {
		t.Errorf("status table: %d\n%s", code, out)
	}
	if e := whereOne(t, r, "1-first.csv"); e.Stage != where.Inbound || !strings.Contains(e.Note, "route customers is paused") ||
		!strings.Contains(e.Note, "month-end close") {
		t.Errorf("where of a paused route's file: %+v", e)
	}
	if code, out, errOut := r.run("resume", "customers"); code != 0 || !strings.Contains(out, "2 waiting") {
		t.Fatalf("resume: %d %s %s", code, out, errOut)
	}
	r.enqueueAll()
	var sent []string
	for _, m := range r.emu.Messages() {
		sent = append(sent, m.ExternalID)
	}
	if !slices.Equal(sent, []string{"inbound/vendors/v.csv", "inbound/customers/1-first.csv", "inbound/customers/2-second.csv"}) {
		t.Errorf("F&O got %v", sent)
	}
	if code, _, errOut := r.run("pause", "nosuchroute"); code != 2 || !strings.Contains(errOut, `route "nosuchroute" is not configured`) {
		t.Errorf("pause of an unknown route: %d %s", code, errOut)
	}
	// A resume whose release request fails says the files still wait.
	if code, _, errOut := r.run("pause", "customers"); code != 0 {
		t.Fatalf("pause: %d %s", code, errOut)
	}
	gone := r.w.Queue[:len(r.w.Queue)-len(".fifo")] + "-gone.fifo"
	if code, out, errOut := r.run("resume", "customers", "--import-queue", gone); code != cli.ExitProblems ||
		!strings.Contains(out, "no release pass was asked for") || !strings.Contains(errOut, "resume again") {
		t.Errorf("resume without its pass: exit %d\n%s%s", code, out, errOut)
	}
}

// TestConfigCommands: validate names what is wrong (exit 1); apply stores
// the document and makes one schedule per job in the group; show prints
// it; status lists the jobs; jobs run makes a one-off schedule that
// deletes itself; diff of the same document changes nothing.
func TestConfigCommands(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, pipelinetest.Routes, pipelinetest.FIFO{}, nil)
	r.env["ROUTES"] = "" // the functions go by the document
	sc := scheduler.NewFromConfig(mototest.Config(t))
	group := mototest.Name("exports")
	if _, err := sc.CreateScheduleGroup(ctx, &scheduler.CreateScheduleGroupInput{Name: &group}); err != nil {
		t.Fatal(err)
	}
	r.env["EXPORT_SCHEDULE_GROUP"] = group
	r.env["EXPORT_SCHEDULE_ROLE_ARN"] = "arn:aws:iam::123456789012:role/s3-fno-ExportScheduleRole-1"
	r.saveEnv()
	dequeue := "--function=dequeue=arn:aws:lambda:us-east-1:123456789012:function:s3-fno-DequeueFunction-1"
	dir := t.TempDir()
	write := func(name, doc string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad.json", `{"routes":[{"route":"customers","activityId":"nope","entity":"E"}],"jobs":[]}`)
	if code, _, errOut := r.run("config", "validate", bad); code != 1 || !strings.Contains(errOut, `routes[0] ("customers"): activityId: "nope" is not a GUID`) {
		t.Errorf("validate a bad document: %d %s", code, errOut)
	}
	if code, _, _ := r.run("config", "apply", bad, dequeue); code != 1 {
		t.Errorf("apply a bad document: exit %d", code)
	}
	good := write("good.json", `{"routes":[{"route":"customers","activityId":"`+pipelinetest.ActCustomers+`","entity":"Customer groups"}],
	  "jobs":[{"job":"groups","schedule":"rate(1 hour)","activityId":"`+pipelinetest.ActCustomers+`"}]}`)
	if code, out, errOut := r.run("config", "validate", good); code != 0 || !strings.Contains(out, "1 route(s), 1 export job(s)") {
		t.Errorf("validate: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := r.run("config", "apply", good, dequeue); code != 0 || !strings.Contains(out, "create groups") {
		t.Fatalf("apply: %d %s %s", code, out, errOut)
	}
	code, out, _ := r.run("config", "show")
	if code != 0 || !strings.Contains(out, `"job":"groups"`) || !strings.HasPrefix(out, "# version ") {
		t.Errorf("show: %d %s", code, out)
	}
	// The README's edit cycle: what show printed, saved, validates and
	// applies while its version is current, and is refused once it is not.
	shown := write("shown.json", out)
	if code, out, errOut := r.run("config", "validate", shown); code != 0 {
		t.Errorf("validate the shown document: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := r.run("config", "apply", shown, dequeue); code != 0 || !strings.Contains(out, "already holds this document") {
		t.Errorf("apply the shown document: %d %s %s", code, out, errOut)
	}
	moved := write("moved.json", strings.Replace(mustRead(t, good), "rate(1 hour)", "rate(2 hours)", 1))
	if code, out, errOut := r.run("config", "apply", moved, dequeue); code != 0 {
		t.Fatalf("apply a change: %d %s %s", code, out, errOut)
	}
	if code, out, _ := r.run("config", "diff", shown, dequeue); code != 0 || !strings.Contains(out, "has changed since") {
		t.Errorf("diff of a file shown from an older version: %d %s", code, out)
	}
	if code, _, errOut := r.run("config", "apply", shown, dequeue); code != 1 || !strings.Contains(errOut, "no longer the version this file was shown from") {
		t.Errorf("apply of a file shown from an older version: %d %s", code, errOut)
	}
	if code, out, errOut := r.run("config", "apply", good, dequeue); code != 0 {
		t.Fatalf("apply the document again: %d %s %s", code, out, errOut)
	}
	if code, out, _ := r.run("config", "diff", good, dequeue); code != 0 || !strings.Contains(out, "no route or job changes") || !strings.Contains(out, "keep groups") {
		t.Errorf("diff of the stored document: %d %s", code, out)
	}
	var rep status.Report
	if code := r.runJSON(&rep, "status"); code != 0 || len(rep.Jobs) != 1 || rep.Jobs[0].Job != "groups" || len(rep.Routes) != 1 {
		t.Errorf("status: %d %+v", code, rep)
	}
	if code, out, errOut := r.run("jobs", "run", "groups", dequeue); code != 0 || !strings.Contains(out, "groups.now") {
		t.Fatalf("jobs run: %d %s %s", code, out, errOut)
	}
	list, err := sc.ListSchedules(ctx, &scheduler.ListSchedulesInput{GroupName: &group})
	if err != nil {
		t.Fatal(err)
	}
	var once *scheduler.GetScheduleOutput
	for _, s := range list.Schedules {
		if config.IsRunNow(aws.ToString(s.Name)) {
			once, _ = sc.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: s.Name, GroupName: &group})
		}
	}
	if once == nil || !strings.HasPrefix(aws.ToString(once.ScheduleExpression), "at(") || once.ActionAfterCompletion != "DELETE" ||
		!strings.Contains(aws.ToString(once.Target.Input), `"job":"groups"`) {
		t.Errorf("the one-off run's schedule: %+v", once)
	}
	// A later apply leaves a pending one-off run alone.
	if code, out, _ := r.run("config", "apply", good, dequeue); code != 0 || strings.Contains(out, "delete") {
		t.Errorf("apply with a one-off run pending: %d %s", code, out)
	}
	if code, _, errOut := r.run("jobs", "run", "nosuchjob", dequeue); code != 1 || !strings.Contains(errOut, `no job "nosuchjob"`) {
		t.Errorf("jobs run of an unknown job: %d %s", code, errOut)
	}
	// Someone deletes a job's schedule by hand: doctor says so.
	if _, err := sc.DeleteSchedule(ctx, &scheduler.DeleteScheduleInput{Name: aws.String("groups"), GroupName: &group}); err != nil {
		t.Fatal(err)
	}
	var dr doctor.Report
	r.runJSON(&dr, "doctor", dequeue)
	i := slices.IndexFunc(dr.Checks, func(c doctor.Check) bool { return c.Name == "export schedules" })
	if i < 0 || dr.Checks[i].Result != doctor.Fail || !strings.Contains(dr.Checks[i].Detail, "groups: create") {
		t.Errorf("doctor with a schedule gone: %+v", dr.Checks)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
