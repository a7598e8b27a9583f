package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/poller"
	"github.com/fno-bridge/s3-fno/internal/local/lambdahost"
	"github.com/fno-bridge/s3-fno/internal/local/localrun"
	"github.com/fno-bridge/s3-fno/internal/local/samtemplate"
)

// requireMoto skips without moto_server, except under CI=true (CI must
// prove the AWS side), as internal/local/mototest does.
func requireMoto(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("moto_server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("moto_server: %v", err)
		}
		t.Skipf("moto_server not available: %v", err)
	}
}

// Activity IDs of events/env.local.json's routes and of the export events.
const (
	actCustomers = "6c1b2f3a-8d4e-4f5a-9b6c-7d8e9f0a1b2c"
	actVendors   = "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"
	actJob1      = "3d2c1b0a-9f8e-4d7c-b6a5-4f3e2d1c0b9a"
	actJob2      = "b8a7c6d5-e4f3-4a2b-9c1d-0e9f8a7b6c5d"
)

// localRun is one -local invoke's outcome.
type localRun struct {
	code           int
	stdout, stderr string
	report         localrun.Report
}

// projectBootstrap builds one of the project's functions once per test
// binary and returns its bootstrap.
func projectBootstrap(t *testing.T, logicalID string) string {
	t.Helper()
	projectBuilds.Lock()
	defer projectBuilds.Unlock()
	if b, ok := projectBuilds.got[logicalID]; ok {
		return b
	}
	tpl, err := samtemplate.Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fn, err := tpl.Function(logicalID, samtemplate.Values{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(testDir, "project", fn.Name, "bootstrap")
	if err := lambdahost.Build(context.Background(), "../..", fn.Package, out); err != nil {
		t.Fatal(err)
	}
	projectBuilds.got[logicalID] = out
	return out
}

var projectBuilds = struct {
	sync.Mutex
	got map[string]string
}{got: map[string]string{}}

// runLocal invokes fn with event in -local mode, as make invoke does.
func runLocal(t *testing.T, bootstrap, fn, event string, extra ...string) localRun {
	t.Helper()
	reportFile := filepath.Join(t.TempDir(), "report.json")
	args := append([]string{"-local", "-template", "../../template.yaml", "-fn", fn, "-event", event,
		"-env-file", "../../events/env.local.json", "-bootstrap", bootstrap, "-report", reportFile}, extra...)
	var r localRun
	r.code, r.stdout, r.stderr = run(t, args...)
	if r.code == exitCannotRun {
		t.Fatalf("exit %d: could not run\nstderr %s", r.code, r.stderr)
	}
	data, err := os.ReadFile(reportFile)
	if err != nil {
		t.Fatalf("no report: %v\nstderr %s", err, r.stderr)
	}
	if err := json.Unmarshal(data, &r.report); err != nil {
		t.Fatalf("report: %v\n%s", err, data)
	}
	if !strings.Contains(r.stderr, "── what the invoke changed") {
		t.Errorf("no report for people on stderr:\n%s", r.stderr)
	}
	return r
}

// functionFor is the test's own reading of the event naming convention.
func functionFor(name string) string {
	switch {
	case strings.HasPrefix(name, "router-"):
		return "RouterFunction"
	case strings.HasPrefix(name, "enqueue-"):
		return "EnqueueFunction"
	case strings.HasPrefix(name, "poller-"):
		return "PollerFunction"
	case strings.HasPrefix(name, "dequeue-"):
		return "DequeueFunction"
	}
	return ""
}

// localChecks says, per event file, what its function must have done.
var localChecks = map[string]func(t *testing.T, r localRun){
	"router-s3-put.json": func(t *testing.T, r localRun) {
		noBatchFailures(t, r)
		if routes := queuedReleases(r); !slices.Equal(routes, []string{"customers"}) {
			t.Errorf("release requests for %q, want one for customers", routes)
		}
		if len(r.report.Queued) == 1 && !strings.HasPrefix(r.report.Queued[0].GroupID, "Customer_groups") {
			t.Errorf("message group %q, want the customers route's entity", r.report.Queued[0].GroupID)
		}
		if len(r.report.Created) != 0 || len(r.report.Removed) != 0 {
			t.Errorf("the router changed S3: created %q, removed %q; the pass moves files, not the router", r.report.Created, r.report.Removed)
		}
	},
	"router-urlencoded-keys.json": func(t *testing.T, r localRun) {
		noBatchFailures(t, r)
		routes := queuedReleases(r)
		slices.Sort(routes)
		if !slices.Equal(routes, []string{"customers", "vendors"}) {
			t.Errorf("release requests for %q, want one per route of the decoded keys", routes)
		}
		if len(r.report.Created) != 0 {
			t.Errorf("created %q: a decoded key was taken for a file no route takes", r.report.Created)
		}
	},
	"router-test-event.json": func(t *testing.T, r localRun) {
		noBatchFailures(t, r)
		if len(r.report.Queued)+len(r.report.Created)+len(r.report.Removed) != 0 {
			t.Errorf("a test event changed something: %+v", r.report)
		}
	},
	"router-no-route.json": func(t *testing.T, r localRun) {
		noBatchFailures(t, r)
		if len(r.report.Queued) != 0 {
			t.Errorf("unroutable files were queued: %q", queuedKeys(r))
		}
		rejected(t, r, "inbound/payroll/2026-11.csv", `^rejected/_unrouted/\d{4}/\d{2}/\d{2}/payroll/2026-11\.csv$`, "no-route")
		rejected(t, r, "inbound/loose-file.csv", `^rejected/_unrouted/\d{4}/\d{2}/\d{2}/loose-file\.csv$`, "no-route")
		// Each rejected file is one notification, and counted.
		for _, n := range r.report.Notifications {
			if n.Field("Reason") != "no-route" || !strings.HasPrefix(n.Field("Filed at"), "rejected/_unrouted/") ||
				!strings.Contains(r.stderr, n.Subject) {
				t.Errorf("notification %+v: want reason no-route, filed under rejected/_unrouted/, in the report for people", n)
			}
		}
		wantMetric(t, r, "FilesRejected", 2, "Route=_unrouted")
		wantMetric(t, r, "NotificationsSent", 2, "Function=router")
	},
	"router-zero-byte.json": func(t *testing.T, r localRun) {
		// The router only asks for a release; the enqueue function's pass
		// files the empty file under rejected/ (internal/imports/release).
		noBatchFailures(t, r)
		if routes := queuedReleases(r); !slices.Equal(routes, []string{"customers"}) {
			t.Errorf("release requests for %q, want one for customers", routes)
		}
		if keys := queuedKeys(r); len(keys) != 0 {
			t.Errorf("files queued by the router: %q", keys)
		}
	},
	"enqueue-fifo-batch.json": func(t *testing.T, r localRun) {
		noBatchFailures(t, r)
		want := []struct{ key, activity, entity string }{
			{"inbound/customers/customers-001.csv", actCustomers, "Customer groups"},
			{"inbound/vendors/vendors-001.csv", actVendors, "Vendors V2"},
			{"inbound/customers/customers-002.csv", actCustomers, "Customer groups"},
		}
		msgs := r.report.FnOMessages
		if len(msgs) != len(want) {
			t.Fatalf("%d F&O messages, want %d: %+v", len(msgs), len(want), msgs)
		}
		for i, w := range want {
			m := msgs[i]
			if m.ExternalID != enqueue.ExternalID(w.key) || !strings.EqualFold(m.ActivityID, w.activity) || m.Entity != w.entity ||
				m.Company != "USMF" || m.Size == 0 {
				t.Errorf("F&O message %d = %+v, want %s to %s (%s, USMF) with a body", i, m, w.key, w.activity, w.entity)
			}
		}
		if n := countKeys(r.report.Created, `^_state/markers/`); n != 3 {
			t.Errorf("%d idempotency markers written, want 3: %q", n, r.report.Created)
		}
		wantMetric(t, r, "FilesEnqueued", 2, "Route=customers")
		wantMetric(t, r, "FilesEnqueued", 1, "Route=vendors")
		if m, ok := localrun.SumMetric(r.report.Metrics, "EnqueueLatency"); !ok || m.Values != 3 {
			t.Errorf("EnqueueLatency %+v, want a sample per file", m)
		}
	},
	"poller-schedule.json": func(t *testing.T, r localRun) {
		okCode(t, r)
		var sum poller.Summary
		if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
			t.Fatalf("response is not the poller's summary: %v\n%s", err, r.stdout)
		}
		if sum.Checked != 1 || sum.Finalized != 1 || sum.Processed != 1 || sum.Errors != 0 {
			t.Errorf("summary %+v, want the seeded file checked and filed as processed", sum)
		}
		var result string
		for _, k := range r.report.Created {
			if regexp.MustCompile(`^processed/customers/\d{4}/\d{2}/\d{2}/local-invoke-sample\.csv\.result\.json$`).MatchString(k) {
				result = k
			}
		}
		if result == "" || !slices.Contains(r.report.Removed, "inbound/customers/local-invoke-sample.csv") {
			t.Fatalf("the file did not move to processed/ with a result: created %q, removed %q", r.report.Created, r.report.Removed)
		}
		var doc struct{ Status string }
		if err := json.Unmarshal(r.report.Documents[result], &doc); err != nil || doc.Status != "Processed" {
			t.Errorf("result document %s (%v), want status Processed", r.report.Documents[result], err)
		}
		wantMetric(t, r, "PollerRecordsChecked", 1, "")
		wantMetric(t, r, "FilesProcessed", 1, "Route=customers")
		if _, ok := localrun.SumMetric(r.report.Metrics, "PollerRunDuration"); !ok {
			t.Errorf("no PollerRunDuration among %+v", r.report.Metrics)
		}
		if !regexp.MustCompile(`(?m)^    PollerRecordsChecked +Count +1 +1 `).MatchString(r.stderr) {
			t.Errorf("the report for people lacks the metrics table's PollerRecordsChecked row:\n%s", r.stderr)
		}
	},
	"dequeue-export-job1.json": func(t *testing.T, r localRun) {
		sum := exportSummary(t, r)
		if sum.Landed != 1 || sum.Acked != 1 || sum.Failed != 0 || !sum.QueueEmpty {
			t.Errorf("summary %+v, want one export landed and acked", sum)
		}
		if n := countKeys(r.report.Created, `^outbound/customer-groups/.+\.csv$`); n != 1 {
			t.Errorf("%d exports under outbound/customer-groups/, want 1: %q", n, r.report.Created)
		}
		acked(t, r, actJob1)
		wantMetric(t, r, "ExportsLanded", 1, "Job=customer-groups")
		wantMetric(t, r, "ExportsAcked", 1, "Job=customer-groups")
	},
	"dequeue-export-job2.json": func(t *testing.T, r localRun) {
		sum := exportSummary(t, r)
		if sum.Landed != 1 || sum.Acked != 1 || sum.EntityFiles != 2 || sum.Failed != 0 {
			t.Errorf("summary %+v, want one package landed, unpacked into 2 entity files and acked", sum)
		}
		if n := countKeys(r.report.Created, `^outbound/vendor-package/.+\.zip$`); n != 1 {
			t.Errorf("%d packages under outbound/vendor-package/, want 1: %q", n, r.report.Created)
		}
		for _, entity := range []string{"Vendor groups.csv", "Vendors V2.csv"} {
			if countKeys(r.report.Created, `^outbound/vendor-package/.+/`+regexp.QuoteMeta(entity)+`$`) != 1 {
				t.Errorf("entity file %s not unpacked: %q", entity, r.report.Created)
			}
		}
		acked(t, r, actJob2)
		wantMetric(t, r, "ExportsLanded", 1, "Job=vendor-package")
	},
}

// localNotifications are, per event file, the notifications its function
// must publish: the kind and the file each names ("Dropped as"). Any other
// event must publish none.
var localNotifications = map[string][][2]string{
	"router-no-route.json": {{"rejected", "inbound/loose-file.csv"}, {"rejected", "inbound/payroll/2026-11.csv"}},
}

// TestRun_LocalEveryEvent runs every sample event through its function in
// -local mode, on moto_server and the F&O emulator, and checks what the
// function did. A new event file needs an entry in localChecks.
func TestRun_LocalEveryEvent(t *testing.T) {
	requireMoto(t)
	files, err := filepath.Glob("../../events/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no events: %v", err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		if name == "env.local.json" {
			continue
		}
		seen[name] = true
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			fn := functionFor(name)
			if fn == "" {
				t.Fatalf("%s: name it router-, enqueue-, poller- or dequeue-<what>.json", name)
			}
			if got := functionForEvent(f); got != fn {
				t.Errorf("invoke infers %q for %s, want %s", got, name, fn)
			}
			check, ok := localChecks[name]
			if !ok {
				t.Fatalf("no check for %s: add one to localChecks", name)
			}
			r := runLocal(t, projectBootstrap(t, fn), fn, f)
			check(t, r)
			notified(t, r, localNotifications[name])
			if t.Failed() {
				t.Logf("stdout %s\nstderr %s", r.stdout, r.stderr)
			}
		})
	}
	for name := range localChecks {
		if !seen[name] {
			t.Errorf("localChecks has %s, which is not in events/", name)
		}
	}
}

// TestRun_LocalFunctionError: a function error in -local mode exits 1 with
// the error document, and the stand-ins are stopped.
func TestRun_LocalFunctionError(t *testing.T) {
	requireMoto(t)
	ev := writeFile(t, "disabled.json", `{"job":"disabled"}`)
	r := runLocal(t, projectBootstrap(t, "DequeueFunction"), "DequeueFunction", ev)
	if r.code != exitFunctionError || !strings.Contains(r.stdout, "errorMessage") {
		t.Errorf("exit %d, stdout %s; want a function error\nstderr %s", r.code, r.stdout, r.stderr)
	}
	m := regexp.MustCompile(`moto_server on (http://127\.0\.0\.1:\d+)`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("moto_server's address not reported:\n%s", r.stderr)
	}
	if resp, err := http.Get(m[1] + "/moto-api/"); err == nil {
		resp.Body.Close()
		t.Errorf("moto_server at %s still answers after the invoke", m[1])
	}
}

// TestRun_LocalNoSeed: with -seed=false the poller finds an empty ledger.
func TestRun_LocalNoSeed(t *testing.T) {
	requireMoto(t)
	r := runLocal(t, projectBootstrap(t, "PollerFunction"), "PollerFunction", "../../events/poller-schedule.json", "-seed=false")
	okCode(t, r)
	var sum poller.Summary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || sum.Due != 0 || sum.Checked != 0 {
		t.Errorf("summary %s (%v), want nothing due", r.stdout, err)
	}
	// The sweep records its progress under _state/; nothing else changes.
	if countKeys(r.report.Created, `^[^_]`)+len(r.report.Removed)+len(r.report.FnOMessages) != 0 || r.report.FnORequests != 0 {
		t.Errorf("report %+v, want no change outside _state/", r.report)
	}
}

func TestRun_LocalUsage(t *testing.T) {
	if code, _, stderr := run(t, "-template", testTemplate(t), "-fn", "EchoFunction", "-report", "x.json"); code != exitCannotRun ||
		!strings.Contains(stderr, "-report needs -local") {
		t.Errorf("exit %d, stderr %q; want -report refused without -local", code, stderr)
	}
	// The routes a local invoke falls back on are the sample env file's.
	var envFile struct{ Parameters map[string]string }
	data, err := os.ReadFile("../../events/env.local.json")
	if err != nil || json.Unmarshal(data, &envFile) != nil {
		t.Fatalf("events/env.local.json: %v", err)
	}
	var fromFile, sample any
	if json.Unmarshal([]byte(envFile.Parameters["ROUTES"]), &fromFile) != nil || json.Unmarshal([]byte(localrun.SampleRoutes), &sample) != nil ||
		!reflect.DeepEqual(fromFile, sample) {
		t.Errorf("localrun.SampleRoutes and events/env.local.json's ROUTES differ:\n%s\n%s", localrun.SampleRoutes, envFile.Parameters["ROUTES"])
	}
	for name, want := range map[string]string{
		"events/router-s3-put.json": "RouterFunction", "x/enqueue-a.json": "EnqueueFunction",
		"poller-schedule.json": "PollerFunction", "dequeue-export-job1.json": "DequeueFunction", "other.json": "",
	} {
		if got := functionForEvent(name); got != want {
			t.Errorf("functionForEvent(%q) = %q, want %q", name, got, want)
		}
	}
}

func okCode(t *testing.T, r localRun) {
	t.Helper()
	if r.code != exitOK {
		t.Fatalf("exit %d, stdout %s", r.code, r.stdout)
	}
}

func noBatchFailures(t *testing.T, r localRun) {
	t.Helper()
	okCode(t, r)
	var resp events.SQSEventResponse
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
		t.Fatalf("response is not an SQS batch response: %v\n%s", err, r.stdout)
	}
	if len(resp.BatchItemFailures) != 0 {
		t.Errorf("batch item failures %+v", resp.BatchItemFailures)
	}
}

// queuedKeys are the keys of the file messages queued, sorted.
func queuedKeys(r localRun) []string {
	var keys []string
	for _, q := range r.report.Queued {
		if q.Release == "" {
			keys = append(keys, q.Key)
		}
	}
	sort.Strings(keys)
	return keys
}

// queuedReleases are the routes of the release requests queued.
func queuedReleases(r localRun) []string {
	var routes []string
	for _, q := range r.report.Queued {
		if q.Release != "" {
			routes = append(routes, q.Release)
		}
	}
	return routes
}

func anyKey(keys []string, pattern string) bool { return countKeys(keys, pattern) > 0 }

func countKeys(keys []string, pattern string) int {
	re := regexp.MustCompile(pattern)
	n := 0
	for _, k := range keys {
		if re.MatchString(k) {
			n++
		}
	}
	return n
}

// rejected checks that from left inbound/ for a key matching to, with a
// reason document giving reason.
func rejected(t *testing.T, r localRun, from, to, reason string) {
	t.Helper()
	if !slices.Contains(r.report.Removed, from) {
		t.Errorf("%s is still in inbound/: removed %q", from, r.report.Removed)
	}
	var key string
	for _, k := range r.report.Created {
		if regexp.MustCompile(to).MatchString(k) {
			key = k
		}
	}
	if key == "" {
		t.Errorf("%s not rejected to %s: created %q", from, to, r.report.Created)
		return
	}
	var doc struct {
		Reason, Detail, OriginalKey string
	}
	raw, ok := r.report.Documents[key+".reason.json"]
	if !ok {
		t.Errorf("no reason document beside %s", key)
		return
	}
	if err := json.Unmarshal(raw, &doc); err != nil || doc.Reason != reason || doc.Detail == "" || doc.OriginalKey != from {
		t.Errorf("reason document %s (%v), want reason %s for %s with a detail", raw, err, reason, from)
	}
}

func exportSummary(t *testing.T, r localRun) dequeue.Summary {
	t.Helper()
	okCode(t, r)
	var sum dequeue.Summary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("response is not the export summary: %v\n%s", err, r.stdout)
	}
	return sum
}

func acked(t *testing.T, r localRun, activity string) {
	t.Helper()
	if len(r.report.AckedExports) != 1 || !strings.EqualFold(r.report.AckedExports[0].ActivityID, activity) || r.report.PendingExport != 0 {
		t.Errorf("acked %+v, pending %d; want the one export of %s acked", r.report.AckedExports, r.report.PendingExport, activity)
	}
}

// notified checks the notifications a local invoke read off the topic's
// queue: exactly want (kind, file), sorted by subject as the report sorts
// them, each under the sandbox's stack name and in the report for people.
func notified(t *testing.T, r localRun, want [][2]string) {
	t.Helper()
	var got [][2]string
	for _, n := range r.report.Notifications {
		got = append(got, [2]string{n.Kind, n.Field("Dropped as")})
		if !strings.HasPrefix(n.Subject, "[invoke] "+n.Kind+": ") {
			t.Errorf("subject %q, want [invoke] %s: ...", n.Subject, n.Kind)
		}
		if !strings.Contains(r.stderr, "    "+n.Subject+"\n") {
			t.Errorf("the report for people does not show %q", n.Subject)
		}
	}
	sortPairs := func(p [][2]string) {
		slices.SortFunc(p, func(a, b [2]string) int { return strings.Compare(a[0]+a[1], b[0]+b[1]) })
	}
	sortPairs(got)
	want = slices.Clone(want)
	sortPairs(want)
	if !slices.Equal(got, want) {
		t.Errorf("notified (kind, file) %q, want %q", got, want)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("  SNS invoke-notifications: %d notification(s) published", len(want))) ||
		!strings.HasSuffix(r.report.NotifyTopic, ":invoke-notifications") {
		t.Errorf("the report does not name the topic and the count (topic %q)", r.report.NotifyTopic)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("  Metrics: %d EMF line(s) in the function's output", len(r.report.EMF))) {
		t.Errorf("the report for people does not count the EMF lines")
	}
	for _, line := range r.report.EMF {
		var root struct {
			Stack string
			AWS   *struct{ CloudWatchMetrics []any } `json:"_aws"`
		}
		if err := json.Unmarshal(line, &root); err != nil || root.AWS == nil || root.Stack != "invoke" {
			t.Errorf("EMF line %s (%v): want an _aws member and Stack invoke (STACK_NAME)", line, err)
		}
	}
}

// wantMetric checks a metric's sum over the invoke's EMF lines, and with
// by its sum for that dimension value ("Route=customers").
func wantMetric(t *testing.T, r localRun, name string, want float64, by string) {
	t.Helper()
	m, ok := localrun.SumMetric(r.report.Metrics, name)
	switch {
	case !ok:
		t.Errorf("no %s among the metrics emitted: %+v", name, r.report.Metrics)
	case by == "" && m.Sum != want:
		t.Errorf("%s sums to %v, want %v", name, m.Sum, want)
	case by != "" && m.By[by] != want:
		t.Errorf("%s for %s sums to %v, want %v (%+v)", name, by, m.By[by], want, m)
	}
}
