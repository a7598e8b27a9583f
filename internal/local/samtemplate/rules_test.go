package samtemplate_test

// The project's rules for template.yaml, checked on the real file. Each test
// names the rule it holds; each fails if the template stops keeping it.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/internal/local/samtemplate"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
)

const templatePath = "../../../template.yaml"

func loadTemplate(t *testing.T) *samtemplate.Template {
	t.Helper()
	tpl, err := samtemplate.Load(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

// fnoValues are the parameters without defaults, as a deploy gives them.
var fnoValues = samtemplate.Values{Parameters: map[string]string{
	"FnoBaseUrl":   "https://contoso.operations.dynamics.com",
	"FnoTenantId":  "contoso.onmicrosoft.com",
	"FnoClientId":  "00000000-0000-0000-0000-000000000001",
	"FnoSecretArn": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:s3-fno/fno-AbCdEf",
}}

func with(base samtemplate.Values, kv ...string) samtemplate.Values {
	p := map[string]string{}
	for k, v := range base.Parameters {
		p[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	base.Parameters = p
	return base
}

func mustEval(t *testing.T, tpl *samtemplate.Template, v any, vals samtemplate.Values) any {
	t.Helper()
	out, err := tpl.Eval(v, vals)
	if err != nil {
		t.Fatalf("eval %v: %v", v, err)
	}
	return out
}

func mustEvalString(t *testing.T, tpl *samtemplate.Template, v any, vals samtemplate.Values) string {
	t.Helper()
	out, err := tpl.EvalString(v, vals)
	if err != nil {
		t.Fatalf("eval %v: %v", v, err)
	}
	return out
}

func mustFunction(t *testing.T, tpl *samtemplate.Template, id string, vals samtemplate.Values) samtemplate.Function {
	t.Helper()
	f, err := tpl.Function(id, vals)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// parameterValues lists every value a Number parameter may take that matters
// for a bound: its AllowedValues, else its MinValue, default and MaxValue.
func parameterValues(t *testing.T, tpl *samtemplate.Template, name string) []string {
	t.Helper()
	p, ok := tpl.Parameters[name]
	if !ok {
		t.Fatalf("no parameter %s", name)
	}
	if len(p.AllowedValues) > 0 {
		return p.AllowedValues
	}
	var vs []string
	if p.MinValue != nil {
		vs = append(vs, fmt.Sprint(*p.MinValue))
	}
	if p.HasDefault {
		vs = append(vs, p.Default)
	}
	if p.MaxValue != nil {
		vs = append(vs, fmt.Sprint(*p.MaxValue))
	} else {
		t.Errorf("parameter %s is unbounded (no MaxValue or AllowedValues)", name)
	}
	return vs
}

// refName returns X for {"Ref": X}.
func refName(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["Ref"].(string)
	return s
}

// getAtt returns "X.Y" for {"Fn::GetAtt": [X, Y]}.
func getAtt(v any) string {
	m, _ := v.(map[string]any)
	a, _ := m["Fn::GetAtt"].([]any)
	if len(a) != 2 {
		return ""
	}
	return fmt.Sprintf("%v.%v", a[0], a[1])
}

func TestRule_FIFOQueuesAreNamedAndFlagged(t *testing.T) {
	tpl := loadTemplate(t)
	fifo := map[string]bool{}
	for _, id := range tpl.ResourcesOfType(samtemplate.TypeQueue) {
		props := tpl.Resources[id].Properties
		isFIFO := mustEvalString(t, tpl, props["FifoQueue"], fnoValues) == "true"
		name := ""
		if props["QueueName"] != nil {
			name = mustEvalString(t, tpl, props["QueueName"], fnoValues)
		}
		if isFIFO != strings.HasSuffix(name, ".fifo") {
			t.Errorf("%s: FifoQueue %v but QueueName %q (a FIFO queue's name must end in .fifo, and only a FIFO queue's)", id, isFIFO, name)
		}
		if len(name) > 80 {
			t.Errorf("%s: QueueName %q is longer than SQS's 80 characters", id, name)
		}
		fifo[id] = isFIFO
	}
	for _, id := range []string{"ImportQueue", "ImportDLQ"} {
		if !fifo[id] {
			t.Errorf("%s must be a FIFO queue", id)
		}
	}
	for _, id := range []string{"ArrivalsQueue", "ArrivalsDLQ"} {
		if _, ok := fifo[id]; !ok || fifo[id] {
			t.Errorf("%s must be a standard queue (S3 cannot notify a FIFO queue)", id)
		}
	}
	if v := mustEvalString(t, tpl, tpl.Resources["ImportQueue"].Properties["ContentBasedDeduplication"], fnoValues); v != "false" {
		t.Errorf("ImportQueue ContentBasedDeduplication = %s; the router sets explicit deduplication IDs", v)
	}
}

func TestRule_QueuesRedriveToDeadLetterQueues(t *testing.T) {
	tpl := loadTemplate(t)
	receives := map[string]string{"ImportQueue": "ImportMaxReceiveCount", "ArrivalsQueue": "MaxReceiveCount"}
	for queue, dlq := range map[string]string{"ImportQueue": "ImportDLQ", "ArrivalsQueue": "ArrivalsDLQ"} {
		props := tpl.Resources[queue].Properties
		rp, _ := props["RedrivePolicy"].(map[string]any)
		if rp == nil {
			t.Errorf("%s has no RedrivePolicy", queue)
			continue
		}
		if got := getAtt(rp["deadLetterTargetArn"]); got != dlq+".Arn" {
			t.Errorf("%s redrives to %q, want %s.Arn", queue, got, dlq)
		}
		if got := refName(rp["maxReceiveCount"]); got != receives[queue] {
			t.Errorf("%s maxReceiveCount is not the %s parameter", queue, receives[queue])
		}
		qFIFO := mustEvalString(t, tpl, props["FifoQueue"], fnoValues) == "true"
		dFIFO := mustEvalString(t, tpl, tpl.Resources[dlq].Properties["FifoQueue"], fnoValues) == "true"
		if qFIFO != dFIFO {
			t.Errorf("%s (FIFO %v) redrives to %s (FIFO %v): a FIFO queue's DLQ must be FIFO", queue, qFIFO, dlq, dFIFO)
		}
		for _, id := range []string{queue, dlq} {
			if got := mustEvalString(t, tpl, tpl.Resources[id].Properties["MessageRetentionPeriod"], fnoValues); got != "1209600" {
				t.Errorf("%s keeps messages %s s; want the 14-day maximum", id, got)
			}
		}
	}
	if p := tpl.Parameters["MaxReceiveCount"]; p.Default != "5" {
		t.Errorf("MaxReceiveCount default %q, want 5", p.Default)
	}
	// Transient F&O trouble must not push a file into the DLQ (and its
	// entity out of order) within an hour or two.
	if p := tpl.Parameters["ImportMaxReceiveCount"]; p.Default != "20" {
		t.Errorf("ImportMaxReceiveCount default %q, want 20", p.Default)
	}
}

func TestRule_SQSEventSources(t *testing.T) {
	tpl := loadTemplate(t)
	fns, err := tpl.Functions(fnoValues)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range fns {
		for _, ev := range f.EventsOfType("SQS") {
			n++
			where := f.LogicalID + "." + ev.Name
			types, _ := ev.Properties["FunctionResponseTypes"].([]any)
			if !slices.Contains(types, any("ReportBatchItemFailures")) {
				t.Errorf("%s: FunctionResponseTypes %v lacks ReportBatchItemFailures", where, types)
			}
			bounds := func(prop string, v any, lo, hi float64) {
				vals := []string{}
				if p := refName(v); p != "" {
					vals = parameterValues(t, tpl, p)
				} else if v != nil {
					vals = append(vals, mustEvalString(t, tpl, v, fnoValues))
				}
				if len(vals) == 0 {
					t.Errorf("%s: %s is not set", where, prop)
				}
				for _, s := range vals {
					var x float64
					if _, err := fmt.Sscan(s, &x); err != nil || x < lo || x > hi {
						t.Errorf("%s: %s may be %s; want %g-%g", where, prop, s, lo, hi)
					}
				}
			}
			bounds("BatchSize", ev.Properties["BatchSize"], 1, 10)
			sc, _ := ev.Properties["ScalingConfig"].(map[string]any)
			bounds("ScalingConfig.MaximumConcurrency", sc["MaximumConcurrency"], 2, 1000)
		}
	}
	if n != 2 {
		t.Errorf("%d SQS event sources, want 2 (router, enqueue)", n)
	}
}

func TestRule_VisibilityTimeoutIsSixTimesFunctionTimeout(t *testing.T) {
	tpl := loadTemplate(t)
	check := func(queue, fn string, vals samtemplate.Values) {
		f := mustFunction(t, tpl, fn, vals)
		vis, err := tpl.EvalInt(tpl.Resources[queue].Properties["VisibilityTimeout"], vals)
		if err != nil {
			t.Fatalf("%s VisibilityTimeout: %v", queue, err)
		}
		if float64(vis) < 6*f.Timeout.Seconds() {
			t.Errorf("%s VisibilityTimeout %d s < 6 × %s timeout %v", queue, vis, fn, f.Timeout)
		}
	}
	for _, v := range parameterValues(t, tpl, "EnqueueTimeout") {
		check("ImportQueue", "EnqueueFunction", with(fnoValues, "EnqueueTimeout", v))
		if f := mustFunction(t, tpl, "EnqueueFunction", with(fnoValues, "EnqueueTimeout", v)); fmt.Sprint(f.Timeout.Seconds()) != v {
			t.Errorf("EnqueueFunction timeout %v does not follow EnqueueTimeout=%s", f.Timeout, v)
		}
	}
	check("ArrivalsQueue", "RouterFunction", fnoValues)
}

func TestRule_FunctionEvents(t *testing.T) {
	tpl := loadTemplate(t)
	type want struct {
		typ   string
		count int
		queue string // for SQS: the queue's logical ID
	}
	wants := map[string]want{
		"RouterFunction":  {"SQS", 1, "ArrivalsQueue"},
		"EnqueueFunction": {"SQS", 1, "ImportQueue"},
		"PollerFunction":  {"ScheduleV2", 1, ""},
		"DequeueFunction": {"ScheduleV2", 0, ""}, // the export jobs' schedules are the tool's
	}
	fns, err := tpl.Functions(fnoValues)
	if err != nil {
		t.Fatal(err)
	}
	if len(fns) != len(wants) {
		t.Errorf("%d functions, want %d", len(fns), len(wants))
	}
	for _, f := range fns {
		w, ok := wants[f.LogicalID]
		if !ok {
			t.Errorf("unexpected function %s", f.LogicalID)
			continue
		}
		if len(f.Events) != w.count || len(f.EventsOfType(w.typ)) != w.count {
			t.Errorf("%s: events %v, want %d of type %s", f.LogicalID, f.Events, w.count, w.typ)
			continue
		}
		if w.queue != "" {
			if got := getAtt(f.Events[0].Properties["Queue"]); got != w.queue+".Arn" {
				t.Errorf("%s reads %q, want %s.Arn", f.LogicalID, got, w.queue)
			}
		}
	}

	poll := mustFunction(t, tpl, "PollerFunction", fnoValues).Events[0].Properties
	if in := mustEvalString(t, tpl, poll["Input"], fnoValues); in != `{"task":"poll"}` {
		t.Errorf("poller schedule input %s", in)
	}
	if refName(poll["ScheduleExpression"]) != "PollSchedule" || tpl.Parameters["PollSchedule"].Default != "rate(2 minutes)" {
		t.Error("poller schedule is not the PollSchedule parameter with default rate(2 minutes)")
	}

	// The export jobs' schedules are the operator tool's, in the stack's
	// group: none in the template.
	if fns := mustFunction(t, tpl, "DequeueFunction", fnoValues); len(fns.Events) != 0 {
		t.Errorf("the dequeue function has events %v; its schedules belong in the ExportSchedules group", fns.Events)
	}
	if g := tpl.Resources["ExportSchedules"]; g.Type != "AWS::Scheduler::ScheduleGroup" {
		t.Errorf("ExportSchedules is %q, want the stack's schedule group", g.Type)
	}
}

func stringsOf(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, i := range x {
			if s, ok := i.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// What each function may do is TestPolicies (policy_test.go): every role's
// statements, evaluated after the SAM transform, against a table.

func TestRule_Environment(t *testing.T) {
	tpl := loadTemplate(t)
	common := []string{"FNO_BASE_URL", "FNO_TENANT_ID", "FNO_CLIENT_ID", "FNO_SECRET_ARN", "FNO_AUTHORITY_HOST", "FNO_NAMESPACE", "BUCKET",
		"STACK_NAME", "NOTIFY_TOPIC_ARN"}
	extra := map[string][]string{
		"RouterFunction":  {"IMPORT_QUEUE_URL"},
		"EnqueueFunction": {"IMPORT_QUEUE_URL"},
		"PollerFunction":  {"IMPORT_QUEUE_URL", "IMPORT_DLQ_URL", "POLL_BUDGET_PER_MINUTE", "SWEEP_AFTER", "STUCK_AFTER"},
		"DequeueFunction": {},
	}
	// ROUTES fixes a route table in place of the configuration document.
	localOnly := []string{"AWS_ENDPOINT_URL", "S3_FORCE_PATH_STYLE", "FNO_CA_BUNDLE", "FNO_CLIENT_SECRET", "ROUTES"}
	vals := fnoValues
	vals.Resources = map[string]string{"DataBucket": "the-bucket", "ImportQueue": "https://sqs/imports.fifo",
		"ImportDLQ": "https://sqs/imports-dlq.fifo", "AlarmTopic": "arn:aws:sns:us-east-1:123456789012:alarms"}
	for id, names := range extra {
		f := mustFunction(t, tpl, id, vals)
		for _, n := range append(append([]string{}, common...), names...) {
			if _, ok := f.Env[n]; !ok {
				t.Errorf("%s lacks %s (unresolved: %v)", id, n, f.Unresolved[n])
			}
		}
		for _, n := range localOnly {
			if _, ok := f.Env[n]; ok {
				t.Errorf("%s sets %s, which is for local runs only", id, n)
			}
		}
		if len(f.Unresolved) > 0 {
			t.Errorf("%s: unresolved variables %v", id, f.Unresolved)
		}
		if f.Env["FNO_SECRET_ARN"] != fnoValues.Parameters["FnoSecretArn"] {
			t.Errorf("%s FNO_SECRET_ARN = %q, want the FnoSecretArn parameter", id, f.Env["FNO_SECRET_ARN"])
		}
		if f.Env["BUCKET"] != "the-bucket" {
			t.Errorf("%s BUCKET = %q, want !Ref DataBucket", id, f.Env["BUCKET"])
		}
	}
	// Defaults of the poller's knobs.
	p := mustFunction(t, tpl, "PollerFunction", vals)
	for k, v := range map[string]string{"POLL_BUDGET_PER_MINUTE": "1000", "SWEEP_AFTER": "15m", "STUCK_AFTER": "24h"} {
		if p.Env[k] != v {
			t.Errorf("PollerFunction %s = %q by default, want %q", k, p.Env[k], v)
		}
	}
	if got := mustFunction(t, tpl, "RouterFunction", vals).Env["FNO_AUTHORITY_HOST"]; got != "https://login.microsoftonline.com" {
		t.Errorf("FNO_AUTHORITY_HOST default %q", got)
	}
	// Only the IMPORT_QUEUE_URL of a real queue.
	for _, id := range []string{"RouterFunction", "PollerFunction"} {
		f := mustFunction(t, tpl, id, fnoValues)
		var ue *samtemplate.UnresolvedError
		if err := f.Unresolved["IMPORT_QUEUE_URL"]; !errors.As(err, &ue) || ue.Name != "ImportQueue" {
			t.Errorf("%s IMPORT_QUEUE_URL is not !Ref ImportQueue: %v", id, err)
		}
	}
}

func TestRule_NoPlaintextSecrets(t *testing.T) {
	tpl := loadTemplate(t)
	secretish := regexp.MustCompile(`(?i)secret|password|passwd|token|credential|key$`)
	for name := range tpl.Parameters {
		if !secretish.MatchString(name) {
			continue
		}
		if name != "FnoSecretArn" {
			t.Errorf("parameter %s looks like a secret; secrets belong in Secrets Manager, referenced by ARN", name)
		}
	}
	p := tpl.Parameters["FnoSecretArn"]
	re, err := regexp.Compile("^(?:" + p.AllowedPattern + ")$")
	if p.AllowedPattern == "" || err != nil {
		t.Fatalf("FnoSecretArn has no usable AllowedPattern (%v): it must only take an ARN", err)
	}
	for _, ok := range []string{"arn:aws:secretsmanager:eu-west-1:111122223333:secret:s3-fno/fno-AbCdEf", "arn:aws-us-gov:secretsmanager:us-gov-west-1:111122223333:secret:x"} {
		if !re.MatchString(ok) {
			t.Errorf("FnoSecretArn pattern refuses %s", ok)
		}
	}
	for _, bad := range []string{"s3cr3t-value", "Xy7~abcDEF.ghi", "arn:aws:s3:::bucket"} {
		if re.MatchString(bad) {
			t.Errorf("FnoSecretArn pattern accepts %q, which is not a secret ARN", bad)
		}
	}
	// No environment variable of any function carries a secret value.
	data, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "FNO_CLIENT_SECRET") {
		t.Error("template.yaml mentions FNO_CLIENT_SECRET, the local-only plain secret")
	}
}

func TestRule_BuildWithMakefileOnProvidedAL2023(t *testing.T) {
	tpl := loadTemplate(t)
	makefile, err := os.ReadFile("../../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	fns, err := tpl.Functions(fnoValues)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fns {
		if f.Runtime != "provided.al2023" || f.Handler != "bootstrap" || f.BuildMethod != "makefile" || f.CodeURI != "." {
			t.Errorf("%s: Runtime %q Handler %q BuildMethod %q CodeUri %q; want provided.al2023, bootstrap, makefile, .",
				f.LogicalID, f.Runtime, f.Handler, f.BuildMethod, f.CodeURI)
		}
		if want := "./functions/" + f.Name; f.Package != want {
			t.Errorf("%s: package %s, want %s", f.LogicalID, f.Package, want)
		}
		if !slices.Equal(f.Architectures, []string{"arm64"}) {
			t.Errorf("%s: architectures %v, want [arm64]", f.LogicalID, f.Architectures)
		}
		if f.LogFormat != "JSON" {
			t.Errorf("%s: LogFormat %q, want JSON", f.LogicalID, f.LogFormat)
		}
		// The Makefile target SAM runs.
		re := regexp.MustCompile(`(?m)^build-` + f.LogicalID + `:\s*\n\t\$\(LAMBDA_BUILD\) ` + regexp.QuoteMeta(f.Package) + `\s*$`)
		if !re.Match(makefile) {
			t.Errorf("Makefile has no target build-%s running $(LAMBDA_BUILD) %s", f.LogicalID, f.Package)
		}
	}
	want := `LAMBDA_BUILD = CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath -ldflags '-s -w' -o $(ARTIFACTS_DIR)/bootstrap`
	if !strings.Contains(string(makefile), want) {
		t.Errorf("Makefile lacks %q", want)
	}
}

// TestRule_BuildArchitectureIsTheTemplates: what sam build runs (the
// Makefile's build-<LogicalId> target) compiles for the architecture the
// template deploys the function on, whatever the builder's environment or
// make command line says. There is one architecture: the template has no
// parameter that could make the two disagree.
func TestRule_BuildArchitectureIsTheTemplates(t *testing.T) {
	tpl := loadTemplate(t)
	for name := range tpl.Parameters {
		if strings.Contains(strings.ToLower(name), "arch") {
			t.Errorf("parameter %s: the architecture is fixed (arm64), so that the build cannot disagree with it", name)
		}
	}
	if archs := tpl.Globals["Function"].(map[string]any)["Architectures"]; !reflect.DeepEqual(archs, []any{"arm64"}) {
		t.Errorf("Globals.Function.Architectures = %v, want the literal [arm64]", archs)
	}
	makefile, err := os.ReadFile("../../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(makefile), "GOARCH_LAMBDA") {
		t.Error("the Makefile still reads GOARCH_LAMBDA, a second architecture setting")
	}
	goarch := map[string]string{"arm64": "arm64", "x86_64": "amd64"}
	makeBin, err := exec.LookPath("make")
	if err != nil {
		t.Skipf("make: %v", err)
	}
	fns, err := tpl.Functions(fnoValues)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fns {
		if len(f.Architectures) != 1 || goarch[f.Architectures[0]] == "" {
			t.Errorf("%s: architectures %v", f.LogicalID, f.Architectures)
			continue
		}
		want := "GOARCH=" + goarch[f.Architectures[0]]
		// -n prints the commands without running them; the hostile settings
		// are what a builder for x86_64 might have left set.
		cmd := exec.Command(makeBin, "-n", "-C", "../../..", "build-"+f.LogicalID,
			"ARTIFACTS_DIR=/tmp/artifacts", "GOARCH_LAMBDA=amd64", "GOARCH=amd64", "ARCH=x86_64")
		cmd.Env = append(os.Environ(), "GOARCH=amd64", "GOARCH_LAMBDA=amd64")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n build-%s: %v\n%s", f.LogicalID, err, out)
		}
		got := regexp.MustCompile(`GOARCH=\S+`).FindAllString(string(out), -1)
		if len(got) != 1 || got[0] != want || !strings.Contains(string(out), "GOOS=linux") ||
			!strings.Contains(string(out), f.Package) || !strings.Contains(string(out), "/tmp/artifacts/bootstrap") {
			t.Errorf("build-%s runs\n%s\nwant one %s (the template's %s) with GOOS=linux, building %s into $ARTIFACTS_DIR/bootstrap",
				f.LogicalID, out, want, f.Architectures[0], f.Package)
		}
	}
}

// TestRule_Retention: what the pipeline leaves for people expires after
// its retention parameter (days; 0 keeps it for ever); inbound/ and
// _state/ never expire (files in flight and the ledger); the rules for
// noncurrent versions, delete markers and incomplete uploads stay.
func TestRule_Retention(t *testing.T) {
	tpl := loadTemplate(t)
	params := map[string]string{ // prefix -> its parameter
		"processed/": "ProcessedRetentionDays", "failed/": "FailedRetentionDays",
		"rejected/": "RejectedRetentionDays", "outbound/": "OutboundRetentionDays",
	}
	defaults := map[string]string{"ProcessedRetentionDays": "90", "FailedRetentionDays": "365",
		"RejectedRetentionDays": "365", "OutboundRetentionDays": "90"}
	for name, d := range defaults {
		p, ok := tpl.Parameters[name]
		if !ok {
			t.Fatalf("no parameter %s", name)
		}
		if p.Default != d || p.Type != "Number" || p.MinValue == nil || *p.MinValue != 0 || p.MaxValue == nil {
			t.Errorf("%s: %+v, want a Number from 0, default %s", name, p, d)
		}
		if !strings.Contains(p.Description, "0 keeps") {
			t.Errorf("%s: the description does not say that 0 keeps for ever", name)
		}
	}
	rulesFor := func(vals samtemplate.Values) map[string]map[string]any {
		t.Helper()
		lc := mustEval(t, tpl, tpl.Resources["DataBucket"].Properties["LifecycleConfiguration"], vals).(map[string]any)
		byID := map[string]map[string]any{}
		for _, r := range lc["Rules"].([]any) {
			r := r.(map[string]any)
			id := fmt.Sprint(r["Id"])
			if _, dup := byID[id]; dup {
				t.Errorf("lifecycle rule %s twice", id)
			}
			byID[id] = r
		}
		return byID
	}
	for _, tc := range []struct {
		name string
		vals samtemplate.Values
		days map[string]string // prefix -> expiration days ("" no rule)
	}{
		{"defaults", fnoValues, map[string]string{"processed/": "90", "failed/": "365", "rejected/": "365", "outbound/": "90"}},
		{"all kept for ever", with(fnoValues, "ProcessedRetentionDays", "0", "FailedRetentionDays", "0",
			"RejectedRetentionDays", "0", "OutboundRetentionDays", "0"), map[string]string{}},
		{"mixed", with(fnoValues, "ProcessedRetentionDays", "7", "FailedRetentionDays", "0", "OutboundRetentionDays", "1"),
			map[string]string{"processed/": "7", "rejected/": "365", "outbound/": "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules := rulesFor(tc.vals)
			expiring := map[string]string{}
			var abort, noncurrent, markers, stateNoncurrent, notifiedExpire bool
			notified := layout.Default().State + "notified/"
			for id, r := range rules {
				if r["Status"] != "Enabled" {
					t.Errorf("rule %s: Status %v", id, r["Status"])
				}
				prefix, _ := r["Prefix"].(string)
				if f, ok := r["Filter"]; ok {
					t.Errorf("rule %s: Filter %v; the rules here use Prefix", id, f)
				}
				if r["ExpirationDate"] != nil || r["Transitions"] != nil || r["NoncurrentVersionTransitions"] != nil {
					t.Errorf("rule %s: %v", id, r)
				}
				if d := r["ExpirationInDays"]; d != nil && prefix == notified {
					// Markers that only stop a repeated notification.
					notifiedExpire = fmt.Sprint(d) == "30" && len(r) == 4
					continue
				}
				if d := r["ExpirationInDays"]; d != nil {
					if _, ok := params[prefix]; !ok {
						t.Errorf("rule %s expires current objects under %q: files in flight or the ledger would vanish", id, prefix)
					}
					if _, dup := expiring[prefix]; dup {
						t.Errorf("two expiration rules for %s", prefix)
					}
					expiring[prefix] = fmt.Sprint(d)
					if len(r) != 4 { // Id, Status, Prefix, ExpirationInDays
						t.Errorf("rule %s does more than expire: %v", id, r)
					}
				}
				if a, ok := r["AbortIncompleteMultipartUpload"].(map[string]any); ok && fmt.Sprint(a["DaysAfterInitiation"]) == "1" && prefix == "" {
					abort = true
				}
				if nv, ok := r["NoncurrentVersionExpiration"].(map[string]any); ok {
					switch prefix {
					case "":
						noncurrent = fmt.Sprint(nv["NoncurrentDays"]) == paramValue(t, tpl, "NoncurrentVersionDays", tc.vals)
					case "_state/":
						stateNoncurrent = fmt.Sprint(nv["NoncurrentDays"]) == "1"
					}
				}
				if r["ExpiredObjectDeleteMarker"] == true && prefix == "" {
					markers = true
				}
			}
			if !abort || !noncurrent || !markers || !stateNoncurrent {
				t.Errorf("abort multipart after 1 day %v, noncurrent versions after NoncurrentVersionDays %v, expired delete markers %v, _state/ noncurrent after 1 day %v",
					abort, noncurrent, markers, stateNoncurrent)
			}
			if !notifiedExpire {
				t.Errorf("notification markers under %s do not expire after 30 days", notified)
			}
			if !reflect.DeepEqual(expiring, tc.days) {
				t.Errorf("expiration days by prefix %v, want %v", expiring, tc.days)
			}
		})
	}
	// The prefixes are the layout's (the functions set no *_PREFIX).
	l := layout.Default()
	for _, p := range []string{l.Processed, l.Failed, l.Rejected} {
		if _, ok := params[p]; !ok {
			t.Errorf("layout prefix %s has no retention", p)
		}
	}
}

func paramValue(t *testing.T, tpl *samtemplate.Template, name string, vals samtemplate.Values) string {
	t.Helper()
	v, err := tpl.ParameterValue(name, vals)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRule_DeadLetterQueuesAreKept: a dead-letter queue holds work nobody
// has done yet, so it survives the stack's deletion and a replacement; each
// takes messages from its own source queue only (the schedule DLQ from no
// queue: EventBridge Scheduler writes to it), and has an alarm.
func TestRule_DeadLetterQueuesAreKept(t *testing.T) {
	tpl := loadTemplate(t)
	sources := map[string]string{"ArrivalsDLQ": "ArrivalsQueue", "ImportDLQ": "ImportQueue", "ScheduleDLQ": ""}
	// Every queue some RedrivePolicy or schedule targets is a DLQ here.
	for _, id := range tpl.ResourcesOfType(samtemplate.TypeQueue) {
		if rp, ok := tpl.Resources[id].Properties["RedrivePolicy"].(map[string]any); ok {
			dlq := strings.TrimSuffix(getAtt(rp["deadLetterTargetArn"]), ".Arn")
			if want, ok := sources[dlq]; !ok || want != id {
				t.Errorf("%s redrives to %s, which is not listed as its dead-letter queue", id, dlq)
			}
		}
	}
	for dlq, src := range sources {
		r, ok := tpl.Resources[dlq]
		if !ok {
			t.Errorf("no %s", dlq)
			continue
		}
		if r.DeletionPolicy != "Retain" || r.UpdateReplacePolicy != "Retain" {
			t.Errorf("%s: DeletionPolicy %q, UpdateReplacePolicy %q; want Retain for both", dlq, r.DeletionPolicy, r.UpdateReplacePolicy)
		}
		if got := mustEvalString(t, tpl, r.Properties["MessageRetentionPeriod"], fnoValues); got != "1209600" {
			t.Errorf("%s keeps messages %s s; want the 14-day maximum", dlq, got)
		}
		rap := mustEval(t, tpl, r.Properties["RedriveAllowPolicy"], fnoValues)
		m, _ := rap.(map[string]any)
		if src == "" {
			if len(m) != 1 || m["redrivePermission"] != "denyAll" {
				t.Errorf("%s: RedriveAllowPolicy %v, want denyAll", dlq, rap)
			}
		} else {
			name := mustEvalString(t, tpl, tpl.Resources[src].Properties["QueueName"], fnoValues)
			want := []any{"arn:aws:sqs:us-east-1:123456789012:" + name}
			if len(m) != 2 || m["redrivePermission"] != "byQueue" || !reflect.DeepEqual(m["sourceQueueArns"], want) {
				t.Errorf("%s: RedriveAllowPolicy %v, want byQueue %v (the ARN of %s)", dlq, rap, want, src)
			}
		}
		alarmed := false
		for _, id := range tpl.ResourcesOfType("AWS::CloudWatch::Alarm") {
			p := tpl.Resources[id].Properties
			for _, d := range asList(p["Dimensions"]) {
				d := d.(map[string]any)
				if d["Name"] == "QueueName" && getAtt(d["Value"]) == dlq+".QueueName" && p["MetricName"] == "ApproximateNumberOfMessagesVisible" &&
					fmt.Sprint(p["Threshold"]) == "0" && p["ComparisonOperator"] == "GreaterThanThreshold" {
					alarmed = true
					// Actions: TestAlarmsTellTheTopic.
				}
			}
		}
		if !alarmed {
			t.Errorf("%s has no alarm on messages visible", dlq)
		}
	}
}

// TestRule_Schedules: every EventBridge Scheduler schedule retries a
// delivery that fails, within bounds, then puts it in the stack's schedule
// dead-letter queue, with a role of the stack's own.
func TestRule_Schedules(t *testing.T) {
	tpl := loadTemplate(t)
	fns, err := tpl.Functions(fnoValues)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range fns {
		for _, ev := range f.EventsOfType("ScheduleV2") {
			n++
			where := f.LogicalID + "." + ev.Name
			rp, _ := ev.Properties["RetryPolicy"].(map[string]any)
			age, err1 := tpl.EvalInt(rp["MaximumEventAgeInSeconds"], fnoValues)
			tries, err2 := tpl.EvalInt(rp["MaximumRetryAttempts"], fnoValues)
			if rp == nil || err1 != nil || err2 != nil || age < 60 || age > 86400 || tries < 0 || tries > 185 {
				t.Errorf("%s: RetryPolicy %v; want MaximumEventAgeInSeconds 60-86400 and MaximumRetryAttempts 0-185", where, rp)
			}
			if f.LogicalID == "PollerFunction" {
				poll := 120 // rate(2 minutes): a retry must not outlive the next tick
				if age > poll {
					t.Errorf("%s: retries for %d s, past the next tick", where, age)
				}
			}
			dlc, _ := ev.Properties["DeadLetterConfig"].(map[string]any)
			if getAtt(dlc["Arn"]) != "ScheduleDLQ.Arn" || len(dlc) != 1 {
				t.Errorf("%s: DeadLetterConfig %v, want Arn: !GetAtt ScheduleDLQ.Arn", where, dlc)
			}
			role := strings.TrimSuffix(getAtt(ev.Properties["RoleArn"]), ".Arn")
			if r, ok := tpl.Resources[role]; !ok || r.Type != "AWS::IAM::Role" {
				t.Errorf("%s: RoleArn %v is not a role of the template", where, ev.Properties["RoleArn"])
			}
		}
	}
	if n != 1 {
		t.Errorf("%d schedules, want the poller's (the export jobs' are the tool's)", n)
	}
}

// TestRule_KmsKey: with KmsKeyArn empty everything is encrypted with keys
// AWS manages; with a key, the bucket, every queue use it (and the roles
// get its permissions: TestPolicies).
func TestRule_KmsKey(t *testing.T) {
	tpl := loadTemplate(t)
	p := tpl.Parameters["KmsKeyArn"]
	if !p.HasDefault || p.Default != "" {
		t.Errorf("KmsKeyArn must default to empty (AWS-managed encryption)")
	}
	re := regexp.MustCompile("^(?:" + p.AllowedPattern + ")$")
	for v, ok := range map[string]bool{"": true, testKey: true, "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1234abcd": true,
		"arn:aws:kms:us-east-1:123456789012:alias/s3-fno": false, "1234abcd-12ab-34cd-56ef-1234567890ab": false} {
		if re.MatchString(v) != ok {
			t.Errorf("KmsKeyArn pattern on %q: %v, want %v", v, !ok, ok)
		}
	}
	bv := fnoValues
	for _, key := range []string{"", testKey} {
		vals := with(bv, "KmsKeyArn", key)
		vals.Attributes = map[string]string{"ArrivalsQueue.Arn": "arn:aws:sqs:us-east-1:123456789012:s3-fno-arrivals",
			"ArrivalsDLQ.Arn": "x", "ImportDLQ.Arn": "y"}
		enc := mustEval(t, tpl, tpl.Resources["DataBucket"].Properties["BucketEncryption"], vals).(map[string]any)
		def := enc["ServerSideEncryptionConfiguration"].([]any)[0].(map[string]any)["ServerSideEncryptionByDefault"].(map[string]any)
		wantBucket := map[string]any{"SSEAlgorithm": "AES256"}
		if key != "" {
			wantBucket = map[string]any{"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
		}
		if !reflect.DeepEqual(def, wantBucket) {
			t.Errorf("KmsKeyArn=%q: bucket encryption %v, want %v", key, def, wantBucket)
		}
		for _, id := range tpl.ResourcesOfType(samtemplate.TypeQueue) {
			props := mustEval(t, tpl, tpl.Resources[id].Properties, vals).(map[string]any)
			managed, kmsID := props["SqsManagedSseEnabled"], props["KmsMasterKeyId"]
			if key == "" && (managed != true || kmsID != nil) || key != "" && (managed != nil || kmsID != key) {
				t.Errorf("KmsKeyArn=%q: %s SqsManagedSseEnabled %v, KmsMasterKeyId %v", key, id, managed, kmsID)
			}
		}
	}
}

func TestRule_Bucket(t *testing.T) {
	tpl := loadTemplate(t)
	b := tpl.Resources["DataBucket"]
	bv := fnoValues
	bv.Attributes = map[string]string{"ArrivalsQueue.Arn": "arn:aws:sqs:us-east-1:123456789012:arrivals"}
	p := mustEval(t, tpl, b.Properties, bv).(map[string]any)
	get := func(path ...string) any {
		var v any = p
		for _, k := range path {
			switch x := v.(type) {
			case map[string]any:
				v = x[k]
			case []any:
				var i int
				fmt.Sscan(k, &i)
				if i >= len(x) {
					return nil
				}
				v = x[i]
			default:
				return nil
			}
		}
		return v
	}
	if get("VersioningConfiguration", "Status") != "Enabled" {
		t.Error("bucket versioning is not enabled")
	}
	if alg := get("BucketEncryption", "ServerSideEncryptionConfiguration", "0", "ServerSideEncryptionByDefault", "SSEAlgorithm"); alg == nil {
		t.Error("bucket has no default encryption")
	}
	for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
		if get("PublicAccessBlockConfiguration", k) != true {
			t.Errorf("PublicAccessBlockConfiguration.%s is not true", k)
		}
	}
	// The lifecycle rules are TestRule_Retention.

	// Notifications: ObjectCreated under inbound/ to the arrivals queue.
	qc := get("NotificationConfiguration", "QueueConfigurations").([]any)
	if len(qc) != 1 {
		t.Fatalf("%d queue notifications, want 1", len(qc))
	}
	raw := tpl.Resources["DataBucket"].Properties["NotificationConfiguration"].(map[string]any)["QueueConfigurations"].([]any)[0].(map[string]any)
	if getAtt(raw["Queue"]) != "ArrivalsQueue.Arn" || raw["Event"] != "s3:ObjectCreated:*" {
		t.Errorf("notification %v", raw)
	}
	rules := get("NotificationConfiguration", "QueueConfigurations", "0", "Filter", "S3Key", "Rules").([]any)
	if len(rules) != 1 || rules[0].(map[string]any)["Name"] != "prefix" || rules[0].(map[string]any)["Value"] != "inbound/" {
		t.Errorf("notification filter %v, want prefix inbound/", rules)
	}

	// The queue policy lets this bucket (named, not referenced: no cycle) send.
	if !slices.Contains(b.DependsOn, "ArrivalsQueuePolicy") {
		t.Error("DataBucket must depend on ArrivalsQueuePolicy: S3 checks the permission when the notification is set")
	}
	qp := tpl.Resources["ArrivalsQueuePolicy"].Properties
	if mentions(qp, "DataBucket") {
		t.Error("ArrivalsQueuePolicy references DataBucket: a dependency cycle with DataBucket's DependsOn")
	}
	st := qp["PolicyDocument"].(map[string]any)["Statement"].([]any)[0].(map[string]any)
	if st["Principal"].(map[string]any)["Service"] != "s3.amazonaws.com" || st["Action"] != "sqs:SendMessage" {
		t.Errorf("queue policy statement %v", st)
	}
	src := mustEvalString(t, tpl, st["Condition"].(map[string]any)["ArnEquals"].(map[string]any)["aws:SourceArn"], fnoValues)
	name := mustEvalString(t, tpl, b.Properties["BucketName"], fnoValues)
	if src != "arn:aws:s3:::"+name {
		t.Errorf("queue policy allows %s, but the bucket is %s", src, name)
	}
	if !regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`).MatchString(name) {
		t.Errorf("bucket name %q is not a valid S3 name", name)
	}
	// The name stays valid even for an upper-case stack name.
	v := fnoValues
	v.StackName = "My-Stack"
	if n := mustEvalString(t, tpl, b.Properties["BucketName"], v); strings.ToLower(n) != n {
		t.Errorf("bucket name %q depends on the stack name's case", n)
	}

	// TLS only.
	bp := tpl.Resources["DataBucketPolicy"].Properties["PolicyDocument"].(map[string]any)["Statement"].([]any)
	tls := false
	for _, s := range bp {
		s := s.(map[string]any)
		if s["Effect"] == "Deny" && fmt.Sprint(s["Condition"]) == "map[Bool:map[aws:SecureTransport:false]]" {
			tls = true
		}
	}
	if !tls || refName(tpl.Resources["DataBucketPolicy"].Properties["Bucket"]) != "DataBucket" {
		t.Error("DataBucket has no bucket policy denying requests without TLS")
	}
}

// mentions reports whether a resource name appears in a Ref, GetAtt or Sub.
func mentions(v any, name string) bool {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if k == "Ref" && c == name {
				return true
			}
			if k == "Fn::GetAtt" && fmt.Sprint(c) == fmt.Sprint([]any{name, "Arn"}) {
				return true
			}
			if k == "Fn::GetAtt" {
				if a, ok := c.([]any); ok && len(a) > 0 && a[0] == name {
					return true
				}
			}
			if k == "Fn::Sub" {
				s := fmt.Sprint(c)
				if strings.Contains(s, "${"+name+"}") || strings.Contains(s, "${"+name+".") {
					return true
				}
			}
			if mentions(c, name) {
				return true
			}
		}
	case []any:
		for _, c := range x {
			if mentions(c, name) {
				return true
			}
		}
	}
	return false
}

func TestRule_ParametersAndOutputs(t *testing.T) {
	tpl := loadTemplate(t)
	required := []string{"FnoBaseUrl", "FnoTenantId", "FnoClientId", "FnoSecretArn"}
	for _, name := range []string{"FnoBaseUrl", "FnoTenantId", "FnoClientId", "FnoSecretArn", "FnoAuthorityHost", "PollSchedule", "MaxReceiveCount", "LogLevel", "EnqueueTimeout", "KmsKeyArn",
		"ProcessedRetentionDays", "FailedRetentionDays", "RejectedRetentionDays", "OutboundRetentionDays"} {
		if _, ok := tpl.Parameters[name]; !ok {
			t.Errorf("no parameter %s", name)
		}
	}
	for name, p := range tpl.Parameters {
		if strings.TrimSpace(p.Description) == "" {
			t.Errorf("parameter %s has no description", name)
		}
		if !p.HasDefault && !slices.Contains(required, name) {
			t.Errorf("parameter %s has no default; a deploy with only the F&O values must work", name)
		}
		if p.HasDefault && slices.Contains(required, name) {
			t.Errorf("parameter %s has a default; it is deployment-specific", name)
		}
		if p.HasDefault && len(p.AllowedValues) > 0 && !slices.Contains(p.AllowedValues, p.Default) {
			t.Errorf("parameter %s: default %q not among %v", name, p.Default, p.AllowedValues)
		}
		if p.HasDefault && p.AllowedPattern != "" {
			if re, err := regexp.Compile("^(?:" + p.AllowedPattern + ")$"); err != nil || !re.MatchString(p.Default) {
				t.Errorf("parameter %s: default %q does not match its AllowedPattern (%v)", name, p.Default, err)
			}
		}
	}
	// The example values a deploy gives must pass the patterns.
	for name, v := range fnoValues.Parameters {
		p := tpl.Parameters[name]
		if re, err := regexp.Compile("^(?:" + p.AllowedPattern + ")$"); err != nil || !re.MatchString(v) {
			t.Errorf("parameter %s refuses %q (%v)", name, v, err)
		}
	}
	for _, name := range []string{"DataBucketName", "ArrivalsQueueUrl", "ArrivalsDLQUrl", "ImportQueueUrl", "ImportDLQUrl", "ScheduleDLQUrl",
		"RouterFunctionArn", "EnqueueFunctionArn", "PollerFunctionArn", "DequeueFunctionArn", "NotifyTopicArn",
		"ExportScheduleGroup", "ExportScheduleRoleArn", "ScheduleDLQArn"} {
		if _, ok := tpl.Outputs[name]; !ok { // s3fno finds the stack's parts by these
			t.Errorf("no output %s", name)
		}
	}
}
