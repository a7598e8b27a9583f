package enqueue_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// importer is the F&O client with a hook around ImportFromPackage (to
// crash, lose the answer, or answer an error after F&O acted).
type importer struct {
	*d365.Client
	hook func(ctx context.Context, in d365.ImportPackageRequest, real func(context.Context, d365.ImportPackageRequest) (string, error)) (string, error)
}

func (i *importer) ImportFromPackage(ctx context.Context, in d365.ImportPackageRequest) (string, error) {
	if i.hook != nil {
		return i.hook(ctx, in, i.Client.ImportFromPackage)
	}
	return i.Client.ImportFromPackage(ctx, in)
}

// pkgFixture is the enqueue function with dataProject routes on moto and
// the emulator, packages going up in blocks of 1 KiB.
type pkgFixture struct {
	w       *pipelinetest.Imports
	emu     *d365test.Emulator
	cfg     enqueue.Config
	fno     *importer
	h       *enqueue.Handler
	logs    *pipelinetest.SyncBuffer
	metrics *pipelinetest.SyncBuffer
	store   *ledger.Store
}

func newPkgFixture(t *testing.T, opts d365test.Options, env map[string]string) *pkgFixture {
	t.Helper()
	w := pipelinetest.NewImports(t, pipelinetest.FIFO{})
	f := &pkgFixture{w: w, emu: d365test.NewT(t, opts), logs: &pipelinetest.SyncBuffer{}, metrics: &pipelinetest.SyncBuffer{}}
	e := w.Env(pipelinetest.PackageRoutes)
	for k, v := range env {
		e[k] = v
	}
	cfg, err := enqueue.ConfigFromEnv(func(k string) string { return e[k] })
	if err != nil {
		t.Fatal(err)
	}
	cfg.BlockSize = 1 << 10
	cfg.Observers.Metrics = metrics.New("test", f.metrics)
	f.cfg = cfg
	f.fno = &importer{Client: pipelinetest.FnO(t, f.emu)}
	f.h = f.handler(t, f.fno)
	f.store = &ledger.Store{S3: w.S3, Bucket: w.Bucket, Layout: cfg.Layout}
	return f
}

func (f *pkgFixture) handler(t *testing.T, fno enqueue.Enqueuer) *enqueue.Handler {
	t.Helper()
	h, err := enqueue.New(f.cfg, f.w.S3, fno, f.w.SQS, slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (f *pkgFixture) route(t *testing.T, name string) routes.Route {
	t.Helper()
	rt, ok := f.cfg.Routes.Lookup(name)
	if !ok {
		t.Fatalf("no route %s", name)
	}
	return rt
}

// passes asks for a release of each route and runs the queue dry.
func (f *pkgFixture) passes(t *testing.T, h *enqueue.Handler, names ...string) {
	t.Helper()
	for _, n := range names {
		pipelinetest.RequestRelease(t, f.w.SQS, f.w.Queue, f.route(t, n))
	}
	(&pipelinetest.ESM{SQS: f.w.SQS, QueueURL: f.w.Queue}).Drain(t, context.Background(), h.Handle)
}

func (f *pkgFixture) lock(t *testing.T, scope string) *ledger.HeldLock {
	t.Helper()
	l, err := f.store.GetLock(context.Background(), scope)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (f *pkgFixture) keys(t *testing.T, prefix string) []string {
	t.Helper()
	return pipelinetest.Keys(t, f.w.S3, f.w.Bucket, prefix)
}

// bigPackage is a package of three entities, several KiB: several blocks.
func bigPackage(group string) []byte {
	var ents []d365test.PackageEntity
	for _, e := range []string{"Customer groups", "Vendor groups", "Currencies"} {
		ents = append(ents, d365test.PackageEntity{Name: e, Data: bytes.Repeat([]byte("ID,NAME,"+e+"\r\n"), 200)})
	}
	return d365test.NewPackage(group, ents...)
}

// TestPackageImportedUnderItsLock: a dropped package is released under its
// scope's lock, streamed to the blob URL in blocks (never with the token),
// and imported once into its data project under the execution ID chosen
// before the call; the marker, ledger record and lock say so.
func TestPackageImportedUnderItsLock(t *testing.T) {
	t.Parallel()
	f := newPkgFixture(t, d365test.Options{}, nil)
	pkg := bigPackage("Opening balances")
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/opening/2026-01.zip", pkg)
	f.passes(t, f.h, "opening")

	xs := f.emu.Executions()
	if len(xs) != 1 {
		t.Fatalf("%d executions, want 1", len(xs))
	}
	x := xs[0]
	if x.DefinitionGroupID != "Opening balances" || x.LegalEntityID != "USMF" || !x.Execute || len(x.Entities) != 3 {
		t.Errorf("execution %+v", x)
	}
	if got, ok := f.emu.Blob(x.PackageBlob); !ok || !bytes.Equal(got, pkg) {
		t.Errorf("the blob F&O imported is not the package (%d of %d bytes)", len(got), len(pkg))
	}
	if n := f.emu.Requests("blob-put-block"); n != (len(pkg)+1023)/1024 || f.emu.Requests("blob-put-block-list") != 1 || f.emu.Requests("blob-put") != 0 {
		t.Errorf("blocks %d, lists %d, single PUTs %d", n, f.emu.Requests("blob-put-block-list"), f.emu.Requests("blob-put"))
	}
	if f.emu.BlobSawToken() {
		t.Error("the bearer token reached the blob host")
	}
	id := mustIdentity(t, f, "inbound/opening/2026-01.zip")
	mk, found, err := f.store.GetMarker(context.Background(), id)
	if err != nil || !found || mk.Sending() || mk.ExecutionID != x.ID || mk.DefinitionGroupID != "Opening balances" ||
		strings.Join(mk.Entities, "|") != "Customer groups|Vendor groups|Currencies" || mk.Kind != "dataProject" || mk.Scope != "environment" {
		t.Fatalf("marker %+v %v %v", mk, found, err)
	}
	// Filing copies the file with what the enqueue read of it, without a HEAD.
	if h := mk.SourceHead; h == nil || h.Size != int64(len(pkg)) {
		t.Errorf("source head %+v: want the package's, %d bytes", h, len(pkg))
	}
	if n := len(f.keys(t, "_state/ledger/")); n != 1 {
		t.Errorf("%d ledger records", n)
	}
	if l := f.lock(t, "environment"); l == nil || l.State != ledger.LockRunning || l.ExecutionID != x.ID || l.Identity != id {
		t.Errorf("lock %+v", l)
	}
	if f.emu.Requests("ImportFromPackage") != 1 {
		t.Errorf("%d ImportFromPackage calls", f.emu.Requests("ImportFromPackage"))
	}
}

// mustIdentity is the identity of the current version of key.
func mustIdentity(t *testing.T, f *pkgFixture, key string) string {
	t.Helper()
	out, err := f.w.S3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &f.w.Bucket, Key: &key})
	if err != nil {
		for _, k := range f.keys(t, "") {
			if strings.HasSuffix(k, "/"+layout.Base(key)) {
				return "" // filed: not needed
			}
		}
		t.Fatalf("head %s: %v", key, err)
	}
	return importmsg.Identity(f.w.Bucket, key, aws.ToString(out.VersionId), aws.ToString(out.ETag))
}

// heldMetric is the FilesHeld value the EMF lines recorded for a route
// (-1: none).
func heldMetric(t *testing.T, b *pipelinetest.SyncBuffer, route string) float64 {
	t.Helper()
	v := -1.0
	for _, l := range b.Lines() {
		if l["Route"] == route {
			if n, ok := l["FilesHeld"].(float64); ok {
				v = n
			}
		}
	}
	return v
}

// TestPackagesWaitForTheirScope: packages dropped together go one at a
// time per scope; the others wait in inbound/, unreleased and so off the
// queue (no receive counts), and the pass says so in a log line and the
// FilesHeld metric. With the dataProject scope, two data projects' packages
// go side by side.
func TestPackagesWaitForTheirScope(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		scope string
		want  []string // data projects imported
	}{
		{"environment", []string{"Opening balances"}},
		{"dataProject", []string{"Opening balances", "Budgets"}},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			t.Parallel()
			f := newPkgFixture(t, d365test.Options{}, map[string]string{"PACKAGE_IMPORT_SCOPE": tc.scope})
			pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/opening/a.zip", pipelinetest.Package("Opening balances", "Customer groups"))
			pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/opening/b.zip", pipelinetest.Package("Opening balances", "Customer groups"))
			time.Sleep(time.Second) // budgets' package is younger than opening's
			pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/budgets/c.zip", pipelinetest.Package("Budgets", "Budget codes"))
			f.passes(t, f.h, "opening", "budgets")
			f.passes(t, f.h, "budgets", "opening") // asked again: still nothing more goes

			var got []string
			for _, x := range f.emu.Executions() {
				got = append(got, x.DefinitionGroupID)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("imported %v, want %v", got, tc.want)
			}
			if n := pipelinetest.Depth(t, f.w.SQS, f.w.Queue); n != 0 {
				t.Errorf("%d messages wait in the queue", n)
			}
			released := f.keys(t, "_state/released/")
			if len(released) != len(tc.want) {
				t.Errorf("released markers %v", released)
			}
			if v := heldMetric(t, f.metrics, "opening"); v != 1 {
				t.Errorf("FilesHeld of opening = %v, want 1", v)
			}
			wantBudgets := map[string]float64{"environment": 1, "dataProject": 0}[tc.scope]
			if v := heldMetric(t, f.metrics, "budgets"); v != wantBudgets {
				t.Errorf("FilesHeld of budgets = %v, want %v", v, wantBudgets)
			}
			if !strings.Contains(f.logs.String(), "a package import of this route's scope is in flight") {
				t.Error("no log line says the packages wait")
			}
			if l := f.lock(t, f.route(t, "opening").ImportScope(routes.PackageScope(tc.scope))); l == nil || !strings.HasSuffix(l.Key, "/a.zip") {
				t.Errorf("lock %+v, want it held by a.zip", l)
			}
		})
	}
}

// TestNotAPackageIsRejected: a file that is not a data package is filed
// under rejected/ saying a data package is needed, nothing goes to F&O, and
// the scope goes on to the next package at once.
func TestNotAPackageIsRejected(t *testing.T) {
	t.Parallel()
	f := newPkgFixture(t, d365test.Options{}, nil)
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/opening/1 rows.csv", []byte("ID,NAME\r\n1,A\r\n"))
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/opening/2 no header.zip", zipOf(t, "Manifest.xml", "<x/>"))
	time.Sleep(time.Second)
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/opening/3 good.zip", pipelinetest.Package("Opening balances", "Customer groups"))
	f.passes(t, f.h, "opening")

	day := time.Now().UTC().Format("2006/01/02")
	for name, want := range map[string]string{"1 rows.csv": "not a zip file", "2 no header.zip": "no PackageHeader.xml at its root"} {
		raw, ok := pipelinetest.Get(t, f.w.S3, f.w.Bucket, "rejected/opening/"+day+"/"+name+layout.ReasonSuffix)
		var r filing.Reason
		if !ok || json.Unmarshal(raw, &r) != nil || r.Reason != "not-a-package" || !strings.Contains(r.Detail, want) ||
			!strings.Contains(r.Detail, "a data package is a .zip with Manifest.xml and PackageHeader.xml at its root") {
			t.Errorf("%s: reason %s", name, raw)
		}
	}
	if xs := f.emu.Executions(); len(xs) != 1 || f.emu.Requests("GetAzureWriteUrl") != 1 {
		t.Fatalf("%d executions, %d write URLs: only the good package goes to F&O", len(xs), f.emu.Requests("GetAzureWriteUrl"))
	}
	if in := f.keys(t, "inbound/"); len(in) != 1 || in[0] != "inbound/opening/3 good.zip" {
		t.Errorf("inbound/ holds %v", in)
	}
}

func zipOf(t *testing.T, name, body string) []byte {
	t.Helper()
	return pipelinetest.ZipOf(t, map[string]string{name: body})
}

// TestExpiredSASIsReplaced: blob storage refuses the upload because its SAS
// expired on the way: a fresh URL is asked for and the package goes up
// again; it is imported once, and the token never reaches the blob host.
func TestExpiredSASIsReplaced(t *testing.T) {
	t.Parallel()
	f := newPkgFixture(t, d365test.Options{SASLifetime: time.Hour, TokenLifetime: 30 * 24 * time.Hour}, nil)
	var once sync.Once
	f.emu.SetFaultFunc(func(endpoint string, _ *http.Request) *d365test.Fault {
		if endpoint == "blob-put-block" {
			once.Do(func() { f.emu.Advance(2 * time.Hour) })
		}
		return nil
	})
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/opening/a.zip", bigPackage("Opening balances"))
	f.passes(t, f.h, "opening")
	if n := f.emu.Requests("GetAzureWriteUrl"); n != 2 {
		t.Errorf("%d write URLs asked for, want 2", n)
	}
	if xs := f.emu.Executions(); len(xs) != 1 || f.emu.Requests("ImportFromPackage") != 1 {
		t.Fatalf("%d executions after %d calls", len(xs), f.emu.Requests("ImportFromPackage"))
	}
	if f.emu.BlobSawToken() {
		t.Error("the bearer token reached the blob host")
	}
	if !strings.Contains(f.logs.String(), "its SAS expired") {
		t.Error("the refused upload is not logged")
	}
}

// releaseOne runs the release pass of a route with a healthy handler and
// returns the file message it sent (taken off the queue).
func (f *pkgFixture) releaseOne(t *testing.T, route string) events.SQSEvent {
	t.Helper()
	pipelinetest.RequestRelease(t, f.w.SQS, f.w.Queue, f.route(t, route))
	esm := &pipelinetest.ESM{SQS: f.w.SQS, QueueURL: f.w.Queue}
	if !esm.Once(t, context.Background(), f.h.Handle, 1) {
		t.Fatal("no release request")
	}
	msgs := pipelinetest.Receive(t, f.w.SQS, f.w.Queue)
	if len(msgs) != 1 {
		t.Fatalf("the pass released %d messages", len(msgs))
	}
	return events.SQSEvent{Records: []events.SQSMessage{pipelinetest.Message(aws.ToString(msgs[0].MessageId), aws.ToString(msgs[0].Body))}}
}

// failedResult reads the result document of a package filed under failed/.
func failedResult(t *testing.T, f *pkgFixture, route, name string) filing.Result {
	t.Helper()
	raw, ok := pipelinetest.Get(t, f.w.S3, f.w.Bucket, "failed/"+route+"/"+time.Now().UTC().Format("2006/01/02")+"/"+name+layout.ResultSuffix)
	var r filing.Result
	if !ok || json.Unmarshal(raw, &r) != nil {
		t.Fatalf("no result document; bucket %v", f.keys(t, ""))
	}
	return r
}

// TestCrashAroundImportFromPackage: the call went out and its answer was
// never recorded, because the function died after F&O answered, or the
// answer was lost on the way: the package is filed under failed/ as
// ImportOutcomeUnknown naming the execution ID F&O has, never imported a
// second time, and its scope stays held for the poller to watch.
func TestCrashAroundImportFromPackage(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"died after the answer", "answer lost"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			f := newPkgFixture(t, d365test.Options{}, nil)
			pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/opening/a.zip", pipelinetest.Package("Opening balances", "Customer groups"))
			ev := f.releaseOne(t, "opening")
			crashing := &importer{Client: f.fno.Client}
			if tc == "died after the answer" {
				crashing.hook = func(ctx context.Context, in d365.ImportPackageRequest, real func(context.Context, d365.ImportPackageRequest) (string, error)) (string, error) {
					real(ctx, in)
					runtime.Goexit()
					return "", nil
				}
			} else {
				f.emu.Inject(d365test.Fault{Endpoint: "ImportFromPackage", Count: 1, Delay: time.Minute})
				crashing.hook = func(ctx context.Context, in d365.ImportPackageRequest, real func(context.Context, d365.ImportPackageRequest) (string, error)) (string, error) {
					ctx, cancel := context.WithCancel(ctx)
					go func() { // the connection drops once F&O has acted
						for len(f.emu.Executions()) == 0 {
							time.Sleep(5 * time.Millisecond)
						}
						cancel()
					}()
					return real(ctx, in)
				}
			}
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); f.handler(t, crashing).Handle(context.Background(), ev) }()
			wg.Wait()
			if resp, err := f.h.Handle(context.Background(), ev); err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("redelivery: %v %v", failures(resp), err)
			}
			xs := f.emu.Executions()
			if len(xs) != 1 || f.emu.Requests("ImportFromPackage") != 1 {
				t.Fatalf("%d executions after %d ImportFromPackage calls: imported again", len(xs), f.emu.Requests("ImportFromPackage"))
			}
			r := failedResult(t, f, "opening", "a.zip")
			if r.Status != enqueue.ImportOutcomeUnknown || r.ExecutionID != xs[0].ID || r.DefinitionGroupID != "Opening balances" ||
				!strings.Contains(strings.Join(r.Notes, " "), "look for execution "+xs[0].ID) {
				t.Errorf("result %+v", r)
			}
			if l := f.lock(t, "environment"); l == nil || l.State != ledger.LockOutcomeUnknown || l.ExecutionID != xs[0].ID {
				t.Errorf("lock %+v: the poller must watch the execution", l)
			}
			if m := f.keys(t, "_state/markers/"); len(m) != 0 {
				t.Errorf("markers left: %v", m)
			}
		})
	}
}

// TestRefusedImportIsRejected: F&O refuses the import for good (the data
// project exists and the route does not overwrite it): the package is
// filed under rejected/ with F&O's answer, and the scope goes free.
func TestRefusedImportIsRejected(t *testing.T) {
	t.Parallel()
	f := newPkgFixture(t, d365test.Options{}, nil)
	f.emu.AddProject("Kept")
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/keep/a.zip", pipelinetest.Package("Kept", "Customer groups"))
	f.passes(t, f.h, "keep")
	raw, ok := pipelinetest.Get(t, f.w.S3, f.w.Bucket, "rejected/keep/"+time.Now().UTC().Format("2006/01/02")+"/a.zip"+layout.ReasonSuffix)
	var r filing.Reason
	if !ok || json.Unmarshal(raw, &r) != nil || r.Reason != "fno-rejected" || !strings.Contains(r.Detail, "overwrite has not been specified") || len(r.Answer) == 0 {
		t.Fatalf("reason %s", raw)
	}
	if l := f.lock(t, "environment"); l != nil {
		t.Errorf("lock still held: %+v", l)
	}
	if m := f.keys(t, "_state/markers/"); len(m) != 0 {
		t.Errorf("markers left: %v", m)
	}
}

// TestImportRetryKeepsItsExecutionID: ImportFromPackage answered with an
// error after F&O had in fact started the import (a gateway fault): the
// retry sends the same execution ID, F&O says it exists, and that import is
// followed; nothing is imported twice.
func TestImportRetryKeepsItsExecutionID(t *testing.T) {
	t.Parallel()
	f := newPkgFixture(t, d365test.Options{}, nil)
	var calls []string
	f.fno.hook = func(ctx context.Context, in d365.ImportPackageRequest, real func(context.Context, d365.ImportPackageRequest) (string, error)) (string, error) {
		calls = append(calls, in.ExecutionID)
		id, err := real(ctx, in)
		if len(calls) == 1 {
			return "", &d365.Error{Op: "ImportFromPackage", StatusCode: http.StatusBadGateway, Message: "Bad Gateway"}
		}
		return id, err
	}
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/opening/a.zip", pipelinetest.Package("Opening balances", "Customer groups"))
	ev := f.releaseOne(t, "opening")
	if resp, _ := f.h.Handle(context.Background(), ev); len(resp.BatchItemFailures) != 1 {
		t.Fatalf("the 502 must be retried: %v", failures(resp))
	}
	if resp, err := f.h.Handle(context.Background(), ev); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("retry: %v %v", failures(resp), err)
	}
	xs := f.emu.Executions()
	if len(calls) != 2 || calls[0] != calls[1] || len(xs) != 1 || xs[0].ID != calls[0] {
		t.Fatalf("calls %v, executions %+v", calls, xs)
	}
	if l := f.lock(t, "environment"); l == nil || l.State != ledger.LockRunning || l.ExecutionID != xs[0].ID {
		t.Errorf("lock %+v", l)
	}
	if n := len(f.keys(t, "_state/ledger/")); n != 1 {
		t.Errorf("%d ledger records", n)
	}
}

// TestPackageOutOfTurnWaits: a package message that does not hold its
// scope's lock (a redrive, a duplicate) imports nothing: the package goes
// back to waiting in inbound/ (its released marker removed).
func TestPackageOutOfTurnWaits(t *testing.T) {
	t.Parallel()
	f := newPkgFixture(t, d365test.Options{}, nil)
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/opening/a.zip", pipelinetest.Package("Opening balances", "Customer groups"))
	v, etag := pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/budgets/b.zip", pipelinetest.Package("Budgets", "Budget codes"))
	f.passes(t, f.h, "opening") // a.zip holds the environment's lock
	m := importmsg.File{Bucket: f.w.Bucket, Key: "inbound/budgets/b.zip", VersionID: v, ETag: etag, Size: 1, Route: "budgets", EventTime: time.Now()}
	marker := f.cfg.Layout.ReleasedKey("budgets", m.Identity())
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, marker, []byte(`{}`))
	if resp, err := f.h.Handle(context.Background(), event(m)); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("%v %v", failures(resp), err)
	}
	if n := len(f.emu.Executions()); n != 1 {
		t.Fatalf("%d executions: the package out of turn was imported", n)
	}
	if _, ok := pipelinetest.Get(t, f.w.S3, f.w.Bucket, marker); ok {
		t.Error("its released marker is still there: no pass would release it")
	}
	if _, ok := pipelinetest.Get(t, f.w.S3, f.w.Bucket, "inbound/budgets/b.zip"); !ok {
		t.Error("the package left inbound/")
	}
}
