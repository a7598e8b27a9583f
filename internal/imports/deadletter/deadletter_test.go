package deadletter_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/imports/deadletter"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

// A look at a FIFO dead-letter queue reaches every group's first messages
// (one receive would stop at the first group's) and leaves every message
// there, visible at once: a redrive right after it moves them all.
func TestPeekSeesEveryGroupAndTakesNothing(t *testing.T) {
	w := pipelinetest.NewImports(t, pipelinetest.FIFO{MaxReceiveCount: 2})
	ctx := context.Background()
	var want []string
	for _, g := range []string{"Customers", "Vendors", "Currencies"} {
		for i := range 12 {
			body := fmt.Sprintf("%s-%02d", g, i)
			if _, err := w.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &w.DLQ, MessageBody: &body,
				MessageGroupId: aws.String(g), MessageDeduplicationId: &body}); err != nil {
				t.Fatal(err)
			}
			if i < 10 {
				want = append(want, body)
			}
		}
	}
	msgs, err := deadletter.Peek(ctx, w.SQS, w.DLQ, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, aws.ToString(m.Body))
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("read %v\nwant each group's first ten: %v", got, want)
	}
	// Everything is there and visible: a receive now gets a group's head.
	if n := pipelinetest.Depth(t, w.SQS, w.DLQ); n != 36 {
		t.Fatalf("%d messages left, want all 36", n)
	}
	out, err := w.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &w.DLQ, MaxNumberOfMessages: 10})
	if err != nil || len(out.Messages) == 0 || !strings.HasSuffix(aws.ToString(out.Messages[0].Body), "-00") {
		t.Fatalf("a receive after the look: %d messages (%v), want a group's first", len(out.Messages), err)
	}
}

// At most max messages are read.
func TestPeekStopsAtMax(t *testing.T) {
	w := pipelinetest.NewImports(t, pipelinetest.FIFO{MaxReceiveCount: 2})
	ctx := context.Background()
	for i := range 5 {
		body := fmt.Sprint("m", i)
		if _, err := w.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &w.DLQ, MessageBody: &body,
			MessageGroupId: aws.String(body), MessageDeduplicationId: &body}); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := deadletter.Peek(ctx, w.SQS, w.DLQ, 3)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("read %d (%v), want 3", len(msgs), err)
	}
}
