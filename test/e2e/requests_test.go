package e2e_test

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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/poller"
	"github.com/fno-bridge/s3-fno/internal/imports/router"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// need is one request the pipeline is designed to make at a stage of a
// file's life, and why it cannot go.
type need struct {
	stage string // route, release, enqueue, check-1, check-2, finish
	// what is "file <op>" for the file's own S3 and SQS requests (those
	// naming the file or its identity, and the messages that carry it),
	// "run <op>" for what a pass or poller run does for every file at
	// once, "fno <op>" for F&O.
	what string
	n    int
	why  string
}

// lifeNeeds is every request one imported file costs, from its S3
// notification to processed/, with the poller's default sweep interval and
// F&O taking the file after two status checks. A request not listed here,
// or listed once too few times, fails TestRequestsOverAFilesLife: it must
// either do something for the file (then it goes in this table, with its
// reason) or go.
var lifeNeeds = []need{
	{"route", "file SendMessageBatch", 1, "the release request for the route, in its FIFO group: the router never sends files itself (drop order)"},

	{"release", "run GetObject", 1, "the route's pause document: a paused route releases nothing"},
	{"release", "run ListObjectVersions", 1, "the route's folder, every version: the drop order is taken from the bucket"},
	{"release", "run ListObjectsV2", 1, "the route's released markers: which files are sent already"},
	{"release", "file PutObject", 1, "the file's released marker, so later passes do not send it again"},
	{"release", "file SendMessageBatch", 1, "the file's message, in the route's group"},

	{"enqueue", "file GetObject", 1, "the file's exact version, streamed to F&O with its checksum checked; it also gives the size, " +
		"content type and metadata the ledger keeps for the filing"},
	{"enqueue", "file PutObject", 3, "the intent marker, sent with the file's GET (If-None-Match: its failure is how a redelivery learns of an " +
		"earlier attempt, so no marker is read first), then the marker with F&O's message ID (a redelivery skips the " +
		"file), and only after it the ledger record the poller lists by next-check time"},
	{"enqueue", "fno enqueue", 1, "the file to F&O, once"},

	{"check-1", "fno GetMessageStatus", 1, "is F&O done with it"},
	{"check-1", "file GetObject", 1, "the due ledger record the listing named (message ID, enqueue time for the back-off); the marker is " +
		"not read while the status is not final"},
	{"check-1", "file PutObject", 1, "the record at its next check time (the key holds the time, so the listing stops at now)"},
	{"check-1", "file DeleteObject", 1, "the record at its old time, which would be due again"},
	{"check-1", "run GetObject", 2, "the sweep's last time, the status board"},
	{"check-1", "run PutObject", 3, "the poller lease taken (If-None-Match, unread: two runs never overlap), the sweep's time (it " +
		"swept), the status board with the file's status"},
	{"check-1", "run DeleteObject", 1, "the lease released"},
	{"check-1", "run ListObjectVersions", 1, "the sweep's listing of inbound/ (lost notifications)"},
	{"check-1", "run ListObjectsV2", 2, "the ledger's due records; the package import locks"},
	{"check-1", "run ReceiveMessage", 1, "the import dead-letter queue, told of once per message"},

	{"check-2", "fno GetMessageStatus", 1, "as check-1"},
	{"check-2", "file GetObject", 1, "as check-1"},
	{"check-2", "file PutObject", 1, "as check-1"},
	{"check-2", "file DeleteObject", 1, "as check-1"},
	{"check-2", "run GetObject", 2, "as check-1"},
	{"check-2", "run PutObject", 2, "as check-1, but no sweep within the sweep interval, so no sweep time written"},
	{"check-2", "run DeleteObject", 1, "as check-1"},
	{"check-2", "run ListObjectsV2", 2, "as check-1"},
	{"check-2", "run ReceiveMessage", 1, "as check-1"},

	{"finish", "fno GetMessageStatus", 1, "F&O is done: a final status"},
	{"finish", "fno GetExecutionIdByMessageId", 1, "the execution behind the message"},
	{"finish", "fno GetExecutionSummaryStatus", 1, "its status, for the result document"},
	{"finish", "fno GetExecutionErrors", 1, "its error rows, for the result document"},
	{"finish", "file GetObject", 2, "the ledger record; the marker, read only on a final status: a record without one is a leftover " +
		"of a file filed already (a crash between the two deletes below) and must not be filed twice"},
	{"finish", "file HeadObject", 1, "the destination key: a copy of this file placed by an interrupted run is reused, another " +
		"file's is never overwritten (the source's size and metadata come from the ledger record, not a second HeadObject)"},
	{"finish", "file CopyObject", 1, "the exact version to processed/"},
	{"finish", "file PutObject", 1, "the result document beside it"},
	{"finish", "file DeleteObject", 4, "the source version (only after the copy and the document), its released marker, its " +
		"idempotency marker, its ledger record (last, so a crash before leaves a record that finds no marker)"},
	{"finish", "run GetObject", 2, "as check-1"},
	{"finish", "run PutObject", 2, "the lease, the sweep's time"},
	{"finish", "run DeleteObject", 2, "the lease released; the status board, empty now"},
	{"finish", "run ListObjectVersions", 1, "the sweep's listing of inbound/"},
	{"finish", "run ListObjectsV2", 2, "as check-1"},
	{"finish", "run ReceiveMessage", 1, "as check-1"},
}

// reqCounter counts the requests the functions' AWS clients send (an SDK
// HTTP client) and their F&O client sends (an http.RoundTripper), by
// "file|run|fno <operation>".
type reqCounter struct {
	s3next interface {
		Do(*http.Request) (*http.Response, error)
	}
	sqsnext interface {
		Do(*http.Request) (*http.Response, error)
	}
	fnonext http.RoundTripper
	mine    []string // an S3 key containing one of these is the file's
	mu      sync.Mutex
	ops     map[string]int
}

func (c *reqCounter) add(what string) {
	c.mu.Lock()
	c.ops[what]++
	c.mu.Unlock()
}

// take is what was counted since the last take.
func (c *reqCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.ops
	c.ops = map[string]int{}
	return out
}

// s3Op names an S3 request and says whose it is.
func (c *reqCounter) s3Op(r *http.Request) string {
	op, own := pipelinetest.S3Request(r, c.mine)
	if own {
		return "file " + op
	}
	return "run " + op
}

type s3Counting struct{ c *reqCounter }

func (s s3Counting) Do(r *http.Request) (*http.Response, error) {
	s.c.add(s.c.s3Op(r))
	return s.c.s3next.Do(r)
}

// sqsCounting counts SQS requests: a send carries the file (or its route's
// release request); anything else is the run's.
type sqsCounting struct{ c *reqCounter }

func (s sqsCounting) Do(r *http.Request) (*http.Response, error) {
	op := r.Header.Get("X-Amz-Target")
	op = op[strings.LastIndex(op, ".")+1:]
	if strings.HasPrefix(op, "SendMessage") {
		s.c.add("file " + op)
	} else {
		s.c.add("run " + op)
	}
	return s.c.sqsnext.Do(r)
}

type fnoCounting struct{ c *reqCounter }

// RoundTrip counts an F&O request by operation: the connector endpoint, the
// OData action's name, "token" or "blob".
func (f fnoCounting) RoundTrip(r *http.Request) (*http.Response, error) {
	p := r.URL.Path
	op := "blob"
	switch {
	case strings.Contains(p, "/oauth2/") || strings.HasSuffix(p, "/token"):
		op = "token"
	case strings.Contains(p, "/api/connector/"):
		op = strings.Split(p[strings.Index(p, "/api/connector/")+len("/api/connector/"):], "/")[0]
	case strings.Contains(p, "Microsoft.Dynamics.DataEntities."):
		op = p[strings.LastIndex(p, ".")+1:]
	}
	f.c.add("fno " + op)
	return f.c.fnonext.RoundTrip(r)
}

// TestRequestsOverAFilesLife follows one file through the real pipeline
// (moto's S3 notification, the arrivals queue, the router, the FIFO import
// queue, the enqueue function's release pass and send, the emulator, three
// poller runs) and counts, at the functions' clients, every AWS and F&O
// request of each stage: they must be exactly lifeNeeds. The F&O tokens
// (one per execution environment and hour, not per file) are fetched
// before counting.
func TestRequestsOverAFilesLife(t *testing.T) {
	ctx := context.Background()
	w := pipelinetest.NewImports(t, pipelinetest.FIFO{MaxReceiveCount: 3})
	arrivals, arrivalsARN := pipelinetest.NewStandard(t, w.SQS, 30)
	notifyArrivals(t, w, arrivalsARN)
	emu := pipelinetest.Emulator(t, d365test.Options{}, true)
	cnt := &reqCounter{ops: map[string]int{}, fnonext: emu.HTTPClient().Transport}
	s3c := s3.New(w.S3.Options(), func(o *s3.Options) { cnt.s3next, o.HTTPClient = o.HTTPClient, s3Counting{cnt} })
	sqsc := sqs.New(w.SQS.Options(), func(o *sqs.Options) { cnt.sqsnext, o.HTTPClient = o.HTTPClient, sqsCounting{cnt} })
	fnoClient := func(mod ...func(*d365.Config)) *d365.Client {
		return pipelinetest.FnO(t, emu, append(mod, func(c *d365.Config) { c.HTTPClient = &http.Client{Transport: fnoCounting{cnt}} })...)
	}
	log := pipelinetest.Quiet()

	env := w.Env(pipelinetest.Routes)
	getenv := func(k string) string { return env[k] }
	rcfg, _ := router.ConfigFromEnv(getenv)
	rt, err := router.New(rcfg, s3c, sqsc, log)
	if err != nil {
		t.Fatal(err)
	}
	icfg, _ := enqueue.ConfigFromEnv(getenv)
	enqFnO := fnoClient()
	enq, err := enqueue.New(icfg, s3c, enqFnO, sqsc, log)
	if err != nil {
		t.Fatal(err)
	}
	pcfg, _ := poller.ConfigFromEnv(getenv)
	clk := pipelinetest.NewClock(time.Now())
	pcfg.Now, pcfg.DLQURL, pcfg.DLQ = clk.Now, w.DLQ, sqsc
	budget := poller.NewBudget(pcfg.BudgetPerMinute)
	pollFnO := fnoClient(func(c *d365.Config) { c.Limiter = budget })
	pl, err := poller.New(pcfg, s3c, pollFnO, budget, sqsc, log)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*d365.Client{enqFnO, pollFnO} { // each execution environment's token
		c.GetMessageStatus(ctx, "00000000-0000-4000-8000-000000000000")
	}
	routerESM := &pipelinetest.ESM{SQS: w.SQS, QueueURL: arrivals}
	routerESM.Drain(t, ctx, rt.Handle) // moto's s3:TestEvent
	cnt.take()

	key := "inbound/currencies/life-0001.csv"
	v, etag := pipelinetest.Put(t, w.S3, w.Bucket, key, []byte("CURRENCYCODE,NAME\nEUR,Euro\n"))
	cnt.mine = []string{"life-0001", importmsg.Identity(w.Bucket, key, v, etag)}
	got := map[string]map[string]int{}
	routerESM.Drain(t, ctx, rt.Handle)
	got["route"] = cnt.take()
	enqueueESM := &pipelinetest.ESM{SQS: w.SQS, QueueURL: w.Queue}
	for _, stage := range []string{"release", "enqueue"} {
		if !enqueueESM.Once(t, ctx, enq.Handle, 10) {
			t.Fatalf("%s: no message on the import queue", stage)
		}
		got[stage] = cnt.take()
	}
	if enqueueESM.Once(t, ctx, enq.Handle, 10) || len(emu.Messages()) != 1 {
		t.Fatalf("more on the import queue, or F&O holds %d messages, not 1", len(emu.Messages()))
	}
	poll := func(stage string, at time.Duration, finalized int) {
		clk.Set(time.Now().Add(at))
		s, err := pl.Handle(ctx, json.RawMessage(`{"task":"poll"}`))
		if err != nil || s.Checked != 1 || s.Finalized != finalized || s.Errors != 0 {
			t.Fatalf("%s: %+v %v", stage, s, err)
		}
		got[stage] = cnt.take()
	}
	poll("check-1", 2*time.Minute, 0)
	poll("check-2", 4*time.Minute, 0)
	emu.RunToCompletion()
	poll("finish", 10*time.Minute, 1)
	if keys := pipelinetest.Keys(t, w.S3, w.Bucket, "processed/"); len(keys) != 2 {
		t.Fatalf("processed/ holds %v, want the file and its result", keys)
	}
	compareNeeds(t, got)
}

// compareNeeds fails the test for every count that differs from lifeNeeds.
func compareNeeds(t *testing.T, got map[string]map[string]int) {
	t.Helper()
	want := map[string]map[string]int{}
	why := map[string]string{}
	for _, n := range lifeNeeds {
		if want[n.stage] == nil {
			want[n.stage] = map[string]int{}
		}
		want[n.stage][n.what] += n.n
		why[n.stage+" "+n.what] = n.why
	}
	var stages []string
	for s := range got {
		stages = append(stages, s)
	}
	sort.Strings(stages)
	for _, stage := range stages {
		seen := map[string]bool{}
		for what, n := range got[stage] {
			seen[what] = true
			if w := want[stage][what]; n != w {
				t.Errorf("%s: %d × %s, designed %d (%s)", stage, n, what, w, orNone(why[stage+" "+what]))
			}
		}
		for what, w := range want[stage] {
			if !seen[what] {
				t.Errorf("%s: 0 × %s, designed %d (%s)", stage, what, w, why[stage+" "+what])
			}
		}
		t.Logf("%s: %v", stage, got[stage])
	}
}

func orNone(why string) string {
	if why == "" {
		return "a request the design does not make"
	}
	return why
}

// notifyArrivals has moto send the bucket's ObjectCreated notifications
// under inbound/ to the arrivals queue, as the stack's bucket does.
func notifyArrivals(t *testing.T, w *pipelinetest.Imports, arn string) {
	t.Helper()
	if _, err := w.S3.PutBucketNotificationConfiguration(context.Background(), &s3.PutBucketNotificationConfigurationInput{
		Bucket: &w.Bucket,
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{{
			QueueArn: aws.String(arn), Events: []s3types.Event{"s3:ObjectCreated:*"},
			Filter: &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: []s3types.FilterRule{
				{Name: s3types.FilterRuleNamePrefix, Value: aws.String("inbound/")}}}},
		}}},
	}); err != nil {
		t.Fatal(fmt.Errorf("notification configuration: %w", err))
	}
}
