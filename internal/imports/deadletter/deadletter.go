// Package deadletter reads the import dead-letter queue without taking
// anything out of it, for those who tell of its messages (the poller) or
// look for one (s3fno where). Moving them back is s3fno redrive's.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Queue is the part of SQS a look at the queue needs.
type Queue interface {
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	ChangeMessageVisibilityBatch(context.Context, *sqs.ChangeMessageVisibilityBatchInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

var _ Queue = (*sqs.Client)(nil)

// scanTimeout hides what a look has read while it reads on: in a FIFO
// queue the next receive reaches another group only while the messages
// handed out are in flight. Should the process die mid-look, they are
// visible again this long after.
const scanTimeout = 30

// Peek returns up to max of the queue's messages and leaves every one
// there, visible again when it returns. A FIFO queue hands out a group's
// messages only while none of the group is in flight, so a look sees the
// first messages of each group (up to ten), not those queued behind them.
// On an error the messages read so far are returned with it (and made
// visible again too).
func Peek(ctx context.Context, q Queue, url string, max int) ([]sqstypes.Message, error) {
	var msgs []sqstypes.Message
	var err error
	for len(msgs) < max {
		var out *sqs.ReceiveMessageOutput
		out, err = q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: int32(min(10, max-len(msgs))),
			VisibilityTimeout: scanTimeout, MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{
				sqstypes.MessageSystemAttributeNameSentTimestamp}}) // when it was first sent, for where
		if err != nil {
			err = fmt.Errorf("read the dead-letter queue %s: %w", url, err)
			break
		}
		if len(out.Messages) == 0 {
			break
		}
		msgs = append(msgs, out.Messages...)
	}
	return msgs, errors.Join(err, showAgain(context.WithoutCancel(ctx), q, url, msgs))
}

// showAgain makes msgs visible at once (ten to a request, as SQS takes
// them). The receive cannot: the SDK does not send a VisibilityTimeout of
// 0 with it.
func showAgain(ctx context.Context, q Queue, url string, msgs []sqstypes.Message) error {
	var errs []error
	for start := 0; start < len(msgs); start += 10 {
		in := &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &url}
		for i, m := range msgs[start:min(start+10, len(msgs))] {
			in.Entries = append(in.Entries, sqstypes.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
		}
		out, err := q.ChangeMessageVisibilityBatch(ctx, in)
		if err == nil && len(out.Failed) > 0 {
			err = fmt.Errorf("%d of %d failed, the first: %s", len(out.Failed), len(in.Entries), aws.ToString(out.Failed[0].Message))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("make dead letters read visible again (they are, %d s after the read): %w", scanTimeout, err))
		}
	}
	return errors.Join(errs...)
}
