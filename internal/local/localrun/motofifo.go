package localrun

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
)

// MotoQueue is what MotoFIFO needs of the queue it wraps: the calls of the
// mapping, and ChangeMessageVisibility. *sqs.Client has them.
type MotoQueue interface {
	SQSQueue
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// MotoFIFO is the SQSQueue of a mapping on a FIFO queue of moto_server; it
// has no place in front of AWS. When several in-flight messages of one group
// time out together, moto hands out a later one first and breaks the group's
// order; real SQS does not.
//
// So MotoFIFO keeps the visibility timeout itself: it receives with a far
// longer one and, before each receive, makes the messages whose timeout has
// passed visible again in the order received (ChangeMessageVisibility 0).
// Nothing comes back earlier than on AWS. Every consumer of the queue must
// receive through the same MotoFIFO.
type MotoFIFO struct {
	Queue MotoQueue
	// VisibilityTimeout is the queue's visibility timeout (a receive that
	// sets its own uses that). Required.
	VisibilityTimeout time.Duration

	mu       sync.Mutex
	inFlight []motoInFlight // received, not deleted, in the order received
}

type motoInFlight struct {
	queueURL, messageID, receipt string
	until                        time.Time // visible again on the queue by then
}

var _ SQSQueue = (*MotoFIFO)(nil)

// ReceiveMessage releases the messages whose visibility timeout has passed,
// then receives, holding what it receives until MotoFIFO releases it.
func (q *MotoFIFO) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	vt := q.VisibilityTimeout
	if in.VisibilityTimeout > 0 {
		vt = time.Duration(in.VisibilityTimeout) * time.Second
	}
	if vt <= 0 {
		return nil, errors.New("localrun.MotoFIFO: VisibilityTimeout not set")
	}
	if err := q.release(ctx); err != nil {
		return nil, err
	}
	hold := *in
	hold.VisibilityTimeout = int32(min(vt+time.Hour, 12*time.Hour) / time.Second)
	out, err := q.Queue.ReceiveMessage(ctx, &hold, opts...)
	if err != nil || len(out.Messages) == 0 {
		return out, err
	}
	until := time.Now().Add(vt)
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range out.Messages {
		id := aws.ToString(m.MessageId)
		// A message handed out again ends its earlier delivery: releasing
		// that one's receipt handle (moto honours old ones) would make the
		// new delivery visible early.
		for i := 0; i < len(q.inFlight); i++ {
			if q.inFlight[i].messageID == id && q.inFlight[i].queueURL == aws.ToString(in.QueueUrl) {
				q.inFlight = append(q.inFlight[:i:i], q.inFlight[i+1:]...)
				i--
			}
		}
		q.inFlight = append(q.inFlight, motoInFlight{queueURL: aws.ToString(in.QueueUrl), messageID: id,
			receipt: aws.ToString(m.ReceiptHandle), until: until})
	}
	return out, nil
}

// release makes the messages in flight whose visibility timeout has passed
// visible, in the order received.
func (q *MotoFIFO) release(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	var keep []motoInFlight
	for i, m := range q.inFlight {
		if now.Before(m.until) {
			keep = append(keep, m)
			continue
		}
		_, err := q.Queue.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &m.queueURL,
			ReceiptHandle: &m.receipt, VisibilityTimeout: 0})
		var ae smithy.APIError
		if err != nil && !(errors.As(err, &ae) && ae.ErrorCode() == "ReceiptHandleIsInvalid") {
			// Those released so far are gone; this one and the rest stay.
			q.inFlight = append(keep, q.inFlight[i:]...)
			return fmt.Errorf("make an expired message visible on %s: %w", m.queueURL, err)
		}
	}
	q.inFlight = keep
	return nil
}

// DeleteMessageBatch deletes, and forgets the messages deleted.
func (q *MotoFIFO) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	out, err := q.Queue.DeleteMessageBatch(ctx, in, opts...)
	if err != nil {
		return out, err
	}
	receipts := map[string]string{} // entry ID -> receipt handle
	for _, e := range in.Entries {
		receipts[aws.ToString(e.Id)] = aws.ToString(e.ReceiptHandle)
	}
	deleted := map[string]bool{}
	for _, s := range out.Successful {
		deleted[receipts[aws.ToString(s.Id)]] = true
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	keep := q.inFlight[:0]
	for _, m := range q.inFlight {
		if !deleted[m.receipt] || m.queueURL != aws.ToString(in.QueueUrl) {
			keep = append(keep, m)
		}
	}
	q.inFlight = keep
	return out, nil
}
