package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/fno-bridge/s3-fno/internal/local/lambdahost"
	"github.com/fno-bridge/s3-fno/internal/local/samtemplate"
)

// echoBootstrap is lambdahost's test function, built once.
var echoBootstrap string

// testDir is the test binary's scratch folder, removed by TestMain.
var testDir string

// echoPackage is its source folder.
var echoPackage, _ = filepath.Abs("../../internal/local/lambdahost/testdata/echofn")

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "invoke-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testDir = dir
	echoBootstrap = filepath.Join(dir, "bootstrap")
	if err := lambdahost.Build(context.Background(), ".", echoPackage, echoBootstrap); err != nil {
		fmt.Fprintln(os.Stderr, "building the echo function:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testTemplate writes a template whose EchoFunction is the echo test
// function, and returns its path.
func testTemplate(t *testing.T) string {
	t.Helper()
	tpl := fmt.Sprintf(`
Transform: AWS::Serverless-2016-10-31
Parameters:
  Greeting: {Type: String, Default: hello}
  Secret: {Type: String}
Globals:
  Function:
    Runtime: provided.al2023
    Handler: bootstrap
    Timeout: 5
    MemorySize: 384
    LoggingConfig: {LogFormat: JSON, ApplicationLogLevel: DEBUG}
    Environment:
      Variables:
        FROM_GLOBALS: !Sub "${Greeting}-${AWS::Region}"
Resources:
  Bucket:
    Type: AWS::S3::Bucket
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: %s
      Environment:
        Variables:
          GREETING: !Ref Greeting
          BUCKET: !Ref Bucket
          SECRET_ARN: !Ref Secret
          OVERRIDDEN: template
`, echoPackage)
	path := filepath.Join(t.TempDir(), "template.yaml")
	if err := os.WriteFile(path, []byte(tpl), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

type echoReply struct {
	RequestID string            `json:"requestId"`
	Env       map[string]string `json:"env"`
	Event     json.RawMessage   `json:"event"`
}

func TestRun_EnvironmentAndResponse(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
	t.Setenv("UNRELATED_SHELL_VAR", "leak")
	tpl := testTemplate(t)
	vars := []string{"GREETING", "FROM_GLOBALS", "BUCKET", "SECRET_ARN", "OVERRIDDEN", "FROM_JSON", "FROM_SECTION",
		"OTHER_SECTION", "FROM_DOTENV", "AWS_ENDPOINT_URL", "UNRELATED_SHELL_VAR", "AWS_LAMBDA_FUNCTION_NAME",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL"}
	event := writeFile(t, "event.json", fmt.Sprintf(`{"mode":"echo","env":%s}`, mustJSON(vars)))
	jsonEnv := writeFile(t, "env.json", `{
  "Parameters": {"FROM_JSON": "json", "OVERRIDDEN": "json"},
  "EchoFunction": {"FROM_SECTION": "mine", "BUCKET": "local-bucket"},
  "OtherFunction": {"OTHER_SECTION": "not mine"}
}`)
	dotenv := writeFile(t, "local.env", "# comment\nexport FROM_DOTENV=\"dot env\"\nOVERRIDDEN='dotenv'\n")

	code, stdout, stderr := run(t, "-template", tpl, "-fn", "EchoFunction", "-bootstrap", echoBootstrap,
		"-event", event, "-env-file", jsonEnv, "-env-file", dotenv, "-env", "OVERRIDDEN=flag", "-param", "Greeting=hi")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	var r echoReply
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("stdout is not the response: %v\n%s", err, stdout)
	}
	want := map[string]string{
		"GREETING":                        "hi",                    // -param over the default
		"FROM_GLOBALS":                    "hi-us-east-1",          // Globals merged, !Sub resolved
		"BUCKET":                          "local-bucket",          // the function's own env-file section
		"OVERRIDDEN":                      "flag",                  // -env wins over files and template
		"FROM_JSON":                       "json",                  // env-file Parameters section
		"FROM_SECTION":                    "mine",                  //
		"FROM_DOTENV":                     "dot env",               // dotenv, quotes removed
		"AWS_ENDPOINT_URL":                "http://127.0.0.1:4566", // forwarded from the shell
		"AWS_LAMBDA_FUNCTION_NAME":        "EchoFunction",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "384",
		"AWS_LAMBDA_LOG_FORMAT":           "JSON",
		"AWS_LAMBDA_LOG_LEVEL":            "DEBUG",
	}
	for k, v := range want {
		if r.Env[k] != v {
			t.Errorf("%s = %q, want %q", k, r.Env[k], v)
		}
	}
	for _, k := range []string{"OTHER_SECTION", "UNRELATED_SHELL_VAR", "SECRET_ARN"} {
		if v, ok := r.Env[k]; ok {
			t.Errorf("%s is set (%q); it should not reach the function", k, v)
		}
	}
	if !strings.Contains(stderr, "SECRET_ARN is not set") || strings.Contains(stderr, "BUCKET is not set") {
		t.Errorf("want a warning for SECRET_ARN only:\n%s", stderr)
	}
	if !strings.Contains(stderr, "REPORT RequestId: "+r.RequestID) {
		t.Errorf("no REPORT line for %s:\n%s", r.RequestID, stderr)
	}
}

func TestRun_FunctionError(t *testing.T) {
	tpl := testTemplate(t)
	event := writeFile(t, "event.json", `{"mode":"error","message":"no route for inbound/x"}`)
	code, stdout, stderr := run(t, "-template", tpl, "-fn", "EchoFunction", "-bootstrap", echoBootstrap, "-event", event)
	if code != exitFunctionError {
		t.Fatalf("exit %d, want %d\nstderr %s", code, exitFunctionError, stderr)
	}
	var doc struct {
		Type    string `json:"errorType"`
		Message string `json:"errorMessage"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || doc.Type != "validationError" || doc.Message != "no route for inbound/x" {
		t.Errorf("stdout %q (%v); want the error document", stdout, err)
	}
}

func TestRun_TimeoutFlag(t *testing.T) {
	tpl := testTemplate(t)
	event := writeFile(t, "event.json", `{"mode":"sleep","sleep":"1h"}`)
	code, stdout, _ := run(t, "-template", tpl, "-fn", "EchoFunction", "-bootstrap", echoBootstrap, "-event", event, "-timeout", "1s")
	if code != exitFunctionError || !strings.Contains(stdout, "Sandbox.Timedout") {
		t.Errorf("exit %d, stdout %s; want a timeout", code, stdout)
	}
}

func TestRun_BuildsTheFunction(t *testing.T) {
	tpl := testTemplate(t)
	bin := t.TempDir()
	code, stdout, stderr := run(t, "-template", tpl, "-fn", "EchoFunction", "-bin", bin)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(bin, "echofn", "bootstrap")); err != nil {
		t.Errorf("no bootstrap at <bin>/<name>/bootstrap: %v", err)
	}
	var r echoReply
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || string(r.Event) != "{}" {
		t.Errorf("response %s (%v); want the echo of the default event {}", stdout, err)
	}
}

func TestRun_Usage(t *testing.T) {
	tpl := testTemplate(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no function", []string{"-template", tpl}, "-fn is required"},
		{"unknown function", []string{"-template", tpl, "-fn", "Nope"}, "EchoFunction"},
		{"unknown parameter", []string{"-template", tpl, "-fn", "EchoFunction", "-param", "Nope=1"}, "no such parameter"},
		{"bad env", []string{"-template", tpl, "-fn", "EchoFunction", "-env", "NOEQUALS"}, "KEY=VALUE"},
		{"missing event", []string{"-template", tpl, "-fn", "EchoFunction", "-event", "/nonexistent.json"}, "event"},
		{"missing template", []string{"-template", "/nonexistent.yaml", "-fn", "X"}, "nonexistent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, tt.args...)
			if code != exitCannotRun || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d mentioning %q", code, stderr, exitCannotRun, tt.want)
			}
		})
	}
}

// TestRun_ProjectFunctions builds every function of the template (a missing
// one fails) and runs the ones an event can exercise without any stand-in
// (no -local): the rest needs moto and the emulator (TestRun_LocalEveryEvent).
func TestRun_ProjectFunctions(t *testing.T) {
	tpl, err := samtemplate.Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fns, err := tpl.Functions(samtemplate.Values{})
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range fns {
		t.Run(fn.LogicalID, func(t *testing.T) {
			args := []string{"-template", "../../template.yaml", "-fn", fn.LogicalID, "-bootstrap", projectBootstrap(t, fn.LogicalID),
				"-env-file", "../../events/env.local.json", "-timeout", "20s"}
			switch fn.LogicalID {
			case "RouterFunction":
				// An s3:TestEvent needs no AWS call and must not fail the batch.
				code, stdout, stderr := run(t, append(args, "-event", "../../events/router-test-event.json")...)
				var resp events.SQSEventResponse
				if code != exitOK || json.Unmarshal([]byte(stdout), &resp) != nil || len(resp.BatchItemFailures) != 0 {
					t.Errorf("exit %d, stdout %s\nstderr %s", code, stdout, stderr)
				}
			case "DequeueFunction":
				// A disabled export slot's input is refused with a clear
				// function error, not a crash or a timeout.
				ev := writeFile(t, "disabled.json", `{"job":"disabled"}`)
				code, stdout, stderr := run(t, append(args, "-event", ev)...)
				if code != exitFunctionError || strings.Contains(stdout, "Sandbox.Timedout") || strings.Contains(stdout, "Runtime.ExitError") {
					t.Errorf("exit %d, stdout %s\nstderr %s", code, stdout, stderr)
				}
			}
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
