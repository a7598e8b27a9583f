package bench_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
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
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/poller"
	"github.com/fno-bridge/s3-fno/internal/imports/router"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// capturingSender answers SendMessageBatch in-process and keeps the
// bodies sent, for the next stage to receive.
type capturingSender struct {
	mu     sync.Mutex
	calls  int
	bodies []string
}

func (c *capturingSender) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	out := &sqs.SendMessageBatchOutput{}
	for i, e := range in.Entries {
		c.bodies = append(c.bodies, aws.ToString(e.MessageBody))
		out.Successful = append(out.Successful, sqstypes.SendMessageBatchResultEntry{Id: e.Id,
			MessageId: aws.String(fmt.Sprintf("m-%d-%d", c.calls, i)), MD5OfMessageBody: aws.String("")})
	}
	return out, nil
}

// take is the messages sent since the last take, as an SQS event, and the
// SendMessageBatch calls made for them.
func (c *capturingSender) take() (events.SQSEvent, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ev events.SQSEvent
	for i, b := range c.bodies {
		ev.Records = append(ev.Records, pipelinetest.Message(fmt.Sprintf("fifo-%d-%d", c.calls, i), b))
	}
	calls := c.calls
	c.bodies, c.calls = nil, 0
	return ev, calls
}

// fnoCounter counts the requests a d365 client sends, by F&O operation
// (the last segment of the path: enqueue, GetMessageStatus, …; "token"
// for Entra ID, "blob" for the error files).
type fnoCounter struct {
	next http.RoundTripper
	mu   sync.Mutex
	ops  map[string]int
}

func (f *fnoCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	op := r.URL.Path
	switch {
	case strings.Contains(op, "/oauth2/") || strings.HasSuffix(op, "/token"):
		op = "token"
	case strings.Contains(op, "/api/connector/"):
		op = strings.Split(strings.TrimPrefix(op[strings.Index(op, "/api/connector/"):], "/api/connector/"), "/")[0]
	case strings.Contains(op, "Microsoft.Dynamics.DataEntities."):
		op = op[strings.LastIndex(op, ".")+1:]
	case strings.Contains(op, "/data/"):
		op = "odata " + op[strings.LastIndex(op, "/")+1:]
	default:
		op = "blob"
	}
	f.mu.Lock()
	f.ops[op]++
	f.mu.Unlock()
	return f.next.RoundTrip(r)
}

func (f *fnoCounter) take() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.ops
	f.ops = map[string]int{}
	return out
}

// s3Counter counts the requests an S3 client sends, by operation, and
// tells the file's own requests (those whose key names the file or its
// identity: the file itself, its markers, ledger record, result document)
// from those a release pass or a poller run makes for every file at once
// (listings, the lease, the sweep's state, status documents), counted as
// "run".
type s3Counter struct {
	next s3.HTTPClient
	mine []string // a key containing one of these is the file's
	mu   sync.Mutex
	ops  map[string]int
}

func (c *s3Counter) wrap(cl *s3.Client) *s3.Client {
	return s3.New(cl.Options(), func(o *s3.Options) { c.next, o.HTTPClient = o.HTTPClient, c })
}

func (c *s3Counter) Do(r *http.Request) (*http.Response, error) {
	op, own := pipelinetest.S3Request(r, c.mine)
	class := "run"
	if own {
		class = "aws"
	}
	c.mu.Lock()
	c.ops[class+":"+op]++
	c.mu.Unlock()
	if os.Getenv("BENCH_TRACE") != "" { // every request, to see what a count is made of
		fmt.Fprintf(os.Stderr, "%s %s %s %s?%s\n", class, op, r.Method, r.URL.Path, r.URL.RawQuery)
	}
	return c.next.Do(r)
}

func (c *s3Counter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.ops
	c.ops = map[string]int{}
	return out
}

// lifeStages are the stages of an imported file's life, in order, as
// BenchmarkImportRequests reports them.
var lifeStages = []string{"route", "release", "enqueue", "check-1", "check-2", "finish"}

// BenchmarkImportRequests follows one imported file through its whole life
// and counts every AWS and F&O request made for it, by stage and
// operation: the router handling its S3 notification (one release request
// for the route); the release pass (enqueue function) that sends it to the
// FIFO queue; the enqueue function sending it to F&O; two poller runs that
// find it still in F&O's queue; and the poller run that finds it
// processed, finalizes it and files it under processed/. The real
// handlers, SDK clients and d365 client run against the S3 fake's server
// face (requests counted by operation), an in-process SQS (SendMessageBatch
// counted, bodies handed to the next stage) and the emulator (requests
// counted by operation at the client). The requests a release pass or a
// poller run makes for every file at once (listings, the poller's lease,
// the sweep's state, status documents) are counted apart ("run"); the
// poller has its default sweep interval. Each metric is "<stage>:<aws|run|fno>:<operation>"
// requests; run it with -benchtime 1x (BENCH_TRACE=1 prints every S3
// request).
func BenchmarkImportRequests(b *testing.B) {
	for i := 0; i < b.N; i++ {
		counts := fileLife(b)
		if i < b.N-1 {
			continue
		}
		var names []string
		for k := range counts {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			b.ReportMetric(float64(counts[k]), k)
		}
	}
}

// fileLife runs one file's life; the counts are by "stage:aws:op" and
// "stage:fno:op".
func fileLife(b *testing.B) map[string]int {
	stand := newStand(b)
	sc := &s3Counter{ops: map[string]int{}}
	s3c := sc.wrap(stand.Client(b))
	emu := d365test.NewT(b, d365test.Options{})
	emu.AddActivity(actImport, d365test.Activity{Kind: d365test.File, InOrder: true})
	q := &capturingSender{}
	fc := &fnoCounter{next: emu.HTTPClient().Transport, ops: map[string]int{}}
	fno := pipelinetest.FnO(b, emu, func(c *d365.Config) { c.HTTPClient = &http.Client{Transport: fc} })
	routesDoc := strings.Replace(importRoutes, `"company":"USMF"`, `"company":"USMF","settle":"0s"`, 1)
	env := map[string]string{"BUCKET": benchBucket, "ROUTES": routesDoc, "IMPORT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-imports.fifo"}
	getenv := func(k string) string { return env[k] }
	log := quiet()

	rcfg, err := router.ConfigFromEnv(getenv)
	if err != nil {
		b.Fatal(err)
	}
	rt, err := router.New(rcfg, s3c, q, log)
	if err != nil {
		b.Fatal(err)
	}
	icfg, err := enqueue.ConfigFromEnv(getenv)
	if err != nil {
		b.Fatal(err)
	}
	enq, err := enqueue.New(icfg, s3c, fno, q, log)
	if err != nil {
		b.Fatal(err)
	}
	pcfg, err := poller.ConfigFromEnv(getenv)
	if err != nil {
		b.Fatal(err)
	}
	clk := pipelinetest.NewClock(time.Now())
	pcfg.Now, pcfg.TargetKeysWait = clk.Now, 10*time.Millisecond
	budget := poller.NewBudget(pcfg.BudgetPerMinute)
	pl, err := poller.New(pcfg, s3c, fno, budget, q, log)
	if err != nil {
		b.Fatal(err)
	}
	// The token is fetched once per execution environment, not per file:
	// fetch it before counting.
	if _, err := fno.Dequeue(context.Background(), actImport); err != nil {
		b.Logf("warm-up dequeue: %v", err) // a file activity may refuse it; the token is what matters
	}

	counts := map[string]int{}
	sc.take()
	fc.take()
	record := func(stage string, sends int) {
		for op, n := range sc.take() {
			counts[stage+":"+op] += n
		}
		if sends > 0 {
			counts[stage+":aws:SendMessageBatch"] += sends
		}
		for op, n := range fc.take() {
			counts[stage+":fno:"+op] += n
		}
	}
	ctx := context.Background()
	key := "inbound/" + importRoute + "/life-0001.csv"
	o := stand.Put(benchBucket, key, []byte("CURRENCYCODE,NAME\nEUR,Euro\n"), "", "v-life-0001")
	sc.mine = []string{"life-0001", importmsg.Identity(benchBucket, key, o.VersionID(), o.ETag())}

	handle := func(stage string, h func(context.Context, events.SQSEvent) (events.SQSEventResponse, error), ev events.SQSEvent) {
		if len(ev.Records) != 1 {
			b.Fatalf("%s: %d messages to handle, want 1", stage, len(ev.Records))
		}
		resp, err := h(ctx, ev)
		if err != nil || len(resp.BatchItemFailures) != 0 {
			b.Fatalf("%s: %v %+v", stage, err, resp)
		}
	}
	// route: the notification → one release request.
	handle("route", rt.Handle, events.SQSEvent{Records: []events.SQSMessage{
		pipelinetest.Message("arr-1", pipelinetest.S3Event(benchBucket, key, o.VersionID(), o.ETag(), o.Size()))}})
	ev, sends := q.take()
	record("route", sends)
	// release: the pass sends the file message.
	handle("release", enq.Handle, ev)
	ev, sends = q.take()
	record("release", sends)
	// enqueue: the file to F&O.
	handle("enqueue", enq.Handle, ev)
	_, sends = q.take()
	record("enqueue", sends)
	if n := len(emu.Messages()); n != 1 {
		b.Fatalf("F&O holds %d messages, want 1", n)
	}
	poll := func(stage string, at time.Duration) poller.Summary {
		clk.Set(time.Now().Add(at))
		s, err := pl.Handle(ctx, json.RawMessage(`{"task":"poll"}`))
		if err != nil {
			b.Fatalf("%s: %v", stage, err)
		}
		_, sends := q.take()
		record(stage, sends)
		return s
	}
	// Two runs find it still queued in F&O, then F&O processes it.
	for i, at := range []time.Duration{2 * time.Minute, 4 * time.Minute} {
		stage := fmt.Sprintf("check-%d", i+1)
		if s := poll(stage, at); s.Checked != 1 || s.Finalized != 0 {
			b.Fatalf("%s: %+v", stage, s)
		}
	}
	emu.RunToCompletion()
	if s := poll("finish", 10*time.Minute); s.Checked != 1 || s.Finalized != 1 {
		b.Fatalf("finish: %+v", s)
	}
	processed := 0
	for _, k := range stand.Keys() {
		if strings.HasPrefix(k, benchBucket+"/processed/") && strings.HasSuffix(k, "life-0001.csv") {
			processed++
		}
		if strings.HasPrefix(k, benchBucket+"/inbound/") || strings.HasPrefix(k, benchBucket+"/_state/ledger/") {
			b.Fatalf("left behind: %s", k)
		}
	}
	if processed != 1 {
		b.Fatalf("the file is not in processed/: %v", stand.Keys())
	}
	return counts
}
