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

// MotoFIFO is the SQSQueue of a mapping on a FIFO queue of moto_server. It
// works around a gap in moto that real SQS does not have, and has no place
// in front of AWS.
//
// The gap: when several messages of one group are left in flight (a batch
// item failure returns a record and the rest of its batch, or a function
// error the whole batch) and their visibility timeout runs out together,
// moto's receive skips the first because its group-mates still count as in
// flight, and hands out a later one; the group's order is broken. (With a
// batch size of 1 at most one message of a group is in flight, and the gap
// never shows.)
//
// The workaround: MotoFIFO keeps the visibility timeout itself. It receives
// with a far longer one (moto never lets a message go on its own: its
// timeout running out unseen, a moment before MotoFIFO's, would open the
// gap again), and remembers the messages it received and that were not
// deleted through it. Before each receive, those whose VisibilityTimeout
// has passed since the receive that handed them out returned are made
// visible, in the order they were received, with ChangeMessageVisibility
// 0, which also clears moto's bookkeeping. Nothing comes back earlier than
// on AWS.
//
// Every consumer of the queue receives through one MotoFIFO: what it
// received comes back only at its next receive (or an hour after its
// timeout). A message deleted behind its back is let go when its release
// finds the receipt handle invalid.
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
