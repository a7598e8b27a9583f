package where

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/fno-bridge/s3-fno/internal/imports/deadletter"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
)

// maxDeadLetters bounds the dead letters one look reads.
const maxDeadLetters = 200

// deadLetters marks the versions waiting in inbound/ (released or not)
// whose message is in the import dead-letter queue, after one look at it
// that takes nothing out. A look that fails leaves them as they were, with
// a note saying so; so does a message queued behind more of its group than
// a look sees.
func (f *Finder) deadLetters(ctx context.Context, found []Entry) {
	if f.DLQ == nil || f.DLQURL == "" || !slices.ContainsFunc(found, waiting) {
		return
	}
	msgs, err := deadletter.Peek(ctx, f.DLQ, f.DLQURL, maxDeadLetters)
	dead := map[string]time.Time{} // identity -> when the message was first sent
	for _, m := range msgs {
		msg, derr := importmsg.Decode([]byte(aws.ToString(m.Body)))
		if derr != nil || msg.File == nil {
			continue
		}
		dead[msg.File.Identity()] = sentAt(m.Attributes["SentTimestamp"])
	}
	for i := range found {
		e := &found[i]
		if !waiting(*e) {
			continue
		}
		if at, ok := dead[e.Identity]; ok {
			e.Stage, e.At = DeadLetter, at
			e.Note = "its message is in the import dead-letter queue: the enqueue function failed on it at every delivery (its logs " +
				"for this key say why) and its route's later files went on without it; fix the cause, then s3fno redrive sends it back in order"
			continue
		}
		if err != nil {
			e.Note += "; the import dead-letter queue could not be looked at: " + err.Error()
		}
	}
}

// waiting: in inbound/, not sent.
func waiting(e Entry) bool { return e.Stage == Inbound || e.Stage == Released }

// sentAt reads SQS's SentTimestamp (milliseconds since the epoch).
func sentAt(ms string) time.Time {
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}
