package pipelinetest

import (
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// Main is TestMain for a package whose tests use moto: it runs the tests,
// then stops moto_server.
func Main(m *testing.M) {
	code := m.Run()
	mototest.Stop()
	os.Exit(code)
}

// F&O data management activity IDs (import jobs) of Routes.
const (
	ActCustomers  = "11111111-1111-4111-8111-111111111111"
	ActVendors    = "22222222-2222-4222-8222-222222222222"
	ActCurrencies = "33333333-3333-4333-8333-333333333333"
	ActPackages   = "44444444-4444-4444-8444-444444444444"
	ActMissing    = "99999999-9999-4999-8999-999999999999" // unknown to F&O: 404
)

// Routes is the ROUTES document over the Act* activities: three file
// routes, a package route, and "nowhere", whose job F&O does not know.
// Their settle window is 0s, so a file may be released a second after S3
// stored it: tests of other things do not wait out the default.
const Routes = `[
 {"route":"customers","activityId":"` + ActCustomers + `","entity":"Customer groups","company":"USMF","settle":"0s"},
 {"route":"vendors","activityId":"` + ActVendors + `","entity":"Vendor groups","company":"USMF","settle":"0s"},
 {"route":"currencies","activityId":"` + ActCurrencies + `","entity":"Currencies","settle":"0s"},
 {"route":"packages","activityId":"` + ActPackages + `","kind":"package","settle":"0s"},
 {"route":"nowhere","activityId":"` + ActMissing + `","entity":"Nothing","settle":"0s"}]`

// Imports is moto's share of an import-side test: clients, a fresh
// versioned bucket and a FIFO import queue.
type Imports struct {
	S3     *s3.Client
	SQS    *sqs.Client
	Bucket string
	Queue  string // the FIFO import queue
	DLQ    string // its dead-letter queue; "" without one
}

// NewImports creates the bucket and the queue; it skips the test when
// moto_server is missing.
func NewImports(t testing.TB, fifo FIFO) *Imports {
	t.Helper()
	w := &Imports{S3: mototest.S3(t), SQS: mototest.SQS(t), Bucket: mototest.NewBucket(t)}
	w.Queue, w.DLQ = NewFIFO(t, w.SQS, fifo)
	return w
}

// Env is the environment the import functions read: BUCKET, ROUTES (the
// document given) and IMPORT_QUEUE_URL. Callers may add to it.
func (w *Imports) Env(routes string) map[string]string {
	return map[string]string{"BUCKET": w.Bucket, "ROUTES": routes, "IMPORT_QUEUE_URL": w.Queue}
}

// Emulator starts the F&O emulator with the jobs of Routes: customers,
// vendors and currencies as file jobs ("Process messages in order" when
// inOrder), packages as a package job. ActMissing stays unknown.
func Emulator(t testing.TB, opts d365test.Options, inOrder bool) *d365test.Emulator {
	t.Helper()
	e := d365test.NewT(t, opts)
	for _, a := range []string{ActCustomers, ActVendors, ActCurrencies} {
		e.AddActivity(a, d365test.Activity{Kind: d365test.File, InOrder: inOrder})
	}
	e.AddActivity(ActPackages, d365test.Activity{Kind: d365test.Package})
	return e
}

// MemConfig is the route configuration of the in-memory fuzz tests: bucket
// "b", the default layout, a file route "customers" and a package route
// "pkg".
func MemConfig(t testing.TB) routes.Config {
	t.Helper()
	rt, err := routes.Parse(`[{"route":"customers","activityId":"5d3c1e0a-7b64-4e7a-9b2f-8f6b3a521c0d","entity":"Customer groups","company":"USMF"},
		{"route":"pkg","activityId":"6d3c1e0a-7b64-4e7a-9b2f-8f6b3a521c0d","kind":"package"}]`)
	if err != nil {
		t.Fatal(err)
	}
	return routes.Config{Bucket: "b", Routes: rt, Layout: layout.Default()}
}

// Quiet is a logger that drops everything up to errors, for handlers whose
// logs a test does not read.
func Quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 1}))
}

// Clock is a clock a test moves by hand; its Now goes in a Config's Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now reads the clock.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
