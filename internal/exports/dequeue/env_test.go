package dequeue_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

// env is one test's world: an F&O emulator, a client for it, moto S3 and a
// fresh bucket.
type env struct {
	t      testing.TB
	e      *d365test.Emulator
	fno    *d365.Client
	s3     *s3.Client
	bucket string
}

func newEnv(t testing.TB, opts d365test.Options) *env {
	t.Helper()
	s3c := mototest.S3(t) // skips when moto_server is missing
	bucket := mototest.NewBucket(t)
	e := d365test.NewT(t, opts)
	c := pipelinetest.FnO(t, e, func(c *d365.Config) {
		c.Retry = d365.RetryPolicy{MaxAttempts: 3, InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond}
	})
	return &env{t: t, e: e, fno: c, s3: s3c, bucket: bucket}
}

// handler builds a dequeue handler with test-sized parts; mod adjusts the config.
func (v *env) handler(mod func(*dequeue.Config)) *dequeue.Handler {
	v.t.Helper()
	cfg := dequeue.Config{Bucket: v.bucket, PartSize: dequeue.MinPartSize, Concurrency: 2, Logger: testLogger(v.t)}
	if mod != nil {
		mod(&cfg)
	}
	h, err := dequeue.New(cfg, v.fno, v.s3)
	if err != nil {
		v.t.Fatal(err)
	}
	return h
}

// run invokes the handler the way Lambda does: raw JSON in.
func (v *env) run(h *dequeue.Handler, input string) dequeue.Summary {
	v.t.Helper()
	sum, err := h.Handle(context.Background(), json.RawMessage(input))
	if err != nil {
		v.t.Fatalf("Handle(%s): %v", input, err)
	}
	return sum
}

// keys lists every key under prefix, sorted.
func (v *env) keys(prefix string) []string {
	v.t.Helper()
	return pipelinetest.Keys(v.t, v.s3, v.bucket, prefix)
}

// versions counts object versions under prefix (a second write of the same
// key would show as a second version: the bucket is versioned).
func (v *env) versions(prefix string) int {
	v.t.Helper()
	out, err := v.s3.ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: &v.bucket, Prefix: &prefix})
	if err != nil {
		v.t.Fatalf("list versions %s: %v", prefix, err)
	}
	return len(out.Versions)
}

func (v *env) get(key string) ([]byte, map[string]string) {
	v.t.Helper()
	out, err := v.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &v.bucket, Key: &key})
	if err != nil {
		v.t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		v.t.Fatalf("read %s: %v", key, err)
	}
	return b, out.Metadata
}

func (v *env) exists(key string) bool {
	v.t.Helper()
	_, err := v.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &v.bucket, Key: &key})
	return err == nil
}

func (v *env) multipartUploads() int {
	v.t.Helper()
	out, err := v.s3.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: &v.bucket})
	if err != nil {
		v.t.Fatalf("list multipart uploads: %v", err)
	}
	return len(out.Uploads)
}

func input(job, activity string, extra string) string {
	s := `{"job":"` + job + `","activityId":"` + activity + `"`
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

// testLogger sends the handler's JSON log lines to t.Log, and checks that
// no line carries a bearer token or the client secret.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewJSONHandler(&logSink{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type logSink struct{ t testing.TB }

func (s *logSink) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	if strings.Contains(line, "Bearer ") || strings.Contains(line, "emulator-secret") {
		s.t.Errorf("a log line carries a credential: %s", line)
	}
	s.t.Log(line)
	return len(p), nil
}

// pattern writes n deterministic bytes in 32 KiB writes, never holding
// more than that.
func pattern(n int64, seed byte) func(io.Writer) error {
	return func(w io.Writer) error {
		buf := make([]byte, 32<<10)
		var off int64
		for off < n {
			chunk := buf[:min(int64(len(buf)), n-off)]
			for i := range chunk {
				x := off + int64(i)
				chunk[i] = byte(x) ^ byte(x>>9) ^ byte(x>>17) ^ seed
			}
			if _, err := w.Write(chunk); err != nil {
				return err
			}
			off += int64(len(chunk))
		}
		return nil
	}
}

func patternSum(n int64, seed byte) [32]byte {
	h := sha256.New()
	pattern(n, seed)(h)
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func (v *env) objectSum(key string) ([32]byte, int64) {
	v.t.Helper()
	out, err := v.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &v.bucket, Key: &key})
	if err != nil {
		v.t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, out.Body)
	if err != nil {
		v.t.Fatalf("read %s: %v", key, err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s, n
}
