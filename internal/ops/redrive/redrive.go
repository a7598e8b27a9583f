// Package redrive moves the import dead-letter queue's messages back to the
// import queue, in order, and says which files they carry.
//
// SQS's own move task (StartMessageMoveTask, the console's "start DLQ
// redrive") works on FIFO queues in AWS, but it runs on its own, says
// only how many messages it moved, and moto_server (the stand-in every
// test here runs against) does not implement it. So the messages are moved
// one at a time: received from the dead-letter queue in order (a FIFO
// queue hands out a group's messages oldest first), sent to the import
// queue with the same message group and a deduplication ID of their own
// (RedriveDedupID: the original one would make SQS drop the message if it
// was first sent less than five minutes ago, as on a local stack with short
// timeouts; so would a repeat of one redrive's ID), and deleted from the
// dead-letter queue only once the send succeeded. A run that stops half way
// leaves every message in one queue or, if the delete failed, in both: the
// enqueue function's idempotency marker makes the second copy harmless (a
// file sent already is skipped; a release request is a pass like any
// other).
package redrive

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
)

// SQS is what moving messages calls.
type SQS interface {
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	DeleteMessage(context.Context, *sqs.DeleteMessageInput, ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// Redriver moves one dead-letter queue's messages to one queue.
type Redriver struct {
	SQS   SQS
	DLQ   string // the import dead-letter queue's URL
	Queue string // the import queue's URL
	// Visibility hides a received batch while it is moved (default 120
	// seconds), so no one else takes it meanwhile.
	Visibility int32
}

// Moved is one message moved, and what it carries.
type Moved struct {
	MessageID    string `json:"messageId"`    // in the dead-letter queue
	NewMessageID string `json:"newMessageId"` // in the import queue
	Group        string `json:"group"`
	DedupID      string `json:"dedupId"` // sent with (RedriveDedupID of the original)
	// Kind is "file", "release" (a release request) or "unknown" (a body
	// that is neither: the enqueue function keeps it under
	// rejected/_malformed/).
	Kind      string `json:"kind"`
	Route     string `json:"route,omitempty"`
	Key       string `json:"key,omitempty"`
	VersionID string `json:"versionId,omitempty"`
}

// Report is what a redrive did.
type Report struct {
	From  string  `json:"from"`
	To    string  `json:"to"`
	Moved []Moved `json:"moved"`
	// Problem is why it stopped before the dead-letter queue was empty.
	Problem string `json:"problem,omitempty"`
}

// maxMessages bounds one run (SQS FIFO queues hold at most 120,000
// messages in flight; a dead-letter queue of more is a bigger problem).
const maxMessages = 100000

// Redrive moves every message, in order, until the dead-letter queue is
// empty. A failure stops it; the report says what moved before.
func (r *Redriver) Redrive(ctx context.Context) (Report, error) {
	rep := Report{From: r.DLQ, To: r.Queue, Moved: []Moved{}}
	if r.DLQ == "" || r.Queue == "" {
		return rep, errors.New("redrive: the import queue and its dead-letter queue are needed: give --stack, or --import-queue and --import-dlq")
	}
	vis := r.Visibility
	if vis <= 0 {
		vis = 120
	}
	seen := map[string]bool{}
	for len(rep.Moved) < maxMessages {
		out, err := r.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &r.DLQ, MaxNumberOfMessages: 10, VisibilityTimeout: vis,
			WaitTimeSeconds: 1, MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameMessageGroupId,
				sqstypes.MessageSystemAttributeNameMessageDeduplicationId}})
		if err != nil {
			return r.stop(ctx, rep, nil, fmt.Errorf("receive from the dead-letter queue %s: %w", r.DLQ, err))
		}
		if len(out.Messages) == 0 {
			return r.empty(ctx, rep)
		}
		for i, m := range out.Messages {
			id := aws.ToString(m.MessageId)
			if seen[id] {
				return r.stop(ctx, rep, out.Messages[i:], fmt.Errorf("the dead-letter queue handed out message %s again after it was moved: "+
					"its delete did not take; look at the queue before running again", id))
			}
			seen[id] = true
			mv, err := r.move(ctx, m)
			if err != nil {
				return r.stop(ctx, rep, out.Messages[i:], err)
			}
			rep.Moved = append(rep.Moved, mv)
		}
	}
	return rep, nil
}

// empty ends a redrive whose receive came back empty. Messages another
// reader holds for a moment (the poller and s3fno where look at the queue)
// are not handed out, nor are the later messages of their groups: then the
// queue is not empty, and the report says so.
func (r *Redriver) empty(ctx context.Context, rep Report) (Report, error) {
	out, err := r.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &r.DLQ,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		return rep, nil // not allowed to look (sqs:GetQueueAttributes): as empty as the receive said
	}
	held, _ := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	if held == 0 {
		return rep, nil
	}
	rep.Problem = fmt.Sprintf("%d message(s) in the dead-letter queue are held by another reader for now (the poller and s3fno where "+
		"look at the queue for a moment), and with them the later messages of their groups: run redrive again in a minute", held)
	return rep, errors.New("redrive: " + rep.Problem)
}

// move sends one message to the import queue, then deletes it from the
// dead-letter queue.
func (r *Redriver) move(ctx context.Context, m sqstypes.Message) (Moved, error) {
	id := aws.ToString(m.MessageId)
	mv := describe(m)
	if mv.Group == "" {
		return mv, fmt.Errorf("message %s has no message group: the dead-letter queue is not the FIFO import queue's", id)
	}
	out, err := r.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &r.Queue, MessageBody: m.Body,
		MessageGroupId: &mv.Group, MessageDeduplicationId: &mv.DedupID})
	if err != nil {
		return mv, fmt.Errorf("send message %s (%s) to the import queue %s: %w; it stays in the dead-letter queue", id, mv.what(), r.Queue, err)
	}
	mv.NewMessageID = aws.ToString(out.MessageId)
	if _, err := r.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &r.DLQ, ReceiptHandle: m.ReceiptHandle}); err != nil {
		return mv, fmt.Errorf("message %s (%s) was sent to the import queue but not deleted from the dead-letter queue: %w; "+
			"a later redrive sends it again, which the idempotency marker makes harmless", id, mv.what(), err)
	}
	return mv, nil
}

// describe reads a dead letter: its IDs and the file or route it is about.
func describe(m sqstypes.Message) Moved {
	mv := Moved{MessageID: aws.ToString(m.MessageId), Group: m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageGroupId)],
		DedupID: m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageDeduplicationId)], Kind: "unknown"}
	mv.DedupID = RedriveDedupID(cmp.Or(mv.DedupID, mv.MessageID), aws.ToString(m.ReceiptHandle))
	msg, err := importmsg.Decode([]byte(aws.ToString(m.Body)))
	switch {
	case err != nil:
	case msg.File != nil:
		mv.Kind, mv.Route, mv.Key, mv.VersionID = "file", msg.File.Route, msg.File.Key, msg.File.VersionID
	case msg.Release != nil:
		mv.Kind, mv.Route = "release", msg.Release.Route
	}
	return mv
}

// what is the message's subject for people.
func (m Moved) what() string {
	switch m.Kind {
	case "file":
		return m.Key
	case "release":
		return "a release request for route " + m.Route
	}
	return "not an import message"
}

// stop ends a run on err: the messages received and not moved are made
// visible again at once, so the next run (or a look in the console) finds
// them where they were.
func (r *Redriver) stop(ctx context.Context, rep Report, unmoved []sqstypes.Message, err error) (Report, error) {
	for _, m := range unmoved {
		_, _ = r.SQS.ChangeMessageVisibility(context.WithoutCancel(ctx), &sqs.ChangeMessageVisibilityInput{QueueUrl: &r.DLQ,
			ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
	}
	rep.Problem = err.Error()
	return rep, fmt.Errorf("redrive: %w", err)
}

// RedriveDedupID is the deduplication ID a dead letter is sent back with,
// from its original one and the receipt of this receive: never the
// original (which SQS would drop within five minutes of the first send),
// nor an earlier redrive's (a message dead-lettered again and redriven
// soon after must not be dropped either).
func RedriveDedupID(original, receipt string) string {
	sum := sha256.Sum256([]byte(original + "\x00" + receipt))
	return "redrive-" + hex.EncodeToString(sum[:])
}
