package e2e_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/imports/pause"
	"github.com/fno-bridge/s3-fno/internal/imports/release"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/ops/routectl"
	"github.com/fno-bridge/s3-fno/internal/ops/status"
	"github.com/fno-bridge/s3-fno/internal/shared/config"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// controller is the operator's pause and resume over the rig's stack.
func (r *orderRig) controller(routesJSON string) *routectl.Controller {
	r.t.Helper()
	tbl, err := routes.Parse(routesJSON)
	if err != nil {
		r.t.Fatal(err)
	}
	cfg := release.Config{Config: routes.Config{Bucket: r.w.Bucket, Routes: tbl, Layout: layout.Default()}, QueueURL: r.w.Queue}
	rel, err := release.New(cfg, r.w.S3, r.w.SQS, pipelinetest.Quiet())
	if err != nil {
		r.t.Fatal(err)
	}
	return &routectl.Controller{S3: r.w.S3, Bucket: r.w.Bucket, Layout: layout.Default(), Routes: tbl, Releaser: rel}
}

// sent are the files F&O received, in order.
func (r *orderRig) sent() []string {
	var out []string
	for _, m := range r.emu.Messages() {
		out = append(out, m.ExternalID)
	}
	return out
}

// TestPausedRouteHoldsItsFilesInOrder: a paused route's files wait in
// inbound/ while more arrive, notified in any order and swept; nothing
// reaches F&O and nothing waits in the queue (no receive counts toward
// the dead-letter queue); on resume they all go, in their drop order. The
// other route goes on meanwhile.
func TestPausedRouteHoldsItsFilesInOrder(t *testing.T) {
	ctx := context.Background()
	r := newOrderRig(t)
	ctl := r.controller(orderRoutes)
	res, err := ctl.Pause(ctx, "journal", "ops@example.com", "F&O maintenance tonight")
	if err != nil || !res.Paused || !res.Changed {
		t.Fatalf("pause: %+v %v", res, err)
	}
	if again, _ := ctl.Pause(ctx, "journal", "someone else", "another reason"); again.Changed || again.Marker.Reason != "F&O maintenance tonight" {
		t.Errorf("a second pause replaced the first: %+v", again.Marker)
	}
	r.drop("journal", 4, journalName)
	r.drop("numbered", 2, numberedName)
	bodies := r.notifications()
	rand.New(rand.NewPCG(7, 7)).Shuffle(len(bodies), func(i, j int) { bodies[i], bodies[j] = bodies[j], bodies[i] })
	r.notify(bodies...)
	r.enqueueAll()
	r.drop("journal", 2, func(i int) string { return journalName(4 + i) })
	r.notify(r.notifications()[6:]...)
	r.enqueueAll()
	if _, err := r.poller.Handle(ctx, json.RawMessage(`{}`)); err != nil { // the sweep sees old files: still held
		t.Fatal(err)
	}
	r.enqueueAll()
	if got := r.sent(); len(got) != 2 || !strings.HasPrefix(got[0], "inbound/numbered/") {
		t.Fatalf("while journal is paused F&O got %v, want only numbered's two files", got)
	}
	if n := pipelinetest.Depth(t, r.w.SQS, r.w.Queue); n != 0 {
		t.Errorf("%d messages wait in the import queue while the route is paused; they would count toward the DLQ", n)
	}
	if keys := pipelinetest.Keys(t, r.w.S3, r.w.Bucket, "inbound/journal/"); len(keys) != 6 {
		t.Errorf("inbound/journal/ holds %v, want the six files", keys)
	}

	res, err = ctl.Resume(ctx, "journal")
	if err != nil || !res.Changed || res.Waiting != 6 {
		t.Fatalf("resume: %+v %v", res, err)
	}
	r.enqueueAll()
	r.check()
}

// TestResumeInTheSecondOfAnEarlierRequest: SQS drops a FIFO message whose
// deduplication ID it has seen in the last five minutes, even when that
// message was received and deleted long since (moto keeps the window only
// for messages still queued, so the IDs are compared here). A resume's
// release request made in the same second as one a pass already took (and
// found the route paused) has an ID of its own, and it lets the files go.
func TestResumeInTheSecondOfAnEarlierRequest(t *testing.T) {
	ctx := context.Background()
	r := newOrderRig(t)
	ctl := r.controller(orderRoutes)
	if _, err := ctl.Pause(ctx, "journal", "ops@example.com", "close"); err != nil {
		t.Fatal(err)
	}
	r.drop("journal", 2, journalName)
	rec := &dedupIDs{Sender: r.w.SQS}
	rel, err := release.New(release.Config{Config: routes.Config{Bucket: r.w.Bucket, Routes: ctl.Routes, Layout: layout.Default()}, QueueURL: r.w.Queue},
		r.w.S3, rec, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-2 * time.Second) // one second for both requests
	ctl.Releaser = rel.WithClock(func() time.Time { return at }, func(context.Context, time.Duration) error { return nil })
	rt, _ := ctl.Routes.Lookup("journal")
	if err := ctl.Releaser.Request(ctx, rt, false); err != nil { // the router's, in that second
		t.Fatal(err)
	}
	r.enqueueAll() // its pass finds the route paused
	if got := r.sent(); len(got) != 0 {
		t.Fatalf("F&O got %v while the route was paused", got)
	}
	if _, err := ctl.Resume(ctx, "journal"); err != nil {
		t.Fatal(err)
	}
	if ids := rec.ids; len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("deduplication IDs %v: the resume's request would be dropped as the earlier one's duplicate", ids)
	}
	r.enqueueAll()
	r.check()
	if got := r.sent(); len(got) != 2 {
		t.Fatalf("after the resume F&O got %v, want the two files", got)
	}
}

// dedupIDs records the deduplication IDs sent.
type dedupIDs struct {
	release.Sender
	ids []string
}

func (d *dedupIDs) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, o ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	for _, e := range in.Entries {
		d.ids = append(d.ids, aws.ToString(e.MessageDeduplicationId))
	}
	return d.Sender.SendMessageBatch(ctx, in, o...)
}

// TestPauseOnFailure: a route that asks for it is paused when one of its
// files fails in F&O, and the failure notification says so; a later file
// of the route does not overtake the failed one; resume lets it go.
func TestPauseOnFailure(t *testing.T) {
	ctx := context.Background()
	routesJSON := `[{"route":"journal","activityId":"` + pipelinetest.ActCustomers + `","entity":"Journal","settle":"0s","pauseOnFailure":true}]`
	r := newRigWith(t, routesJSON)
	r.emu.Script(d365test.Rule{ExternalIDContains: "bad", Outcome: d365test.Outcome{Status: "ProcessedWithErrors"}})
	r.drop("journal", 1, func(int) string { return "a-bad.csv" })
	r.notify(r.notifications()...)
	r.enqueueAll()
	r.emu.RunToCompletion()
	if _, err := r.poller.Handle(ctx, json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	m, err := pause.Get(ctx, r.w.S3, r.w.Bucket, layout.Default(), "journal")
	if err != nil || m == nil || m.By != pause.OnFailure || !strings.Contains(m.Reason, "a-bad.csv") {
		t.Fatalf("after the failure the route's pause is %+v (%v)", m, err)
	}
	r.drop("journal", 1, func(int) string { return "b-later.csv" })
	r.notify(r.notifications()[1:]...)
	r.enqueueAll()
	if got := r.sent(); len(got) != 1 {
		t.Fatalf("a later file reached F&O while the route was paused on failure: %v", got)
	}
	if _, err := r.controller(routesJSON).Resume(ctx, "journal"); err != nil {
		t.Fatal(err)
	}
	r.enqueueAll()
	if got := r.sent(); !slices.Equal(got, []string{"inbound/journal/a-bad.csv", "inbound/journal/b-later.csv"}) {
		t.Errorf("F&O got %v", got)
	}
}

// TestStatusFollowsThePipeline: the status view counts a route's files
// waiting (paused) and in flight with F&O's last status as the poller saw
// it, and an import leaves the view once filed.
func TestStatusFollowsThePipeline(t *testing.T) {
	ctx := context.Background()
	r := newOrderRig(t)
	r.emu.Script(d365test.Rule{ExternalIDContains: "slow", Outcome: d365test.Outcome{NeverProcess: true}})
	r.drop("journal", 1, func(int) string { return "a-quick.csv" })
	r.drop("journal", 1, func(int) string { return "b-slow.csv" })
	r.notify(r.notifications()...)
	r.enqueueAll()
	ctl := r.controller(orderRoutes)
	if _, err := ctl.Pause(ctx, "numbered", "ops", "waiting for a fix"); err != nil {
		t.Fatal(err)
	}
	r.drop("numbered", 2, numberedName)
	r.notify(r.notifications()[2:]...)
	r.enqueueAll()
	r.emu.RunToCompletion()
	if _, err := r.poller.Handle(ctx, json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	v := &status.Viewer{S3: r.w.S3, Bucket: r.w.Bucket, Layout: layout.Default(), Doc: &config.Document{Routes: ctl.Routes}}
	rep, err := v.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byRoute := map[string]status.RouteView{}
	for _, rv := range rep.Routes {
		byRoute[rv.Route] = rv
	}
	j, n := byRoute["journal"], byRoute["numbered"]
	if j.InFlight != 1 || j.Waiting != 0 || len(j.Statuses) != 1 || j.Statuses[status.NotChecked] != 0 || j.Paused != nil {
		t.Errorf("journal: %+v, want the slow file in flight with F&O's status", j)
	}
	if n.Paused == nil || n.Waiting != 2 || n.InFlight != 0 {
		t.Errorf("numbered: %+v, want paused with two files waiting", n)
	}
	if rep.BoardUpdatedAt.IsZero() {
		t.Error("the poller wrote no status board")
	}
}
