package faultmatrix_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// packageRoutes are the package API routes of a pipeline with Packages:
// "pk" imports data packages into data project "Opening balances", "pt"
// plain files wrapped in the package template customer-groups into
// "Customer groups"; one import at a time in the environment's scope.
var packageRoutes = []string{
	`{"route":"pk","kind":"dataProject","definitionGroupId":"Opening balances","legalEntityId":"USMF","settle":"0s"}`,
	`{"route":"pt","kind":"dataProject","definitionGroupId":"Customer groups","legalEntityId":"USMF","packageTemplate":"` +
		pipelinetest.TemplateName + `","settle":"0s"}`,
}

// badEntity is the entity whose package imports end PartiallySucceeded,
// with error rows and error files.
const badEntity = "Bad rows"

// packageBlock is the enqueue function's block size in the matrix: the
// larger packages go up in several blocks, the small one in one Put Blob.
const packageBlock = 4 << 10

// isPackage: the fate of a package import (a result naming a data project).
func isPackage(f fate) bool { return f.result.DefinitionGroupID != "" }

// rows is a CSV of n lines of about 40 bytes, random enough that a
// package of it stays several blocks large once zipped.
func rows(n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	var b bytes.Buffer
	b.WriteString("CODE,NAME\r\n")
	for i := range n {
		fmt.Fprintf(&b, "%06d,%016x%08x\r\n", i, rng.Uint64(), rng.Uint32())
	}
	return b.Bytes()
}

// packageLoad drops the packages every package case runs, in key order
// (the drop order of files S3 stored within the same second): a package of several blocks, a small one (one Put
// Blob), one F&O imports with errors (its error files are fetched), a
// plain CSV on the template route (wrapped as it streams, in blocks), an
// empty file and a CSV where only packages go (both rejected).
func (p *pipeline) packageLoad() {
	for _, f := range []struct {
		key  string
		body []byte
	}{
		{"inbound/pk/1-opening.zip", d365test.NewPackage("Opening balances", d365test.PackageEntity{Name: "Customer groups", Data: rows(600)})},
		{"inbound/pk/2-small.zip", pipelinetest.Package("Opening balances", "Vendor groups")},
		{"inbound/pk/3-bad.zip", d365test.NewPackage("Opening balances", d365test.PackageEntity{Name: badEntity, Data: rows(400)})},
		{"inbound/pt/4-groups.csv", rows(500)},
		{"inbound/pt/5-empty.csv", nil},
		{"inbound/pk/6-not-a-package.csv", rows(3)},
	} {
		p.put(f.key, f.body)
	}
}

// packageFates are where packageLoad's files end without faults.
var packageFates = map[string]string{
	"inbound/pk/1-opening.zip":       "processed/Succeeded",
	"inbound/pk/2-small.zip":         "processed/Succeeded",
	"inbound/pk/3-bad.zip":           "failed/PartiallySucceeded",
	"inbound/pt/4-groups.csv":        "processed/Succeeded",
	"inbound/pt/5-empty.csv":         "rejected/empty-file",
	"inbound/pk/6-not-a-package.csv": "rejected/not-a-package",
}

// checkFates: each dropped file ended where want says (packageFates but
// for the keys given).
func checkFates(t *testing.T, b *books, p *pipeline, except map[string]string) {
	t.Helper()
	for _, d := range p.drops {
		want := packageFates[d.key]
		if w, ok := except[d.key]; ok {
			want = w
		}
		if f := b.fates[d.key]; f.where+"/"+f.status != want {
			t.Errorf("%s ended in %s/%s, want %s", d.key, f.where, f.status, want)
		}
	}
}

// checkPackages: each package reached F&O's ImportFromPackage at most once
// (its executions are found by the blob they imported, whose name carries
// the file's identity), each filed as processed or failed by F&O was
// imported exactly once under the execution its result names, the plain
// file on the template route went wrapped, no two imports ran at once (the
// emulator fails an import that starts while another runs), and a route's
// packages were imported in drop order.
func (p *pipeline) checkPackages(b *books) {
	t := p.t
	t.Helper()
	byBlob := map[string]string{} // identity prefix in the blob name -> dropped key
	for _, d := range p.drops {
		for _, id := range []string{importmsg.Identity(p.stack.Bucket, d.key, d.versionID, d.etag), importmsg.Identity(p.stack.Bucket, d.key, "", d.etag)} {
			byBlob["s3fno-"+id[:16]+"-"] = d.key
		}
	}
	execOf := map[string][]string{}
	var order []string // dropped keys, in the order F&O created their executions
	for _, x := range p.emu.Executions() {
		if x.PackageBlob == "" {
			continue
		}
		key := ""
		for prefix, k := range byBlob {
			if strings.HasPrefix(x.PackageBlob, prefix) {
				key = k
			}
		}
		if key == "" {
			t.Errorf("F&O imported %s, which no dropped file was uploaded as", x.PackageBlob)
			continue
		}
		b.imports[key]++
		execOf[key] = append(execOf[key], x.ID)
		order = append(order, key)
		if x.Status == d365test.ExecFailed {
			t.Errorf("%s: execution %s failed: it started while another import ran", key, x.ID)
		}
	}
	for key, f := range b.fates {
		switch {
		case b.imports[key] > 1:
			t.Errorf("%s was imported %d times: %v", key, b.imports[key], execOf[key])
		case !isPackage(f):
		case b.imports[key] != 1:
			t.Errorf("%s is in %s/ %s but F&O has %d imports of it", key, f.where, f.status, b.imports[key])
		case f.result.ExecutionID != execOf[key][0]:
			t.Errorf("%s: the result names execution %q, F&O ran %q", key, f.result.ExecutionID, execOf[key][0])
		case strings.HasPrefix(key, "inbound/pt/") && (f.result.Wrapped == nil || f.result.Wrapped.DataFile != "Customer groups.csv"):
			t.Errorf("%s: the plain file's result does not say it was wrapped: %+v", key, f.result.Wrapped)
		}
	}
	checkImportOrder(t, p, order)
}

// checkImportOrder: within a route, packages were imported in drop order.
func checkImportOrder(t testing.TB, p *pipeline, order []string) {
	t.Helper()
	dropped := map[string]int{}
	for i, d := range p.drops {
		dropped[d.key] = i
	}
	last := map[string]string{}
	for _, key := range order {
		route, _, _ := p.layout.Split(key)
		if prev, ok := last[route]; ok && dropped[key] < dropped[prev] {
			t.Errorf("route %s: %s was imported after %s, which was dropped later", route, key, prev)
		}
		last[route] = key
	}
}

// packageCalls are the calls a package import makes, and which side makes
// them: the enqueue function (the write URL, the blocks, the import) or
// the poller (the status, and for a failed package its errors and each
// entity's error files).
var packageCalls = []struct {
	endpoint string
	side     string
	safe     bool // retried by the client itself on a 5xx
}{
	{"GetAzureWriteUrl", "enqueue", true},
	{"blob-put", "enqueue", true},
	{"blob-put-block", "enqueue", true},
	{"blob-put-block-list", "enqueue", true},
	{"ImportFromPackage", "enqueue", false},
	{"GetExecutionSummaryStatus", "poller", true},
	{"GetExecutionErrors", "poller", true},
	{"GetImportStagingErrorFileUrl", "poller", true},
	{"GenerateImportTargetErrorKeysFile", "poller", true},
	{"GetImportTargetErrorKeysFileUrl", "poller", true},
	{"blob-get", "poller", true},
}

// TestEveryPackageCallFails: each call a package import makes answers 500
// and 502 (as often in a row as the client retries a safe call, so the
// pipeline's own retry has to get it through: a redelivery, a rescheduled
// record; ImportFromPackage, which the client never sends again once it
// went out, once each), or 429 once (waited out in the same invocation).
// Every file ends in its one place, each package is imported once, and the
// scope's lock is gone at the end.
func TestEveryPackageCallFails(t *testing.T) {
	t.Parallel()
	var cases []subtest
	for _, c := range packageCalls {
		for _, kind := range []string{"5xx", "429"} {
			cases = append(cases, subtest{c.endpoint + " " + kind, func(t *testing.T) {
				p := newPipeline(t, setup{Packages: true, PollerConcurrency: 1, ExportJobs: 1})
				count := 1
				switch {
				case kind == "429":
					p.emu.Inject(d365test.Fault{Endpoint: c.endpoint, Count: 1, Status: 429, RetryAfter: 1})
				case !c.safe:
					p.emu.Inject(d365test.Fault{Endpoint: c.endpoint, Count: 1, Status: 500})
					p.emu.Inject(d365test.Fault{Endpoint: c.endpoint, Count: 1, Status: 502})
					count = 2
				default:
					p.emu.Inject(d365test.Fault{Endpoint: c.endpoint, Count: clientAttempts / 2, Status: 500})
					p.emu.Inject(d365test.Fault{Endpoint: c.endpoint, Count: clientAttempts - clientAttempts/2, Status: 502})
					count = clientAttempts
				}
				p.packageLoad()
				p.settle(40, nil)
				b := p.account()
				checkFates(t, b, p, nil)
				if got := p.emu.Faulted(c.endpoint); got != count {
					t.Fatalf("%s was answered with a fault %d times, want %d: the pipeline did not make the call as expected", c.endpoint, got, count)
				}
				const released = 5 // package messages: all but the empty file
				redeliveries := 1  // the client's retries of a safe call, outlasted once
				if !c.safe {
					redeliveries = count // each 5xx to ImportFromPackage
				}
				pollErrors := 0
				for _, s := range p.pollRuns {
					pollErrors += s.Errors
				}
				switch {
				case kind == "429" && (p.delivered != released || pollErrors != 0):
					t.Errorf("429 was not waited out: %d deliveries (want %d), %d poll errors", p.delivered, released, pollErrors)
				case kind == "5xx" && c.side == "enqueue" && p.delivered != released+redeliveries:
					t.Errorf("%d deliveries to the enqueue function, want %d: each 5xx the client gave up on is one redelivery", p.delivered, released+redeliveries)
				case kind == "5xx" && c.side == "poller" && pollErrors == 0:
					t.Errorf("no poller run saw the 5xx: the client's retries were not outlasted")
				}
			}})
		}
	}
	runAll(t, cases)
}

// TestPackageImportKilledAfterTheAnswer: the enqueue function dies after
// F&O answered ImportFromPackage and before the answer was recorded. The
// redelivery finds the intent marker and files the package under failed/
// as ImportOutcomeUnknown, naming the execution F&O runs; it is never
// imported again, the scope stays held until that execution is final, and
// the packages behind it go after.
func TestPackageImportKilledAfterTheAnswer(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, setup{Packages: true})
	var once sync.Once
	p.enq.importThen = func(blob string, n int) afterAccept {
		what := goOn
		once.Do(func() { what = die }) // the first package's import
		return what
	}
	p.packageLoad()
	p.settle(40, nil)
	b := p.account()
	checkFates(t, b, p, map[string]string{"inbound/pk/1-opening.zip": "failed/" + enqueue.ImportOutcomeUnknown})
	f := b.fates["inbound/pk/1-opening.zip"]
	if b.imports["inbound/pk/1-opening.zip"] != 1 || !strings.Contains(strings.Join(f.result.Notes, " "), "look for execution "+f.result.ExecutionID) {
		t.Fatalf("1-opening.zip: %d imports, notes %q", b.imports["inbound/pk/1-opening.zip"], f.result.Notes)
	}
	if _, _, crashes, _ := p.enqFn.stats(); crashes != 1 || len(p.enq.importDeaths()) != 1 || p.enq.importDeaths()[f.result.ExecutionID] != 1 {
		t.Fatalf("the enqueue function crashed %d times (%v), want once, after execution %s", crashes, p.enq.importDeaths(), f.result.ExecutionID)
	}
}

// blobOf is the blob a blob request names.
func blobOf(r *http.Request) string { return path.Base(r.URL.Path) }

// packageOf is the package a blob was uploaded for: its name is
// s3fno-<identity prefix>-<time>.zip, a new one for each upload.
func packageOf(r *http.Request) string {
	parts := strings.Split(blobOf(r), "-")
	if len(parts) < 3 {
		return blobOf(r)
	}
	return parts[1]
}

// TestPackageUploadLost: the connection resets in the middle of a block
// (the first of each package's upload, the wrapped file's among them): the
// block, held in memory, goes again; nothing is committed twice and each
// package is imported once, whole.
func TestPackageUploadLost(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, setup{Packages: true})
	var mu sync.Mutex
	cut := map[string]bool{}
	faults := &faultCounter{n: map[string]int{}}
	p.emu.SetFaultFunc(func(endpoint string, r *http.Request) *d365test.Fault {
		if endpoint != "blob-put-block" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if cut[blobOf(r)] {
			return nil
		}
		cut[blobOf(r)] = true
		return faults.add(endpoint, &d365test.Fault{ResetAfterBytes: 1000})
	})
	p.packageLoad()
	p.settle(40, nil)
	b := p.account()
	checkFates(t, b, p, nil)
	if n := faults.total(); n != 3 {
		t.Fatalf("%d blocks cut, want 3 (the first of each package that goes up in blocks)", n)
	}
}

// TestPackageSASExpires: the blob URL's SAS expires while each package
// goes up: blob storage refuses the next block, a fresh URL is asked for,
// and the package goes up again from a fresh read of S3 (the wrapped file
// wrapped again); each is imported once.
func TestPackageSASExpires(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, setup{Packages: true, SASLifetime: time.Hour})
	var mu sync.Mutex
	expired := map[string]bool{} // packages whose first URL was let expire
	p.emu.SetFaultFunc(func(endpoint string, r *http.Request) *d365test.Fault {
		if endpoint != "blob-put-block" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if !expired[packageOf(r)] {
			expired[packageOf(r)] = true
			p.emu.Advance(2 * time.Hour) // the URL's SAS is now an hour past its expiry
		}
		return nil
	})
	p.packageLoad()
	p.settle(40, nil)
	b := p.account()
	checkFates(t, b, p, nil)
	uploads := 0
	for _, f := range b.fates {
		if isPackage(f) {
			uploads++
		}
	}
	if got, want := p.emu.Requests("GetAzureWriteUrl"), uploads+len(expired); len(expired) != 3 || got != want {
		t.Fatalf("%d write URLs asked for, want %d (one per package, and one more for each of the %d that expired; want 3)", got, want, len(expired))
	}
}
