package fnoenv_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/fnoenv"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

func TestFromEnvNamesTheMissingVariable(t *testing.T) {
	full := map[string]string{"FNO_BASE_URL": "https://x.operations.dynamics.com", "FNO_TENANT_ID": "t", "FNO_CLIENT_ID": "c", "FNO_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:s"}
	for _, missing := range []string{"FNO_BASE_URL", "FNO_TENANT_ID", "FNO_CLIENT_ID", "FNO_SECRET_ARN"} {
		t.Run(missing, func(t *testing.T) {
			for k, v := range full {
				if k == missing {
					v = ""
				}
				t.Setenv(k, v)
			}
			t.Setenv("FNO_CLIENT_SECRET", "")
			_, err := fnoenv.FromEnv()
			if err == nil || !strings.Contains(err.Error(), missing) {
				t.Fatalf("err = %v, want one naming %s", err, missing)
			}
		})
	}
}

func TestParseSecretForms(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"plain-secret", true},
		{`{"clientSecret":"s"}`, true},
		{`{"certificatePem":"not a pem"}`, false},
		{`{"other":"x"}`, false},
		{`{broken`, false},
		{"", false},
	} {
		_, err := fnoenv.ParseSecret(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseSecret(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
		}
		if err != nil && tt.in != "" && strings.Contains(err.Error(), tt.in) {
			t.Errorf("error %q repeats the secret", err)
		}
	}
}

// The client reads its secret from Secrets Manager (moto) only when the
// first token is needed, and trusts the emulator through FNO_CA_BUNDLE.
func TestClientFromSecretsManager(t *testing.T) {
	e := d365test.NewT(t, d365test.Options{})
	ctx := context.Background()
	sm := secretsmanager.NewFromConfig(mototest.Config(t))
	sec, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(mototest.Name("fno")),
		SecretString: aws.String(`{"clientSecret":"` + e.ClientSecret() + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, e.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	au := strings.TrimSuffix(e.AuthorityURL(), "/"+e.TenantID())
	s := fnoenv.Settings{BaseURL: e.URL(), TenantID: e.TenantID(), ClientID: e.ClientID(), SecretARN: *sec.ARN, AuthorityHost: au, CABundle: ca}
	counting := &countingSM{SecretGetter: sm}
	c, err := s.NewClient(counting, fnoenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if counting.n != 0 {
		t.Fatal("the secret was read before it was needed")
	}
	for range 3 {
		if _, err := c.GetMessageStatus(ctx, "6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b"); err != nil {
			t.Fatal(err)
		}
	}
	if counting.n != 1 || e.TokenRequests() != 1 {
		t.Fatalf("secret reads %d, token requests %d; want 1 and 1", counting.n, e.TokenRequests())
	}
}

type countingSM struct {
	fnoenv.SecretGetter
	n int
}

func (c *countingSM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	c.n++
	return c.SecretGetter.GetSecretValue(ctx, in, opts...)
}
