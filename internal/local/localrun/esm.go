package localrun

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Invoker runs a function with a payload and returns its response. A
// function error (the handler returned an error, crashed or timed out) is an
// error.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// InvokerFunc adapts a function to Invoker.
type InvokerFunc func(ctx context.Context, payload []byte) ([]byte, error)

// Invoke calls f.
func (f InvokerFunc) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return f(ctx, payload)
}

// SQSQueue is the part of the SQS API the mapping uses.
type SQSQueue interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// SQSMapping is one event source mapping with ReportBatchItemFailures: it
// receives a batch, invokes the function with an events.SQSEvent, and
// deletes every message the function did not report as failed. Failed
// messages are left alone and come back after the queue's visibility
// timeout, as on Lambda; after maxReceiveCount the queue's redrive policy
// moves them to the dead-letter queue.
//
// On a FIFO queue of moto_server, Queue is a MotoFIFO: moto alone breaks a
// group's order when several of its messages time out together.
type SQSMapping struct {
	Queue     SQSQueue
	QueueURL  string
	QueueARN  string
	BatchSize int32 // 1-10; default 10
	Region    string
	Function  Invoker
	// WaitSeconds is the receive long-poll time; default 0 (return at once).
	WaitSeconds int32
}

// BatchResult says what one poll did.
type BatchResult struct {
	Delivered int   // records handed to the function
	Failed    int   // records reported as failed (or all, on a function error)
	Err       error // the function error, if the whole batch failed
}

// PollOnce receives at most one batch and hands it to the function.
func (m *SQSMapping) PollOnce(ctx context.Context) (BatchResult, error) {
	n := m.BatchSize
	if n <= 0 || n > 10 {
		n = 10
	}
	out, err := m.Queue.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    &m.QueueURL,
		MaxNumberOfMessages:         n,
		WaitTimeSeconds:             m.WaitSeconds,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		return BatchResult{}, fmt.Errorf("receive from %s: %w", m.QueueURL, err)
	}
	if len(out.Messages) == 0 {
		return BatchResult{}, nil
	}
	ev := m.event(out.Messages)
	payload, err := json.Marshal(ev)
	if err != nil {
		return BatchResult{}, err
	}
	res := BatchResult{Delivered: len(ev.Records)}
	resp, ferr := m.Function.Invoke(ctx, payload)
	failed, err := failedIDs(resp, ev)
	if ferr != nil || err != nil {
		// A function error, or a malformed answer, fails the whole batch.
		res.Failed, res.Err = len(ev.Records), ferr
		if ferr == nil {
			res.Err = err
		}
		return res, nil
	}
	res.Failed = len(failed)
	var del []types.DeleteMessageBatchRequestEntry
	for i, msg := range out.Messages {
		if failed[aws.ToString(msg.MessageId)] {
			continue
		}
		del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: msg.ReceiptHandle})
	}
	if len(del) > 0 {
		dout, err := m.Queue.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &m.QueueURL, Entries: del})
		if err != nil {
			return res, fmt.Errorf("delete from %s: %w", m.QueueURL, err)
		}
		if len(dout.Failed) > 0 {
			return res, fmt.Errorf("delete from %s: %d entries failed", m.QueueURL, len(dout.Failed))
		}
	}
	return res, nil
}

// failedIDs reads the function's SQSEventResponse. As on Lambda, an
// itemIdentifier that names no record of the batch fails the whole batch.
func failedIDs(resp []byte, ev events.SQSEvent) (map[string]bool, error) {
	failed := map[string]bool{}
	if len(resp) == 0 || string(resp) == "null" {
		return failed, nil
	}
	var r events.SQSEventResponse
	if err := json.Unmarshal(resp, &r); err != nil {
		return nil, fmt.Errorf("batch response is not an SQSEventResponse: %w", err)
	}
	known := map[string]bool{}
	for _, rec := range ev.Records {
		known[rec.MessageId] = true
	}
	for _, f := range r.BatchItemFailures {
		if !known[f.ItemIdentifier] {
			return nil, fmt.Errorf("batch response names unknown item %q", f.ItemIdentifier)
		}
		failed[f.ItemIdentifier] = true
	}
	return failed, nil
}

// event builds the event Lambda would deliver for these messages.
func (m *SQSMapping) event(msgs []types.Message) events.SQSEvent {
	var ev events.SQSEvent
	for _, msg := range msgs {
		attrs := map[string]string{}
		for k, v := range msg.Attributes {
			attrs[k] = v
		}
		rec := events.SQSMessage{
			MessageId:      aws.ToString(msg.MessageId),
			ReceiptHandle:  aws.ToString(msg.ReceiptHandle),
			Body:           aws.ToString(msg.Body),
			Md5OfBody:      aws.ToString(msg.MD5OfBody),
			Attributes:     attrs,
			EventSource:    "aws:sqs",
			EventSourceARN: m.QueueARN,
			AWSRegion:      m.Region,
		}
		if len(msg.MessageAttributes) > 0 {
			rec.MessageAttributes = map[string]events.SQSMessageAttribute{}
			for k, v := range msg.MessageAttributes {
				rec.MessageAttributes[k] = events.SQSMessageAttribute{
					DataType: aws.ToString(v.DataType), StringValue: v.StringValue, BinaryValue: v.BinaryValue,
				}
			}
		}
		ev.Records = append(ev.Records, rec)
	}
	return ev
}
