package bench_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/imports/poller"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/local/s3fake"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

const (
	inFlight     = 10000
	terminalEach = 100 // every 100th message has finished in F&O
	lambdaPoller = 120 * time.Second
)

// stampTransport records when each request to the F&O host went out.
type stampTransport struct {
	next http.RoundTripper
	host string
	mu   sync.Mutex
	at   []time.Time
}

func (s *stampTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == s.host {
		s.mu.Lock()
		s.at = append(s.at, time.Now())
		s.mu.Unlock()
	}
	return s.next.RoundTrip(r)
}

func (s *stampTransport) times() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.at...)
}

// budgetExcess is how far the requests went past the limiter's contract
// (poller.BudgetRate): by any time t, at most burst + rate × (t − created)
// requests. <= 0 means the budget held. maxWindow is the most requests in
// any window.
func budgetExcess(at []time.Time, created time.Time, perMinute int, window time.Duration) (excess float64, maxWindow int) {
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	limit, burst := poller.BudgetRate(perMinute)
	excess = -float64(burst)
	for k, t := range at {
		allowed := float64(burst) + float64(limit)*t.Sub(created).Seconds()
		excess = max(excess, float64(k+1)-allowed)
	}
	lo := 0
	for hi := range at {
		for at[hi].Sub(at[lo]) >= window {
			lo++
		}
		maxWindow = max(maxWindow, hi-lo+1)
	}
	return excess, maxWindow
}

// pollerRig is 10,000 files in flight: messages enqueued in the emulator
// (every 100th finished, the rest Enqueued for ever), their markers,
// ledger records and source files in the S3 stand-in.
type pollerRig struct {
	stand  *s3fake.Server
	emu    *d365test.Emulator
	layout layout.Layout
	ids    []string
	cfg    poller.Config
}

func newPollerRig(b *testing.B) *pollerRig {
	b.Helper()
	r := &pollerRig{stand: newStand(b), emu: d365test.NewT(b, d365test.Options{KeepEnqueuedBodyBytes: -1})}
	r.emu.AddActivity(actImport, d365test.Activity{Kind: d365test.File})
	r.emu.Script(d365test.Rule{ActivityID: actImport, Outcome: d365test.Outcome{NeverProcess: true}})
	r.emu.Script(d365test.Rule{ExternalIDContains: "/done-", Outcome: d365test.Outcome{Status: d365test.StatusProcessed}})
	env := map[string]string{"BUCKET": benchBucket, "ROUTES": importRoutes, "IMPORT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench.fifo"}
	cfg, err := poller.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		b.Fatal(err)
	}
	r.cfg, r.layout = cfg, cfg.Layout
	// Enqueue the messages through the real client, eight at a time.
	fno := pipelinetest.FnO(b, r.emu)
	r.ids = make([]string, inFlight)
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(8)
	for i := range inFlight {
		g.Go(func() error {
			id, err := fno.Enqueue(ctx, d365.EnqueueRequest{ActivityID: actImport, Entity: importEnt, Company: "USMF",
				ExternalID: r.key(i), Body: strings.NewReader("a;b\n"), Size: 4})
			r.ids[i] = id
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatalf("enqueue: %v", err)
	}
	for range 3 { // Enqueued → Preprocessing → Processing → Processed, for the "done-" ones
		r.emu.Tick()
	}
	return r
}

func (r *pollerRig) key(i int) string {
	name := "file"
	if i%terminalEach == 0 {
		name = "done"
	}
	return fmt.Sprintf("inbound/%s/%s-%05d.csv", importRoute, name, i)
}

// reset writes the S3 side afresh: for file i (age 23h down to 1h), its
// source, marker and ledger record due at enqueue + 1h, so records are due
// in file order; and a sweep state saying the sweep just ran (the sweep
// lists inbound/ versions and costs no F&O call; it is not measured here).
func (r *pollerRig) reset(b *testing.B, now time.Time) {
	b.Helper()
	r.stand.DeletePrefix(benchBucket, "")
	st := &ledger.Store{Bucket: benchBucket, Layout: r.layout}
	for i, id := range r.ids {
		key := r.key(i)
		src := r.stand.Put(benchBucket, key, []byte("a;b\n"), "", "")
		v, etag := src.VersionID(), src.ETag()
		enq := now.Add(-23*time.Hour + time.Duration(i)*(22*time.Hour/inFlight)).UTC()
		rec := ledger.Record{Identity: importmsg.Identity(benchBucket, key, v, etag), MessageID: id, Bucket: benchBucket, Key: key,
			VersionID: v, Size: 4, Route: importRoute, Entity: importEnt, Company: "USMF", ActivityID: actImport, Kind: "file",
			ExternalID: key, EnqueuedAt: enq, NextCheck: enq.Add(time.Hour), Checks: 20, LastStatus: "Enqueued"}
		raw, _ := json.Marshal(rec)
		r.stand.Put(benchBucket, r.layout.MarkerKey(rec.Identity), raw, "", "")
		r.stand.Put(benchBucket, st.Key(rec), raw, "", "")
	}
	raw, _ := json.Marshal(map[string]time.Time{"lastSweep": now.UTC()})
	r.stand.Put(benchBucket, r.layout.SweepStateKey(), raw, "", "")
}

// BenchmarkPollerAtScale runs one poller invocation (the real
// poller.Poller.Handle, fresh execution environment, default budget of
// 1,000 F&O requests per minute) over 10,000 files in flight, all due,
// 99% still Enqueued in F&O and 1% finished. F&O requests are counted at
// the emulator and time-stamped at the client, to show the budget held.
// The ledger lives in the S3 stand-in: moto would take minutes for the
// 30,000 objects and their listings.
//
//   - one-minute: no deadline, so the run takes on one minute's budget
//     (1,000 records), paced by the limiter (burst 1, then 999 a minute):
//     about a minute.
//   - lambda-120s: the template's 120 s timeout (minus the 10 s margin):
//     the run takes on what the limiter lets through in 110 s
//     (poller.RunQuota: 1,832 records) and stops when the next request
//     would not come before the deadline.
func BenchmarkPollerAtScale(b *testing.B) {
	for _, mode := range []string{"one-minute", "lambda-120s"} {
		b.Run(mode, func(b *testing.B) {
			r := newPollerRig(b)
			s3c := r.stand.Client(b)
			ctx := context.Background()
			var last poller.Summary
			var fnoCalls, statusCalls, s3Reqs int
			var excess float64
			var maxMinute int
			var took time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				r.reset(b, time.Now())
				budget := poller.NewBudget(r.cfg.BudgetPerMinute)
				created := time.Now()
				stamp := &stampTransport{next: r.emu.HTTPClient().Transport, host: strings.TrimPrefix(r.emu.URL(), "https://")}
				fno := pipelinetest.FnO(b, r.emu, func(c *d365.Config) {
					c.Limiter = budget
					c.HTTPClient = &http.Client{Transport: stamp}
				})
				p, err := poller.New(r.cfg, s3c, fno, budget, &countingSender{}, quiet())
				if err != nil {
					b.Fatal(err)
				}
				runCtx, cancel := ctx, context.CancelFunc(func() {})
				if mode == "lambda-120s" {
					runCtx, cancel = context.WithTimeout(ctx, lambdaPoller)
				}
				total0, status0, s3r0 := r.emu.TotalRequests(), r.emu.Requests("GetMessageStatus"), r.stand.Requests()
				b.StartTimer()
				start := time.Now()
				s, err := p.Handle(runCtx, json.RawMessage(`{"task":"poll"}`))
				took += time.Since(start)
				b.StopTimer()
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				last = s
				fnoCalls = r.emu.TotalRequests() - total0
				statusCalls = r.emu.Requests("GetMessageStatus") - status0
				s3Reqs = r.stand.Requests() - s3r0
				excess, maxMinute = budgetExcess(stamp.times(), created, r.cfg.BudgetPerMinute, time.Minute)
				if s.Errors != 0 || s.Checked == 0 || int64(fnoCalls) != s.Calls {
					b.Fatalf("summary %+v, %d F&O requests at the emulator", s, fnoCalls)
				}
				if excess > 1 {
					b.Fatalf("the run made %.0f requests more than the budget allows", excess)
				}
			}
			b.ReportMetric(took.Seconds()/float64(b.N), "run-s")
			b.ReportMetric(float64(last.Due), "records")
			b.ReportMetric(float64(last.Checked), "checked")
			b.ReportMetric(float64(last.Finalized), "finalized")
			b.ReportMetric(float64(last.Rescheduled), "rescheduled")
			b.ReportMetric(float64(last.Deferred), "deferred")
			b.ReportMetric(float64(fnoCalls), "fno-requests")
			b.ReportMetric(float64(statusCalls), "GetMessageStatus")
			b.ReportMetric(float64(s3Reqs), "s3-requests")
			b.ReportMetric(float64(maxMinute), "max-fno-per-60s")
			b.ReportMetric(max(excess, 0), "over-budget")
			b.ReportMetric(float64(took.Milliseconds())/float64(b.N)/float64(max(last.Checked, 1)), "ms/record")
			// The setup, for the report's prose.
			b.ReportMetric(inFlight, "in-flight")
			b.ReportMetric(float64(r.cfg.BudgetPerMinute), "budget/min")
			b.ReportMetric(float64(r.cfg.Concurrency), "concurrency")
			if mode == "lambda-120s" {
				b.ReportMetric(lambdaPoller.Seconds(), "timeout-s")
				b.ReportMetric((lambdaPoller - r.cfg.Margin).Seconds(), "deadline-s")
			}
		})
	}
}
