package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/internal/local/lambdahost"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/ops/where"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

// TestBinary: the built tool's exit codes and output as a shell sees
// them: usage is 2, a file found 0 with JSON that parses, a file not found
// 1, an unreachable deployment 2.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "s3fno")
	if err := lambdahost.Build(context.Background(), "../..", "./cmd/s3fno", bin); err != nil {
		t.Fatal(err)
	}
	c, bucket := mototest.S3(t), mototest.NewBucket(t)
	pipelinetest.Put(t, c, bucket, "inbound/customers/here.csv", []byte("x\n"))
	env := filepath.Join(t.TempDir(), "env.json")
	b, _ := json.Marshal(map[string]map[string]string{"Parameters": {"BUCKET": bucket, "AWS_ENDPOINT_URL": mototest.Endpoint(t),
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}})
	if err := os.WriteFile(env, b, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string, string) {
		cmd := exec.Command(bin, args...)
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			return ee.ExitCode(), out.String(), errOut.String()
		case err != nil:
			t.Fatal(err)
		}
		return 0, out.String(), errOut.String()
	}
	if code, out, _ := run(); code != 2 || !strings.Contains(out, "commands:") {
		t.Errorf("no arguments: exit %d\n%s", code, out)
	}
	if code, _, errOut := run("frobnicate"); code != 2 || !strings.Contains(errOut, `no command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %s", code, errOut)
	}
	code, out, errOut := run("where", "here.csv", "--env-file", env, "--json")
	var rep where.Report
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Found) != 1 || rep.Found[0].Stage != where.Inbound {
		t.Errorf("found: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, _, _ := run("where", "--env-file", env, "elsewhere.csv"); code != 1 {
		t.Errorf("not found: exit %d", code)
	}
	if code, _, errOut := run("where", "x.csv", "--env-file", env, "--endpoint-url", "http://127.0.0.1:1"); code != 2 || errOut == "" {
		t.Errorf("unreachable: exit %d, %s", code, errOut)
	}
}
