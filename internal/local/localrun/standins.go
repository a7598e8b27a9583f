package localrun

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/local/moto"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// motoConfig is the AWS configuration for the moto_server at url: its
// region and test credentials.
func motoConfig(url string) aws.Config {
	return aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
}

// newS3Client is an S3 client for cfg with path-style addressing, as
// moto_server needs.
func newS3Client(cfg aws.Config) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
}

// writeCABundle writes the emulator's CA certificate into dir and returns
// its path (FNO_CA_BUNDLE). dir must be absolute: a function runs in its
// bootstrap's folder.
func writeCABundle(dir string, emu *d365test.Emulator) (string, error) {
	ca := filepath.Join(dir, "emulator-ca.pem")
	return ca, os.WriteFile(ca, emu.CertPEM(), 0o600)
}

// authorityHost is FNO_AUTHORITY_HOST for the emulator: its Entra authority
// URL without the tenant.
func authorityHost(emu *d365test.Emulator) string {
	return strings.TrimSuffix(emu.AuthorityURL(), "/"+emu.TenantID())
}

// standInEnv points a function at the stand-ins: moto_server and the
// emulator (stackEnv).
func standInEnv(m *moto.Server, emu *d365test.Emulator, stack *Stack, caBundle string) map[string]string {
	return stackEnv(m, emulatorSettings(emu, caBundle), stack)
}

// emulatorSettings are the emulator's F&O settings, its CA certificate in
// caBundle.
func emulatorSettings(emu *d365test.Emulator, caBundle string) FnOSettings {
	return FnOSettings{BaseURL: emu.URL(), TenantID: emu.TenantID(), ClientID: emu.ClientID(), ClientSecret: emu.ClientSecret(),
		AuthorityHost: authorityHost(emu), CABundle: caBundle}
}

// stackEnv points a function at moto_server's endpoint and test
// credentials and at F&O: FNO_* (the client secret comes from the stack's
// Secrets Manager secret), BUCKET, IMPORT_QUEUE_URL, IMPORT_DLQ_URL (the
// poller tells of what waits there), NOTIFY_TOPIC_ARN and STACK_NAME (the
// stack's topic and name) and POLL_INTERVAL=1s.
func stackEnv(m *moto.Server, f FnOSettings, stack *Stack) map[string]string {
	env := map[string]string{
		"FNO_BASE_URL":     f.BaseURL,
		"FNO_TENANT_ID":    f.TenantID,
		"FNO_CLIENT_ID":    f.ClientID,
		"FNO_SECRET_ARN":   stack.SecretARN,
		"BUCKET":           stack.Bucket,
		"IMPORT_QUEUE_URL": stack.ImportURL,
		"IMPORT_DLQ_URL":   stack.ImportDLQURL,
		"NOTIFY_TOPIC_ARN": stack.NotifyTopicARN,
		"STACK_NAME":       stack.Name,
		"POLL_INTERVAL":    "1s",
	}
	if f.AuthorityHost != "" {
		env["FNO_AUTHORITY_HOST"] = f.AuthorityHost
	}
	if f.CABundle != "" {
		env["FNO_CA_BUNDLE"] = f.CABundle
	}
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// listObjects returns every key in bucket with its ETag.
func listObjects(ctx context.Context, c *s3.Client, bucket string) (map[string]string, error) {
	keys := map[string]string{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			keys[aws.ToString(o.Key)] = aws.ToString(o.ETag)
		}
	}
	return keys, nil
}
