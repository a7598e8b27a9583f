package localrun_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/local/localrun"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
)

// shortVisibility sets a queue's visibility timeout to 1 s, the least SQS
// allows.
func shortVisibility(t *testing.T, c *sqs.Client, url string) {
	t.Helper()
	if _, err := c.SetQueueAttributes(context.Background(), &sqs.SetQueueAttributesInput{QueueUrl: &url,
		Attributes: map[string]string{"VisibilityTimeout": "1"}}); err != nil {
		t.Fatal(err)
	}
}

// A batch item failure on the second of four records of one group leaves
// three in flight; when their visibility timeout runs out together, they
// must come back in their order. On moto alone the last comes back first.
func TestMotoFIFOKeepsGroupOrderAfterTimeout(t *testing.T) {
	t.Parallel()
	c := mototest.SQS(t)
	url, arn := fifoQueue(t, c, 4)
	shortVisibility(t, c, url)
	var batches [][]string
	m := &localrun.SQSMapping{Queue: &localrun.MotoFIFO{Queue: c, VisibilityTimeout: time.Second}, QueueURL: url, QueueARN: arn,
		Region: "us-east-1", BatchSize: 10,
		Function: localrun.InvokerFunc(func(_ context.Context, p []byte) ([]byte, error) {
			var ev events.SQSEvent
			if err := json.Unmarshal(p, &ev); err != nil {
				t.Fatal(err)
			}
			var bodies []string
			for _, rec := range ev.Records {
				bodies = append(bodies, rec.Body)
			}
			batches = append(batches, bodies)
			var r events.SQSEventResponse
			if len(batches) == 1 { // the first fails from its second record on
				for _, rec := range ev.Records[1:] {
					r.BatchItemFailures = append(r.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
				}
			}
			return json.Marshal(r)
		})}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := m.PollOnce(ctx)
	if err != nil || res.Delivered != 4 || res.Failed != 3 {
		t.Fatalf("first poll: %+v, %v; want 4 delivered, 3 failed", res, err)
	}
	var again []string
	for len(again) < 3 {
		res, err := m.PollOnce(ctx)
		if err != nil {
			t.Fatalf("poll: %v (delivered again so far: %v)", err, again)
		}
		if res.Delivered == 0 {
			select {
			case <-ctx.Done():
				t.Fatalf("delivered again: %v; want m1 m2 m3 (%v)", again, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		again = append(again, batches[len(batches)-1]...)
	}
	if want := []string{"m1", "m2", "m3"}; !slices.Equal(again, want) {
		t.Fatalf("delivered again in the order %v, want %v (batches %v)", again, want, batches)
	}
}

// A message deleted behind MotoFIFO's back is let go: its release finds the
// receipt handle invalid and the receive goes on.
func TestMotoFIFOLetsGoOfMessagesDeletedElsewhere(t *testing.T) {
	t.Parallel()
	c := mototest.SQS(t)
	url, _ := fifoQueue(t, c, 2)
	shortVisibility(t, c, url)
	q := &localrun.MotoFIFO{Queue: c, VisibilityTimeout: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10})
	if err != nil || len(out.Messages) != 2 {
		t.Fatalf("receive: %v, %v; want 2 messages", out, err)
	}
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: out.Messages[1].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	for {
		out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatalf("receive after a delete elsewhere: %v", err)
		}
		if len(out.Messages) > 0 {
			if len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != "m0" {
				t.Fatalf("got %d messages, the first %q; want m0 alone", len(out.Messages), aws.ToString(out.Messages[0].Body))
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("m0 never came back: %v", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
