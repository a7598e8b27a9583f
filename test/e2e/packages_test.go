package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
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
	"github.com/fno-bridge/s3-fno/internal/imports/poller"
	"github.com/fno-bridge/s3-fno/internal/imports/router"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// packageRig is the import pipeline with package API routes
// (pipelinetest.PackageRoutes), in-process on moto and the emulator.
type packageRig struct {
	t      *testing.T
	w      *pipelinetest.Imports
	emu    *d365test.Emulator
	router *router.Router
	enq    *enqueue.Handler
	poller *poller.Poller
	esm    *pipelinetest.ESM
	clock  *pipelinetest.Clock // the poller's: each round is half an hour
	// overlaps records, at each ImportFromPackage, the data projects of
	// the executions not final yet.
	mu       sync.Mutex
	overlaps [][]string
}

func newPackageRig(t *testing.T, scope string) *packageRig {
	t.Helper()
	return newPackageRigWith(t, scope, pipelinetest.PackageRoutes)
}

// newPackageRigWith is newPackageRig with a route table of its own.
func newPackageRigWith(t *testing.T, scope, routesJSON string) *packageRig {
	t.Helper()
	w := pipelinetest.NewImports(t, pipelinetest.FIFO{MaxReceiveCount: 2})
	r := &packageRig{t: t, w: w, emu: d365test.NewT(t, d365test.Options{EnhancedParallelPackageImport: scope == "dataProject"})}
	r.emu.SetFaultFunc(func(endpoint string, _ *http.Request) *d365test.Fault {
		if endpoint == "ImportFromPackage" {
			var running []string
			for _, x := range r.emu.Executions() {
				if x.Status == "NotRun" || x.Status == "Executing" {
					running = append(running, x.DefinitionGroupID)
				}
			}
			r.mu.Lock()
			r.overlaps = append(r.overlaps, running)
			r.mu.Unlock()
		}
		return nil
	})
	env := w.Env(routesJSON)
	env["PACKAGE_IMPORT_SCOPE"] = scope
	getenv := func(k string) string { return env[k] }
	log := pipelinetest.Quiet()
	rcfg, err := router.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	if r.router, err = router.New(rcfg, w.S3, w.SQS, log); err != nil {
		t.Fatal(err)
	}
	icfg, err := enqueue.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	icfg.BlockSize = 512
	if r.enq, err = enqueue.New(icfg, w.S3, pipelinetest.FnO(t, r.emu), w.SQS, log); err != nil {
		t.Fatal(err)
	}
	pcfg, err := poller.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	r.clock = pipelinetest.NewClock(time.Now())
	pcfg.Now, pcfg.SweepEvery = r.clock.Now, -1
	budget := poller.NewBudget(pcfg.BudgetPerMinute)
	if r.poller, err = poller.New(pcfg, w.S3, pipelinetest.FnO(t, r.emu, func(c *d365.Config) { c.Limiter = budget }), budget, w.SQS, log); err != nil {
		t.Fatal(err)
	}
	r.esm = &pipelinetest.ESM{SQS: w.SQS, QueueURL: w.Queue}
	return r
}

// drop puts files into inbound/ and hands their notifications to the
// router, as S3 would.
func (r *packageRig) drop(files map[string][]byte, order ...string) {
	r.t.Helper()
	var ev events.SQSEvent
	for i, key := range order {
		v, etag := pipelinetest.Put(r.t, r.w.S3, r.w.Bucket, key, files[key])
		ev.Records = append(ev.Records, pipelinetest.Message(fmt.Sprint(i), pipelinetest.S3Event(r.w.Bucket, key, v, etag, int64(len(files[key])))))
		time.Sleep(1100 * time.Millisecond) // one second apart: the drop order is S3's
	}
	if resp, err := r.router.Handle(context.Background(), ev); err != nil || len(resp.BatchItemFailures) != 0 {
		r.t.Fatalf("router: %v %v", resp.BatchItemFailures, err)
	}
}

// round is what happens between two poller runs: the queue runs dry,
// F&O's batch takes one step, the poller runs.
func (r *packageRig) round() poller.Summary {
	r.t.Helper()
	r.esm.Drain(r.t, context.Background(), r.enq.Handle)
	r.emu.Tick()
	r.clock.Set(r.clock.Now().Add(30 * time.Minute))
	s, err := r.poller.Handle(context.Background(), json.RawMessage(`{"task":"poll"}`))
	if err != nil {
		r.t.Fatal(err)
	}
	return s
}

// results reads every result document, by the file's source key.
func (r *packageRig) results() map[string]filing.Result {
	r.t.Helper()
	out := map[string]filing.Result{}
	for _, k := range pipelinetest.Keys(r.t, r.w.S3, r.w.Bucket, "") {
		if !strings.HasSuffix(k, layout.ResultSuffix) {
			continue
		}
		raw, _ := pipelinetest.Get(r.t, r.w.S3, r.w.Bucket, k)
		var res filing.Result
		if err := json.Unmarshal(raw, &res); err != nil {
			r.t.Fatal(err)
		}
		out[res.SourceKey] = res
	}
	return out
}

// TestPackagesOneAfterAnother: packages dropped together, with a file that
// is not a package among them, go through router, release pass, enqueue
// and poller one at a time per scope: with the environment's scope, a
// package's ImportFromPackage comes only once every earlier execution is
// final, in drop order within a route; with the dataProject scope (F&O's
// enhanced parallel package import), two data projects run side by side,
// one data project still one at a time. Waiting costs no queue deliveries,
// every file ends in one place and no state is left.
func TestPackagesOneAfterAnother(t *testing.T) {
	t.Parallel()
	for _, scope := range []string{"environment", "dataProject"} {
		t.Run(scope, func(t *testing.T) {
			t.Parallel()
			r := newPackageRig(t, scope)
			files := map[string][]byte{
				"inbound/opening/1 customers.zip":  pipelinetest.Package("Opening balances", "Customer groups"),
				"inbound/opening/2 not a zip.csv":  []byte("ID,NAME\r\n1,A\r\n"),
				"inbound/budgets/3 budgets.zip":    pipelinetest.Package("Budgets", "Budget codes", "Budget models"),
				"inbound/opening/4 vendors.zip":    pipelinetest.Package("Opening balances", "Vendor groups"),
				"inbound/opening/5 currencies.zip": pipelinetest.Package("Opening balances", "Currencies"),
			}
			order := []string{"inbound/opening/1 customers.zip", "inbound/opening/2 not a zip.csv", "inbound/budgets/3 budgets.zip",
				"inbound/opening/4 vendors.zip", "inbound/opening/5 currencies.zip"}
			r.drop(files, order...)
			held := 0
			for i := 0; i < 20 && len(pipelinetest.Keys(t, r.w.S3, r.w.Bucket, "inbound/")) > 0; i++ {
				s := r.round()
				if s.Swept != 0 {
					t.Errorf("the sweep took waiting packages for lost ones: %+v", s)
				}
				held = max(held, s.Held)
			}
			if held == 0 {
				t.Error("the poller's sweep never counted a package waiting for its scope")
			}
			if in := pipelinetest.Keys(t, r.w.S3, r.w.Bucket, "inbound/"); len(in) != 0 {
				t.Fatalf("still in inbound/ after 20 rounds: %v", in)
			}
			r.checkOverlaps(t, scope, 4)
			r.checkOrder(t, files)
			r.checkDeliveries(t)
		})
	}
}

// checkOverlaps: with the environment's scope no ImportFromPackage came
// while another execution ran; with the dataProject scope the two data
// projects ran side by side at least once, and one data project never ran
// two at once.
func (r *packageRig) checkOverlaps(t *testing.T, scope string, packages int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.overlaps) != packages {
		t.Fatalf("%d ImportFromPackage calls, want %d (one per package)", len(r.overlaps), packages)
	}
	sideBySide := false
	for _, running := range r.overlaps {
		if scope == "environment" && len(running) > 0 {
			t.Errorf("ImportFromPackage while %v ran", running)
		}
		for i, g := range running {
			if slices.Contains(running[i+1:], g) {
				t.Errorf("two imports of %s ran at once", g)
			}
		}
		sideBySide = sideBySide || len(running) > 0
	}
	if scope == "dataProject" && !sideBySide {
		t.Error("the two data projects never ran side by side")
	}
	for _, x := range r.emu.Executions() {
		if x.Status != "Succeeded" {
			t.Errorf("execution %s of %s ended %s", x.ID, x.DefinitionGroupID, x.Status)
		}
	}
}

// checkOrder: each file ended in exactly one place (packages processed/,
// the CSV rejected/), a route's packages were imported in drop order, and
// nothing of the import's state is left.
func (r *packageRig) checkOrder(t *testing.T, files map[string][]byte) {
	t.Helper()
	res := r.results()
	var openings []string
	for _, x := range r.emu.Executions() {
		for key, rr := range res {
			if rr.ExecutionID == x.ID && strings.HasPrefix(key, "inbound/opening/") {
				openings = append(openings, layout.Base(key))
			}
		}
	}
	if got := strings.Join(openings, ","); got != "1 customers.zip,4 vendors.zip,5 currencies.zip" {
		t.Errorf("opening imported %s, want drop order", got)
	}
	day := time.Now().UTC().Format("2006/01/02")
	for key := range files {
		route, name, _ := layout.Default().Split(key)
		where := "processed/"
		if strings.HasSuffix(name, ".csv") {
			where = "rejected/"
		}
		if _, ok := pipelinetest.Get(t, r.w.S3, r.w.Bucket, where+route+"/"+day+"/"+name); !ok {
			t.Errorf("%s is not under %s", key, where)
		}
	}
	for _, p := range []string{"markers/", "ledger/", "released/", "packages/"} {
		if left := pipelinetest.Keys(t, r.w.S3, r.w.Bucket, "_state/"+p); len(left) != 0 {
			t.Errorf("state left: %v", left)
		}
	}
}

// checkDeliveries: every package message was delivered once: waiting for
// the scope happened in inbound/, not in the queue.
func (r *packageRig) checkDeliveries(t *testing.T) {
	t.Helper()
	seen := map[string]int{}
	for _, b := range r.esm.Batches {
		for _, m := range b {
			if msg, err := importmsg.Decode([]byte(m.Body)); err == nil && msg.File != nil {
				seen[msg.File.Key]++
			}
		}
	}
	for key, n := range seen {
		if n != 1 {
			t.Errorf("%s was delivered %d times", key, n)
		}
	}
	if n := pipelinetest.Depth(t, r.w.SQS, r.w.DLQ); n != 0 {
		t.Errorf("%d messages in the dead-letter queue", n)
	}
	if _, err := r.w.S3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &r.w.Bucket, Key: aws.String("inbound/")}); err == nil {
		t.Error("a folder object appeared")
	}
}

// TestPlainFilesWaitForTheirTemplate: plain files dropped on a route whose
// package template is not there yet wait in inbound/, in order, while the
// scope's other packages go (nothing is rejected, no message is spent);
// once the template is stored, the poller's sweep brings a pass and they
// are imported one at a time, in drop order, each wrapped in a package
// built from the template, and filed under processed/ with a result saying
// so.
func TestPlainFilesWaitForTheirTemplate(t *testing.T) {
	t.Parallel()
	r := newPackageRigWith(t, "environment", pipelinetest.WithRoute(pipelinetest.PackageRoutes, pipelinetest.TemplateRoute))
	files := map[string][]byte{
		"inbound/groups/1 retail.csv":    []byte("CUSTGROUP,NAME\r\n10,Retail\r\n"),
		"inbound/groups/2 wholesale.csv": []byte("CUSTGROUP,NAME\r\n20,Wholesale\r\n"),
		"inbound/opening/3 vendors.zip":  pipelinetest.Package("Opening balances", "Vendor groups"),
	}
	r.drop(files, "inbound/groups/1 retail.csv", "inbound/groups/2 wholesale.csv", "inbound/opening/3 vendors.zip")
	for range 3 {
		r.round()
	}
	if in := pipelinetest.Keys(t, r.w.S3, r.w.Bucket, "inbound/"); strings.Join(in, ",") != "inbound/groups/1 retail.csv,inbound/groups/2 wholesale.csv" {
		t.Fatalf("inbound/ holds %v; want the plain files waiting and the package gone", in)
	}
	if rej := pipelinetest.Keys(t, r.w.S3, r.w.Bucket, "rejected/"); len(rej) != 0 {
		t.Fatalf("rejected %v while the template was missing", rej)
	}
	pipelinetest.PutTemplate(t, r.w.S3, r.w.Bucket, pipelinetest.TemplateName)
	for i := 0; i < 10 && len(pipelinetest.Keys(t, r.w.S3, r.w.Bucket, "inbound/")) > 0; i++ {
		r.round()
	}
	res := r.results()
	var imported []string
	for _, x := range r.emu.Executions() {
		for key, rr := range res {
			if rr.ExecutionID == x.ID {
				imported = append(imported, layout.Base(key))
			}
		}
		if x.Status != "Succeeded" {
			t.Errorf("execution %s of %s ended %s", x.ID, x.DefinitionGroupID, x.Status)
		}
	}
	if got := strings.Join(imported, ","); got != "3 vendors.zip,1 retail.csv,2 wholesale.csv" {
		t.Fatalf("imported %s", got)
	}
	for _, key := range []string{"inbound/groups/1 retail.csv", "inbound/groups/2 wholesale.csv"} {
		rr := res[key]
		if rr.Outcome != filing.OutcomeProcessed || rr.Wrapped == nil || rr.Wrapped.DataFile != "Customer groups.csv" ||
			strings.Join(rr.Entities, "|") != "Customer groups" {
			t.Errorf("%s: result %+v (wrapped %+v)", key, rr, rr.Wrapped)
		}
	}
	r.checkOverlaps(t, "environment", 3)
	for _, p := range []string{"markers/", "ledger/", "released/", "packages/"} {
		if left := pipelinetest.Keys(t, r.w.S3, r.w.Bucket, "_state/"+p); len(left) != 0 {
			t.Errorf("state left: %v", left)
		}
	}
	r.checkDeliveries(t)
}
