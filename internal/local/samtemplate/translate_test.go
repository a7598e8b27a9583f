package samtemplate_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// python returns a python3 that can import the named modules, or skips the
// test (fails it under CI=true, where the machine image provides them).
func python(t *testing.T, modules ...string) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err == nil {
		err = exec.Command(py, "-c", "import "+strings.Join(modules, ", ")).Run()
	}
	if err != nil {
		msg := fmt.Sprintf("python3 with %s is not available (%v); it comes with the machine image", strings.Join(modules, ", "), err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return py
}

// TestSAMTransform runs the SAM transform offline with aws-sam-translator, as
// CloudFormation would on deploy, and checks what it generates. What the
// roles allow is TestPolicies (policy_test.go), on the same translation.
func TestSAMTransform(t *testing.T) {
	tpl := translate(t, nil)
	source := loadTemplate(t)
	count := map[string]int{}
	for id, r := range tpl.Resources {
		count[r.Type]++
		switch r.Type {
		case "AWS::Lambda::EventSourceMapping":
			if fmt.Sprint(r.Properties["FunctionResponseTypes"]) != "[ReportBatchItemFailures]" || r.Properties["ScalingConfig"] == nil {
				t.Errorf("%s: %v", id, r.Properties)
			}
		case "AWS::Scheduler::Schedule":
			target, _ := r.Properties["Target"].(map[string]any)
			if target["Input"] == nil || target["RoleArn"] == nil || r.Properties["Name"] != nil {
				t.Errorf("%s: want a target with input and role, and no fixed Name: %v", id, r.Properties)
			}
			if target["RetryPolicy"] == nil || getAtt(asMap(target["DeadLetterConfig"])["Arn"]) != "ScheduleDLQ.Arn" {
				t.Errorf("%s: want a RetryPolicy and the schedule DLQ: %v", id, target)
			}
		case "AWS::Lambda::Function":
			p := r.Properties
			if p["Runtime"] != "provided.al2023" || p["Handler"] != "bootstrap" || p["LoggingConfig"] == nil {
				t.Errorf("%s: %v", id, p)
			}
			if fmt.Sprint(p["Architectures"]) != "[arm64]" {
				t.Errorf("%s: Architectures %v", id, p["Architectures"])
			}
			vars, _ := p["Environment"].(map[string]any)["Variables"].(map[string]any)
			for _, v := range []string{"FNO_BASE_URL", "FNO_SECRET_ARN", "BUCKET"} {
				if vars[v] == nil {
					t.Errorf("%s: the transform dropped %s (Globals merge)", id, v)
				}
			}
		case "AWS::IAM::Role":
			// SAM adds nothing to the roles the template gives (no managed
			// SQS polling or logging policy): every role is the template's.
			if _, ok := source.Resources[id]; !ok {
				t.Errorf("%s: a role the transform generated", id)
			}
			if r.Properties["ManagedPolicyArns"] != nil {
				t.Errorf("%s: managed policies %v", id, r.Properties["ManagedPolicyArns"])
			}
		}
	}
	want := map[string]int{
		"AWS::Lambda::Function":           4,
		"AWS::Lambda::EventSourceMapping": 2,
		"AWS::Lambda::Permission":         0,
		"AWS::Scheduler::Schedule":        1, // the poller's; the export jobs' are the tool's
		"AWS::Scheduler::ScheduleGroup":   1,
		"AWS::SQS::Queue":                 5,
		"AWS::SQS::QueuePolicy":           1,
		"AWS::S3::Bucket":                 1,
		"AWS::IAM::Role":                  6, // one per function, one per kind of schedule
		"AWS::IAM::RolePolicy":            4, // each function's logs
		"AWS::IAM::Policy":                0,
		"AWS::IAM::ManagedPolicy":         0,
		"AWS::CloudWatch::Alarm":          13, // dead-letter queues, function errors, poller silent, queue age, failed, stuck, exports, notifications
		"AWS::CloudWatch::Dashboard":      1,
		"AWS::SNS::Topic":                 1, // on condition: AlarmTopicArn empty
		"AWS::SNS::Subscription":          1, // on condition: AlarmEmail given
	}
	for typ, n := range want {
		if count[typ] != n {
			t.Errorf("%d %s, want %d", count[typ], typ, n)
		}
	}
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func TestSAMConfig(t *testing.T) {
	data, err := os.ReadFile("../../../samconfig.toml")
	if err != nil {
		t.Fatal(err)
	}
	// A small reader for the flat TOML SAM writes: [a.b.c] and key = value.
	cfg := map[string]map[string]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			if _, dup := cfg[section]; dup {
				t.Errorf("line %d: section [%s] repeated", n, section)
			}
			cfg[section] = map[string]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("line %d: %q is not key = value", n, line)
			}
			if cfg[section] == nil {
				cfg[section] = map[string]string{}
			}
			cfg[section][strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	want := map[string]map[string]string{
		"":                            {"version": "0.1"},
		"default.global.parameters":   {"stack_name": `"s3-fno"`},
		"default.validate.parameters": {"lint": "true"},
		"default.deploy.parameters":   {"capabilities": `"CAPABILITY_IAM"`, "confirm_changeset": "true", "resolve_s3": "true"},
		"prod.global.parameters":      {},
		"prod.deploy.parameters":      {"capabilities": `"CAPABILITY_IAM"`, "confirm_changeset": "true", "resolve_s3": "true"},
		"default.build.parameters":    {"cached": "false"},
	}
	for sec, keys := range want {
		got, ok := cfg[sec]
		if !ok {
			t.Errorf("no section [%s]", sec)
			continue
		}
		for k, v := range keys {
			if got[k] != v {
				t.Errorf("[%s] %s = %s, want %s", sec, k, got[k], v)
			}
		}
	}
	if cfg["prod.global.parameters"]["stack_name"] == cfg["default.global.parameters"]["stack_name"] {
		t.Error("prod deploys to the default stack")
	}

	// And it is TOML, when a TOML reader is at hand.
	if py, err := exec.LookPath("python3"); err == nil && exec.Command(py, "-c", "import tomllib").Run() == nil {
		out, err := exec.Command(py, "-c", "import tomllib,sys; tomllib.load(open(sys.argv[1],'rb'))", "../../../samconfig.toml").CombinedOutput()
		if err != nil {
			t.Errorf("samconfig.toml is not valid TOML: %s", out)
		}
	}
}
