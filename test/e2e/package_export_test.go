package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/internal/local/lambdahost"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/ops/configdoc"
	"github.com/fno-bridge/s3-fno/internal/ops/status"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// TestPackageExportJob: a job of kind dataProject in the configuration
// document, run by the dequeue function's own bootstrap (behind the
// project's Lambda Runtime API host, with the Lambda deadline) with its
// schedule's input, against moto and the F&O emulator. It exports the data
// project and lands the package under outbound/<job>/, unpacked; while
// the next export runs in F&O, runs start no other; an export that ends
// Failed is told once on the topic with its errors; the status view shows
// the job's last landing and its execution in flight.
func TestPackageExportJob(t *testing.T) {
	ctx := context.Background()
	s3c := mototest.S3(t)
	bucket := mototest.NewBucket(t)
	emu := d365test.NewT(t, d365test.Options{TokenLifetime: 30 * 24 * time.Hour})
	pkg := d365test.NewPackage("Vendors export", d365test.PackageEntity{Name: "Vendors", Data: []byte("VENDORACCOUNT\r\nV001\r\n")})
	emu.SetExportPackage("Vendors export", pkg)
	var ticking atomic.Bool // F&O's batch takes a step at each look at an execution
	emu.SetFaultFunc(func(endpoint string, _ *http.Request) *d365test.Fault {
		if endpoint == "GetExecutionSummaryStatus" && ticking.Load() {
			emu.Tick()
		}
		return nil
	})
	alerts := subscribe(t)

	m := &configdoc.Manager{}
	doc, err := m.Validate([]byte(`{"routes":[],"jobs":[{"job":"vendors","schedule":"rate(1 hour)","kind":"dataProject",` +
		`"definitionGroupId":"Vendors export","legalEntityId":"USMF","unpack":true}]}`))
	if err != nil {
		t.Fatal(err)
	}
	fn := startDequeue(t, emu, bucket, alerts.topic)
	invoke := func() dequeue.Summary {
		t.Helper()
		res, err := fn.Invoke(ctx, doc.Jobs[0].Input)
		if err != nil || res.Err() != nil {
			t.Fatalf("invoke: %v %v: %s", err, res.Err(), res.Payload)
		}
		var sum dequeue.Summary
		if err := json.Unmarshal(res.Payload, &sum); err != nil {
			t.Fatalf("summary %s: %v", res.Payload, err)
		}
		return sum
	}

	ticking.Store(true)
	sum := invoke()
	if len(sum.Executions) != 1 || sum.Executions[0].Outcome != dequeue.ExecLanded || sum.Landed != 1 || sum.EntityFiles != 1 {
		t.Fatalf("first run: %+v", sum)
	}
	key := sum.Executions[0].Key
	if !strings.HasPrefix(key, "outbound/vendors/") || !strings.HasSuffix(key, sum.Executions[0].ExecutionID+"-vendors.zip") {
		t.Errorf("landed at %s", key)
	}
	if got, _ := pipelinetest.Get(t, s3c, bucket, key); !bytes.Equal(got, pkg) {
		t.Errorf("%s is not F&O's package", key)
	}
	if got, _ := pipelinetest.Get(t, s3c, bucket, strings.TrimSuffix(key, ".zip")+"/Vendors.csv"); string(got) != "VENDORACCOUNT\r\nV001\r\n" {
		t.Errorf("unpacked Vendors.csv holds %q", got)
	}

	// The next export runs in F&O for a while, then fails.
	ticking.Store(false)
	emu.Script(d365test.Rule{ActivityID: "Vendors export", Outcome: d365test.Outcome{Status: "PreProcessingError", RunTicks: 1,
		Errors: []d365test.ExecutionError{{RecordId: "3", Field: "NAME", ErrorMessage: "Vendor V003 is on hold"}}}})
	for range 2 {
		if sum := invoke(); sum.Executions[len(sum.Executions)-1].Outcome != "in-flight" {
			t.Fatalf("while it runs: %+v", sum)
		}
	}
	if n := emu.Requests("ExportToPackage"); n != 2 {
		t.Fatalf("%d exports started, want 2: none while one runs", n)
	}
	emu.Tick()
	emu.Tick()
	sum = invoke()
	if x := sum.Executions[0]; x.Outcome != dequeue.ExecFailed || x.ErrorRows != 1 || x.Errors[0].ErrorMessage != "Vendor V003 is on hold" {
		t.Fatalf("failed export: %+v", sum)
	}
	if got := alerts.subjects(t); len(got) != 1 || got[0] != "[prod] export-failed: vendors: Failed, 1 rows" {
		t.Errorf("notifications %q", got)
	}
	if keys := pipelinetest.Keys(t, s3c, bucket, "outbound/"); len(keys) != 2 {
		t.Errorf("outbound/ holds %v, want the first package and its entity file", keys)
	}

	v := status.Viewer{S3: s3c, Bucket: bucket, Layout: layout.Default(), Doc: doc, Now: time.Now}
	rep, err := v.View(ctx)
	if err != nil || len(rep.Jobs) != 1 || rep.Jobs[0].LastLanding.IsZero() || rep.Jobs[0].LastRun.Before(rep.Jobs[0].LastLanding) {
		t.Fatalf("status view %+v, %v", rep.Jobs, err)
	}
	// The failed run started the next export, which F&O runs now.
	if x := rep.Jobs[0].Execution; x == nil || x.ExecutionID != sum.Executions[1].ExecutionID || x.Outcome != "in-flight" || x.Status != "Executing" {
		t.Errorf("status view's execution %+v, want %+v", x, sum.Executions[1])
	}
	if emu.BlobSawToken() {
		t.Error("the bearer token reached the blob host")
	}
}

// startDequeue builds the dequeue function and starts it behind the
// Runtime API host, on moto and the emulator. A run waits for an
// execution at most a few seconds: the deadline is DEADLINE_MARGIN plus
// that.
func startDequeue(t *testing.T, emu *d365test.Emulator, bucket, topic string) *lambdahost.Host {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bootstrap")
	if err := lambdahost.Build(context.Background(), "../..", "./functions/dequeue", bin); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "emulator-ca.pem")
	if err := os.WriteFile(ca, emu.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"FNO_BASE_URL": emu.URL(), "FNO_TENANT_ID": emu.TenantID(), "FNO_CLIENT_ID": emu.ClientID(),
		"FNO_CLIENT_SECRET": emu.ClientSecret(), "FNO_CA_BUNDLE": ca,
		"FNO_AUTHORITY_HOST": strings.TrimSuffix(emu.AuthorityURL(), "/"+emu.TenantID()),
		"BUCKET":             bucket, "NOTIFY_TOPIC_ARN": topic, "STACK_NAME": "prod", "DEADLINE_MARGIN": "20s",
	}
	for _, kv := range mototest.Env(t) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	logs := &credentialCheck{t: t}
	h, err := lambdahost.Start(context.Background(), lambdahost.Function{Name: "dequeue", Bootstrap: bin, Env: env,
		Timeout: 25 * time.Second, MemoryMB: 512, Stdout: logs, Stderr: logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// credentialCheck reads the function's output and fails the test on a
// line that carries a bearer token or the client secret.
type credentialCheck struct{ t *testing.T }

func (l *credentialCheck) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("Bearer ")) || bytes.Contains(p, []byte("emulator-secret")) {
		l.t.Errorf("a log line carries a credential: %s", p)
	}
	return len(p), nil
}
