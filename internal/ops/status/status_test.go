package status_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/imports/pause"
	"github.com/fno-bridge/s3-fno/internal/local/s3fake"
	"github.com/fno-bridge/s3-fno/internal/ops/status"
	"github.com/fno-bridge/s3-fno/internal/shared/config"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
)

// counted counts the requests the view makes.
type counted struct {
	*s3fake.S3
	n atomic.Int64
}

func (c *counted) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	c.n.Add(1)
	return c.S3.GetObject(ctx, in, o...)
}

func (c *counted) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, o ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	c.n.Add(1)
	return c.S3.ListObjectsV2(ctx, in, o...)
}

const bucket = "b"

// stackWith is a bucket with n imports in flight over routes routes (a
// tenth not checked by the poller yet), a tenth of each route's files
// still waiting, the first route paused, and jobs export jobs, each run
// once.
func stackWith(t testing.TB, n, routes, jobs int) (*counted, *config.Document) {
	t.Helper()
	fake := s3fake.New()
	l := layout.Default()
	doc, err := config.Parse(config.Sample(routes, jobs), nil)
	if err != nil {
		t.Fatal(err)
	}
	board := ledger.Board{UpdatedAt: time.Now().UTC(), Imports: map[string]ledger.BoardEntry{}}
	for i := range n {
		route := fmt.Sprintf("route-%04d", i%routes)
		id := fmt.Sprintf("id-%06d", i)
		key := l.InboundKey(route, fmt.Sprintf("file-%06d.csv", i))
		fake.Put(bucket, key, []byte("x"), "", "")
		fake.Put(bucket, l.ReleasedKey(route, id), []byte("{}"), "", "")
		if i%10 != 0 {
			board.Imports[id] = ledger.BoardEntry{Route: route, Key: key, Status: []string{"Queued", "InProcess"}[i%2], Stuck: i%100 == 1}
		}
	}
	for i := range n / 10 {
		route := fmt.Sprintf("route-%04d", i%routes)
		fake.Put(bucket, l.InboundKey(route, fmt.Sprintf("waiting-%06d.csv", i)), []byte("x"), "", "")
	}
	b, _ := json.Marshal(board)
	fake.Put(bucket, l.BoardKey(), b, "", "")
	if _, err := pause.Set(context.Background(), fake, bucket, l, pause.Marker{Route: "route-0000", By: "ops", Reason: "maintenance"}); err != nil {
		t.Fatal(err)
	}
	for _, j := range doc.Jobs {
		fake.Put(bucket, l.JobStatusPrefix()+j.Name+"/last-run.json", []byte("{}"), "", "")
	}
	return &counted{S3: fake}, doc
}

// TestStatusAtScale: with ten thousand imports in flight over fifty routes
// and two hundred export jobs, the view is right and costs at most 200
// requests.
func TestStatusAtScale(t *testing.T) {
	c, doc := stackWith(t, 10_000, 50, 200)
	v := &status.Viewer{S3: c, Bucket: bucket, Layout: layout.Default(), Doc: doc}
	rep, err := v.View(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := c.n.Load(); got > 200 {
		t.Errorf("%d requests, want at most 200", got)
	}
	t.Logf("%d requests", c.n.Load())
	if len(rep.Routes) != 50 || len(rep.Jobs) != 200 {
		t.Fatalf("%d routes, %d jobs", len(rep.Routes), len(rep.Jobs))
	}
	r0 := rep.Routes[0]
	if r0.Route != "route-0000" || r0.Paused == nil || r0.Paused.Reason != "maintenance" {
		t.Errorf("route-0000: %+v, want paused", r0)
	}
	total, waiting, stuck := 0, 0, 0
	for _, r := range rep.Routes {
		total += r.InFlight
		waiting += r.Waiting
		stuck += r.Stuck
		if r.Statuses[status.NotChecked]+r.Statuses["Queued"]+r.Statuses["InProcess"] != r.InFlight || r.Oldest.IsZero() {
			t.Errorf("%s: %+v", r.Route, r)
		}
	}
	if total != 10_000 || waiting != 1_000 || stuck != 100 {
		t.Errorf("in flight %d, waiting %d, stuck %d; want 10000, 1000, 100", total, waiting, stuck)
	}
	if j := rep.Jobs[0]; j.LastRun.IsZero() || j.NextRun.IsZero() || !j.Enabled {
		t.Errorf("job %+v", j)
	}
}

// BenchmarkStatus reports the requests a view costs as imports in flight
// grow: they follow listings (a thousand keys each), not records.
func BenchmarkStatus(b *testing.B) {
	for _, n := range []int{100, 1_000, 10_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c, doc := stackWith(b, n, 50, 200)
			v := &status.Viewer{S3: c, Bucket: bucket, Layout: layout.Default(), Doc: doc}
			c.n.Store(0)
			for b.Loop() {
				if _, err := v.View(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(c.n.Load())/float64(b.N), "requests/op")
		})
	}
}

// TestStatusNamesAnExportResult: a dataProject job's last execution, as its
// run record has it (here as the dequeue function writes it), comes with
// the key of its result document when F&O ended it with errors.
func TestStatusNamesAnExportResult(t *testing.T) {
	fake := s3fake.New()
	l := layout.Default()
	doc, err := config.Parse([]byte(`{"routes":[],"jobs":[{"job":"vendors","schedule":"rate(1 hour)","kind":"dataProject",
		"definitionGroupId":"Vendors export","legalEntityId":"USMF"}]}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now().UTC().Add(-time.Hour)
	x := dequeue.ExecutionResult{ExecutionID: "vendors-x1", StartedAt: started, Status: "Failed", Outcome: dequeue.ExecFailed, ErrorRows: 3,
		ResultKey: dequeue.ResultKey(l.Failed, "vendors", started, "vendors-x1", "vendors")}
	rec, _ := json.Marshal(map[string]any{"summary": dequeue.Summary{Job: "vendors", Executions: []dequeue.ExecutionResult{x}}})
	fake.Put(bucket, l.JobStatusPrefix()+"vendors/last-run.json", rec, "", "")
	v := &status.Viewer{S3: fake, Bucket: bucket, Layout: l, Doc: doc, Now: time.Now}
	rep, err := v.View(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Jobs) != 1 || rep.Jobs[0].Execution == nil || rep.Jobs[0].Execution.ResultKey != x.ResultKey || rep.Jobs[0].Execution.Outcome != "failed" {
		t.Fatalf("jobs = %+v", rep.Jobs)
	}
}
