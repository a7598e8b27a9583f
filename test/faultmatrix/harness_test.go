package faultmatrix_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/poller"
	"github.com/fno-bridge/s3-fno/internal/imports/router"
	"github.com/fno-bridge/s3-fno/internal/local/localrun"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

// setup are the knobs of a pipeline; zero values take the defaults.
type setup struct {
	Entities          int           // file routes r00, r01, ... (default 2)
	ExportJobs        int           // export jobs j0, j1, ... (default 1)
	VisibilityTimeout int           // seconds, both queues (default 1)
	MaxReceiveCount   int           // both queues (default 5)
	BatchSize         int32         // enqueue batch size (default 1, as template.yaml)
	EnqueueTimeout    time.Duration // the enqueue function's timeout (default 20s)
	EnqueueMargin     time.Duration // enqueue.Config.Margin (default 2s)
	ExportTimeout     time.Duration // the dequeue function's timeout (default 20s)
	ExportMargin      time.Duration // dequeue.Config.DeadlineMargin (default 2s)
	PollerConcurrency int           // default: the poller's own (4)
	// Packages adds the package API routes (packageRoutes) and their
	// template; packages go up in blocks of 4 KiB.
	Packages bool
	// SASLifetime is how long the emulator's blob URLs stay valid on its
	// clock (default 7 days).
	SASLifetime time.Duration
	// PollerKill, if set, kills the first poller invocation whose S3
	// request it picks, right after that request succeeded.
	PollerKill func(*http.Request) bool
}

func (s setup) withDefaults() setup {
	if s.Entities == 0 {
		s.Entities = 2
	}
	if s.ExportJobs == 0 {
		s.ExportJobs = 1
	}
	if s.VisibilityTimeout == 0 {
		s.VisibilityTimeout = 1
	}
	if s.MaxReceiveCount == 0 {
		s.MaxReceiveCount = 5
	}
	if s.BatchSize == 0 {
		s.BatchSize = 1
	}
	if s.EnqueueTimeout == 0 {
		s.EnqueueTimeout = 20 * time.Second
	}
	if s.EnqueueMargin == 0 {
		s.EnqueueMargin = 2 * time.Second
	}
	if s.ExportTimeout == 0 {
		s.ExportTimeout = 20 * time.Second
	}
	if s.ExportMargin == 0 {
		s.ExportMargin = 2 * time.Second
	}
	return s
}

// route is one import route: inbound/<name>/ → an F&O file job.
type route struct{ name, activity, entity string }

// exportJob is one export schedule.
type exportJob struct{ name, activity string }

// drop is a file put into inbound/.
type drop struct {
	key, versionID, etag string
	body                 []byte
	lastModified         time.Time // as S3 reports it
}

// queuedExport is an export F&O holds for a job.
type queuedExport struct {
	job  exportJob
	body []byte
}

// offsetClock is the poller's clock: real time moved ahead, so ledger
// records come due without waiting.
type offsetClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *offsetClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *offsetClock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// pipeline is the import and export side on moto and the emulator, with
// the handlers run in-process as Lambda would run them.
type pipeline struct {
	t      testing.TB
	set    setup
	stack  *localrun.Stack
	s3     *s3.Client
	sqs    *sqs.Client
	emu    *d365test.Emulator
	layout layout.Layout
	routes []route
	jobs   []exportJob

	src      *flakyS3
	enq      *crashingEnqueuer
	fifo     *fifoRecorder
	lossy    *lossyQueue
	kill     *killTransport
	clock    *offsetClock
	routerFn *lambdaFn[events.SQSEvent, events.SQSEventResponse]
	enqFn    *lambdaFn[events.SQSEvent, events.SQSEventResponse]
	pollFn   *lambdaFn[json.RawMessage, poller.Summary]
	exportFn *lambdaFn[json.RawMessage, dequeue.Summary]
	arrivals *localrun.SQSMapping
	imports  *localrun.SQSMapping

	mu         sync.Mutex
	drops      []drop
	exports    map[string]queuedExport // correlation ID -> export
	delivered  int                     // FIFO file records handed to the enqueue function (not release requests)
	pollRuns   []poller.Summary
	exportRuns []dequeue.Summary
	exportErr  []string
}

func handlerLog() *slog.Logger {
	if os.Getenv("FAULTMATRIX_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

func routeFor(i int) route {
	return route{name: fmt.Sprintf("r%02d", i), activity: fmt.Sprintf("%08d-0000-4000-8000-%012d", i+1, i+1),
		entity: fmt.Sprintf("Entity %02d", i)}
}

func jobFor(i int) exportJob {
	return exportJob{name: fmt.Sprintf("j%d", i), activity: fmt.Sprintf("e%07d-0000-4000-8000-%012d", i+1, i+1)}
}

// newPipeline provisions the stack and builds the four functions.
func newPipeline(t testing.TB, set setup) *pipeline {
	t.Helper()
	set = set.withDefaults()
	ctx := context.Background()
	cfg := mototest.Config(t)
	stack, err := localrun.Provision(ctx, cfg, localrun.StackSpec{Name: mototest.Name("fm"), ClientSecret: "unused",
		VisibilityTimeout: set.VisibilityTimeout, MaxReceiveCount: set.MaxReceiveCount})
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	awsHTTP := frozenAfterDeadline(tr)
	p := &pipeline{
		t: t, set: set, stack: stack, exports: map[string]queuedExport{},
		s3:  s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true; o.HTTPClient = awsHTTP }),
		sqs: sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.HTTPClient = awsHTTP }),
		emu: d365test.NewT(t, d365test.Options{TokenLifetime: 10000 * time.Hour, SASLifetime: set.SASLifetime}),
	}
	var rs []string
	for i := range set.Entities {
		r := routeFor(i)
		p.routes = append(p.routes, r)
		p.emu.AddActivity(r.activity, d365test.Activity{Kind: d365test.File, InOrder: true})
		rs = append(rs, fmt.Sprintf(`{"route":%q,"activityId":%q,"entity":%q,"company":"USMF","settle":"0s"}`, r.name, r.activity, r.entity))
	}
	for i := range set.ExportJobs {
		p.jobs = append(p.jobs, jobFor(i))
	}
	if set.Packages {
		rs = append(rs, packageRoutes...)
		pipelinetest.PutTemplate(t, p.s3, stack.Bucket, pipelinetest.TemplateName)
		p.emu.Script(d365test.Rule{Entity: badEntity, Outcome: d365test.Outcome{
			Status:           d365test.StatusProcessedWithErrors,
			Errors:           []d365test.ExecutionError{{RecordId: "5637144577", Field: "Code", ErrorMessage: "Code does not exist"}},
			StagingErrorFile: []byte("line,error\n1,Code does not exist\n"), TargetErrorKeysFile: []byte("RecId\n5637144577\n"),
		}})
	}
	// Files whose name says so end with errors in F&O.
	p.emu.Script(d365test.Rule{ExternalIDContains: "bad-rows", Outcome: d365test.Outcome{
		Status:           d365test.StatusProcessedWithErrors,
		Errors:           []d365test.ExecutionError{{RecordId: "5637144576", Field: "CustGroup", ErrorMessage: "Group does not exist"}},
		StagingErrorFile: []byte("line,error\n1,Group does not exist\n"), TargetErrorKeysFile: []byte("RecId\n5637144576\n"),
	}})
	p.emu.Script(d365test.Rule{ExternalIDContains: "pre-error", Outcome: d365test.Outcome{Status: d365test.StatusPreProcessingError}})

	env := map[string]string{"BUCKET": stack.Bucket, "ROUTES": "[" + strings.Join(rs, ",") + "]", "IMPORT_QUEUE_URL": stack.ImportURL}
	getenv := func(k string) string { return env[k] }
	log := handlerLog()
	fnoHTTP := frozenAfterDeadline(p.emu.HTTPClient().Transport)
	fno := func(mod ...func(*d365.Config)) *d365.Client {
		return pipelinetest.FnO(t, p.emu, append([]func(*d365.Config){func(c *d365.Config) {
			c.HTTPClient = fnoHTTP
			c.Retry = d365.RetryPolicy{InitialInterval: 5 * time.Millisecond, MaxInterval: 50 * time.Millisecond}
		}}, mod...)...)
	}

	p.fifo = &fifoRecorder{inner: p.sqs, seen: map[string]bool{}, order: map[string][]string{}, group: map[string]string{}, pos: map[string]int{}}
	rcfg, err := router.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	p.layout = rcfg.Layout
	rt, err := router.New(rcfg, p.s3, p.fifo, log)
	if err != nil {
		t.Fatal(err)
	}
	p.routerFn = &lambdaFn[events.SQSEvent, events.SQSEventResponse]{name: "RouterFunction", timeout: 60 * time.Second,
		handler: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			for i := range ev.Records {
				ev.Records[i].Body = p.withVersionID(ev.Records[i].Body)
			}
			return rt.Handle(ctx, ev)
		}}

	icfg, err := enqueue.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	icfg.Margin = set.EnqueueMargin
	icfg.BlockSize = packageBlock
	p.src = &flakyS3{S3: p.s3, reads: map[string]int{}, failed: map[string]int{}}
	enqFnO := fno()
	p.enq = &crashingEnqueuer{inner: enqFnO, pkgs: enqFnO, calls: map[string]int{}, hit: map[afterAccept]map[string]int{die: {}, answer502: {}}}
	ih, err := enqueue.New(icfg, p.src, p.enq, p.fifo, log)
	if err != nil {
		t.Fatal(err)
	}
	p.enqFn = &lambdaFn[events.SQSEvent, events.SQSEventResponse]{name: "EnqueueFunction", timeout: set.EnqueueTimeout, handler: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		p.countFiles(ev)
		return ih.Handle(ctx, ev)
	}}

	pcfg, err := poller.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	p.clock = &offsetClock{}
	pcfg.Now, pcfg.SweepEvery, pcfg.TargetKeysWait = p.clock.Now, -1, 10*time.Millisecond
	pcfg.BudgetPerMinute, pcfg.StuckAfter = 100000, 10000*time.Hour
	if set.PollerConcurrency > 0 {
		pcfg.Concurrency = set.PollerConcurrency
	}
	budget := poller.NewBudget(pcfg.BudgetPerMinute)
	p.kill = &killTransport{base: tr, kill: set.PollerKill}
	pollS3 := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true; o.HTTPClient = frozenAfterDeadline(p.kill) })
	pl, err := poller.New(pcfg, pollS3, fno(func(c *d365.Config) { c.Limiter = budget }), budget, p.fifo, log)
	if err != nil {
		t.Fatal(err)
	}
	p.pollFn = &lambdaFn[json.RawMessage, poller.Summary]{name: "PollerFunction", timeout: 60 * time.Second, handler: pl.Handle}

	eh, err := dequeue.New(dequeue.Config{Bucket: stack.Bucket, DeadlineMargin: set.ExportMargin, Logger: log}, fno(), p.s3)
	if err != nil {
		t.Fatal(err)
	}
	p.exportFn = &lambdaFn[json.RawMessage, dequeue.Summary]{name: "DequeueFunction", timeout: set.ExportTimeout, handler: eh.Handle}

	p.lossy = &lossyQueue{SQSQueue: &localrun.MotoFIFO{Queue: p.sqs, VisibilityTimeout: stack.VisibilityTimeout}}
	p.arrivals = &localrun.SQSMapping{Queue: p.sqs, QueueURL: stack.ArrivalsURL, QueueARN: stack.ArrivalsARN, BatchSize: 10,
		Region: "us-east-1", Function: p.routerFn}
	p.imports = &localrun.SQSMapping{Queue: p.lossy, QueueURL: stack.ImportURL, QueueARN: stack.ImportARN, BatchSize: set.BatchSize,
		Region: "us-east-1", Function: p.enqFn}
	return p
}

// put drops a file into the bucket; S3 notifies the arrivals queue.
func (p *pipeline) put(key string, body []byte) drop {
	p.t.Helper()
	v, etag := pipelinetest.Put(p.t, p.s3, p.stack.Bucket, key, body)
	head, err := p.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &p.stack.Bucket, Key: &key})
	if err != nil {
		p.t.Fatalf("head %s: %v", key, err)
	}
	d := drop{key: key, versionID: v, etag: etag, body: body, lastModified: aws.ToTime(head.LastModified)}
	p.mu.Lock()
	p.drops = append(p.drops, d)
	p.mu.Unlock()
	return d
}

// withVersionID puts back the versionId that S3 writes into the
// notifications of a versioned bucket and moto leaves out. Without it the
// router names a file by its ETag while the poller's sweep (which lists
// versions) names it by its version, and takes the routed file for one
// whose notification was lost.
func (p *pipeline) withVersionID(body string) string {
	var n map[string]any
	if json.Unmarshal([]byte(body), &n) != nil {
		return body
	}
	recs, _ := n["Records"].([]any)
	changed := false
	for _, r := range recs {
		obj, _ := dig(r, "s3", "object").(map[string]any)
		if obj == nil || obj["versionId"] != nil {
			continue
		}
		raw, _ := obj["key"].(string)
		key, err := url.QueryUnescape(raw)
		etag, _ := obj["eTag"].(string)
		if err != nil {
			continue
		}
		p.mu.Lock()
		for _, d := range p.drops {
			if d.key == key && d.etag == strings.Trim(etag, `"`) && d.versionID != "" {
				obj["versionId"], changed = d.versionID, true
			}
		}
		p.mu.Unlock()
	}
	if !changed {
		return body
	}
	b, err := json.Marshal(n)
	if err != nil {
		return body
	}
	return string(b)
}

func dig(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// shuffleArrivals takes every notification off the arrivals queue and puts
// them back in the order shuffle gives, as S3's unordered delivery may.
func (p *pipeline) shuffleArrivals(shuffle func(n int, swap func(i, j int))) {
	p.t.Helper()
	ctx := context.Background()
	var bodies []string
	for empty := 0; empty < 2; {
		out, err := p.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &p.stack.ArrivalsURL, MaxNumberOfMessages: 10, VisibilityTimeout: 60})
		if err != nil {
			p.t.Fatalf("shuffle arrivals: %v", err)
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		for _, m := range out.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
			if _, err := p.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &p.stack.ArrivalsURL, ReceiptHandle: m.ReceiptHandle}); err != nil {
				p.t.Fatalf("shuffle arrivals: %v", err)
			}
		}
	}
	shuffle(len(bodies), func(i, j int) { bodies[i], bodies[j] = bodies[j], bodies[i] })
	for _, b := range bodies {
		if _, err := p.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &p.stack.ArrivalsURL, MessageBody: aws.String(b)}); err != nil {
			p.t.Fatalf("shuffle arrivals: %v", err)
		}
	}
}

// notifyAgain puts another copy of a file's S3 notification on the
// arrivals queue, as S3's at-least-once delivery may.
func (p *pipeline) notifyAgain(d drop) {
	p.t.Helper()
	body := pipelinetest.S3Event(p.stack.Bucket, d.key, d.versionID, d.etag, int64(len(d.body)))
	if _, err := p.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &p.stack.ArrivalsURL, MessageBody: &body}); err != nil {
		p.t.Fatalf("duplicate notification: %v", err)
	}
}

// queueExport has F&O produce an export for a job.
func (p *pipeline) queueExport(job exportJob, body []byte) string {
	corr := p.emu.QueueExport(job.activity, d365test.Export{Body: body, FileName: job.name + ".csv"})
	p.mu.Lock()
	p.exports[corr] = queuedExport{job: job, body: body}
	p.mu.Unlock()
	return corr
}

// countFiles counts the file records of a batch the enqueue function gets.
func (p *pipeline) countFiles(ev events.SQSEvent) {
	n := 0
	for _, r := range ev.Records {
		if m, err := importmsg.Decode([]byte(r.Body)); err == nil && m.File != nil {
			n++
		}
	}
	p.mu.Lock()
	p.delivered += n
	p.mu.Unlock()
}

// drain hands a queue's visible messages to its function, batch after
// batch, until a receive finds none. It returns the records delivered.
func (p *pipeline) drain(m *localrun.SQSMapping) int {
	p.t.Helper()
	total := 0
	for range 10000 {
		res, err := m.PollOnce(context.Background())
		if err != nil {
			p.t.Fatalf("event source mapping: %v", err)
		}
		if res.Delivered == 0 {
			return total
		}
		total += res.Delivered
	}
	p.t.Fatalf("%s never ran dry", m.QueueURL)
	return total
}

// poll is one scheduled poller run, with the poller's clock 31 minutes
// further on than the last (every record is due again).
func (p *pipeline) poll() poller.Summary {
	p.t.Helper()
	p.clock.advance(31 * time.Minute)
	out, err := p.pollFn.Invoke(context.Background(), []byte(`{"task":"poll"}`))
	if err != nil {
		return poller.Summary{} // killed or timed out: the next scheduled run takes over
	}
	var s poller.Summary
	if err := json.Unmarshal(out, &s); err != nil {
		p.t.Fatalf("poller summary: %v", err)
	}
	p.mu.Lock()
	p.pollRuns = append(p.pollRuns, s)
	p.mu.Unlock()
	return s
}

// exportRun fires every export job's schedule once. A function error (a
// dequeue that failed after retries, a timeout) is what Scheduler would
// see; the next run picks the job up again.
func (p *pipeline) exportRun() []dequeue.Summary {
	var out []dequeue.Summary
	for _, j := range p.jobs {
		in := fmt.Sprintf(`{"job":%q,"activityId":%q}`, j.name, j.activity)
		b, err := p.exportFn.Invoke(context.Background(), []byte(in))
		if err != nil {
			p.mu.Lock()
			p.exportErr = append(p.exportErr, err.Error())
			p.mu.Unlock()
			continue
		}
		var s dequeue.Summary
		if err := json.Unmarshal(b, &s); err != nil {
			p.t.Fatalf("export summary: %v", err)
		}
		out = append(out, s)
	}
	p.mu.Lock()
	p.exportRuns = append(p.exportRuns, out...)
	p.mu.Unlock()
	return out
}

// pendingExports counts exports F&O still holds unacknowledged.
func (p *pipeline) pendingExports() int {
	n := 0
	for _, j := range p.jobs {
		n += p.emu.Pending(j.activity)
	}
	return n
}

// settle runs the pipeline pass after pass until nothing is in flight: the
// arrivals and import queues are empty, the ledger holds no record and F&O
// holds no unacknowledged export. A pass: the router and enqueue mappings
// drain their queues, F&O runs its batch jobs, the poller runs, the export
// schedules fire, and F&O's clock moves 31 minutes (past the dequeue
// visibility timeout, so an unacknowledged export is handed out again).
// Messages a function failed come back after the queues' visibility
// timeout, so a pass that moved nothing waits a little. before, if set,
// runs at the start of each pass; while it says more is to come, the
// pipeline is not settled. It fails the test after maxPasses.
func (p *pipeline) settle(maxPasses int, before func(pass int) (more bool)) int {
	p.t.Helper()
	for pass := 1; pass <= maxPasses; pass++ {
		more := false
		if before != nil {
			more = before(pass)
		}
		moved := p.drain(p.arrivals)
		moved += p.drain(p.imports)
		p.emu.RunToCompletion()
		s := p.poll()
		moved += s.Checked + s.Retired + s.Swept
		for _, e := range p.exportRun() {
			moved += e.Dequeued
		}
		p.emu.Advance(31 * time.Minute)
		if !more && p.settled() {
			return pass
		}
		if moved == 0 {
			time.Sleep(250 * time.Millisecond) // a failed message's visibility timeout is running
		}
	}
	var runs []string
	for _, r := range p.exportRuns[max(len(p.exportRuns)-3, 0):] {
		r.Files = nil
		runs = append(runs, fmt.Sprintf("%+v", r))
	}
	p.t.Fatalf("not settled after %d passes: arrivals %d, imports %d, ledger %v, exports pending %d\nlast export runs:\n%s\nexport errors: %v",
		maxPasses, pipelinetest.Depth(p.t, p.sqs, p.stack.ArrivalsURL), pipelinetest.Depth(p.t, p.sqs, p.stack.ImportURL),
		pipelinetest.Keys(p.t, p.s3, p.stack.Bucket, p.layout.LedgerPrefix()), p.pendingExports(), strings.Join(runs, "\n"), p.exportErr)
	return maxPasses
}

func (p *pipeline) settled() bool {
	return pipelinetest.Depth(p.t, p.sqs, p.stack.ArrivalsURL) == 0 && pipelinetest.Depth(p.t, p.sqs, p.stack.ImportURL) == 0 &&
		len(pipelinetest.Keys(p.t, p.s3, p.stack.Bucket, p.layout.LedgerPrefix())) == 0 && p.pendingExports() == 0 &&
		len(pipelinetest.Keys(p.t, p.s3, p.stack.Bucket, p.layout.PackageLockPrefix())) == 0
}

// fate is where a dropped file ended.
type fate struct {
	where  string // processed, failed, rejected or dlq
	file   string // its key there ("" for dlq)
	doc    string // its result or reason document
	status string // the result's status or the reason's code
	result filing.Result
	reason filing.Reason
}

// books is the accounting of a settled pipeline.
type books struct {
	fates    map[string]fate // dropped key -> where it ended
	dlq      []string        // keys whose FIFO message is in the dead-letter queue
	messages map[string]int  // dropped key -> F&O messages
	died     map[string]int  // dropped key -> enqueue deaths after F&O accepted it
	window   map[string]int  // dropped key -> 502s after F&O stored it (the documented window)
	count    map[string]int  // processed, failed, rejected, dlq
	statuses map[string]int  // "failed/ProcessedWithErrors", "rejected/no-route", ...
	ordered  int             // F&O messages whose order was checked
	imports  map[string]int  // dropped key -> package imports F&O ran (executions)
}

// account checks that every dropped file is accounted for, exactly once,
// with nothing left behind, and that each reached F&O at most once except
// in the documented duplicate window (F&O stored the file and answered
// 5xx: one more message each time). A file whose enqueue died after F&O
// accepted it is in failed/ as EnqueueOutcomeUnknown, never sent again.
// It reports problems with t.Error and returns the books.
func (p *pipeline) account() *books {
	t := p.t
	t.Helper()
	ctx := context.Background()
	bucket := p.stack.Bucket
	all := pipelinetest.Keys(t, p.s3, bucket, "")
	b := &books{fates: map[string]fate{}, messages: map[string]int{}, died: map[string]int{}, window: map[string]int{},
		count: map[string]int{}, statuses: map[string]int{}, imports: map[string]int{}}
	dropped := map[string]drop{}
	byExternalID := map[string]string{}
	for _, d := range p.drops {
		dropped[d.key] = d
		byExternalID[enqueue.ExternalID(d.key)] = d.key
	}
	homes := map[string][]fate{}
	for _, k := range all {
		switch {
		case strings.HasPrefix(k, p.layout.Failed+layout.ExportsFolder+"/"):
			// A package export's result document: no imported file's.
		case strings.HasSuffix(k, layout.ResultSuffix) && (strings.HasPrefix(k, p.layout.Processed) || strings.HasPrefix(k, p.layout.Failed)):
			var r filing.Result
			if _, err := s3io.GetJSON(ctx, p.s3, bucket, k, &r); err != nil {
				t.Errorf("%s: %v", k, err)
				continue
			}
			where := "processed"
			if strings.HasPrefix(k, p.layout.Failed) {
				where = "failed"
			}
			homes[r.SourceKey] = append(homes[r.SourceKey], fate{where: where, file: r.File, doc: k, status: r.Status, result: r})
		case strings.HasSuffix(k, layout.ReasonSuffix) && strings.HasPrefix(k, p.layout.Rejected):
			var r filing.Reason
			if _, err := s3io.GetJSON(ctx, p.s3, bucket, k, &r); err != nil {
				t.Errorf("%s: %v", k, err)
				continue
			}
			if r.Reason == "malformed-event" {
				t.Errorf("a notification was kept as malformed: %s (%s)", k, r.Detail)
				continue
			}
			homes[r.OriginalKey] = append(homes[r.OriginalKey], fate{where: "rejected", file: r.RejectedKey, doc: k, status: r.Reason, reason: r})
		}
	}
	for _, m := range pipelinetest.Receive(t, p.sqs, p.stack.ImportDLQURL) {
		var fm importmsg.File
		if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &fm); err != nil {
			t.Errorf("DLQ message is not a file message: %s", aws.ToString(m.Body))
			continue
		}
		homes[fm.Key] = append(homes[fm.Key], fate{where: "dlq"})
	}
	if n := pipelinetest.Depth(t, p.sqs, p.stack.ArrivalsDLQURL); n != 0 {
		t.Errorf("%d notifications in the arrivals dead-letter queue", n)
	}
	for key, hs := range homes {
		if _, ok := dropped[key]; !ok {
			t.Errorf("%v for %q, which was never dropped", hs, key)
		}
	}
	inbound := map[string]bool{}
	for _, k := range pipelinetest.Keys(t, p.s3, bucket, p.layout.Inbound) {
		inbound[k] = true
	}
	dlqIDs := map[string]bool{}
	for _, d := range p.drops {
		hs := homes[d.key]
		if len(hs) != 1 {
			t.Errorf("%s ended in %d places, want exactly one: %+v", d.key, len(hs), hs)
			continue
		}
		f := hs[0]
		b.fates[d.key] = f
		b.count[f.where]++
		if f.where == "dlq" {
			b.dlq = append(b.dlq, d.key)
			dlqIDs[importmsg.Identity(bucket, d.key, d.versionID, d.etag)] = true
			if !inbound[d.key] {
				t.Errorf("%s is dead-lettered but no longer in inbound/", d.key)
			}
			delete(inbound, d.key)
			continue
		}
		b.statuses[f.where+"/"+f.status]++
		if !explained(f) {
			t.Errorf("%s: %s does not say what happened: %+v", d.key, f.doc, f)
		}
		if f.file+docSuffix(f.where) != f.doc {
			t.Errorf("%s: document %s is not beside the file %s", d.key, f.doc, f.file)
		}
		if body, ok := pipelinetest.Get(t, p.s3, bucket, f.file); !ok || string(body) != string(d.body) {
			t.Errorf("%s: %s holds %q (found %v), want the file's %d bytes", d.key, f.file, body, ok, len(d.body))
		}
	}
	sort.Strings(b.dlq)
	for k := range inbound {
		t.Errorf("left in inbound/: %s", k)
	}
	// State: nothing but the released markers of dead-lettered files (which
	// keep the sweep from releasing them again); no package import lock.
	for _, prefix := range []string{p.layout.LedgerPrefix(), p.layout.MarkerPrefix(), p.layout.ReleasedRoot(), p.layout.PackageLockPrefix()} {
		for _, k := range pipelinetest.Keys(t, p.s3, bucket, prefix) {
			id := strings.TrimSuffix(k[strings.LastIndex(k, "/")+1:], ".json")
			if prefix != p.layout.ReleasedRoot() || !dlqIDs[id] {
				t.Errorf("state left behind: %s", k)
			}
		}
	}
	// At most once into F&O, but for the documented window.
	for id, n := range p.enq.times(die) {
		b.died[byExternalID[id]] += n
	}
	for id, n := range p.enq.times(answer502) {
		b.window[byExternalID[id]] += n
	}
	for _, m := range p.emu.Messages() {
		key, ok := byExternalID[m.ExternalID]
		if !ok {
			t.Errorf("F&O holds a message for %q, which was never dropped", m.ExternalID)
			continue
		}
		b.messages[key]++
	}
	for key, n := range b.messages {
		if allowed := 1 + b.window[key]; n > allowed {
			t.Errorf("%s reached F&O %d times (%d times in the documented window): a duplicate outside it", key, n, b.window[key])
		}
		if n < b.window[key]+b.died[key] {
			t.Errorf("%s: F&O accepted it %d times but holds %d messages", key, b.window[key]+b.died[key], n)
		}
	}
	for key := range b.died {
		if f := b.fates[key]; f.where != "failed" || f.status != enqueue.OutcomeUnknown {
			t.Errorf("%s: its enqueue died after F&O accepted it, and it ended in %s/ %s; want failed/ %s", key, f.where, f.status, enqueue.OutcomeUnknown)
		}
	}
	for key, f := range b.fates {
		if isPackage(f) {
			continue // checkPackages
		}
		if f.where == "processed" || (f.where == "failed" && f.status != enqueue.OutcomeUnknown) {
			if b.messages[key] == 0 {
				t.Errorf("%s is in %s/ but F&O never had it", key, f.where)
			}
			if f.result.MessageID == "" {
				t.Errorf("%s: result without a message ID", key)
			}
		}
		if f.where == "rejected" && f.status != "fno-rejected" && b.messages[key] != 0 {
			t.Errorf("%s was rejected (%s) but reached F&O", key, f.status)
		}
	}
	p.checkOrder(b)
	p.checkDropOrder()
	p.checkExports()
	p.checkPackages(b)
	return b
}

// explained: a result or reason document that tells a person what
// happened: a status or reason code, and for a failure the details (F&O's
// error rows or the notes; the reason's text).
func explained(f fate) bool {
	switch {
	case f.status == "":
		return false
	case f.where == "rejected":
		return f.reason.Detail != ""
	case f.where == "failed" && (f.status == enqueue.OutcomeUnknown || f.status == enqueue.ImportOutcomeUnknown):
		return len(f.result.Notes) > 0 && (f.status == enqueue.OutcomeUnknown || f.result.ExecutionID != "")
	case f.where == "failed" && isPackage(f) && f.status == "PartiallySucceeded":
		return len(f.result.Errors) > 0 && len(f.result.EntityErrorFiles) > 0
	case f.where == "failed" && f.status == "ProcessedWithErrors":
		return len(f.result.Errors) > 0 && f.result.StagingErrorFile != "" && f.result.TargetErrorKeysFile != ""
	case f.where == "failed":
		return f.result.ExecutionStatus != "" || len(f.result.Notes) > 0
	case isPackage(f):
		return f.result.ExecutionID != ""
	}
	return f.result.MessageID != ""
}

func docSuffix(where string) string {
	if where == "rejected" {
		return layout.ReasonSuffix
	}
	return layout.ResultSuffix
}

// checkOrder checks per-entity order, defined on what can be observed: for each
// entity, the F&O messages in the order F&O received them (Messages()),
// with a duplicate of the documented window folded into the message
// before it, name files in
// the order their FIFO messages were accepted into the entity's message
// group (fifoRecorder). Files that went to the dead-letter queue are
// skipped by design (order is broken there on purpose), so only the relative
// order is checked.
func (p *pipeline) checkOrder(b *books) {
	t := p.t
	t.Helper()
	defer func() { b.ordered = len(p.emu.Messages()) }()
	byExternalID := map[string]string{}
	for _, d := range p.drops {
		byExternalID[enqueue.ExternalID(d.key)] = d.key
	}
	entityGroup := map[string]string{}
	for _, r := range p.routes {
		entityGroup[r.entity] = routes.Route{Entity: r.entity}.GroupID()
	}
	last := map[string]string{} // entity -> last key
	lastPos := map[string]int{}
	for _, m := range p.emu.Messages() {
		key := byExternalID[m.ExternalID]
		if key == "" {
			continue
		}
		g, pos, ok := p.fifo.position(key)
		if !ok {
			t.Errorf("%s reached F&O without a FIFO message", key)
			continue
		}
		if g != entityGroup[m.Entity] {
			t.Errorf("%s reached F&O as entity %q from FIFO group %q", key, m.Entity, g)
		}
		if prev, seen := last[m.Entity]; seen {
			switch {
			case key == prev && b.window[key] > 0:
				continue // the documented duplicate, right behind the original
			case pos <= lastPos[m.Entity]:
				t.Errorf("order broken for %s: %s (FIFO position %d) reached F&O after %s (position %d)",
					m.Entity, key, pos, prev, lastPos[m.Entity])
			}
		}
		last[m.Entity], lastPos[m.Entity] = key, pos
	}
}

// checkDropOrder: each group's files went into the FIFO queue in drop
// order, by their route's rule (here the default: the second S3 stored a
// file, then its key), whatever order their notifications came in.
func (p *pipeline) checkDropOrder() {
	t := p.t
	t.Helper()
	byKey := map[string]drop{}
	for _, d := range p.drops {
		byKey[d.key] = d
	}
	p.fifo.mu.Lock()
	defer p.fifo.mu.Unlock()
	for g, keys := range p.fifo.order {
		for i := 1; i < len(keys); i++ {
			a, b := byKey[keys[i-1]], byKey[keys[i]]
			at, bt := a.lastModified.Truncate(time.Second), b.lastModified.Truncate(time.Second)
			if bt.Before(at) || bt.Equal(at) && b.key < a.key {
				t.Errorf("group %s: %s (stored %s) went into the queue after %s (stored %s): not drop order",
					g, b.key, b.lastModified.Format(time.RFC3339), a.key, a.lastModified.Format(time.RFC3339))
			}
		}
	}
}

// checkExports: every export landed once, at a key naming its correlation
// ID, and was acknowledged once.
func (p *pipeline) checkExports() {
	t := p.t
	t.Helper()
	objs := pipelinetest.Keys(t, p.s3, p.stack.Bucket, "outbound/")
	acks := map[string]int{}
	for _, j := range p.jobs {
		for _, c := range p.emu.Acked(j.activity) {
			acks[c]++
		}
		if n := p.emu.Pending(j.activity); n != 0 {
			t.Errorf("job %s: %d exports not acknowledged", j.name, n)
		}
	}
	for corr, x := range p.exports {
		var at []string
		for _, k := range objs {
			if strings.HasPrefix(k, "outbound/"+x.job.name+"/") && strings.Contains(k, corr) {
				at = append(at, k)
			}
		}
		if len(at) != 1 {
			t.Errorf("export %s landed at %v, want exactly one object", corr, at)
		} else if body, _ := pipelinetest.Get(t, p.s3, p.stack.Bucket, at[0]); string(body) != string(x.body) {
			t.Errorf("export %s: %s holds %q, want %q", corr, at[0], body, x.body)
		}
		if acks[corr] != 1 {
			t.Errorf("export %s acknowledged %d times, want 1", corr, acks[corr])
		}
	}
	if len(objs) != len(p.exports) {
		t.Errorf("outbound/ holds %d objects for %d exports: %v", len(objs), len(p.exports), objs)
	}
}

// aimed is a FaultFunc that answers the first times requests to endpoint
// whose external ID (x-ms-dyn-externalidentifier, sent with enqueue)
// contains match with f.
func aimed(endpoint, match string, times int, f d365test.Fault) d365test.FaultFunc {
	var mu sync.Mutex
	return func(ep string, r *http.Request) *d365test.Fault {
		if ep != endpoint || !strings.Contains(r.Header.Get("x-ms-dyn-externalidentifier"), match) {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if times == 0 {
			return nil
		}
		times--
		return &f
	}
}

// subtest is a named case of a table.
type subtest struct {
	name string
	run  func(t *testing.T)
}

// concurrency is how many pipelines a table runs at once. They spend most
// of their time waiting (visibility timeouts, Retry-After, deadlines), so
// more than go test's -parallel default (GOMAXPROCS) pays off.
const concurrency = 8

// runAll runs the cases as subtests, concurrency at a time.
func runAll(t *testing.T, cases []subtest) {
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			t.Run(c.name, c.run)
		}()
	}
	wg.Wait()
}

// faultCounter counts the faults a SetFaultFunc handed out.
type faultCounter struct {
	mu sync.Mutex
	n  map[string]int // "endpoint status/reset/delay" -> count
}

func (c *faultCounter) add(endpoint string, f *d365test.Fault) *d365test.Fault {
	if f == nil {
		return nil
	}
	kind := fmt.Sprint(f.Status)
	switch {
	case f.ResetAfterBytes > 0:
		kind = "reset mid-body"
	case f.DropAck:
		kind = "ack lost"
	case f.Status == 0 && f.Delay >= time.Minute:
		kind = "slower than the deadline"
	case f.Status == 0 && f.Delay > 0:
		kind = "slow"
	}
	c.mu.Lock()
	c.n[endpoint+" "+kind]++
	c.mu.Unlock()
	return f
}

func (c *faultCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}
