package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/poller"
	"github.com/fno-bridge/s3-fno/internal/imports/router"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/notify"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// logSink collects the JSON log lines of every function, as CloudWatch
// Logs Insights would across their log groups.
type logSink struct{ pipelinetest.SyncBuffer }

func (s *logSink) logger(function string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug})).With("function", function)
}

// lines are the log lines, decoded; a line that is not JSON fails the test.
func (s *logSink) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("a log line is not JSON: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// TestOneQueryFollowsAFile: filtering the logs of every function on a
// file's identity shows its whole way, from the notification to where it
// was filed, and no line about the file lacks it; the result document and
// the notification of a failed file carry the identity to start from.
func TestOneQueryFollowsAFile(t *testing.T) {
	ctx := context.Background()
	w := pipelinetest.NewImports(t, pipelinetest.FIFO{MaxReceiveCount: 3})
	emu := pipelinetest.Emulator(t, d365test.Options{}, false)
	emu.Script(d365test.Rule{ExternalIDContains: "bad-rows", Outcome: d365test.Outcome{Status: "ProcessedWithErrors",
		Errors: []d365test.ExecutionError{{RecordId: "7", Field: "CustGroup", ErrorMessage: "does not exist"}}}})
	alerts := subscribe(t)
	sink := &logSink{}
	rec := metrics.New("prod", &strings.Builder{})
	observers := func(fn string) filing.Observers {
		return filing.Observers{Metrics: rec, Notify: &notify.Notifier{Topic: alerts.topic, Stack: "prod", SNS: alerts.sns, S3: w.S3,
			Bucket: w.Bucket, Layout: layout.Default(), Log: sink.logger(fn), Metrics: rec}}
	}
	env := w.Env(pipelinetest.Routes)
	getenv := func(k string) string { return env[k] }
	rcfg, _ := router.ConfigFromEnv(getenv)
	rcfg.Observers = observers("router")
	rt, err := router.New(rcfg, w.S3, w.SQS, sink.logger("router"))
	if err != nil {
		t.Fatal(err)
	}
	icfg, _ := enqueue.ConfigFromEnv(getenv)
	icfg.Observers = observers("enqueue")
	enq, err := enqueue.New(icfg, w.S3, pipelinetest.FnO(t, emu), w.SQS, sink.logger("enqueue"))
	if err != nil {
		t.Fatal(err)
	}
	pcfg, _ := poller.ConfigFromEnv(getenv)
	clk := pipelinetest.NewClock(time.Now())
	pcfg.Now, pcfg.SweepEvery, pcfg.TargetKeysWait, pcfg.Observers = clk.Now, -1, 10*time.Millisecond, observers("poller")
	budget := poller.NewBudget(pcfg.BudgetPerMinute)
	pl, err := poller.New(pcfg, w.S3, pipelinetest.FnO(t, emu, func(c *d365.Config) { c.Limiter = budget }), budget, w.SQS, sink.logger("poller"))
	if err != nil {
		t.Fatal(err)
	}

	files := map[string]string{} // key -> identity
	var ev events.SQSEvent
	for i, key := range []string{"inbound/customers/follow-me.csv", "inbound/customers/bad-rows.csv"} {
		v, etag := pipelinetest.Put(t, w.S3, w.Bucket, key, []byte("row\n"))
		files[key] = importmsg.Identity(w.Bucket, key, v, etag)
		ev.Records = append(ev.Records, pipelinetest.Message(fmt.Sprint(i), pipelinetest.S3Event(w.Bucket, key, v, etag, 4)))
	}
	if _, err := rt.Handle(ctx, ev); err != nil {
		t.Fatal(err)
	}
	(&pipelinetest.ESM{SQS: w.SQS, QueueURL: w.Queue}).Drain(t, ctx, enq.Handle)
	emu.RunToCompletion()
	clk.Set(time.Now().Add(time.Hour))
	if _, err := pl.Handle(ctx, json.RawMessage(`{"task":"poll"}`)); err != nil {
		t.Fatal(err)
	}

	lines := sink.lines(t)
	for key, id := range files {
		base := layout.Base(key)
		var steps []string
		for _, l := range lines {
			about := false
			for _, v := range l {
				if s, ok := v.(string); ok && strings.HasSuffix(s, "/"+base) {
					about = true
				}
			}
			if l["identity"] == id {
				steps = append(steps, fmt.Sprint(l["function"], ": ", l["msg"]))
			} else if about {
				t.Errorf("%s: a line about it without its identity: %v", key, l)
			}
		}
		// Its way: notified, released in order, sent to F&O, filed.
		for _, fn := range []string{"router", "enqueue", "poller"} {
			if !slices.ContainsFunc(steps, func(s string) bool { return strings.HasPrefix(s, fn+": ") }) {
				t.Errorf("%s: no %s line carries its identity; its lines:\n%s", key, fn, strings.Join(steps, "\n"))
			}
		}
		t.Logf("%s:\n%s", key, strings.Join(steps, "\n"))
		if len(steps) < 4 {
			t.Errorf("%s: %d lines carry its identity:\n%s", key, len(steps), strings.Join(steps, "\n"))
		}
	}

	// Where a person starts: the result document and the notification.
	results := 0
	for _, k := range pipelinetest.Keys(t, w.S3, w.Bucket, "") {
		if !strings.HasSuffix(k, layout.ResultSuffix) {
			continue
		}
		body, _ := pipelinetest.Get(t, w.S3, w.Bucket, k)
		var res filing.Result
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		if res.Identity == "" || res.Identity != files[res.SourceKey] {
			t.Errorf("%s: identity %q, want %q", k, res.Identity, files[res.SourceKey])
		}
		results++
	}
	if results != len(files) {
		t.Errorf("%d result documents, want %d", results, len(files))
	}
	msgs := pipelinetest.Receive(t, alerts.sqs, alerts.queue)
	if len(msgs) != 1 {
		t.Fatalf("%d notifications, want the failed file's", len(msgs))
	}
	if want := "Identity: " + files["inbound/customers/bad-rows.csv"]; !strings.Contains(*msgs[0].Body, want) {
		t.Errorf("the notification does not carry %q: %s", want, *msgs[0].Body)
	}
}
