package poller_test

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/imports/poller"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// pkgFixture is the enqueue function and the poller with dataProject
// routes (pipelinetest.PackageRoutes) on moto and the emulator.
type pkgFixture struct {
	w     *pipelinetest.Imports
	emu   *d365test.Emulator
	enq   *enqueue.Handler
	p     *poller.Poller
	clock *pipelinetest.Clock
	st    *ledger.Store
	cfg   poller.Config
	locks *lockReads // the poller's S3
}

// lockReads counts the reads of package import locks through it.
type lockReads struct {
	*s3.Client
	n atomic.Int32
}

func (c *lockReads) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if strings.HasPrefix(aws.ToString(in.Key), "_state/packages/") {
		c.n.Add(1)
	}
	return c.Client.GetObject(ctx, in, opts...)
}

func newPkgFixture(t *testing.T, opts d365test.Options) *pkgFixture {
	t.Helper()
	w := pipelinetest.NewImports(t, pipelinetest.FIFO{MaxReceiveCount: 3})
	f := &pkgFixture{w: w, emu: d365test.NewT(t, opts), clock: pipelinetest.NewClock(time.Now())}
	env := w.Env(pipelinetest.PackageRoutes)
	env["IMPORT_DLQ_URL"] = w.DLQ
	getenv := func(k string) string { return env[k] }
	icfg, err := enqueue.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	if f.enq, err = enqueue.New(icfg, w.S3, pipelinetest.FnO(t, f.emu), w.SQS, pipelinetest.Quiet()); err != nil {
		t.Fatal(err)
	}
	if f.cfg, err = poller.ConfigFromEnv(getenv); err != nil {
		t.Fatal(err)
	}
	f.cfg.Now, f.cfg.TargetKeysWait, f.cfg.SweepEvery, f.cfg.DLQ = f.clock.Now, 10*time.Millisecond, -1, w.SQS
	b := poller.NewBudget(f.cfg.BudgetPerMinute)
	f.locks = &lockReads{Client: w.S3}
	if f.p, err = poller.New(f.cfg, f.locks, pipelinetest.FnO(t, f.emu, func(c *d365.Config) { c.Limiter = b }), b, w.SQS, pipelinetest.Quiet()); err != nil {
		t.Fatal(err)
	}
	f.st = &ledger.Store{S3: w.S3, Bucket: w.Bucket, Layout: icfg.Layout}
	return f
}

// importPackage drops a package and runs its route's release pass and
// import through the enqueue function.
func (f *pkgFixture) importPackage(t *testing.T, key string, pkg []byte) {
	t.Helper()
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, key, pkg)
	route, _, _ := layout.Default().Split(key)
	rt, _ := f.cfg.Routes.Lookup(route)
	pipelinetest.RequestRelease(t, f.w.SQS, f.w.Queue, rt)
	(&pipelinetest.ESM{SQS: f.w.SQS, QueueURL: f.w.Queue}).Drain(t, context.Background(), f.enq.Handle)
	if n := len(f.emu.Executions()); n == 0 {
		t.Fatalf("%s was not imported", key)
	}
}

func (f *pkgFixture) run(t *testing.T, ahead time.Duration) poller.Summary {
	t.Helper()
	f.clock.Set(time.Now().Add(ahead))
	s, err := f.p.Handle(context.Background(), json.RawMessage(`{"task":"poll"}`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// requested is the routes the release requests on the queue are for.
func (f *pkgFixture) requested(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, m := range pipelinetest.Receive(t, f.w.SQS, f.w.Queue) {
		if msg, err := importmsg.Decode([]byte(aws.ToString(m.Body))); err == nil && msg.Release != nil {
			out = append(out, msg.Release.Route)
		}
	}
	sort.Strings(out)
	return out
}

// state is what is left of the import's state: markers, ledger records,
// released markers and package import locks.
func (f *pkgFixture) state(t *testing.T) []string {
	t.Helper()
	var left []string
	for _, p := range []string{"markers/", "ledger/", "released/", "packages/"} {
		left = append(left, pipelinetest.Keys(t, f.w.S3, f.w.Bucket, f.cfg.Layout.State+p)...)
	}
	return left
}

// TestPackageFollowedToItsEnd: the poller follows a package import by its
// execution ID to each final status; Succeeded goes to processed/, the
// others to failed/ with GetExecutionErrors' rows and each entity's staging
// and target error files beside it. The scope's lock goes, each route of
// the scope gets a release pass, and no state is left.
func TestPackageFollowedToItsEnd(t *testing.T) {
	t.Parallel()
	for _, st := range []string{"Succeeded", "PartiallySucceeded", "Failed", "Canceled"} {
		t.Run(st, func(t *testing.T) {
			t.Parallel()
			f := newPkgFixture(t, d365test.Options{})
			f.emu.Script(d365test.Rule{ActivityID: "Opening balances", Outcome: d365test.Outcome{ExecutionStatus: st,
				Errors:               []d365test.ExecutionError{{RecordId: "7", Field: "CustGroup", ErrorMessage: "Group 99 does not exist"}},
				StagingErrorFiles:    map[string][]byte{"Customer groups": []byte("staging rows of customer groups")},
				TargetErrorKeysFiles: map[string][]byte{"Vendor groups": []byte("keys of vendor groups")}}})
			f.importPackage(t, "inbound/opening/2026-01 opening.zip", pipelinetest.Package("Opening balances", "Customer groups", "Vendor groups"))
			if s := f.run(t, 2*time.Minute); s.Checked != 1 || s.Finalized != 0 {
				t.Fatalf("before F&O ran it: %+v", s)
			}
			f.emu.RunToCompletion()
			if s := f.run(t, 4*time.Minute); s.Finalized != 1 {
				t.Fatalf("after: %+v", s)
			}
			x := f.emu.Executions()[0]
			where := map[bool]string{true: "processed", false: "failed"}[st == "Succeeded"]
			file := where + "/opening/" + today() + "/2026-01 opening.zip"
			raw, ok := pipelinetest.Get(t, f.w.S3, f.w.Bucket, file+layout.ResultSuffix)
			var r filing.Result
			if !ok || json.Unmarshal(raw, &r) != nil {
				t.Fatalf("no result at %s; bucket %v", file, pipelinetest.Keys(t, f.w.S3, f.w.Bucket, ""))
			}
			if r.Outcome != where || r.Status != st || r.ExecutionStatus != st || r.ExecutionID != x.ID || r.DefinitionGroupID != "Opening balances" ||
				r.Company != "USMF" || strings.Join(r.Entities, "|") != "Customer groups|Vendor groups" || len(r.Errors) != 1 {
				t.Errorf("result %s", raw)
			}
			if st != "Succeeded" {
				want := []filing.EntityErrorFiles{{Entity: "Customer groups", StagingErrorFile: file + ".Customer groups.staging-errors.csv"},
					{Entity: "Vendor groups", TargetErrorKeysFile: file + ".Vendor groups.target-error-keys.csv"}}
				if got, _ := json.Marshal(r.EntityErrorFiles); string(got) != string(mustJSON(t, want)) {
					t.Errorf("entity error files %s", got)
				}
				if b, ok := pipelinetest.Get(t, f.w.S3, f.w.Bucket, want[0].StagingErrorFile); !ok || string(b) != "staging rows of customer groups" {
					t.Errorf("staging file %q", b)
				}
			}
			if left := f.state(t); len(left) != 0 {
				t.Errorf("state left: %v", left)
			}
			if got := strings.Join(f.requested(t), ","); got != "budgets,keep,opening,staging" {
				t.Errorf("release passes asked for %s, want every route of the environment's scope", got)
			}
		})
	}
}

// TestStageOnlyPackage: a route with execute=false is done once its
// package is in staging (NotRun): processed, with a note to run it.
func TestStageOnlyPackage(t *testing.T) {
	t.Parallel()
	f := newPkgFixture(t, d365test.Options{})
	f.importPackage(t, "inbound/staging/s.zip", pipelinetest.Package("Staging only", "Customer groups"))
	f.emu.RunToCompletion()
	if s := f.run(t, 2*time.Minute); s.Finalized != 1 || s.Processed != 1 {
		t.Fatalf("%+v", s)
	}
	raw, _ := pipelinetest.Get(t, f.w.S3, f.w.Bucket, "processed/staging/"+today()+"/s.zip"+layout.ResultSuffix)
	var r filing.Result
	if json.Unmarshal(raw, &r) != nil || r.ExecutionStatus != "NotRun" || !strings.Contains(strings.Join(r.Notes, " "), "run the data project in F&O") {
		t.Errorf("result %s", raw)
	}
}

// lockFor writes a package import lock as the enqueue function leaves it.
func (f *pkgFixture) lockFor(t *testing.T, l ledger.PackageLock) {
	t.Helper()
	l.Scope, l.TakenAt, l.UpdatedAt = "environment", time.Now().UTC(), time.Now().UTC()
	if ok, err := f.st.TakeLock(context.Background(), l); err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
}

// TestOutcomeUnknownLockIsWatched: the lock of an import whose answer was
// lost is kept while F&O runs its execution and goes once it is final, or
// once F&O has shown no such execution for PackageUnknownGrace; then the
// scope's routes get their passes.
func TestOutcomeUnknownLockIsWatched(t *testing.T) {
	t.Parallel()
	f := newPkgFixture(t, d365test.Options{})
	c := pipelinetest.FnO(t, f.emu)
	w, err := c.GetAzureWriteURL(context.Background(), "lost.zip")
	if err != nil {
		t.Fatal(err)
	}
	pkg := pipelinetest.Package("Opening balances", "Customer groups")
	if err := c.UploadPackageBlocks(context.Background(), w.BlobURL, strings.NewReader(string(pkg)), int64(len(pkg)), 1<<20); err != nil {
		t.Fatal(err)
	}
	id, err := c.ImportFromPackage(context.Background(), d365.ImportPackageRequest{PackageURL: w.BlobURL, DefinitionGroupID: "Opening balances",
		ExecutionID: "Opening balances-lost", Execute: true, Overwrite: true, LegalEntityID: "USMF"})
	if err != nil {
		t.Fatal(err)
	}
	f.lockFor(t, ledger.PackageLock{Route: "opening", Key: "inbound/opening/lost.zip", Identity: "lost", State: ledger.LockOutcomeUnknown, ExecutionID: id})
	f.run(t, time.Minute)
	if l, _ := f.st.GetLock(context.Background(), "environment"); l == nil {
		t.Fatal("the lock went while F&O still runs the execution")
	}
	f.emu.RunToCompletion()
	f.run(t, 2*time.Minute)
	if l, _ := f.st.GetLock(context.Background(), "environment"); l != nil {
		t.Fatalf("lock still held after the execution ended: %+v", l)
	}
	if got := strings.Join(f.requested(t), ","); got != "budgets,keep,opening,staging" {
		t.Errorf("passes asked for %s", got)
	}

	f.lockFor(t, ledger.PackageLock{Route: "opening", Key: "inbound/opening/never.zip", Identity: "never", State: ledger.LockOutcomeUnknown,
		ExecutionID: "Opening balances-never"})
	f.run(t, 30*time.Minute)
	if l, _ := f.st.GetLock(context.Background(), "environment"); l == nil {
		t.Fatal("the lock went before the grace period")
	}
	f.run(t, 2*time.Hour)
	if l, _ := f.st.GetLock(context.Background(), "environment"); l != nil {
		t.Fatalf("the lock of an execution F&O never showed is still held: %+v", l)
	}
}

// TestDeadLetteredPackageFreesItsScope: a package whose message reached the
// import dead-letter queue before its import began frees its scope, so the
// scope's other packages go on; it keeps its released marker (passes skip
// it) and waits in inbound/ for a redrive.
func TestDeadLetteredPackageFreesItsScope(t *testing.T) {
	t.Parallel()
	f := newPkgFixture(t, d365test.Options{})
	v, etag := pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/opening/poison.zip", []byte("PK"))
	m := importmsg.File{Bucket: f.w.Bucket, Key: "inbound/opening/poison.zip", VersionID: v, ETag: etag, Size: 2, Route: "opening"}
	f.lockFor(t, ledger.PackageLock{Route: "opening", Key: m.Key, VersionID: v, Identity: m.Identity(), State: ledger.LockReleased})
	marker := f.cfg.Layout.ReleasedKey("opening", m.Identity())
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, marker, []byte(`{}`))
	b, _ := json.Marshal(m)
	if _, err := f.w.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &f.w.DLQ, MessageBody: aws.String(string(b)),
		MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String("d")}); err != nil {
		t.Fatal(err)
	}
	f.run(t, time.Minute)
	if l, _ := f.st.GetLock(context.Background(), "environment"); l != nil {
		t.Fatalf("lock still held: %+v", l)
	}
	if _, ok := pipelinetest.Get(t, f.w.S3, f.w.Bucket, marker); !ok {
		t.Error("its released marker went: the next pass would release it again")
	}
	if got := strings.Join(f.requested(t), ","); got != "budgets,keep,opening,staging" {
		t.Errorf("passes asked for %s", got)
	}
	// The next run of the same execution environment leaves the message
	// it settled alone: no second look at the scope's lock.
	before := f.locks.n.Load()
	f.run(t, 2*time.Minute)
	if n := f.locks.n.Load() - before; n != 0 {
		t.Errorf("the next run read the lock %d more times for a dead letter already settled", n)
	}
	// What the runs read is visible at once for a redrive: in a FIFO queue
	// a hidden message would hold back its group.
	out, err := f.w.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &f.w.DLQ, MaxNumberOfMessages: 10})
	if err != nil || len(out.Messages) != 1 {
		t.Errorf("a redrive right after the run receives %d messages (%v), want the dead letter", len(out.Messages), err)
	}
}
