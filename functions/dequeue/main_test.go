package main

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/fno-bridge/s3-fno/internal/shared/startup"
)

// testEnv is a start-up environment with these variables and a region.
func testEnv(vars map[string]string) startup.Env {
	return startup.Env{Getenv: func(k string) string { return vars[k] }, AWS: aws.Config{Region: "us-east-1"}, Log: slog.Default()}
}

func TestNewHandlerNamesMissingSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no bucket", map[string]string{}, "BUCKET"},
		{"bad margin", map[string]string{"BUCKET": "b", "DEADLINE_MARGIN": "soon"}, "DEADLINE_MARGIN"},
		{"margin overflows", map[string]string{"BUCKET": "b", "DEADLINE_MARGIN": "18446744074"}, "DEADLINE_MARGIN"},
		{"negative margin overflows", map[string]string{"BUCKET": "b", "DEADLINE_MARGIN": "-9223372037"}, "DEADLINE_MARGIN"},
		{"bad part size", map[string]string{"BUCKET": "b", "UPLOAD_PART_MIB": "1"}, "UPLOAD_PART_MIB"},
		{"overlapping prefixes", map[string]string{"BUCKET": "b", "OUTBOUND_PREFIX": "_state/out/"}, "STATE_PREFIX"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newHandler(testEnv(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestNewHandlerFromEnv(t *testing.T) {
	t.Setenv("FNO_BASE_URL", "https://contoso.operations.dynamics.com")
	t.Setenv("FNO_TENANT_ID", "t")
	t.Setenv("FNO_CLIENT_ID", "c")
	t.Setenv("FNO_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:fno")
	t.Setenv("AWS_REGION", "us-east-1")
	env := map[string]string{"BUCKET": "b", "DEADLINE_MARGIN": "45"}
	h, err := newHandler(testEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	if c := h.Config(); c.DeadlineMargin.Seconds() != 45 || c.OutboundPrefix != "outbound/" || c.StatePrefix != "_state/" {
		t.Errorf("config %+v", c)
	}
}
