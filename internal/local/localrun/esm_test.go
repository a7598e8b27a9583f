package localrun_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/fno-bridge/s3-fno/internal/local/localrun"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mototest.Stop()
	os.Exit(code)
}

// fifoQueue makes a FIFO queue holding bodies m0..m(n-1) in one group.
func fifoQueue(t *testing.T, c *sqs.Client, n int) (url, arn string) {
	t.Helper()
	ctx := context.Background()
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(mototest.Name("q") + ".fifo"),
		Attributes: map[string]string{"FifoQueue": "true", "VisibilityTimeout": "60"},
	})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: out.QueueUrl, MessageBody: aws.String(fmt.Sprintf("m%d", i)),
			MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	return *out.QueueUrl, attrs.Attributes["QueueArn"]
}

func visibleCount(t *testing.T, c *sqs.Client, url string) (visible, inFlight string) {
	t.Helper()
	a, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	return a.Attributes["ApproximateNumberOfMessages"], a.Attributes["ApproximateNumberOfMessagesNotVisible"]
}

func TestSQSMappingHonoursBatchItemFailures(t *testing.T) {
	c := mototest.SQS(t)
	tests := []struct {
		name        string
		fn          func(ev events.SQSEvent) ([]byte, error)
		wantFailed  int
		wantInFlght string // messages left for redelivery (deleted ones are gone)
	}{
		{"all succeed", func(events.SQSEvent) ([]byte, error) { return []byte(`{"batchItemFailures":[]}`), nil }, 0, "0"},
		{"second of four fails: it and the rest stay", func(ev events.SQSEvent) ([]byte, error) {
			var r events.SQSEventResponse
			for _, rec := range ev.Records[1:] {
				r.BatchItemFailures = append(r.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
			}
			return json.Marshal(r)
		}, 3, "3"},
		{"function error fails the batch", func(events.SQSEvent) ([]byte, error) { return nil, errors.New("boom") }, 4, "4"},
		{"unknown item identifier fails the batch", func(events.SQSEvent) ([]byte, error) {
			return []byte(`{"batchItemFailures":[{"itemIdentifier":"nope"}]}`), nil
		}, 4, "4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, arn := fifoQueue(t, c, 4)
			var got events.SQSEvent
			m := &localrun.SQSMapping{Queue: c, QueueURL: url, QueueARN: arn, Region: "us-east-1",
				Function: localrun.InvokerFunc(func(_ context.Context, p []byte) ([]byte, error) {
					if err := json.Unmarshal(p, &got); err != nil {
						t.Fatal(err)
					}
					return tt.fn(got)
				})}
			res, err := m.PollOnce(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res.Delivered != 4 || res.Failed != tt.wantFailed {
				t.Fatalf("result %+v, want 4 delivered, %d failed", res, tt.wantFailed)
			}
			for i, rec := range got.Records {
				if rec.Body != fmt.Sprintf("m%d", i) || rec.EventSource != "aws:sqs" || rec.EventSourceARN != arn ||
					rec.Attributes["MessageGroupId"] != "g" || rec.Attributes["ApproximateReceiveCount"] != "1" {
					t.Fatalf("record %d = %+v", i, rec)
				}
			}
			if vis, inflight := visibleCount(t, c, url); vis != "0" || inflight != tt.wantInFlght {
				t.Fatalf("queue: %s visible, %s in flight; want 0 and %s", vis, inflight, tt.wantInFlght)
			}
		})
	}
}
