package poller_test

import (
	"context"
	"crypto/md5"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/imports/poller"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/notify"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

type fixture struct {
	s3     *s3.Client
	sqs    *sqs.Client
	bucket string
	queue  string
	emu    *d365test.Emulator
	enq    *enqueue.Handler
	p      *poller.Poller
	budget *poller.Budget
	clock  *pipelinetest.Clock
	layout layout.Layout
	st     *ledger.Store
	pcfg   poller.Config
}

// freshPoller is another execution environment: a poller with its own,
// full budget of perMinute.
func (f *fixture) freshPoller(t *testing.T, perMinute int) *poller.Poller {
	t.Helper()
	b := poller.NewBudget(perMinute)
	cfg := f.pcfg
	cfg.BudgetPerMinute = perMinute
	p, err := poller.New(cfg, f.s3, pipelinetest.FnO(t, f.emu, func(c *d365.Config) { c.Limiter = b }), b, f.sqs, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type options struct {
	emu    d365test.Options
	fno    func(*d365.Config)
	tweak  func(*poller.Config)
	budget int
}

func newFixture(t *testing.T, o options) *fixture {
	t.Helper()
	w := pipelinetest.NewImports(t, pipelinetest.FIFO{})
	// Jobs not in order: TestBackOffAndStuck ticks one message past another.
	f := &fixture{s3: w.S3, sqs: w.SQS, bucket: w.Bucket, queue: w.Queue, clock: pipelinetest.NewClock(time.Now()),
		emu: pipelinetest.Emulator(t, o.emu, false)}
	env := w.Env(pipelinetest.Routes)
	icfg, err := enqueue.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	f.layout = icfg.Layout
	f.st = &ledger.Store{S3: f.s3, Bucket: f.bucket, Layout: f.layout}
	f.enq, err = enqueue.New(icfg, f.s3, pipelinetest.FnO(t, f.emu), f.sqs, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	if o.budget > 0 {
		env["POLL_BUDGET_PER_MINUTE"] = fmt.Sprint(o.budget)
	}
	pcfg, err := poller.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	pcfg.Now = f.clock.Now
	pcfg.TargetKeysWait = 10 * time.Millisecond
	pcfg.SweepEvery = -1
	if o.tweak != nil {
		o.tweak(&pcfg)
	}
	f.pcfg = pcfg
	f.budget = poller.NewBudget(pcfg.BudgetPerMinute)
	fno := pipelinetest.FnO(t, f.emu, func(c *d365.Config) {
		c.Limiter = f.budget
		if o.fno != nil {
			o.fno(c)
		}
	})
	f.p, err = poller.New(pcfg, f.s3, fno, f.budget, f.sqs, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// enqueue drops files and runs them through the enqueue handler.
func (f *fixture) enqueue(t *testing.T, files map[string]string) {
	t.Helper()
	var ev events.SQSEvent
	i := 0
	for key, body := range files {
		v, etag := pipelinetest.Put(t, f.s3, f.bucket, key, []byte(body))
		route, _, _ := f.layout.Split(key)
		b, _ := json.Marshal(importmsg.File{Bucket: f.bucket, Key: key, VersionID: v, ETag: etag, Size: int64(len(body)), Route: route, EventTime: time.Now().UTC()})
		ev.Records = append(ev.Records, pipelinetest.Message(fmt.Sprint(i), string(b)))
		i++
	}
	resp, err := f.enq.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("enqueue: %v %v", resp.BatchItemFailures, err)
	}
}

// released takes every message off the FIFO queue and runs the release
// requests among them through the enqueue handler (a pass each), then takes
// the file messages the passes released: their keys, queue order, and the
// first message's attributes.
func (f *fixture) released(t *testing.T) ([]importmsg.File, []sqstypes.Message) {
	t.Helper()
	var files []importmsg.File
	var msgs []sqstypes.Message
	for round := 0; round < 3; round++ {
		for _, m := range pipelinetest.Receive(t, f.sqs, f.queue) {
			msg, err := importmsg.Decode([]byte(aws.ToString(m.Body)))
			if err != nil {
				t.Fatal(err)
			}
			if msg.File != nil {
				files, msgs = append(files, *msg.File), append(msgs, m)
				continue
			}
			resp, err := f.enq.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{pipelinetest.Message("r", aws.ToString(m.Body))}})
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("pass: %v %v", resp.BatchItemFailures, err)
			}
		}
	}
	return files, msgs
}

// run is one poller invocation with the clock at now+ahead.
func (f *fixture) run(t *testing.T, ahead time.Duration) poller.Summary {
	t.Helper()
	f.clock.Set(time.Now().Add(ahead))
	s, err := f.p.Handle(context.Background(), json.RawMessage(`{"task":"poll"}`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) result(t *testing.T, key string) filing.Result {
	t.Helper()
	raw, ok := pipelinetest.Get(t, f.s3, f.bucket, key+layout.ResultSuffix)
	if !ok {
		t.Fatalf("no %s; bucket holds %v", key+layout.ResultSuffix, pipelinetest.Keys(t, f.s3, f.bucket, ""))
	}
	var r filing.Result
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// stateLeft lists what remains under _state/ besides the sweep's clock.
func (f *fixture) stateLeft(t *testing.T) []string {
	var left []string
	for _, k := range pipelinetest.Keys(t, f.s3, f.bucket, "_state/") {
		if k != f.layout.SweepStateKey() {
			left = append(left, k)
		}
	}
	return left
}

func today() string { return time.Now().UTC().Format("2006/01/02") }

func TestProcessed(t *testing.T) {
	f := newFixture(t, options{})
	f.enqueue(t, map[string]string{"inbound/customers/ok file.csv": "GROUP;NAME\nA;Alpha\n"})
	f.emu.RunToCompletion()
	s := f.run(t, 2*time.Minute)
	if s.Finalized != 1 || s.Processed != 1 || s.Checked != 1 || s.Errors != 0 {
		t.Fatalf("summary = %+v", s)
	}
	dst := "processed/customers/" + today() + "/ok file.csv"
	if body, ok := pipelinetest.Get(t, f.s3, f.bucket, dst); !ok || string(body) != "GROUP;NAME\nA;Alpha\n" {
		t.Fatalf("%s: %q %v", dst, body, ok)
	}
	r := f.result(t, dst)
	m := f.emu.Messages()[0]
	if r.Outcome != "processed" || r.Status != "Processed" || r.MessageID != m.ID || r.ExecutionID == "" || r.ExecutionID != m.ExecutionID ||
		r.ExecutionStatus != "Succeeded" || r.File != dst || r.SourceKey != "inbound/customers/ok file.csv" || r.EnqueuedAt.IsZero() || r.Checks != 1 {
		t.Fatalf("result = %+v", r)
	}
	if keys := pipelinetest.Keys(t, f.s3, f.bucket, "inbound/"); len(keys) != 0 {
		t.Fatalf("inbound/ = %v", keys)
	}
	if left := f.stateLeft(t); len(left) != 0 {
		t.Fatalf("_state/ still holds %v", left)
	}
}

// TestProcessedWhoseExecutionSaysOtherwise: F&O calls the message
// Processed, but its execution ended PartiallySucceeded, or has error rows:
// the file is filed as failed, with a note saying why, and its error files
// beside it.
func TestProcessedWhoseExecutionSaysOtherwise(t *testing.T) {
	rows := []d365test.ExecutionError{{RecordId: "7", Field: "CustGroup", ErrorMessage: "does not exist"}}
	for name, out := range map[string]d365test.Outcome{
		"partially succeeded": {Status: "Processed", ExecutionStatus: "PartiallySucceeded", StagingErrorFile: []byte("e\n")},
		"error rows":          {Status: "Processed", ExecutionStatus: "Succeeded", Errors: rows, StagingErrorFile: []byte("e\n")},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, options{})
			f.emu.Script(d365test.Rule{ActivityID: pipelinetest.ActVendors, Outcome: out})
			f.enqueue(t, map[string]string{"inbound/vendors/v.csv": "V;N\n1;x\n"})
			f.emu.RunToCompletion()
			if s := f.run(t, 2*time.Minute); s.Finalized != 1 || s.Failed != 1 || s.Processed != 0 {
				t.Fatalf("summary = %+v", s)
			}
			dst := "failed/vendors/" + today() + "/v.csv"
			r := f.result(t, dst)
			if r.Outcome != "failed" || r.Status != "Processed" || r.ExecutionStatus != out.ExecutionStatus ||
				!strings.Contains(strings.Join(r.Notes, " "), "message status is Processed, but its execution ended") || r.StagingErrorFile == "" {
				t.Fatalf("result = %+v", r)
			}
			if keys := pipelinetest.Keys(t, f.s3, f.bucket, "processed/"); len(keys) != 0 {
				t.Fatalf("processed/ = %v", keys)
			}
		})
	}
}

func TestFailedWithErrorsAndErrorFiles(t *testing.T) {
	for _, raw := range []bool{false, true} {
		t.Run(fmt.Sprintf("raw newlines %v", raw), func(t *testing.T) {
			f := newFixture(t, options{emu: d365test.Options{RawNewlinesInErrors: raw}})
			rows := []d365test.ExecutionError{
				{RecordId: "5637144576", Field: "CustGroup", ErrorMessage: `Customer group "X" does not exist`},
				{RecordId: "5637144577", Field: "", ErrorMessage: "Value cannot be null."},
			}
			f.emu.Script(d365test.Rule{ActivityID: pipelinetest.ActVendors, Outcome: d365test.Outcome{
				Status: "ProcessedWithErrors", Errors: rows,
				StagingErrorFile:    []byte("staging;error\n1;bad\n"),
				TargetErrorKeysFile: []byte("RECID\n5637144576\n"), TargetKeysEmptyPolls: 2,
			}})
			f.enqueue(t, map[string]string{"inbound/vendors/v.csv": "V;N\n1;x\n"})
			f.emu.RunToCompletion()
			s := f.run(t, 2*time.Minute)
			if s.Finalized != 1 || s.Failed != 1 {
				t.Fatalf("summary = %+v", s)
			}
			dst := "failed/vendors/" + today() + "/v.csv"
			r := f.result(t, dst)
			if r.Outcome != "failed" || r.Status != "ProcessedWithErrors" || r.ExecutionStatus != "PartiallySucceeded" || len(r.Errors) != 2 {
				t.Fatalf("result = %+v", r)
			}
			if r.Errors[0].RecordID != "5637144576" || r.Errors[1].ErrorMessage == "" || !strings.Contains(r.Errors[0].ErrorMessage, "does not exist") {
				t.Fatalf("rows = %+v", r.Errors)
			}
			if raw != r.ErrorsLenient || (raw && !strings.Contains(r.ErrorsRaw, "5637144577")) {
				t.Fatalf("lenient = %v, raw = %q", r.ErrorsLenient, r.ErrorsRaw)
			}
			for key, want := range map[string]string{r.StagingErrorFile: "staging;error\n1;bad\n", r.TargetErrorKeysFile: "RECID\n5637144576\n"} {
				if !strings.HasPrefix(key, dst+".") {
					t.Fatalf("error file %q is not beside %s", key, dst)
				}
				if got, ok := pipelinetest.Get(t, f.s3, f.bucket, key); !ok || string(got) != want {
					t.Fatalf("%s = %q %v", key, got, ok)
				}
			}
			if got, ok := pipelinetest.Get(t, f.s3, f.bucket, dst); !ok || string(got) != "V;N\n1;x\n" {
				t.Fatalf("failed file = %q %v", got, ok)
			}
			if left := f.stateLeft(t); len(left) != 0 {
				t.Fatalf("_state/ still holds %v", left)
			}
		})
	}
}

func TestPreProcessingErrorWithoutExecution(t *testing.T) {
	f := newFixture(t, options{})
	f.emu.Script(d365test.Rule{ActivityID: pipelinetest.ActCustomers, Outcome: d365test.Outcome{Status: "PreProcessingError"}})
	f.enqueue(t, map[string]string{"inbound/customers/pre.csv": "x"})
	f.emu.RunToCompletion()
	s := f.run(t, 2*time.Minute)
	if s.Failed != 1 {
		t.Fatalf("summary = %+v", s)
	}
	if r := f.result(t, "failed/customers/"+today()+"/pre.csv"); r.Status != "PreProcessingError" || r.Outcome != "failed" {
		t.Fatalf("result = %+v", r)
	}
}

func TestBackOffAndStuck(t *testing.T) {
	f := newFixture(t, options{tweak: func(c *poller.Config) { c.StuckAfter = time.Hour }})
	f.emu.Script(d365test.Rule{ExternalIDContains: "never", Outcome: d365test.Outcome{NeverProcess: true}})
	f.enqueue(t, map[string]string{"inbound/customers/never.csv": "x", "inbound/customers/slow.csv": "y"})

	s := f.run(t, 2*time.Minute)
	if s.Checked != 2 || s.Rescheduled != 2 || s.Stuck != 0 {
		t.Fatalf("first run = %+v", s)
	}
	before := f.emu.Requests("GetMessageStatus")
	s = f.run(t, 2*time.Minute) // again at once: nothing is due
	if s.Due != 0 || s.Checked != 0 || f.emu.Requests("GetMessageStatus") != before {
		t.Fatalf("immediate second run = %+v, %d GetMessageStatus calls", s, f.emu.Requests("GetMessageStatus")-before)
	}
	f.emu.Tick() // slow.csv moves on; never.csv does not
	s = f.run(t, 2*time.Hour)
	if s.Checked != 2 || s.Stuck != 2 {
		t.Fatalf("run past STUCK_AFTER = %+v", s)
	}
	raw, ok := pipelinetest.Get(t, f.s3, f.bucket, "inbound/customers/never.csv"+layout.StuckSuffix)
	var rep poller.StuckReport
	if !ok || json.Unmarshal(raw, &rep) != nil || rep.MessageID == "" || rep.Status != "Enqueued" {
		t.Fatalf("stuck report: %s %v", raw, ok)
	}
	s = f.run(t, 4*time.Hour)
	if s.Checked != 2 || s.Stuck != 0 {
		t.Fatalf("later run = %+v (stuck must be reported once)", s)
	}
	f.emu.RunToCompletion()
	s = f.run(t, 6*time.Hour)
	if s.Finalized != 1 {
		t.Fatalf("after completion = %+v", s)
	}
	if _, ok := pipelinetest.Get(t, f.s3, f.bucket, "inbound/customers/slow.csv"+layout.StuckSuffix); ok {
		t.Fatal("the stuck report of a finalized file is still there")
	}
	if _, ok := pipelinetest.Get(t, f.s3, f.bucket, "inbound/customers/never.csv"+layout.StuckSuffix); !ok {
		t.Fatal("the stuck report of the stuck file is gone")
	}
}

// TestBudget: a run stops taking records and making requests when the
// limiter says the next request would not come before the deadline, and
// leaves the rest, due, for later runs. A budget of 2 a minute lets one
// request go at once and the next a minute later; the run has 50 s, so
// exactly one request goes out however fast or slow the machine is, and
// nothing sleeps (the limiter's own arithmetic is tested in simulated time
// in budget_test.go).
func TestBudget(t *testing.T) {
	const budget = 2
	f := newFixture(t, options{budget: budget, tweak: func(c *poller.Config) { c.Concurrency = 1 }})
	files := map[string]string{}
	for i := range 12 {
		files[fmt.Sprintf("inbound/customers/%02d.csv", i)] = "x"
	}
	f.enqueue(t, files)
	f.emu.RunToCompletion() // finalizing one costs 4 requests: the budget runs out mid-way
	before := f.emu.TotalRequests()
	ctx, cancel := context.WithTimeout(context.Background(), f.pcfg.Margin+50*time.Second)
	defer cancel()
	f.clock.Set(time.Now().Add(2 * time.Minute))
	s, err := f.p.Handle(ctx, json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if made := f.emu.TotalRequests() - before; made != 1 || s.Calls != 1 {
		t.Fatalf("%d F&O requests in the run (%d counted), want 1: the second would wait a minute, past the deadline", made, s.Calls)
	}
	// It took on what the limiter allows in 50 s (poller.RunQuota: one
	// record), checked it, stopped mid-finalization and left it due.
	if want := poller.RunQuota(budget, 50*time.Second); s.Due != want || want != 1 || !s.More || s.Checked != 1 || s.Finalized != 0 || s.Deferred != 1 || s.Errors != 0 {
		t.Fatalf("summary = %+v", s)
	}
	// Later runs (here: another execution environment with a larger
	// budget) finish them all, the interrupted one included.
	if s, _ := f.freshPoller(t, 60000).Handle(context.Background(), nil); s.Finalized != 12 || s.More {
		t.Fatalf("next run = %+v", s)
	}
	if n := len(pipelinetest.Keys(t, f.s3, f.bucket, "processed/")); n != 24 {
		t.Fatalf("%d objects in processed/, want 12 files and 12 results", n)
	}
}

func TestKilledBetweenMoveAndRetire(t *testing.T) {
	tests := []struct {
		name string
		kill func(t *testing.T, f *fixture, rec ledger.Record)
	}{
		{"after the move", func(t *testing.T, f *fixture, rec ledger.Record) {
			_, file, _ := f.layout.Split(rec.Key)
			if _, err := s3io.Move(context.Background(), f.s3, rec.Source(),
				s3io.Candidates(f.layout.ProcessedKey(rec.Route, rec.EnqueuedAt, file), rec.Identity), rec.Identity, nil); err != nil {
				t.Fatal(err)
			}
		}},
		{"after the markers went", func(t *testing.T, f *fixture, rec ledger.Record) {
			_, file, _ := f.layout.Split(rec.Key)
			dst, err := s3io.Move(context.Background(), f.s3, rec.Source(),
				s3io.Candidates(f.layout.ProcessedKey(rec.Route, rec.EnqueuedAt, file), rec.Identity), rec.Identity, nil)
			if err != nil {
				t.Fatal(err)
			}
			s3io.PutJSON(context.Background(), f.s3, f.bucket, dst+layout.ResultSuffix, filing.Result{Outcome: "processed", MessageID: rec.MessageID})
			f.st.DeleteMarker(context.Background(), rec.Identity)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, options{})
			f.enqueue(t, map[string]string{"inbound/customers/k.csv": "kill me"})
			f.emu.RunToCompletion()
			var rec ledger.Record
			f.st.Due(context.Background(), time.Now().Add(time.Hour), func(e ledger.Entry) bool {
				rec, _, _ = f.st.Get(context.Background(), e.Key)
				return false
			})
			tt.kill(t, f, rec)
			s := f.run(t, 2*time.Minute)
			if s.Errors != 0 || s.Finalized+s.Retired != 1 {
				t.Fatalf("summary = %+v", s)
			}
			dst := "processed/customers/" + today() + "/k.csv"
			if keys := pipelinetest.Keys(t, f.s3, f.bucket, "processed/"); fmt.Sprint(keys) != fmt.Sprint([]string{dst, dst + layout.ResultSuffix}) {
				t.Fatalf("processed/ = %v", keys)
			}
			if body, _ := pipelinetest.Get(t, f.s3, f.bucket, dst); string(body) != "kill me" {
				t.Fatalf("moved file = %q", body)
			}
			if r := f.result(t, dst); r.MessageID != rec.MessageID {
				t.Fatalf("result = %+v", r)
			}
			if len(pipelinetest.Keys(t, f.s3, f.bucket, "inbound/")) != 0 || len(f.stateLeft(t)) != 0 || len(f.emu.Messages()) != 1 {
				t.Fatalf("inbound %v, state %v, %d F&O messages", pipelinetest.Keys(t, f.s3, f.bucket, "inbound/"), f.stateLeft(t), len(f.emu.Messages()))
			}
			if s := f.run(t, time.Hour); s.Due != 0 {
				t.Fatalf("a later run still finds %+v", s)
			}
		})
	}
}

// TestFailureIsToldBeforeTheMarkerGoes: a failed file's notification goes
// out before its marker is deleted, so a run that stops there (the delete
// fails here; a crash would leave the same state) has told of it already;
// the next run finishes the filing and neither tells again nor pauses the
// route again (the operator may have resumed it meanwhile).
func TestFailureIsToldBeforeTheMarkerGoes(t *testing.T) {
	f := newFixture(t, options{})
	f.emu.Script(d365test.Rule{ActivityID: pipelinetest.ActVendors, Outcome: d365test.Outcome{Status: "ProcessedWithErrors",
		Errors: []d365test.ExecutionError{{RecordId: "1", Field: "CustGroup", ErrorMessage: "does not exist"}}}})
	f.enqueue(t, map[string]string{"inbound/vendors/v.csv": "V;N\n1;x\n"})
	f.emu.RunToCompletion()
	pub := &publishes{}
	cfg := f.pcfg
	cfg.Observers.Notify = &notify.Notifier{Topic: "arn:aws:sns:us-east-1:123456789012:alerts", Stack: "test", SNS: pub,
		S3: f.s3, Bucket: f.bucket, Layout: f.layout, Log: pipelinetest.Quiet()}
	var pauses atomic.Int32
	cfg.Observers.Pause = func(context.Context, string, string, string) bool { pauses.Add(1); return true }
	markers := f.layout.MarkerPrefix()
	hs := &hookS3{Client: f.s3, delErr: func(key string) error {
		if strings.HasPrefix(key, markers) {
			return errors.New("injected: the run stops before the marker goes")
		}
		return nil
	}}
	run := func(s3c poller.S3, ahead time.Duration) poller.Summary {
		t.Helper()
		b := poller.NewBudget(cfg.BudgetPerMinute)
		p, err := poller.New(cfg, s3c, pipelinetest.FnO(t, f.emu, func(c *d365.Config) { c.Limiter = b }), b, f.sqs, pipelinetest.Quiet())
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Set(time.Now().Add(ahead))
		s, err := p.Handle(context.Background(), json.RawMessage(`{"task":"poll"}`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := run(hs, 2*time.Minute); s.Finalized != 0 || s.Errors == 0 {
		t.Fatalf("the run whose marker delete failed: %+v", s)
	}
	if got := pub.subjects(); len(got) != 1 || !strings.Contains(got[0], "failed: vendors/v.csv") {
		t.Fatalf("notifications after the stopped run: %q; want the failure told once", got)
	}
	if s := run(f.s3, 3*time.Hour); s.Finalized != 1 { // past the failed attempt's back-off
		t.Fatalf("the next run: %+v", s)
	}
	if got := pub.subjects(); len(got) != 1 {
		t.Fatalf("notifications after the next run: %q; want still one", got)
	}
	if n := pauses.Load(); n != 1 {
		t.Fatalf("the route was asked to pause %d times; want once", n)
	}
	if left := f.stateLeft(t); len(left) != 1 || !strings.Contains(left[0], "/notified/") {
		t.Fatalf("_state/ holds %v; want only the notification's once-only marker", left)
	}
}

// publishes records what is published to the topic.
type publishes struct {
	mu  sync.Mutex
	got []string
}

func (p *publishes) Publish(_ context.Context, in *sns.PublishInput, _ ...func(*sns.Options)) (*sns.PublishOutput, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, aws.ToString(in.Subject))
	return &sns.PublishOutput{MessageId: aws.String(fmt.Sprint(len(p.got)))}, nil
}

func (p *publishes) subjects() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

// TestUnreadableMarkerDoesNotBlockTheFile: a marker that is not JSON any
// more (damaged by hand, say) is still a marker: the file is finalized from
// its ledger record and the marker goes with it, instead of the record
// staying due, checked every run, for ever.
func TestUnreadableMarkerDoesNotBlockTheFile(t *testing.T) {
	f := newFixture(t, options{})
	f.enqueue(t, map[string]string{"inbound/customers/m.csv": "marker"})
	f.emu.RunToCompletion()
	markers := pipelinetest.Keys(t, f.s3, f.bucket, f.layout.MarkerPrefix())
	if len(markers) != 1 {
		t.Fatalf("markers %v", markers)
	}
	pipelinetest.Put(t, f.s3, f.bucket, markers[0], []byte("{not json"))
	if s := f.run(t, 2*time.Minute); s.Finalized != 1 || s.Errors != 0 {
		t.Fatalf("summary = %+v", s)
	}
	if body, ok := pipelinetest.Get(t, f.s3, f.bucket, "processed/customers/"+today()+"/m.csv"); !ok || string(body) != "marker" {
		t.Fatalf("processed file = %q %v", body, ok)
	}
	if left := f.stateLeft(t); len(left) != 0 {
		t.Fatalf("_state/ still holds %v", left)
	}
}

func TestDuplicateLedgerRecords(t *testing.T) {
	f := newFixture(t, options{})
	f.enqueue(t, map[string]string{"inbound/customers/d.csv": "x"})
	var rec ledger.Record
	f.st.Due(context.Background(), time.Now().Add(time.Hour), func(e ledger.Entry) bool {
		rec, _, _ = f.st.Get(context.Background(), e.Key)
		return false
	})
	// An interrupted reschedule: the same record at an earlier time.
	dup := rec
	dup.NextCheck = rec.NextCheck.Add(-30 * time.Second)
	if _, err := f.st.Put(context.Background(), dup); err != nil {
		t.Fatal(err)
	}
	s := f.run(t, 2*time.Minute)
	if s.Due != 2 || s.Checked != 1 || s.Retired != 1 || f.emu.Requests("GetMessageStatus") != 1 {
		t.Fatalf("summary = %+v, %d status calls", s, f.emu.Requests("GetMessageStatus"))
	}
	ids, _ := f.st.Identities(context.Background())
	if len(pipelinetest.Keys(t, f.s3, f.bucket, "_state/ledger/")) != 1 || !ids[rec.Identity] {
		t.Fatalf("ledger = %v", pipelinetest.Keys(t, f.s3, f.bucket, "_state/ledger/"))
	}
}

func TestSweep(t *testing.T) {
	f := newFixture(t, options{})
	// A file whose notification was lost, an empty one, and one enqueued
	// whose ledger record was lost.
	v, etag := pipelinetest.Put(t, f.s3, f.bucket, "inbound/vendors/lost.csv", []byte("lost"))
	pipelinetest.Put(t, f.s3, f.bucket, "inbound/vendors/empty.csv", nil)
	f.enqueue(t, map[string]string{"inbound/customers/noledger.csv": "n"})
	for _, k := range pipelinetest.Keys(t, f.s3, f.bucket, "_state/ledger/") {
		f.st.Delete(context.Background(), k)
	}
	// Not old enough yet: nothing happens.
	if s := f.run(t, 0); s.Swept != 0 || s.Recovered != 0 {
		t.Fatalf("young files swept: %+v", s)
	}
	f.emu.RunToCompletion()
	s := f.run(t, time.Hour)
	if s.Swept != 2 || s.Recovered != 1 || s.Finalized != 1 {
		t.Fatalf("summary = %+v", s)
	}
	// The sweep asked for a release of vendors; the pass sends the lost
	// file and files the empty one.
	files, msgs := f.released(t)
	if len(files) != 1 {
		t.Fatalf("%d file messages, want 1", len(files))
	}
	fm := files[0]
	if fm.Key != "inbound/vendors/lost.csv" || fm.VersionID != v || fm.Route != "vendors" ||
		msgs[0].Attributes["MessageDeduplicationId"] != importmsg.Identity(f.bucket, fm.Key, v, etag) ||
		msgs[0].Attributes["MessageGroupId"] != routes.SanitizeGroupID("Vendor groups") {
		t.Fatalf("swept message = %+v %v", fm, msgs[0].Attributes)
	}
	if len(pipelinetest.Keys(t, f.s3, f.bucket, "rejected/vendors/")) != 2 {
		t.Fatalf("the empty file was not rejected: %v", pipelinetest.Keys(t, f.s3, f.bucket, "rejected/"))
	}
	if len(pipelinetest.Keys(t, f.s3, f.bucket, "processed/customers/")) != 2 {
		t.Fatalf("the file with the rebuilt record was not finalized: %v", pipelinetest.Keys(t, f.s3, f.bucket, ""))
	}
	// The released file now waits in the queue: a second sweep leaves it alone.
	s = f.run(t, 2*time.Hour)
	if s.Swept != 0 || s.Waiting != 1 {
		t.Fatalf("second sweep = %+v", s)
	}
	if n := pipelinetest.Depth(t, f.sqs, f.queue); n != 0 {
		t.Fatalf("%d more FIFO messages", n)
	}
}

func TestSweepEvery(t *testing.T) {
	f := newFixture(t, options{tweak: func(c *poller.Config) { c.SweepEvery = 10 * time.Minute }})
	pipelinetest.Put(t, f.s3, f.bucket, "inbound/vendors/a.csv", []byte("a"))
	if s := f.run(t, time.Hour); s.Swept != 1 {
		t.Fatalf("first = %+v", s)
	}
	pipelinetest.Put(t, f.s3, f.bucket, "inbound/vendors/b.csv", []byte("b"))
	if s := f.run(t, time.Hour+5*time.Minute); s.Swept != 0 {
		t.Fatalf("a sweep 5 minutes after the last = %+v", s)
	}
	// Neither has been released yet (no pass ran): both are asked for.
	if s := f.run(t, time.Hour+11*time.Minute); s.Swept != 2 {
		t.Fatalf("a sweep 11 minutes after the last = %+v", s)
	}
}

func TestHandleInput(t *testing.T) {
	f := newFixture(t, options{})
	for _, tt := range []struct {
		in      string
		wantErr bool
	}{
		{`{"task":"poll"}`, false},
		{`{}`, false},
		{``, false},
		{`null`, false},
		{`{"version":"0","id":"x","detail-type":"Scheduled Event","source":"aws.events","time":"2026-01-01T00:00:00Z","detail":{}}`, false},
		{`{"task":"export"}`, true},
		{`not json`, true},
	} {
		_, err := f.p.Handle(context.Background(), json.RawMessage(tt.in))
		if (err != nil) != tt.wantErr {
			t.Errorf("Handle(%s) error = %v, want error %v", tt.in, err, tt.wantErr)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	base := map[string]string{"BUCKET": "b", "ROUTES": pipelinetest.Routes, "IMPORT_QUEUE_URL": "q.fifo"}
	for _, tt := range []struct {
		name, k, v, want string
	}{
		{"budget", "POLL_BUDGET_PER_MINUTE", "many", "POLL_BUDGET_PER_MINUTE"},
		{"zero budget", "POLL_BUDGET_PER_MINUTE", "0", "POLL_BUDGET_PER_MINUTE"},
		{"sweep", "SWEEP_AFTER", "15", "SWEEP_AFTER"},
		{"stuck", "STUCK_AFTER", "-1h", "STUCK_AFTER"},
		{"queue", "IMPORT_QUEUE_URL", "", "IMPORT_QUEUE_URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			env[tt.k] = tt.v
			_, err := poller.ConfigFromEnv(func(k string) string { return env[k] })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	c, err := poller.ConfigFromEnv(func(k string) string { return base[k] })
	if err != nil || c.BudgetPerMinute != 1000 || c.SweepAfter != 15*time.Minute || c.StuckAfter != 24*time.Hour {
		t.Fatalf("defaults = %+v %v", c, err)
	}
}

func TestNextDelay(t *testing.T) {
	prev := time.Duration(0)
	for _, age := range []time.Duration{0, 5 * time.Minute, 30 * time.Minute, 3 * time.Hour, 12 * time.Hour} {
		d := poller.NextDelay(age, false, time.Minute)
		if d < prev || d < time.Minute || d > 30*time.Minute {
			t.Errorf("NextDelay(%s) = %s", age, d)
		}
		prev = d
	}
	if poller.NextDelay(0, true, time.Minute) != time.Hour {
		t.Error("stuck messages are checked hourly")
	}
	// A compressed clock (the local demo) scales every step.
	if d := poller.NextDelay(30*time.Second, false, time.Second); d != 2*time.Second {
		t.Errorf("with a 1s unit, a 30s-old message is checked after %s, want 2s", d)
	}
}

func TestStatusErrorsBackOffAndReport(t *testing.T) {
	f := newFixture(t, options{tweak: func(c *poller.Config) { c.StuckAfter = time.Hour },
		fno: func(c *d365.Config) { c.Retry.MaxAttempts = 2 }})
	f.enqueue(t, map[string]string{"inbound/customers/e.csv": "x"})
	f.emu.Inject(d365test.Fault{Endpoint: "GetMessageStatus", Status: 500}) // every time
	s := f.run(t, 2*time.Minute)
	if s.Errors != 1 || s.Checked != 0 || s.Calls < 2 {
		t.Fatalf("summary = %+v (the client retries a 500 before giving up)", s)
	}
	if s := f.run(t, 2*time.Minute); s.Due != 0 {
		t.Fatalf("a failing record is retried at once: %+v", s)
	}
	s = f.run(t, 2*time.Hour)
	if s.Errors != 1 || s.Stuck != 1 {
		t.Fatalf("summary = %+v", s)
	}
	raw, _ := pipelinetest.Get(t, f.s3, f.bucket, "inbound/customers/e.csv"+layout.StuckSuffix)
	var rep poller.StuckReport
	if json.Unmarshal(raw, &rep) != nil || !strings.Contains(rep.LastError, "500") {
		t.Fatalf("stuck report = %s", raw)
	}
	f.emu.ClearFaults()
	f.emu.RunToCompletion()
	if s := f.run(t, 4*time.Hour); s.Finalized != 1 {
		t.Fatalf("after recovery = %+v", s)
	}
}

func TestThrottledStopsTheRun(t *testing.T) {
	f := newFixture(t, options{fno: func(c *d365.Config) { c.Retry.MaxAttempts = 2 },
		tweak: func(c *poller.Config) { c.Concurrency = 1 }})
	f.enqueue(t, map[string]string{"inbound/customers/a.csv": "a", "inbound/customers/b.csv": "b", "inbound/customers/c.csv": "c"})
	f.emu.Inject(d365test.Fault{Endpoint: "GetMessageStatus", Status: 429, RetryAfter: 1})
	s := f.run(t, 2*time.Minute)
	if s.Calls != 2 || s.Checked != 0 || s.Deferred != 3 {
		t.Fatalf("summary = %+v: a throttled run must stop, not throttle every record", s)
	}
	f.emu.ClearFaults()
	if s := f.run(t, 2*time.Minute); s.Checked != 3 {
		t.Fatalf("next run = %+v: the deferred records are still due", s)
	}
}

// Lost files found by the sweep are released in upload order, not in S3's
// listing order (keys alphabetically, versions newest first).
func TestSweepKeepsUploadOrder(t *testing.T) {
	f := newFixture(t, options{})
	// Distinct Last-Modified seconds, as real uploads minutes apart have.
	pipelinetest.Put(t, f.s3, f.bucket, "inbound/vendors/z.csv", []byte("z1"))
	time.Sleep(1100 * time.Millisecond)
	pipelinetest.Put(t, f.s3, f.bucket, "inbound/vendors/z.csv", []byte("z2"))
	time.Sleep(1100 * time.Millisecond)
	pipelinetest.Put(t, f.s3, f.bucket, "inbound/vendors/a.csv", []byte("a"))
	if s := f.run(t, time.Hour); s.Swept != 3 {
		t.Fatalf("summary = %+v", s)
	}
	var got []string
	files, _ := f.released(t)
	for _, fm := range files {
		got = append(got, fm.Key+"@"+fm.ETag)
	}
	want := []string{"inbound/vendors/z.csv@" + etagOf("z1"), "inbound/vendors/z.csv@" + etagOf("z2"), "inbound/vendors/a.csv@" + etagOf("a")}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("FIFO order %v, want %v", got, want)
	}
}

func etagOf(body string) string { return fmt.Sprintf("%x", md5.Sum([]byte(body))) }

// An error file F&O or the blob host refuses for good (an expired link)
// does not hold the verdict up: the file is finalized with a note.
func TestRefusedErrorFileDoesNotBlockFinalizing(t *testing.T) {
	f := newFixture(t, options{})
	f.emu.Script(d365test.Rule{Outcome: d365test.Outcome{Status: "ProcessedWithErrors",
		Errors: []d365test.ExecutionError{{RecordId: "1", ErrorMessage: "bad"}}, StagingErrorFile: []byte("x")}})
	f.enqueue(t, map[string]string{"inbound/customers/expired.csv": "x"})
	f.emu.RunToCompletion()
	f.emu.Inject(d365test.Fault{Endpoint: "blob-get", Status: 403})
	if s := f.run(t, time.Hour); s.Finalized != 1 {
		t.Fatalf("summary = %+v", s)
	}
	res := f.result(t, "failed/customers/"+today()+"/expired.csv")
	if res.StagingErrorFile != "" || !strings.Contains(strings.Join(res.Notes, " "), "staging error file could not be fetched") {
		t.Fatalf("result = %+v", res)
	}
}

// A file released under its ETag identity (a message without a versionId,
// as an unversioned bucket gives) is known to the sweep by its ETag: it is
// not released a second time while in flight.
func TestSweepKnowsFilesRoutedByETag(t *testing.T) {
	f := newFixture(t, options{})
	v, etag := pipelinetest.Put(t, f.s3, f.bucket, "inbound/vendors/noversion.csv", []byte("x"))
	if v == "" {
		t.Skip("the bucket is not versioned")
	}
	id := importmsg.Identity(f.bucket, "inbound/vendors/noversion.csv", "", etag)
	if err := s3io.PutJSON(context.Background(), f.s3, f.bucket, f.layout.ReleasedKey("vendors", id), map[string]string{"key": "inbound/vendors/noversion.csv"}); err != nil {
		t.Fatal(err)
	}
	if s := f.run(t, time.Hour); s.Swept != 0 || s.Waiting != 1 {
		t.Fatalf("summary = %+v: a file released by its ETag was swept again", s)
	}
	if n := pipelinetest.Depth(t, f.sqs, f.queue); n != 0 {
		t.Fatalf("%d FIFO messages, want none", n)
	}
}

// TestUnreadableLedgerRecordIsQuarantined: a ledger record that is not JSON
// is moved out of the ledger once (not an error every run), kept for a
// person, and rebuilt at once, in the same run, from the file's marker, so
// the next run finalizes the file (the sweep need not find it first).
func TestUnreadableLedgerRecordIsQuarantined(t *testing.T) {
	f := newFixture(t, options{tweak: func(c *poller.Config) { c.SweepEvery = time.Hour }})
	f.enqueue(t, map[string]string{"inbound/customers/damaged.csv": "GROUP;NAME\nA;Alpha\n"})
	keys := pipelinetest.Keys(t, f.s3, f.bucket, "_state/ledger/")
	if len(keys) != 1 {
		t.Fatalf("ledger = %v", keys)
	}
	garbage := []byte(`{"identity": "half a record`)
	pipelinetest.Put(t, f.s3, f.bucket, keys[0], garbage)
	// The sweep ran just now: it has no part in what follows.
	s3io.PutJSON(context.Background(), f.s3, f.bucket, f.layout.SweepStateKey(), map[string]time.Time{"lastSweep": time.Now().Add(2 * time.Minute)})

	s := f.run(t, 2*time.Minute)
	if s.Quarantined != 1 || s.Recovered != 1 || s.Errors != 0 || s.Checked != 0 {
		t.Fatalf("summary = %+v", s)
	}
	q := f.layout.QuarantineKey(keys[0])
	if body, ok := pipelinetest.Get(t, f.s3, f.bucket, q); !ok || string(body) != string(garbage) {
		t.Fatalf("%s: %q %v; bucket %v", q, body, ok, pipelinetest.Keys(t, f.s3, f.bucket, "_state/"))
	}
	left := pipelinetest.Keys(t, f.s3, f.bucket, "_state/ledger/")
	if len(left) != 1 || left[0] == keys[0] {
		t.Fatalf("ledger holds %v, want one record rebuilt at a new key", left)
	}
	rec, _, err := f.st.Get(context.Background(), left[0])
	if err != nil || rec.Key != "inbound/customers/damaged.csv" || rec.MessageID != f.emu.Messages()[0].ID {
		t.Fatalf("rebuilt record = %+v, %v", rec, err)
	}

	f.emu.RunToCompletion()
	s = f.run(t, 4*time.Minute)
	if s.Finalized != 1 || s.Recovered != 0 || s.Errors != 0 || s.Quarantined != 0 {
		t.Fatalf("summary of the next run = %+v", s)
	}
	if got := pipelinetest.Keys(t, f.s3, f.bucket, "processed/customers/"); len(got) != 2 {
		t.Fatalf("processed/ = %v", got)
	}
}

// TestSweepCountsUnreadableMarker: when the sweep finds a file enqueued
// without a ledger record and cannot read its marker, it says so and
// counts an error (it used to pass over it silently); a later sweep that
// can read it rebuilds the record.
func TestSweepCountsUnreadableMarker(t *testing.T) {
	f := newFixture(t, options{})
	f.enqueue(t, map[string]string{"inbound/customers/m.csv": "x"})
	for _, k := range pipelinetest.Keys(t, f.s3, f.bucket, "_state/ledger/") {
		f.st.Delete(context.Background(), k)
	}
	broken := true
	p := f.pollerWith(t, &hookS3{Client: f.s3, getErr: func(k string) error {
		if broken && strings.HasPrefix(k, f.layout.MarkerPrefix()) {
			return fmt.Errorf("injected: S3 answered 503 SlowDown")
		}
		return nil
	}})
	f.clock.Set(time.Now().Add(time.Hour))
	if s, _ := p.Handle(context.Background(), nil); s.Errors != 1 || s.Recovered != 0 {
		t.Fatalf("summary = %+v, want the unreadable marker counted as an error", s)
	}
	broken = false
	if s, _ := p.Handle(context.Background(), nil); s.Errors != 0 || s.Recovered != 1 {
		t.Fatalf("next run = %+v", s)
	}
}
