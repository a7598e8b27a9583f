package samtemplate_test

// The project's rules for template.yaml, checked on the real file. Each test
// names the rule it holds; each fails if the template stops keeping it.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/internal/local/samtemplate"
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
	"Routes":       `[{"route":"customers","activityId":"6c1b2f3a-8d4e-4f5a-9b6c-7d8e9f0a1b2c","entity":"Customer groups","kind":"file"}]`,
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
		"DequeueFunction": {"ScheduleV2", 2, ""},
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

	// Export slots: empty parameter = disabled; JSON = enabled with that input.
	job := `{"job":"customer-groups","activityId":"3d2c1b0a-9f8e-4d7c-b6a5-4f3e2d1c0b9a"}`
	for i, slot := range []string{"ExportJob1", "ExportJob2"} {
		if p := tpl.Parameters[slot]; !p.HasDefault || p.Default != "" {
			t.Errorf("%s must default to empty (disabled)", slot)
		}
		for _, tc := range []struct {
			value, state string
		}{{"", "DISABLED"}, {job, "ENABLED"}} {
			vals := with(fnoValues, slot, tc.value)
			f := mustFunction(t, tpl, "DequeueFunction", vals)
			ev := f.Events[i]
			if ev.Name != slot {
				t.Fatalf("dequeue event %d is %s, want %s", i, ev.Name, slot)
			}
			if got := mustEvalString(t, tpl, ev.Properties["State"], vals); got != tc.state {
				t.Errorf("%s=%q: State %s, want %s", slot, tc.value, got, tc.state)
			}
			in := mustEvalString(t, tpl, ev.Properties["Input"], vals)
			if !json.Valid([]byte(in)) {
				t.Errorf("%s=%q: Input %q is not JSON", slot, tc.value, in)
			}
			if tc.value != "" && in != tc.value {
				t.Errorf("%s=%q: Input %q", slot, tc.value, in)
			}
			if ev.Properties["OmitName"] != true {
				t.Errorf("%s: OmitName must be true, or two stacks in one account clash on the schedule name", slot)
			}
		}
	}
}

// actionsOf lists a function's inline policy statements and policy templates.
func policiesOf(t *testing.T, f samtemplate.Function) (stmts []map[string]any, templates []string) {
	t.Helper()
	pols, _ := f.Properties["Policies"].([]any)
	for _, p := range pols {
		switch x := p.(type) {
		case string:
			templates = append(templates, "managed:"+x)
		case map[string]any:
			if st, ok := x["Statement"]; ok {
				for _, s := range st.([]any) {
					stmts = append(stmts, s.(map[string]any))
				}
				continue
			}
			for k := range x {
				templates = append(templates, k)
			}
		}
	}
	return stmts, templates
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

func TestRule_LeastPrivilege(t *testing.T) {
	tpl := loadTemplate(t)
	// Exactly what each function may do, beyond what its event sources add.
	// Moving a file copies its exact version with tags, then deletes that
	// version; large copies and uploads are multipart. HEAD of a missing key
	// answers 404 only with s3:ListBucket.
	mover := []string{"s3:AbortMultipartUpload", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObject",
		"s3:GetObjectTagging", "s3:GetObjectVersion", "s3:GetObjectVersionTagging", "s3:ListBucket",
		"s3:PutObject", "s3:PutObjectTagging"}
	want := map[string]struct {
		actions   []string
		templates []string
	}{
		"RouterFunction": {mover, []string{"SQSSendMessagePolicy"}},
		"EnqueueFunction": {
			append([]string{"s3:ListBucketVersions"}, mover...),
			[]string{"AWSSecretsManagerGetSecretValuePolicy", "SQSSendMessagePolicy"},
		},
		"PollerFunction": {
			append([]string{"s3:ListBucketVersions"}, mover...),
			[]string{"AWSSecretsManagerGetSecretValuePolicy", "SQSSendMessagePolicy"},
		},
		"DequeueFunction": {
			[]string{"s3:AbortMultipartUpload", "s3:GetObject", "s3:ListBucket", "s3:PutObject"},
			[]string{"AWSSecretsManagerGetSecretValuePolicy"},
		},
	}
	fns, err := tpl.Functions(fnoValues)
	if err != nil {
		t.Fatal(err)
	}
	bucketArn := "arn:aws:s3:::" + mustEvalString(t, tpl, tpl.Resources["DataBucket"].Properties["BucketName"], fnoValues)
	vals := fnoValues
	vals.Attributes = map[string]string{"DataBucket.Arn": bucketArn, "ImportQueue.QueueName": "s3-fno-imports.fifo"}
	for _, f := range fns {
		stmts, templates := policiesOf(t, f)
		var actions []string
		for _, s := range stmts {
			if s["Effect"] != "Allow" {
				t.Errorf("%s: statement %v is not an Allow", f.LogicalID, s["Sid"])
			}
			for _, a := range stringsOf(s["Action"]) {
				if a == "*" || strings.HasSuffix(a, ":*") {
					t.Errorf("%s: action %q grants everything", f.LogicalID, a)
				}
				actions = append(actions, a)
			}
			if s["NotAction"] != nil || s["NotResource"] != nil {
				t.Errorf("%s: NotAction/NotResource widen a statement", f.LogicalID)
			}
			res := mustEval(t, tpl, s["Resource"], vals)
			rs := stringsOf(res)
			if len(rs) == 0 {
				t.Errorf("%s: statement %v has no resource", f.LogicalID, s["Sid"])
			}
			for _, r := range rs {
				if r == "*" || (r != bucketArn && r != bucketArn+"/*") {
					t.Errorf("%s: statement %v on resource %q; want the data bucket only", f.LogicalID, s["Sid"], r)
				}
			}
		}
		slices.Sort(actions)
		slices.Sort(templates)
		w := want[f.LogicalID]
		slices.Sort(w.actions)
		if !slices.Equal(actions, w.actions) {
			t.Errorf("%s actions:\n got %v\nwant %v", f.LogicalID, actions, w.actions)
		}
		if !slices.Equal(templates, w.templates) {
			t.Errorf("%s policy templates: got %v, want %v", f.LogicalID, templates, w.templates)
		}
		// Policy templates point at this stack's queue and the secret parameter.
		pols, _ := f.Properties["Policies"].([]any)
		for _, p := range pols {
			m, _ := p.(map[string]any)
			if a, ok := m["SQSSendMessagePolicy"].(map[string]any); ok && getAtt(a["QueueName"]) != "ImportQueue.QueueName" {
				t.Errorf("%s: SQSSendMessagePolicy on %v, want ImportQueue", f.LogicalID, a["QueueName"])
			}
			if a, ok := m["AWSSecretsManagerGetSecretValuePolicy"].(map[string]any); ok && refName(a["SecretArn"]) != "FnoSecretArn" {
				t.Errorf("%s: GetSecretValue on %v, want FnoSecretArn", f.LogicalID, a["SecretArn"])
			}
		}
	}
}

func TestRule_Environment(t *testing.T) {
	tpl := loadTemplate(t)
	common := []string{"FNO_BASE_URL", "FNO_TENANT_ID", "FNO_CLIENT_ID", "FNO_SECRET_ARN", "FNO_AUTHORITY_HOST", "BUCKET"}
	extra := map[string][]string{
		"RouterFunction":  {"ROUTES", "IMPORT_QUEUE_URL"},
		"EnqueueFunction": {"ROUTES"},
		"PollerFunction":  {"ROUTES", "IMPORT_QUEUE_URL", "POLL_BUDGET_PER_MINUTE", "SWEEP_AFTER", "STUCK_AFTER"},
		"DequeueFunction": {},
	}
	localOnly := []string{"AWS_ENDPOINT_URL", "S3_FORCE_PATH_STYLE", "FNO_CA_BUNDLE", "FNO_CLIENT_SECRET"}
	vals := fnoValues
	vals.Resources = map[string]string{"DataBucket": "the-bucket", "ImportQueue": "https://sqs/imports.fifo"}
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
			t.Errorf("%s: architectures %v, want [arm64] by default", f.LogicalID, f.Architectures)
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
	want := `LAMBDA_BUILD = CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH_LAMBDA) $(GO) build -tags lambda.norpc -trimpath -ldflags '-s -w' -o $(ARTIFACTS_DIR)/bootstrap`
	if !strings.Contains(string(makefile), want) {
		t.Errorf("Makefile lacks %q", want)
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
	var abort, noncurrent bool
	for _, r := range get("LifecycleConfiguration", "Rules").([]any) {
		r := r.(map[string]any)
		if r["Status"] != "Enabled" {
			continue
		}
		if a, ok := r["AbortIncompleteMultipartUpload"].(map[string]any); ok && fmt.Sprint(a["DaysAfterInitiation"]) == "1" && r["Prefix"] == nil {
			abort = true
		}
		if _, ok := r["NoncurrentVersionExpiration"]; ok && r["Prefix"] == nil {
			noncurrent = true
		}
		if r["ExpirationInDays"] != nil || r["ExpirationDate"] != nil {
			t.Errorf("lifecycle rule %v expires current objects: files or the ledger would vanish", r["Id"])
		}
	}
	if !abort || !noncurrent {
		t.Errorf("lifecycle: abort multipart after 1 day %v, noncurrent version expiry %v", abort, noncurrent)
	}

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
	required := []string{"FnoBaseUrl", "FnoTenantId", "FnoClientId", "FnoSecretArn", "Routes"}
	for _, name := range []string{"FnoBaseUrl", "FnoTenantId", "FnoClientId", "FnoSecretArn", "FnoAuthorityHost", "Routes",
		"ExportJob1", "ExportJob2", "PollSchedule", "MaxReceiveCount", "Architecture", "LogLevel", "EnqueueTimeout"} {
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
	for _, name := range []string{"DataBucketName", "ArrivalsQueueUrl", "ImportQueueUrl", "ImportDLQUrl",
		"RouterFunctionArn", "EnqueueFunctionArn", "PollerFunctionArn", "DequeueFunctionArn"} {
		if _, ok := tpl.Outputs[name]; !ok {
			t.Errorf("no output %s", name)
		}
	}
}
