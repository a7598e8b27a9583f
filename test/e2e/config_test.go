package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/poller"
	"github.com/fno-bridge/s3-fno/internal/imports/router"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/config"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/notify"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// TestRoutesComeFromTheDocument: with no ROUTES, the import functions go
// by the configuration document in the bucket. Before there is one, a
// dropped file waits (nothing is rejected, the sweep does nothing); once
// one is stored, the file goes to F&O; a new route is taken up without a
// restart; a document that does not validate changes nothing but is told
// once, and the files keep flowing on the last good one.
func TestRoutesComeFromTheDocument(t *testing.T) {
	ctx := context.Background()
	w := pipelinetest.NewImports(t, pipelinetest.FIFO{})
	emu := pipelinetest.Emulator(t, d365test.Options{}, false)
	alerts := subscribe(t)
	rec := metrics.New("prod", &strings.Builder{})
	env := w.Env("")
	getenv := func(k string) string { return env[k] }
	follow := func(c *routes.Config) {
		n := &notify.Notifier{Topic: alerts.topic, Stack: "prod", SNS: sns.NewFromConfig(mototest.Config(t)), S3: w.S3,
			Bucket: w.Bucket, Layout: layout.Default(), Log: pipelinetest.Quiet(), Metrics: rec}
		st := &config.Store{S3: w.S3, Bucket: c.Bucket, Key: c.ConfigKey, Log: pipelinetest.Quiet(), Notify: n, Metrics: rec}
		c.Routes = st.Routes(0, nil) // every invocation looks: the test does not wait out the interval
	}
	rcfg, err := router.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	follow(&rcfg.Config)
	rt, err := router.New(rcfg, w.S3, w.SQS, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	icfg, _ := enqueue.ConfigFromEnv(getenv)
	follow(&icfg.Config.Config)
	enq, err := enqueue.New(icfg, w.S3, pipelinetest.FnO(t, emu), w.SQS, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	pcfg, _ := poller.ConfigFromEnv(getenv)
	follow(&pcfg.Config.Config)
	pcfg.SweepAfter, pcfg.SweepEvery = time.Nanosecond, -1
	budget := poller.NewBudget(pcfg.BudgetPerMinute)
	pl, err := poller.New(pcfg, w.S3, pipelinetest.FnO(t, emu, func(c *d365.Config) { c.Limiter = budget }), budget, w.SQS, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	drop := func(key string) events.SQSEvent {
		v, etag := pipelinetest.Put(t, w.S3, w.Bucket, key, []byte("row\n"))
		return events.SQSEvent{Records: []events.SQSMessage{pipelinetest.Message(key, pipelinetest.S3Event(w.Bucket, key, v, etag, 4))}}
	}
	route := func(ev events.SQSEvent) int {
		resp, err := rt.Handle(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		(&pipelinetest.ESM{SQS: w.SQS, QueueURL: w.Queue}).Drain(t, ctx, enq.Handle)
		return len(resp.BatchItemFailures)
	}
	store := func(doc string) { pipelinetest.Put(t, w.S3, w.Bucket, layout.DefaultConfigKey, []byte(doc)) }
	doc := func(names ...string) string {
		var rs []string
		for _, n := range names {
			rs = append(rs, fmt.Sprintf(`{"route":%q,"activityId":%q,"entity":"Customer groups","settle":"0s"}`, n,
				map[string]string{"customers": pipelinetest.ActCustomers, "vendors": pipelinetest.ActVendors}[n]))
		}
		return `{"routes":[` + strings.Join(rs, ",") + `],"jobs":[]}`
	}

	first := drop("inbound/customers/first.csv")
	if failed := route(first); failed != 1 {
		t.Fatalf("no configuration yet: %d records returned, want the one (it waits for a redelivery)", failed)
	}
	if s, _ := pl.Handle(ctx, json.RawMessage(`{}`)); s.Errors == 0 {
		t.Errorf("the poller did not say it could not sweep: %+v", s)
	}
	if keys := pipelinetest.Keys(t, w.S3, w.Bucket, "rejected/"); len(keys) != 0 {
		t.Fatalf("files rejected without a configuration: %v", keys)
	}

	store(doc("customers"))
	if failed := route(first); failed != 0 || len(emu.Messages()) != 1 {
		t.Fatalf("with the document: %d returned, %d messages in F&O, want 0 and 1", failed, len(emu.Messages()))
	}
	store(doc("customers", "vendors"))
	route(drop("inbound/vendors/new-route.csv"))
	store(`{"routes":[{"route":"customers"}],"jobs":[]}`)
	route(drop("inbound/customers/second.csv"))
	route(drop("inbound/vendors/third.csv"))
	var got []string
	for _, m := range emu.Messages() {
		got = append(got, m.ExternalID)
	}
	if len(got) != 4 {
		t.Fatalf("%d files reached F&O, want 4: %v", len(got), got)
	}
	if keys := pipelinetest.Keys(t, w.S3, w.Bucket, "rejected/"); len(keys) != 0 {
		t.Errorf("files rejected: %v", keys)
	}
	subjects := alerts.subjects(t)
	if len(subjects) != 1 || !strings.HasPrefix(subjects[0], "[prod] config: _config/config.json cannot be used") {
		t.Errorf("notifications %q, want one for the bad document", subjects)
	}
}
