// Package mototest is local test tooling that runs moto_server, the local
// stand-in for S3, SQS (FIFO included), SNS, EventBridge Scheduler, S3
// notifications and Secrets Manager, for tests that cross the AWS wire. One
// server serves a whole test binary; tests isolate themselves with unique
// bucket and queue names.
//
// When moto_server is missing the test is skipped with a clear message,
// except under CI=true, where it fails: CI must prove the AWS side.
package mototest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/local/moto"
)

var (
	once     sync.Once
	server   *moto.Server
	startErr error
)

// Endpoint starts moto_server on first use and returns its URL.
func Endpoint(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		var logs io.Writer
		if os.Getenv("MOTO_LOG") != "" {
			logs = os.Stderr
		}
		server, startErr = moto.Start(context.Background(), logs)
	})
	if startErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("moto_server: %v", startErr)
		}
		t.Skipf("moto_server not available: %v", startErr)
	}
	return server.URL
}

// Stop ends the server this package started, by its PID. Call it from
// TestMain after m.Run.
func Stop() { server.Close() }

// Env is the environment a process (a built function) needs to reach moto.
func Env(t testing.TB) []string {
	Endpoint(t)
	return server.Env()
}

// Config is an SDK config pointed at moto with static test credentials. Its
// checksum settings are what config.LoadDefaultConfig gives the deployed
// functions (uploads carry a checksum, GETs ask for one), so tests cross
// the same wire as they do.
func Config(t testing.TB) aws.Config {
	ep := Endpoint(t)
	return aws.Config{
		Region:                     "us-east-1",
		Credentials:                credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint:               aws.String(ep),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported,
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
