package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/poller"
	"github.com/fno-bridge/s3-fno/internal/imports/router"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

// TestEveryFileEndsSomewhere: nothing is lost. A dropped file ends in exactly
// one of processed/, failed/ or rejected/, nothing stays in inbound/, and
// no state is left behind.
func TestEveryFileEndsSomewhere(t *testing.T) {
	ctx := context.Background()
	w := pipelinetest.NewImports(t, pipelinetest.FIFO{MaxReceiveCount: 3})
	s3c, sqsc, bucket, dlq := w.S3, w.SQS, w.Bucket, w.DLQ
	arrivals, arrivalsARN := pipelinetest.NewStandard(t, sqsc, 30)
	log := pipelinetest.Quiet()

	emu := pipelinetest.Emulator(t, d365test.Options{}, true)
	emu.Script(d365test.Rule{ExternalIDContains: "bad-rows", Outcome: d365test.Outcome{
		Status: "ProcessedWithErrors", Errors: []d365test.ExecutionError{{RecordId: "1", Field: "CustGroup", ErrorMessage: "does not exist"}},
		StagingErrorFile: []byte("staging"), TargetErrorKeysFile: []byte("keys"),
	}})
	emu.Script(d365test.Rule{ExternalIDContains: "pre-error", Outcome: d365test.Outcome{Status: "PreProcessingError"}})

	env := w.Env(pipelinetest.Routes)
	getenv := func(k string) string { return env[k] }
	rcfg, err := router.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := router.New(rcfg, s3c, sqsc, log)
	if err != nil {
		t.Fatal(err)
	}
	icfg, err := enqueue.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	enq, err := enqueue.New(icfg, s3c, pipelinetest.FnO(t, emu), sqsc, log)
	if err != nil {
		t.Fatal(err)
	}
	pcfg, err := poller.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	clk := pipelinetest.NewClock(time.Now())
	pcfg.Now, pcfg.SweepEvery, pcfg.TargetKeysWait = clk.Now, -1, 10*time.Millisecond
	budget := poller.NewBudget(pcfg.BudgetPerMinute)
	pl, err := poller.New(pcfg, s3c, pipelinetest.FnO(t, emu, func(c *d365.Config) { c.Limiter = budget }), budget, sqsc, log)
	if err != nil {
		t.Fatal(err)
	}

	// Dropped before notifications were configured: only the sweep finds it.
	pipelinetest.Put(t, s3c, bucket, "inbound/currencies/lost notification.csv", []byte("lost"))
	if _, err := s3c.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: &bucket,
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{{
			QueueArn: aws.String(arrivalsARN), Events: []s3types.Event{"s3:ObjectCreated:*"},
			Filter: &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: []s3types.FilterRule{
				{Name: s3types.FilterRuleNamePrefix, Value: aws.String("inbound/")}}}},
		}}},
	}); err != nil {
		t.Fatal(err)
	}

	files := map[string]struct {
		body  string
		where string // processed, failed or rejected
	}{
		"inbound/customers/1 first.csv":            {"a;b\n", "processed"},
		"inbound/customers/2+second ü.csv":         {"c;d\n", "processed"},
		"inbound/customers/3-bad-rows.csv":         {"e;f\n", "failed"},
		"inbound/vendors/v1.csv":                   {"g\n", "processed"},
		"inbound/vendors/v2-pre-error.csv":         {"h\n", "failed"},
		"inbound/packages/pkg.zip":                 {"PK-not-really", "processed"},
		"inbound/customers/empty.csv":              {"", "rejected"},
		"inbound/unrouted/x.csv":                   {"x", "rejected"},
		"inbound/loose.csv":                        {"y", "rejected"},
		"inbound/nowhere/refused-by-fno.csv":       {"z", "rejected"},
		"inbound/currencies/lost notification.csv": {"lost", "processed"},
	}
	var keys []string
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "inbound/currencies/lost notification.csv" {
			continue
		}
		pipelinetest.Put(t, s3c, bucket, k, []byte(files[k].body))
	}

	routerESM := &pipelinetest.ESM{SQS: sqsc, QueueURL: arrivals}
	enqueueESM := &pipelinetest.ESM{SQS: sqsc, QueueURL: w.Queue}
	pass := func(ahead time.Duration) poller.Summary {
		routerESM.Drain(t, ctx, rt.Handle)
		enqueueESM.Drain(t, ctx, enq.Handle)
		emu.RunToCompletion()
		clk.Set(time.Now().Add(ahead))
		s, err := pl.Handle(ctx, json.RawMessage(`{"task":"poll"}`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s1 := pass(2 * time.Minute) // everything notified; the lost file is too young to sweep
	if s1.Swept != 0 || s1.Finalized != 6 {
		t.Fatalf("first pass = %+v", s1)
	}
	s2 := pass(time.Hour) // the sweep routes the lost file
	if s2.Swept != 1 {
		t.Fatalf("second pass = %+v", s2)
	}
	s3 := pass(2 * time.Hour)
	if s3.Finalized != 1 {
		t.Fatalf("third pass = %+v", s3)
	}

	// Exactly one place per file, with its document beside it.
	all := pipelinetest.Keys(t, s3c, bucket, "")
	for _, k := range keys {
		_, file, _ := rcfg.Layout.Split(k)
		route, _, _ := rcfg.Layout.Split(k)
		var homes []string
		for _, a := range all {
			if strings.HasPrefix(a, "inbound/") || strings.HasPrefix(a, "_state/") {
				continue
			}
			if strings.HasSuffix(a, "/"+file) && strings.Contains(a, "/"+route+"/") || strings.HasSuffix(a, "/"+strings.TrimPrefix(k, "inbound/")) {
				homes = append(homes, a)
			}
		}
		if len(homes) != 1 || !strings.HasPrefix(homes[0], files[k].where+"/") {
			t.Errorf("%s ended in %v, want exactly one place under %s/", k, homes, files[k].where)
			continue
		}
		doc := layout.ResultSuffix
		if files[k].where == "rejected" {
			doc = layout.ReasonSuffix
		}
		body, ok := pipelinetest.Get(t, s3c, bucket, homes[0])
		if !ok || string(body) != files[k].body {
			t.Errorf("%s holds %q, want %q", homes[0], body, files[k].body)
		}
		if _, ok := pipelinetest.Get(t, s3c, bucket, homes[0]+doc); !ok {
			t.Errorf("%s has no %s beside it", homes[0], doc)
		}
	}
	if bad := pipelinetest.Keys(t, s3c, bucket, "rejected/_malformed/"); len(bad) != 0 {
		t.Errorf("notifications kept as malformed: %v", bad)
	}
	sawTest := false
	for _, b := range routerESM.Batches {
		for _, m := range b {
			sawTest = sawTest || strings.Contains(m.Body, "s3:TestEvent")
		}
	}
	if !sawTest {
		t.Error("moto sent no s3:TestEvent: the notification path was not exercised as in AWS")
	}
	if in := pipelinetest.Keys(t, s3c, bucket, "inbound/"); len(in) != 0 {
		t.Errorf("inbound/ still holds %v", in)
	}
	for _, k := range pipelinetest.Keys(t, s3c, bucket, "_state/") {
		switch k {
		case rcfg.Layout.SweepStateKey():
		case rcfg.Layout.BoardKey(): // the status board: it must show nothing in flight
			body, _ := pipelinetest.Get(t, s3c, bucket, k)
			var b struct{ Imports map[string]any }
			if err := json.Unmarshal(body, &b); err != nil || len(b.Imports) != 0 {
				t.Errorf("the status board still shows imports in flight: %s", body)
			}
		default:
			t.Errorf("state left behind: %s", k)
		}
	}
	if n := pipelinetest.Depth(t, sqsc, dlq); n != 0 {
		t.Errorf("%d messages in the DLQ", n)
	}
	// Each importable file reached F&O exactly once.
	seen := map[string]int{}
	for _, m := range emu.Messages() {
		seen[m.ExternalID]++
	}
	if len(seen) != 7 || len(emu.Messages()) != 7 {
		t.Errorf("F&O messages: %v", seen)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s reached F&O %d times", id, n)
		}
	}
	var failed filing.Result
	raw, _ := pipelinetest.Get(t, s3c, bucket, fmt.Sprintf("failed/customers/%s/3-bad-rows.csv%s", time.Now().UTC().Format("2006/01/02"), layout.ResultSuffix))
	if json.Unmarshal(raw, &failed) != nil || len(failed.Errors) != 1 || failed.StagingErrorFile == "" || failed.TargetErrorKeysFile == "" {
		t.Errorf("failed result = %s", raw)
	}
}
