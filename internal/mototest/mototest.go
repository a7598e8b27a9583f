// Package mototest runs moto_server, the local stand-in for S3, SQS (FIFO
// included), S3 notifications and Secrets Manager, for tests that cross the
// AWS wire. One server serves a whole test binary; tests isolate themselves
// with unique bucket and queue names.
//
// When moto_server is missing the test is skipped with a clear message,
// except under CI=true, where it fails: CI must prove the AWS side.
package mototest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

var (
	once     sync.Once
	endpoint string
	startErr error
	proc     *exec.Cmd
)

// Endpoint starts moto_server on first use and returns its URL.
func Endpoint(t testing.TB) string {
	t.Helper()
	once.Do(start)
	if startErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("moto_server: %v", startErr)
		}
		t.Skipf("moto_server not available: %v", startErr)
	}
	return endpoint
}

func start() {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		startErr = fmt.Errorf("moto_server is not on PATH (it comes with the machine image)")
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		startErr = err
		return
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.Env = append(os.Environ(), "MOTO_ALLOW_NONEXISTENT_REGION=true")
	if os.Getenv("MOTO_LOG") != "" {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		startErr = fmt.Errorf("start moto_server: %w", err)
		return
	}
	proc = cmd
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			endpoint = url
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	startErr = fmt.Errorf("moto_server did not answer on %s within 30s", url)
}

// Stop ends the server this package started, by its PID. Call it from
// TestMain after m.Run.
func Stop() {
	if proc != nil && proc.Process != nil {
		proc.Process.Kill()
		proc.Wait()
	}
}

// Env is the environment a process (a built function) needs to reach moto.
func Env(t testing.TB) []string {
	return []string{
		"AWS_ENDPOINT_URL=" + Endpoint(t), "S3_FORCE_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1",
	}
}

// Config is an SDK config pointed at moto with static test credentials.
func Config(t testing.TB) aws.Config {
	ep := Endpoint(t)
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(ep),
	}
}

// S3 is a path-style S3 client for moto.
func S3(t testing.TB) *s3.Client {
	return s3.NewFromConfig(Config(t), func(o *s3.Options) { o.UsePathStyle = true })
}

// SQS is an SQS client for moto.
func SQS(t testing.TB) *sqs.Client { return sqs.NewFromConfig(Config(t)) }

// Name returns a unique, lowercase name with the given prefix.
func Name(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return strings.ToLower(prefix) + "-" + hex.EncodeToString(b)
}

// NewBucket creates a versioned bucket with a unique name.
func NewBucket(t testing.TB) string {
	t.Helper()
	c := S3(t)
	name := Name("bkt")
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &name,
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatalf("enable versioning: %v", err)
	}
	return name
}
