package dequeue_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/notify"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// The data project every package job here exports, and what F&O exports
// of it.
const vendorsGroup = "Vendors export"

var vendorsPackage = d365test.NewPackage(vendorsGroup,
	d365test.PackageEntity{Name: "Vendors", Data: []byte("VENDORACCOUNT,NAME\r\nV001,Contoso\r\nV002,Fabrikam\r\n")},
	d365test.PackageEntity{Name: "Vendor groups", FileName: "groups.csv", Data: []byte("GROUP\r\n10\r\n")})

// pkgEnv is env for dataProject jobs: the topic notifications go to (a
// queue subscribed on moto's SNS), the metrics written, and F&O's batch
// taking a step at each look at an execution (ticks) or when the test
// says.
type pkgEnv struct {
	*env
	alerts struct {
		sns   *sns.Client
		sqs   *sqs.Client
		topic string
		queue string
	}
	emf   pipelinetest.SyncBuffer
	ahead atomic.Int64 // the handler's clock runs this far ahead
	ticks atomic.Bool
	mu    sync.Mutex
	hook  func(endpoint string) // also called at each request
}

func newPkgEnv(t *testing.T, opts d365test.Options) *pkgEnv {
	t.Helper()
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = 30 * 24 * time.Hour
	}
	v := &pkgEnv{env: newEnv(t, opts)}
	v.e.SetExportPackage(vendorsGroup, vendorsPackage)
	v.e.SetFaultFunc(func(endpoint string, _ *http.Request) *d365test.Fault {
		if endpoint == "GetExecutionSummaryStatus" && v.ticks.Load() {
			v.e.Tick()
		}
		v.mu.Lock()
		hook := v.hook
		v.mu.Unlock()
		if hook != nil {
			hook(endpoint)
		}
		return nil
	})
	ctx := context.Background()
	cfg := mototest.Config(t)
	v.alerts.sns, v.alerts.sqs = sns.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	topic, err := v.alerts.sns.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(mototest.Name("alerts"))})
	if err != nil {
		t.Fatal(err)
	}
	v.alerts.topic = aws.ToString(topic.TopicArn)
	var arn string
	v.alerts.queue, arn = pipelinetest.NewStandard(t, v.alerts.sqs, 30)
	if _, err := v.alerts.sns.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	return v
}

// handler is a dequeue handler that looks at executions every few
// milliseconds and waits at most two seconds for one.
func (v *pkgEnv) handler(mod func(*dequeue.Config)) *dequeue.Handler {
	v.t.Helper()
	rec := metrics.New("test", &v.emf)
	return v.env.handler(func(c *dequeue.Config) {
		c.ExecutionPoll, c.ExecutionWait = 2*time.Millisecond, 2*time.Second
		c.Now = func() time.Time { return time.Now().Add(time.Duration(v.ahead.Load())) }
		c.Metrics = rec
		c.Notify = &notify.Notifier{Topic: v.alerts.topic, Stack: "test", Function: "dequeue", SNS: v.alerts.sns, S3: v.s3,
			Bucket: v.bucket, Layout: layout.Default(), Log: pipelinetest.Quiet(), Metrics: rec}
		if mod != nil {
			mod(c)
		}
	})
}

func (v *pkgEnv) setHook(fn func(endpoint string)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.hook = fn
}

// subjects takes the notifications sent so far off the topic's queue.
func (v *pkgEnv) subjects() []string {
	v.t.Helper()
	var out []string
	for _, m := range pipelinetest.Receive(v.t, v.alerts.sqs, v.alerts.queue) {
		var env struct{ Subject, Message string }
		json.Unmarshal([]byte(aws.ToString(m.Body)), &env)
		out = append(out, env.Subject)
	}
	slices.Sort(out)
	return out
}

// exportFailures sums the ExportFailures metric written so far.
func (v *pkgEnv) exportFailures() int {
	n := 0
	for _, m := range v.emf.Lines() {
		if f, ok := m["ExportFailures"].(float64); ok {
			n += int(f)
		}
	}
	return n
}

// pkgInput is a dataProject job exporting vendorsGroup.
func pkgInput(job, extra string) string {
	s := `{"job":"` + job + `","kind":"dataProject","definitionGroupId":"` + vendorsGroup + `","legalEntityId":"USMF"`
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

// runErr runs the handler and returns its error too.
func (v *pkgEnv) runErr(ctx context.Context, h *dequeue.Handler, input string) (dequeue.Summary, error) {
	return h.Handle(ctx, json.RawMessage(input))
}

// execution reads a job's execution document.
func (v *pkgEnv) execution(job string) dequeue.Execution {
	v.t.Helper()
	raw, _ := v.get("_state/exports/" + job + "/package/execution.json")
	var x dequeue.Execution
	if err := json.Unmarshal(raw, &x); err != nil {
		v.t.Fatalf("execution document: %v", err)
	}
	return x
}

func (v *pkgEnv) putJSON(key string, doc any) {
	v.t.Helper()
	b, _ := json.Marshal(doc)
	if _, err := v.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &v.bucket, Key: &key, Body: bytes.NewReader(b)}); err != nil {
		v.t.Fatal(err)
	}
}

// landedOnce checks the one execution's package is at key, once, and is
// F&O's package.
func (v *pkgEnv) landedOnce(key, executionID string, want []byte) {
	v.t.Helper()
	if n := v.versions(key); n != 1 {
		v.t.Errorf("%s has %d versions, want 1", key, n)
	}
	got, meta := v.get(key)
	if !bytes.Equal(got, want) {
		v.t.Errorf("%s is not F&O's package (%d bytes, want %d)", key, len(got), len(want))
	}
	if meta["execution-id"] != executionID || meta["definition-group-id"] != vendorsGroup || meta["job"] == "" {
		v.t.Errorf("%s metadata %v", key, meta)
	}
}

// resultDocument checks the result document of a job's execution F&O
// ended with errors: at failed/_exports/<job>/<day it started>/, named in
// the run's record, with F&O's status and every error row.
func (v *pkgEnv) resultDocument(x dequeue.ExecutionResult, job, pkg, status string, rows int) {
	v.t.Helper()
	want := layout.Default().FailedExportKey(job, x.StartedAt, dequeue.KeyID(x.ExecutionID)+"-"+pkg+layout.ResultSuffix)
	if x.ResultKey != want {
		v.t.Fatalf("execution %s: result document %q, want %q", x.ExecutionID, x.ResultKey, want)
	}
	raw, _ := v.get(want)
	var doc dequeue.ExportResult
	if err := json.Unmarshal(raw, &doc); err != nil {
		v.t.Fatalf("%s: %v (%s)", want, err, raw)
	}
	if doc.Outcome != "failed" || doc.Status != status || doc.Job != job || doc.PackageName != pkg || doc.ExecutionID != x.ExecutionID || len(doc.Errors) != rows ||
		doc.FinishedAt.IsZero() || len(doc.Notes) != 1 {
		v.t.Fatalf("%s = %+v", want, doc)
	}
}

func lastExecution(t *testing.T, sum dequeue.Summary) dequeue.ExecutionResult {
	t.Helper()
	if len(sum.Executions) == 0 {
		t.Fatalf("no execution in the summary: %+v", sum)
	}
	return sum.Executions[len(sum.Executions)-1]
}

// TestPackageJobLandsEachExecutionOnce: a run starts an export under an
// execution ID it chose, follows it to Succeeded and lands the package at
// <prefix><date>/<executionId>-<packageName>.zip; the next run starts the
// next export, and the first is not landed again.
func TestPackageJobLandsEachExecutionOnce(t *testing.T) {
	t.Parallel()
	v := newPkgEnv(t, d365test.Options{})
	v.ticks.Store(true)
	h := v.handler(nil)

	first := v.run(h, pkgInput("vendors", `"packageName":"vendor-master"`))
	x1 := lastExecution(t, first)
	if len(first.Executions) != 1 || !x1.Started || x1.Outcome != dequeue.ExecLanded || x1.Status != "Succeeded" ||
		first.Landed != 1 || len(first.Errors) != 0 || first.MoreMayRemain {
		t.Fatalf("first run: %+v", first)
	}
	xs := v.e.Executions()
	if len(xs) != 1 || xs[0].ID != x1.ExecutionID || xs[0].DefinitionGroupID != vendorsGroup || xs[0].LegalEntityID != "USMF" {
		t.Fatalf("F&O's executions %+v, want one, under the ID the job chose (%s)", xs, x1.ExecutionID)
	}
	// <prefix><yyyy>/<mm>/<dd>/<executionId>-<packageName>.zip, the
	// execution named after the job.
	if want := dequeue.ObjectKey("outbound/vendors/", time.Now().UTC(), x1.ExecutionID, "vendor-master.zip"); x1.Key != want &&
		!strings.HasSuffix(x1.Key, "/"+x1.ExecutionID+"-vendor-master.zip") { // the day may have turned
		t.Errorf("key %q, want %q", x1.Key, want)
	}
	if !strings.HasPrefix(x1.ExecutionID, "vendors-") {
		t.Errorf("execution ID %q is not named after the job", x1.ExecutionID)
	}
	if first.Files[0].Key != x1.Key || first.Files[0].ExecutionID != x1.ExecutionID {
		t.Errorf("file result %+v", first.Files[0])
	}
	v.landedOnce(x1.Key, x1.ExecutionID, vendorsPackage)
	if x := v.execution("vendors"); x.Phase != dequeue.PhaseDone || x.Outcome != dequeue.ExecLanded || x.ExecutionID != x1.ExecutionID || x.Key != x1.Key {
		t.Errorf("execution document %+v", x)
	}

	second := v.run(h, pkgInput("vendors", `"packageName":"vendor-master"`))
	x2 := lastExecution(t, second)
	if len(second.Executions) != 1 || x2.ExecutionID == x1.ExecutionID || x2.Outcome != dequeue.ExecLanded || second.Landed != 1 {
		t.Fatalf("second run: %+v", second)
	}
	v.landedOnce(x1.Key, x1.ExecutionID, vendorsPackage)
	v.landedOnce(x2.Key, x2.ExecutionID, vendorsPackage)
	if n := v.e.Requests("ExportToPackage"); n != 2 {
		t.Errorf("%d ExportToPackage calls, want one per run", n)
	}
	for _, k := range []string{"_state/status/jobs/vendors/last-run.json", "_state/status/jobs/vendors/last-landing.json"} {
		if !v.exists(k) {
			t.Errorf("no %s", k)
		}
	}
	if v.e.BlobSawToken() {
		t.Error("the bearer token reached the blob host")
	}
	if s := v.subjects(); len(s) != 0 || v.exportFailures() != 0 {
		t.Errorf("notifications %v, %d failures counted, want none", s, v.exportFailures())
	}
}

// TestPackageJobAnswerLost: the run dies while ExportToPackage's answer is
// on its way (F&O started the export). The next run follows the execution
// by the ID recorded before the call and lands it once; no second export
// of it is started.
func TestPackageJobAnswerLost(t *testing.T) {
	t.Parallel()
	v := newPkgEnv(t, d365test.Options{})
	v.e.Inject(d365test.Fault{Endpoint: "ExportToPackage", Count: 1, Delay: time.Minute})
	h := v.handler(func(c *dequeue.Config) { c.DeadlineMargin = time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if _, err := v.runErr(ctx, h, pkgInput("vendors", "")); err == nil {
		t.Fatal("a run that died mid-call reported no error")
	}
	xs := v.e.Executions()
	if len(xs) != 1 {
		t.Fatalf("F&O has %d executions, want the one started", len(xs))
	}
	if x := v.execution("vendors"); x.ExecutionID != xs[0].ID || x.Phase != dequeue.PhaseStarting {
		t.Fatalf("execution document %+v, want F&O's execution %s, starting", x, xs[0].ID)
	}

	v.ticks.Store(true)
	sum := v.run(h, pkgInput("vendors", ""))
	if len(sum.Executions) != 2 || sum.Executions[0].ExecutionID != xs[0].ID || sum.Executions[0].Started ||
		sum.Executions[0].Outcome != dequeue.ExecLanded || sum.Executions[1].Outcome != dequeue.ExecLanded {
		t.Fatalf("next run: %+v", sum)
	}
	v.landedOnce(sum.Executions[0].Key, xs[0].ID, vendorsPackage)
	if n := len(v.e.Executions()); n != 2 {
		t.Errorf("F&O has %d executions, want 2 (the one followed, the next run's)", n)
	}
}

// bigPackage is a data package of about n random bytes (they do not
// compress), so it lands in several parts.
func bigPackage(t *testing.T, n int) []byte {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	return d365test.NewPackage(vendorsGroup, d365test.PackageEntity{Name: "Vendors", Data: data})
}

// TestPackageJobDiesHalfWay: the package's download breaks off half way
// through a multipart landing: nothing is left half written, no second
// export starts, and the next run lands it once. A run that died after
// the object was complete but before its marker and the execution
// document said so recognises it and does not land it again.
func TestPackageJobDiesHalfWay(t *testing.T) {
	t.Parallel()
	v := newPkgEnv(t, d365test.Options{})
	pkg := bigPackage(t, 12<<20)
	v.e.SetExportPackage(vendorsGroup, pkg)
	v.ticks.Store(true)
	h := v.handler(nil)
	v.e.Inject(d365test.Fault{Endpoint: "blob-get", Count: 1, ResetAfterBytes: 7 << 20})

	first := v.run(h, pkgInput("vendors", ""))
	x1 := lastExecution(t, first)
	if len(first.Executions) != 1 || x1.Outcome != "in-flight" || first.Failed != 1 || first.Landed != 0 || !first.MoreMayRemain {
		t.Fatalf("first run: %+v", first)
	}
	if n := v.multipartUploads(); n != 0 {
		t.Errorf("%d multipart uploads left", n)
	}
	second := v.run(h, pkgInput("vendors", ""))
	if len(second.Executions) != 2 || second.Executions[0].ExecutionID != x1.ExecutionID || second.Executions[0].Outcome != dequeue.ExecLanded {
		t.Fatalf("second run: %+v", second)
	}
	v.landedOnce(second.Executions[0].Key, x1.ExecutionID, pkg)
	if n := v.e.Requests("ExportToPackage"); n != 2 {
		t.Errorf("%d ExportToPackage calls, want 2 (none while the first was not landed)", n)
	}

	// The second run's own export: make it look as if the run had died
	// right after the upload completed.
	x2 := second.Executions[1]
	marker := "_state/exports/vendors/" + dequeue.KeyID(x2.ExecutionID) + ".json"
	raw, _ := v.get(marker)
	var m dequeue.Marker
	json.Unmarshal(raw, &m)
	m.State = dequeue.StateReserved
	v.putJSON(marker, m)
	doc := v.execution("vendors")
	doc.Phase, doc.Outcome, doc.Key, doc.FinishedAt = dequeue.PhaseRunning, "", "", time.Time{}
	v.putJSON("_state/exports/vendors/package/execution.json", doc)
	third := v.run(h, pkgInput("vendors", ""))
	if third.Executions[0].ExecutionID != x2.ExecutionID || third.Executions[0].Outcome != dequeue.ExecLanded || third.AlreadyLanded != 1 {
		t.Fatalf("third run: %+v", third)
	}
	v.landedOnce(x2.Key, x2.ExecutionID, pkg)
}

// TestPackageJobOneExecutionAtATime: while the job's execution runs in F&O
// (longer than a run waits), runs follow it and start no other; once it
// has ended the next run lands it and starts the next. The run record
// shows the execution in flight.
func TestPackageJobOneExecutionAtATime(t *testing.T) {
	t.Parallel()
	v := newPkgEnv(t, d365test.Options{})
	v.e.Script(d365test.Rule{ActivityID: vendorsGroup, Outcome: d365test.Outcome{RunTicks: 3}})
	h := v.handler(func(c *dequeue.Config) { c.ExecutionWait = 30 * time.Millisecond })

	first := v.run(h, pkgInput("vendors", ""))
	x1 := lastExecution(t, first)
	if !x1.Started || x1.Outcome != "in-flight" || x1.Status != "Executing" || !first.MoreMayRemain || len(first.Errors) != 0 {
		t.Fatalf("first run: %+v", first)
	}
	second := v.run(h, pkgInput("vendors", ""))
	if x := lastExecution(t, second); len(second.Executions) != 1 || x.ExecutionID != x1.ExecutionID || x.Started || x.Outcome != "in-flight" {
		t.Fatalf("second run: %+v", second)
	}
	if n := v.e.Requests("ExportToPackage"); n != 1 {
		t.Fatalf("%d ExportToPackage calls while the first export ran, want 1", n)
	}
	raw, _ := v.get("_state/status/jobs/vendors/last-run.json")
	var rec dequeue.JobRun
	if err := json.Unmarshal(raw, &rec); err != nil || len(rec.Summary.Executions) != 1 ||
		rec.Summary.Executions[0].ExecutionID != x1.ExecutionID || rec.Summary.Executions[0].Outcome != "in-flight" {
		t.Errorf("run record %s: %v", raw, err)
	}
	for range 4 {
		v.e.Tick()
	}
	third := v.run(h, pkgInput("vendors", ""))
	if len(third.Executions) != 2 || third.Executions[0].ExecutionID != x1.ExecutionID || third.Executions[0].Outcome != dequeue.ExecLanded ||
		!third.Executions[1].Started || third.Executions[1].Outcome != "in-flight" {
		t.Fatalf("third run: %+v", third)
	}
	if n := v.e.Requests("ExportToPackage"); n != 2 {
		t.Errorf("%d ExportToPackage calls, want 2", n)
	}
}

// TestPackageJobFailures: an export that ends Failed is reported with its
// execution errors (summary, metric, one notification) and lands nothing;
// one that ends PartiallySucceeded is reported and still lands its
// package. A run that could report a PartiallySucceeded export but not
// land it lands it later without telling of it again.
func TestPackageJobFailures(t *testing.T) {
	t.Parallel()
	v := newPkgEnv(t, d365test.Options{})
	v.e.Script(d365test.Rule{ActivityID: "Broken export", Outcome: d365test.Outcome{Status: "PreProcessingError", Errors: []d365test.ExecutionError{
		{RecordId: "", Field: "", ErrorMessage: "The entity Vendors V9 does not exist"}, {RecordId: "12", Field: "NAME", ErrorMessage: "too long"}}}})
	v.e.Script(d365test.Rule{ActivityID: vendorsGroup, Outcome: d365test.Outcome{ExecutionStatus: "PartiallySucceeded",
		Errors: []d365test.ExecutionError{{RecordId: "7", Field: "VENDORACCOUNT", ErrorMessage: "duplicate"}}}})
	h := v.handler(func(c *dequeue.Config) { c.ExecutionWait = 30 * time.Millisecond })
	broken := `{"job":"broken","kind":"dataProject","definitionGroupId":"Broken export","legalEntityId":"USMF","packageName":"broken-pkg"}`

	v.run(h, broken) // starts it
	v.e.Tick()       // F&O fails it
	sum := v.run(h, broken)
	x := sum.Executions[0]
	if x.Outcome != dequeue.ExecFailed || x.Status != "Failed" || x.ErrorRows != 2 || len(x.Errors) != 2 || x.Errors[1].ErrorMessage != "too long" ||
		sum.Landed != 0 || !strings.Contains(strings.Join(sum.Errors, "\n"), "Failed, 2 execution error(s): The entity Vendors V9 does not exist") {
		t.Fatalf("failed export: %+v", sum)
	}
	// Every row is kept in the result document, named in the run's record.
	v.resultDocument(x, "broken", "broken-pkg", "Failed", 2)
	v.run(h, broken) // the next export, still running: nothing to tell
	if got := v.subjects(); len(got) != 1 || got[0] != "[test] export-failed: broken: Failed, 2 rows" {
		t.Errorf("notifications %q", got)
	}
	if keys := v.keys("outbound/broken/"); len(keys) != 0 {
		t.Errorf("a failed export landed %v", keys)
	}

	v.ticks.Store(true)
	v.e.Inject(d365test.Fault{Endpoint: "blob-get", Status: 500, Count: 1000})
	sum = v.run(h, pkgInput("vendors", ""))
	if x := sum.Executions[0]; x.Status != "PartiallySucceeded" || x.ErrorRows != 1 || x.Outcome != "in-flight" || sum.Failed != 1 {
		t.Fatalf("partial export not landed: %+v", sum)
	}
	v.e.ClearFaults()
	sum = v.run(h, pkgInput("vendors", ""))
	x = sum.Executions[0]
	if x.Outcome != dequeue.ExecLanded || sum.Landed < 1 {
		t.Fatalf("partial export: %+v", sum)
	}
	v.resultDocument(x, "vendors", "vendors", "PartiallySucceeded", 1)
	v.landedOnce(x.Key, x.ExecutionID, vendorsPackage)
	got := v.subjects()
	want := []string{"[test] export-failed: vendors: PartiallySucceeded, 1 rows", "[test] export-failed: vendors: PartiallySucceeded, 1 rows",
		"[test] export-failed: vendors: download"}
	// The second run's own export ended PartiallySucceeded too.
	if !slices.Equal(got, want) {
		t.Errorf("notifications %q, want %q", got, want)
	}
	if n := v.exportFailures(); n != 4 {
		t.Errorf("ExportFailures %d, want 4 (failed, partial, not landed, partial)", n)
	}
}

// TestPackageJobExpiredSAS: the package URL's SAS has expired by the time
// the package is fetched: the job asks F&O for a new URL and lands it,
// never sending the bearer token to the blob host.
func TestPackageJobExpiredSAS(t *testing.T) {
	t.Parallel()
	v := newPkgEnv(t, d365test.Options{SASLifetime: time.Hour})
	v.ticks.Store(true)
	var once sync.Once
	v.setHook(func(endpoint string) {
		if endpoint == "blob-get" {
			once.Do(func() { v.e.Advance(2 * time.Hour) })
		}
	})
	sum := v.run(v.handler(nil), pkgInput("vendors", ""))
	x := lastExecution(t, sum)
	if x.Outcome != dequeue.ExecLanded || len(sum.Errors) != 0 {
		t.Fatalf("summary %+v", sum)
	}
	v.landedOnce(x.Key, x.ExecutionID, vendorsPackage)
	if n := v.e.Requests("GetExportedPackageUrl"); n != 2 {
		t.Errorf("%d package URLs asked for, want 2", n)
	}
	if v.e.BlobSawToken() {
		t.Error("the bearer token reached the blob host")
	}
}

// TestPackageJobWaitsForTheURL: F&O answers GetExportedPackageUrl with ""
// for a while after the export ended; the run keeps asking.
func TestPackageJobWaitsForTheURL(t *testing.T) {
	t.Parallel()
	v := newPkgEnv(t, d365test.Options{})
	v.e.Script(d365test.Rule{ActivityID: vendorsGroup, Outcome: d365test.Outcome{URLEmptyPolls: 3}})
	v.ticks.Store(true)
	sum := v.run(v.handler(nil), pkgInput("vendors", ""))
	if x := lastExecution(t, sum); x.Outcome != dequeue.ExecLanded {
		t.Fatalf("summary %+v", sum)
	}
	if n := v.e.Requests("GetExportedPackageUrl"); n != 4 {
		t.Errorf("%d package URLs asked for, want 4", n)
	}
}

// TestPackageJobUnpacks: with unpack, the entity files land beside the
// package.
func TestPackageJobUnpacks(t *testing.T) {
	t.Parallel()
	v := newPkgEnv(t, d365test.Options{})
	v.ticks.Store(true)
	sum := v.run(v.handler(nil), pkgInput("vendors", `"unpack":true,"prefix":"outbound/erp/vendors"`))
	x := lastExecution(t, sum)
	if x.Outcome != dequeue.ExecLanded || sum.EntityFiles != 2 || !strings.HasPrefix(x.Key, "outbound/erp/vendors/") {
		t.Fatalf("summary %+v", sum)
	}
	dir := strings.TrimSuffix(x.Key, ".zip") + "/"
	if got := v.keys(dir); !slices.Equal(got, []string{dir + "Vendors.csv", dir + "groups.csv"}) {
		t.Errorf("entity files %v", got)
	}
	if body, _ := v.get(dir + "groups.csv"); string(body) != "GROUP\r\n10\r\n" {
		t.Errorf("groups.csv holds %q", body)
	}
}

// TestPackageJobLostExecution: ExportToPackage failed with no sign the
// export started, and F&O keeps saying it knows no such execution: after
// ExecutionLostAfter the job gives it up and starts a new export.
func TestPackageJobLostExecution(t *testing.T) {
	t.Parallel()
	v := newPkgEnv(t, d365test.Options{})
	v.e.Inject(d365test.Fault{Endpoint: "ExportToPackage", Count: 1, Status: 500})
	h := v.handler(func(c *dequeue.Config) { c.ExecutionWait = 30 * time.Millisecond })
	first := v.run(h, pkgInput("vendors", ""))
	if x := lastExecution(t, first); x.Outcome != "in-flight" || len(v.e.Executions()) != 0 || len(first.Errors) == 0 {
		t.Fatalf("first run: %+v", first)
	}
	second := v.run(h, pkgInput("vendors", ""))
	if n := v.e.Requests("ExportToPackage"); n != 1 || lastExecution(t, second).Outcome != "in-flight" {
		t.Fatalf("within the hour: %d ExportToPackage calls, %+v", n, second)
	}
	v.ahead.Store(int64(61 * time.Minute))
	v.ticks.Store(true)
	third := v.run(h, pkgInput("vendors", ""))
	if len(third.Executions) != 2 || third.Executions[0].Outcome != dequeue.ExecLost || third.Executions[1].Outcome != dequeue.ExecLanded {
		t.Fatalf("after the hour: %+v", third)
	}
	if s := v.subjects(); len(s) != 0 {
		t.Errorf("notifications %q", s)
	}
}

// TestPackageJobRefused: F&O answers ExportToPackage with the empty
// execution ID (nothing started): reported, and the next run starts
// afresh.
func TestPackageJobRefused(t *testing.T) {
	t.Parallel()
	v := newPkgEnv(t, d365test.Options{})
	v.e.Inject(d365test.Fault{Endpoint: "ExportToPackage", Count: 1, EmptyExecutionID: true})
	v.ticks.Store(true)
	h := v.handler(nil)
	first := v.run(h, pkgInput("vendors", ""))
	if x := lastExecution(t, first); x.Outcome != dequeue.ExecRefused || len(first.Errors) != 1 {
		t.Fatalf("first run: %+v", first)
	}
	if x := v.execution("vendors"); x.Phase != dequeue.PhaseDone || x.Outcome != dequeue.ExecRefused {
		t.Errorf("execution document %+v", x)
	}
	if got := v.subjects(); len(got) != 1 || got[0] != "[test] export-failed: vendors: ExportToPackage refused" {
		t.Errorf("notifications %q", got)
	}
	second := v.run(h, pkgInput("vendors", ""))
	if x := lastExecution(t, second); x.Outcome != dequeue.ExecLanded {
		t.Fatalf("second run: %+v", second)
	}
}

// TestPackageJobPackageGone: the export ended, but the job did not run
// again until F&O had deleted the package (7 days): reported once, and the
// job starts a new export.
func TestPackageJobPackageGone(t *testing.T) {
	t.Parallel()
	v := newPkgEnv(t, d365test.Options{})
	h := v.handler(func(c *dequeue.Config) { c.ExecutionWait = 30 * time.Millisecond })
	v.run(h, pkgInput("vendors", ""))
	v.e.Tick()
	v.e.Advance(8 * 24 * time.Hour)
	sum := v.run(h, pkgInput("vendors", ""))
	if x := sum.Executions[0]; x.Outcome != dequeue.ExecGone || sum.Failed != 1 || len(sum.Executions) != 2 {
		t.Fatalf("summary %+v", sum)
	}
	if got := v.subjects(); len(got) != 1 || got[0] != "[test] export-failed: vendors: package gone" {
		t.Errorf("notifications %q", got)
	}
}

// TestPackageJobStuck: an export F&O still runs a day after it started is
// told to a person once (ERROR, ExportFailures, one notification), however
// many runs find it so, and the job still starts no other.
func TestPackageJobStuck(t *testing.T) {
	t.Parallel()
	v := newPkgEnv(t, d365test.Options{})
	v.e.Script(d365test.Rule{ActivityID: vendorsGroup, Outcome: d365test.Outcome{RunTicks: 1000}})
	h := v.handler(func(c *dequeue.Config) { c.ExecutionWait = 30 * time.Millisecond })
	first := v.run(h, pkgInput("vendors", ""))
	if x := lastExecution(t, first); !x.Started || x.Outcome != "in-flight" {
		t.Fatalf("first run: %+v", first)
	}
	if s := v.subjects(); len(s) != 0 || v.exportFailures() != 0 {
		t.Fatalf("told of a young export: %q", s)
	}
	v.ahead.Store(int64(25 * time.Hour))
	for range 3 {
		v.run(h, pkgInput("vendors", ""))
	}
	s := v.subjects()
	if len(s) != 1 || !strings.Contains(s[0], "export-failed: vendors: Executing for") {
		t.Errorf("notifications %q, want one telling the export is stuck", s)
	}
	if n := v.exportFailures(); n != 1 {
		t.Errorf("ExportFailures %d, want 1", n)
	}
	if n := v.e.Requests("ExportToPackage"); n != 1 {
		t.Errorf("%d ExportToPackage calls while the first export ran, want 1", n)
	}
	if x := v.execution("vendors"); !x.StuckReported || x.Phase == dequeue.PhaseDone {
		t.Errorf("execution %+v", x)
	}
}

// lostAnswerS3 writes the first PutObject of key and then answers it as the
// SDK's retry of a write whose answer was lost would see it: 412, the key
// being taken (by that very write).
type lostAnswerS3 struct {
	dequeue.S3
	key  string
	lost atomic.Bool
}

func (l *lostAnswerS3) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	out, err := l.S3.PutObject(ctx, in, o...)
	if err == nil && aws.ToString(in.Key) == l.key && l.lost.CompareAndSwap(false, true) {
		return nil, &smithy.GenericAPIError{Code: "PreconditionFailed", Message: "At least one of the pre-conditions you specified did not hold"}
	}
	return out, err
}

// TestPackageJobKnowsItsOwnWrite: the execution document's first write
// lands but its answer is lost, and the SDK's retry meets a 412: the run
// knows the document as its own and starts the export, rather than
// yielding to a run that does not exist (which left the export unstarted
// until it was given up as lost an hour later).
func TestPackageJobKnowsItsOwnWrite(t *testing.T) {
	t.Parallel()
	v := newPkgEnv(t, d365test.Options{})
	v.ticks.Store(true)
	h := v.handler(nil)
	lossy, err := dequeue.New(h.Config(), v.fno, &lostAnswerS3{S3: v.s3, key: "_state/exports/vendors/package/execution.json"})
	if err != nil {
		t.Fatal(err)
	}
	sum := v.run(lossy, pkgInput("vendors", ""))
	if n := v.e.Requests("ExportToPackage"); n != 1 {
		t.Fatalf("%d ExportToPackage calls, want 1; summary %+v", n, sum)
	}
	if x := lastExecution(t, sum); x.Outcome != dequeue.ExecLanded {
		t.Fatalf("summary %+v", sum)
	}
}

// TestPackageNotAZipIsNotLanded: blob storage (or a proxy before it)
// answers the package's download with status 200 and something that is no
// zip: nothing lands and the execution stays to be fetched again, by the
// next run.
func TestPackageNotAZipIsNotLanded(t *testing.T) {
	t.Parallel()
	v := newPkgEnv(t, d365test.Options{})
	v.ticks.Store(true)
	h := v.handler(nil)
	v.e.Inject(d365test.Fault{Endpoint: "blob-get", Count: 1, Status: http.StatusOK})
	first := v.run(h, pkgInput("vendors", ""))
	x := lastExecution(t, first)
	if x.Outcome == dequeue.ExecLanded || !strings.Contains(strings.Join(first.Errors, "\n"), "not a data package") {
		t.Fatalf("first run: %+v", first)
	}
	if keys := v.keys("outbound/"); len(keys) != 0 {
		t.Fatalf("landed %v", keys)
	}
	second := v.run(h, pkgInput("vendors", ""))
	if len(second.Executions) == 0 || second.Executions[0].ExecutionID != x.ExecutionID || second.Executions[0].Outcome != dequeue.ExecLanded {
		t.Fatalf("second run: %+v; want execution %s landed", second, x.ExecutionID)
	}
}

// refusingS3 refuses every PutObject under prefix.
type refusingS3 struct {
	dequeue.S3
	prefix string
}

func (r refusingS3) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if strings.HasPrefix(aws.ToString(in.Key), r.prefix) {
		return nil, &smithy.GenericAPIError{Code: "AccessDenied", Message: "injected"}
	}
	return r.S3.PutObject(ctx, in, o...)
}

// TestPackageJobResultNotWritten: a result document S3 refuses does not
// hold the job back: the failure is told all the same (once), the run
// counts the refusal, and the execution is done, naming no document.
func TestPackageJobResultNotWritten(t *testing.T) {
	t.Parallel()
	v := newPkgEnv(t, d365test.Options{})
	v.e.Script(d365test.Rule{ActivityID: "Broken export", Outcome: d365test.Outcome{Status: "PreProcessingError",
		Errors: []d365test.ExecutionError{{ErrorMessage: "The entity Vendors V9 does not exist"}}}})
	h := v.handler(func(c *dequeue.Config) { c.ExecutionWait = 30 * time.Millisecond })
	refusing, err := dequeue.New(h.Config(), v.fno, refusingS3{S3: v.s3, prefix: "failed/_exports/"})
	if err != nil {
		t.Fatal(err)
	}
	broken := `{"job":"broken","kind":"dataProject","definitionGroupId":"Broken export","legalEntityId":"USMF"}`
	v.run(refusing, broken)
	v.e.Tick()
	sum := v.run(refusing, broken)
	x := sum.Executions[0]
	if x.Outcome != dequeue.ExecFailed || x.ResultKey != "" || !strings.Contains(strings.Join(sum.Errors, "\n"), "result document not written") {
		t.Fatalf("summary = %+v", sum)
	}
	if keys := v.keys("failed/"); len(keys) != 0 {
		t.Errorf("written under failed/: %v", keys)
	}
	if got := v.subjects(); len(got) != 1 || got[0] != "[test] export-failed: broken: Failed, 1 rows" {
		t.Errorf("notifications %q", got)
	}
}
