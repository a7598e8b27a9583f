package dequeue_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// F&O holds the dequeue answer past the invocation's deadline: the run
// stops for the deadline, before it (Lambda would otherwise time the
// function out), and the export is handed out again later.
func TestSlowDequeueStopsBeforeDeadline(t *testing.T) {
	t.Parallel()
	v := newEnv(t, d365test.Options{})
	corr := v.e.QueueExport(actA, d365test.Export{Body: []byte("late")})
	v.e.Inject(d365test.Fault{Endpoint: "dequeue", Count: 1, Delay: time.Hour}) // until the client gives up
	h := v.handler(func(c *dequeue.Config) { c.DeadlineMargin = 2 * time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	sum, err := h.Handle(ctx, json.RawMessage(input("cg", actA, "")))
	if ctx.Err() != nil {
		t.Fatal("the run went on to the invocation's deadline")
	}
	if err != nil || !sum.StoppedForDeadline || !sum.MoreMayRemain || sum.Dequeued != 0 {
		t.Fatalf("summary %+v, error %v; want stopped for the deadline, not an error", sum, err)
	}
	v.e.Advance(31 * time.Minute)
	if again := v.run(h, input("cg", actA, "")); again.Landed != 1 || again.Acked != 1 {
		t.Fatalf("later run: %+v", again)
	}
	if got := v.e.Acked(actA); len(got) != 1 || got[0] != corr {
		t.Fatalf("acked %v", got)
	}
}

// TestDownloadPastTheFileDeadlineIsTold: a download still running at the
// file's own deadline fails the file; the person hears of it all the same
// (the notification goes out on the seconds the run keeps past that
// deadline, not on the expired context), and the export is not
// acknowledged.
func TestDownloadPastTheFileDeadlineIsTold(t *testing.T) {
	t.Parallel()
	v := newPkgEnv(t, d365test.Options{})
	v.e.QueueExport(actA, d365test.Export{Body: []byte("slow")})
	v.e.Inject(d365test.Fault{Endpoint: "download", Count: 1, Delay: time.Hour}) // until the client gives up
	h := v.handler(func(c *dequeue.Config) { c.DeadlineMargin = 2 * time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	sum, _ := h.Handle(ctx, json.RawMessage(input("cg", actA, "")))
	if sum.Failed != 1 || sum.Acked != 0 || len(sum.Files) != 1 || sum.Files[0].Stage != "download" {
		t.Fatalf("summary %+v", sum)
	}
	if got := v.subjects(); len(got) != 1 || !strings.Contains(got[0], "export-failed: cg: download") {
		t.Fatalf("notifications %q; want the failed download told", got)
	}
	if len(v.e.Acked(actA)) != 0 {
		t.Fatal("acknowledged")
	}
}

// TestMissingFileIsToldOnce: an export handed out without a file is told
// to a person once, however often F&O hands it out again.
func TestMissingFileIsToldOnce(t *testing.T) {
	t.Parallel()
	v := newPkgEnv(t, d365test.Options{})
	v.e.QueueExport(actA, d365test.Export{Body: []byte("x")})
	v.e.Inject(d365test.Fault{Endpoint: "dequeue", FileMissing: true}) // every time it is handed out
	h := v.handler(nil)
	for i := 0; i < 2; i++ {
		if sum := v.run(h, input("cg", actA, "")); sum.MissingFiles != 1 || sum.Acked != 0 {
			t.Fatalf("run %d: %+v", i+1, sum)
		}
		v.e.Advance(31 * time.Minute)
	}
	if got := v.subjects(); len(got) != 1 || !strings.Contains(got[0], "export-failed: cg: no file") {
		t.Fatalf("notifications %q; want one", got)
	}
}
