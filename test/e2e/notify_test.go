package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/poller"
	"github.com/fno-bridge/s3-fno/internal/imports/router"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/notify"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// TestEveryFailureIsToldOnce: a file filed under failed/ and one rejected,
// an import reported stuck, a message in the import dead-letter queue and
// an export that could not be landed each reach the topic as exactly one
// message with a subject that says what happened, however often the step
// that found it runs again. A topic that cannot be reached stops nothing.
func TestEveryFailureIsToldOnce(t *testing.T) {
	ctx := context.Background()
	w := pipelinetest.NewImports(t, pipelinetest.FIFO{MaxReceiveCount: 3})
	emu := pipelinetest.Emulator(t, d365test.Options{}, false)
	emu.Script(d365test.Rule{ExternalIDContains: "bad-rows", Outcome: d365test.Outcome{Status: "ProcessedWithErrors",
		Errors: []d365test.ExecutionError{{RecordId: "7", Field: "CustGroup", ErrorMessage: "does not exist"}, {RecordId: "8", ErrorMessage: "no"}}}})
	emu.Script(d365test.Rule{ExternalIDContains: "never-done", Outcome: d365test.Outcome{NeverProcess: true}})
	alerts := subscribe(t)
	rec := metrics.New("prod", &strings.Builder{})
	obs := filing.Observers{Metrics: rec, Notify: &notify.Notifier{Topic: alerts.topic, Stack: "prod", SNS: alerts.sns, S3: w.S3,
		Bucket: w.Bucket, Layout: layout.Default(), Log: pipelinetest.Quiet(), Metrics: rec}}

	env := w.Env(pipelinetest.Routes)
	getenv := func(k string) string { return env[k] }
	rcfg, _ := router.ConfigFromEnv(getenv)
	rcfg.Observers = obs
	rt, err := router.New(rcfg, w.S3, w.SQS, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	icfg, _ := enqueue.ConfigFromEnv(getenv)
	icfg.Observers = obs
	enq, err := enqueue.New(icfg, w.S3, pipelinetest.FnO(t, emu), w.SQS, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	pcfg, _ := poller.ConfigFromEnv(getenv)
	clk := pipelinetest.NewClock(time.Now())
	pcfg.Now, pcfg.SweepEvery, pcfg.TargetKeysWait, pcfg.Observers = clk.Now, -1, 10*time.Millisecond, obs
	pcfg.DLQ, pcfg.DLQURL = w.SQS, w.DLQ
	budget := poller.NewBudget(pcfg.BudgetPerMinute)
	pl, err := poller.New(pcfg, w.S3, pipelinetest.FnO(t, emu, func(c *d365.Config) { c.Limiter = budget }), budget, w.SQS, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	poll := func(ahead time.Duration) {
		clk.Set(time.Now().Add(ahead))
		if _, err := pl.Handle(ctx, json.RawMessage(`{"task":"poll"}`)); err != nil {
			t.Fatal(err)
		}
	}
	notifyRouter := func(keys ...string) {
		var ev events.SQSEvent
		for i, k := range keys {
			v, etag := pipelinetest.Put(t, w.S3, w.Bucket, k, []byte("row\n"))
			ev.Records = append(ev.Records, pipelinetest.Message(fmt.Sprint(i), pipelinetest.S3Event(w.Bucket, k, v, etag, 4)))
		}
		for range 2 { // and once more: a redelivery
			if _, err := rt.Handle(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
	}

	// A file no route takes; a file F&O fails; a file F&O never finishes.
	notifyRouter("inbound/nobody/stray.csv", "inbound/customers/bad-rows.csv", "inbound/vendors/never-done.csv")
	(&pipelinetest.ESM{SQS: w.SQS, QueueURL: w.Queue}).Drain(t, ctx, enq.Handle)
	emu.RunToCompletion()
	// A message in the import dead-letter queue.
	b, _ := json.Marshal(importmsg.File{Bucket: w.Bucket, Key: "inbound/customers/poison.csv", Route: "customers", VersionID: "v9"})
	if _, err := w.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &w.DLQ, MessageBody: aws.String(string(b)),
		MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String("d")}); err != nil {
		t.Fatal(err)
	}
	for _, ahead := range []time.Duration{time.Hour, 25 * time.Hour, 27 * time.Hour} {
		poll(ahead)
	}
	// An export F&O hands out whose download fails.
	const actExport = "55555555-5555-4555-8555-555555555555"
	emu.AddActivity(actExport, d365test.Activity{Kind: d365test.File})
	emu.QueueExport(actExport, d365test.Export{Body: []byte("a;b\n"), FileName: "x.csv"})
	emu.Inject(d365test.Fault{Endpoint: "download", Status: 500, Count: 100})
	dcfg, err := dequeue.ConfigFromEnv(func(k string) string { return map[string]string{"BUCKET": w.Bucket}[k] })
	if err != nil {
		t.Fatal(err)
	}
	dcfg.Notify, dcfg.Metrics, dcfg.Logger = obs.Notify, rec, pipelinetest.Quiet()
	dh, err := dequeue.New(dcfg, pipelinetest.FnO(t, emu), w.S3)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		emu.Advance(31 * time.Minute) // F&O hands the unacknowledged export out again
		dh.Handle(ctx, json.RawMessage(`{"job":"journal-export","activityId":"`+actExport+`"}`))
	}

	subjects := alerts.subjects(t)
	want := []string{
		"[prod] dead-letter: customers/poison.csv",
		"[prod] export-failed: journal-export: download",
		"[prod] failed: customers/bad-rows.csv: ProcessedWithErrors, 2 rows",
		"[prod] rejected: nobody/stray.csv: no-route",
		"[prod] stuck: vendors/never-done.csv: ",
	}
	if len(subjects) != len(want) {
		t.Fatalf("%d messages on the topic, want one per event:\n%s", len(subjects), strings.Join(subjects, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(subjects[i], want[i]) {
			t.Errorf("message %d: %q, want %q…", i, subjects[i], want[i])
		}
	}

	// SNS unreachable: the file is filed all the same.
	obs.Notify.Topic += "-gone"
	notifyRouter("inbound/nobody/second.csv")
	if keys := pipelinetest.Keys(t, w.S3, w.Bucket, "rejected/_unrouted/"); !slices.ContainsFunc(keys, func(k string) bool { return strings.HasSuffix(k, "/second.csv") }) {
		t.Fatalf("not filed while SNS was down: %v", keys)
	}
}

// alertQueue is an SNS topic on moto with an SQS queue subscribed.
type alertQueue struct {
	sns   *sns.Client
	sqs   *sqs.Client
	topic string
	queue string
}

func subscribe(t *testing.T) *alertQueue {
	t.Helper()
	ctx := context.Background()
	cfg := mototest.Config(t)
	a := &alertQueue{sns: sns.NewFromConfig(cfg), sqs: sqs.NewFromConfig(cfg)}
	topic, err := a.sns.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(mototest.Name("alerts"))})
	if err != nil {
		t.Fatal(err)
	}
	a.topic = aws.ToString(topic.TopicArn)
	var arn string
	a.queue, arn = pipelinetest.NewStandard(t, a.sqs, 30)
	if _, err := a.sns.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	return a
}

// subjects are the subjects of the messages on the topic, sorted.
func (a *alertQueue) subjects(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, m := range pipelinetest.Receive(t, a.sqs, a.queue) {
		var env struct{ Subject string }
		json.Unmarshal([]byte(aws.ToString(m.Body)), &env)
		out = append(out, env.Subject)
	}
	slices.Sort(out)
	return out
}
