package cli_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/ops/cli"
	"github.com/fno-bridge/s3-fno/internal/ops/redrive"
	"github.com/fno-bridge/s3-fno/internal/ops/where"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// TestRedriveInOrder: files whose enqueue kept failing end in the import
// dead-letter queue; once F&O is back, redrive moves them to the import
// queue in their order, in their message group, lists their
// files, and the enqueue function sends them to F&O in that order. A
// second redrive finds nothing to move.
func TestRedriveInOrder(t *testing.T) {
	r := newRig(t, pipelinetest.Routes, pipelinetest.FIFO{MaxReceiveCount: 2}, func(c *d365.Config) { c.Retry.MaxAttempts = 1 })
	table, err := routes.Parse(pipelinetest.Routes)
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := table.Lookup("customers")
	var keys []string
	for _, name := range []string{"r1.csv", "r2.csv", "r3.csv"} {
		key := "inbound/customers/" + name
		v, etag := pipelinetest.Put(t, r.w.S3, r.w.Bucket, key, []byte(name))
		pipelinetest.SendFile(t, r.w.SQS, r.w.Queue, rt.GroupID(), importmsg.File{Bucket: r.w.Bucket, Key: key, VersionID: v, ETag: etag,
			Size: int64(len(name)), Route: "customers", EventTime: time.Now().UTC()})
		keys = append(keys, key)
	}
	r.emu.Inject(d365test.Fault{Endpoint: "enqueue", Status: 500})
	r.enqueueAll()
	if n := pipelinetest.Depth(t, r.w.SQS, r.w.DLQ); n != 3 {
		t.Fatalf("%d messages in the dead-letter queue, want the 3 files'", n)
	}
	r.emu.ClearFaults()

	// where finds a file there, and its look takes nothing out.
	if e := whereOne(t, r, "r2.csv"); e.Stage != where.DeadLetter || e.At.IsZero() || !strings.Contains(e.Note, "s3fno redrive") {
		t.Errorf("where r2.csv: %+v", e)
	}
	if n := pipelinetest.Depth(t, r.w.SQS, r.w.DLQ); n != 3 {
		t.Fatalf("%d messages in the dead-letter queue after where, want all 3", n)
	}

	// A send that fails moves nothing: every message stays, visible.
	var stopped redrive.Report
	gone := r.w.Queue[:len(r.w.Queue)-len(".fifo")] + "-gone.fifo"
	if code := r.runJSON(&stopped, "redrive", "--import-queue", gone); code != cli.ExitProblems || len(stopped.Moved) != 0 ||
		!strings.Contains(stopped.Problem, "stays in the dead-letter queue") {
		t.Errorf("redrive to a missing queue: exit %d, %+v", code, stopped)
	}
	if n := pipelinetest.Depth(t, r.w.SQS, r.w.DLQ); n != 3 {
		t.Fatalf("%d messages in the dead-letter queue after a failed redrive, want all 3", n)
	}

	// Another reader holds the group's first message for a moment: the
	// queue is not reported empty, and nothing moves out of order.
	held, err := r.w.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &r.w.DLQ, MaxNumberOfMessages: 1, VisibilityTimeout: 60})
	if err != nil || len(held.Messages) != 1 {
		t.Fatalf("hold a dead letter: %v %+v", err, held)
	}
	var waiting redrive.Report
	if code := r.runJSON(&waiting, "redrive"); code != cli.ExitProblems || len(waiting.Moved) != 0 || !strings.Contains(waiting.Problem, "held by another reader") {
		t.Errorf("redrive while a dead letter is held: exit %d, %+v", code, waiting)
	}
	if _, err := r.w.SQS.ChangeMessageVisibility(context.Background(), &sqs.ChangeMessageVisibilityInput{QueueUrl: &r.w.DLQ,
		ReceiptHandle: held.Messages[0].ReceiptHandle, VisibilityTimeout: 0}); err != nil {
		t.Fatal(err)
	}

	var rep redrive.Report
	if code := r.runJSON(&rep, "redrive"); code != cli.ExitOK || len(rep.Moved) != 3 || rep.Problem != "" {
		t.Fatalf("redrive: exit %d, %+v", code, rep)
	}
	var printed strings.Builder
	if err := rep.Table(&printed); err != nil {
		t.Fatal(err)
	}
	t.Logf("s3fno redrive:\n%s", printed.String())
	for i, m := range rep.Moved {
		if m.Kind != "file" || m.Key != keys[i] || m.Group != rt.GroupID() || m.DedupID == "" || m.NewMessageID == "" {
			t.Errorf("moved #%d: %+v, want %s in group %s", i+1, m, keys[i], rt.GroupID())
		}
	}
	if n := pipelinetest.Depth(t, r.w.SQS, r.w.DLQ); n != 0 {
		t.Errorf("%d messages left in the dead-letter queue", n)
	}
	r.enqueueAll()
	var sent []string
	for _, m := range r.emu.Messages() {
		sent = append(sent, m.ExternalID)
	}
	if strings.Join(sent, ",") != strings.Join(keys, ",") {
		t.Errorf("F&O got %v, want %v in that order", sent, keys)
	}
	code, out, _ := r.run("redrive")
	if code != cli.ExitOK || !strings.Contains(out, "empty") {
		t.Errorf("second redrive: exit %d\n%s", code, out)
	}
	var stdout, stderr bytes.Buffer
	code = cli.Main(context.Background(), []string{"redrive", "--bucket", r.w.Bucket, "--endpoint-url", mototest.Endpoint(t)}, &stdout, &stderr)
	if code != cli.ExitUsage || !strings.Contains(stderr.String(), "--import-dlq") {
		t.Errorf("redrive without the queues: exit %d, %s", code, stderr.String())
	}
}
