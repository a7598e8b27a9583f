// Package pipelinetest is local test tooling that never ships in a Lambda bootstrap.
//
// It holds what the pipeline's tests share: TestMain, the F&O activities and
// routes, a moto bucket and FIFO queue, the F&O emulator and a client for
// it, S3 notification bodies, a movable clock, and an event source mapping
// stand-in that feeds SQS batches to a handler the way Lambda does (batch
// item failures honoured).
package pipelinetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// FIFO describes a FIFO queue to create.
type FIFO struct {
	// MaxReceiveCount > 0 adds a FIFO dead-letter queue with this redrive.
	MaxReceiveCount int
	// VisibilityTimeout in seconds; default 30.
	VisibilityTimeout int
}

// NewFIFO creates a FIFO queue on moto; dlq is "" without a DLQ.
func NewFIFO(t testing.TB, q *sqs.Client, f FIFO) (queueURL, dlqURL string) {
	t.Helper()
	ctx := context.Background()
	name := mototest.Name("imports")
	attrs := map[string]string{"FifoQueue": "true"}
	vt := f.VisibilityTimeout
	if vt == 0 {
		vt = 30
	}
	attrs["VisibilityTimeout"] = strconv.Itoa(vt)
	if f.MaxReceiveCount > 0 {
		out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq.fifo"),
			Attributes: map[string]string{"FifoQueue": "true"}})
		if err != nil {
			t.Fatalf("create DLQ: %v", err)
		}
		dlqURL = aws.ToString(out.QueueUrl)
		a, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl,
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		if err != nil {
			t.Fatalf("DLQ ARN: %v", err)
		}
		rp, _ := json.Marshal(map[string]any{"deadLetterTargetArn": a.Attributes["QueueArn"], "maxReceiveCount": f.MaxReceiveCount})
		attrs["RedrivePolicy"] = string(rp)
	}
	out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + ".fifo"), Attributes: attrs})
	if err != nil {
		t.Fatalf("create FIFO queue: %v", err)
	}
	return aws.ToString(out.QueueUrl), dlqURL
}

// NewStandard creates a standard queue on moto and returns its URL and ARN.
func NewStandard(t testing.TB, q *sqs.Client, vt int) (queueURL, arn string) {
	t.Helper()
	ctx := context.Background()
	out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(mototest.Name("arrivals")),
		Attributes: map[string]string{"VisibilityTimeout": strconv.Itoa(vt)}})
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	a, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatalf("queue ARN: %v", err)
	}
	return aws.ToString(out.QueueUrl), a.Attributes["QueueArn"]
}

// Depth is ApproximateNumberOfMessages + ...NotVisible + ...Delayed.
func Depth(t testing.TB, q *sqs.Client, queueURL string) int {
	t.Helper()
	a, err := q.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &queueURL,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible, sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed}})
	if err != nil {
		t.Fatalf("queue attributes: %v", err)
	}
	n := 0
	for _, v := range a.Attributes {
		k, _ := strconv.Atoi(v)
		n += k
	}
	return n
}

// S3Event is an S3 ObjectCreated:Put notification body as S3 writes it:
// the key URL-encoded with '+' for spaces.
func S3Event(bucket, key, versionID, etag string, size int64) string {
	obj := map[string]any{"key": url.QueryEscape(key), "size": size, "eTag": strings.Trim(etag, `"`),
		"sequencer": fmt.Sprintf("%016X", time.Now().UnixNano())}
	if versionID != "" {
		obj["versionId"] = versionID
	}
	ev := map[string]any{"Records": []any{map[string]any{
		"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
		"eventTime": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), "eventName": "ObjectCreated:Put",
		"s3": map[string]any{"s3SchemaVersion": "1.0", "configurationId": "inbound",
			"bucket": map[string]any{"name": bucket, "arn": "arn:aws:s3:::" + bucket}, "object": obj},
	}}}
	b, _ := json.Marshal(ev)
	return string(b)
}

// Message builds an SQS record for a handler.
func Message(id, body string) events.SQSMessage {
	return events.SQSMessage{MessageId: id, Body: body, EventSource: "aws:sqs", ReceiptHandle: "rh-" + id}
}

// Handler is a Lambda SQS handler with partial batch responses.
type Handler func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)

// ESM plays Lambda's event source mapping for one queue: receive up to
// BatchSize messages, call the handler, delete what succeeded, make the
// failures visible again at once (instead of waiting out the visibility
// timeout), until the queue yields nothing EmptyPolls times in a row.
type ESM struct {
	SQS        *sqs.Client
	QueueURL   string
	BatchSize  int32 // default 10
	EmptyPolls int   // default 2
	// MaxBatches bounds the loop (default 200) so a bug cannot hang a test.
	MaxBatches int
	// FailedVisibility is the visibility set on failed messages (default 0).
	FailedVisibility int32
	// Batches records every batch's message bodies, in delivery order.
	Batches [][]events.SQSMessage
}

// Drain runs the loop until the queue is quiet.
func (e *ESM) Drain(t testing.TB, ctx context.Context, h Handler) {
	t.Helper()
	bs, empties, maxB := e.BatchSize, e.EmptyPolls, e.MaxBatches
	if bs == 0 {
		bs = 10
	}
	if empties == 0 {
		empties = 2
	}
	if maxB == 0 {
		maxB = 200
	}
	quiet := 0
	for n := 0; n < maxB && quiet < empties; n++ {
		if !e.Once(t, ctx, h, bs) {
			quiet++
			continue
		}
		quiet = 0
	}
	if quiet < empties {
		t.Fatalf("ESM: queue still busy after %d batches", maxB)
	}
}

// Once delivers one batch; it reports whether there was one.
func (e *ESM) Once(t testing.TB, ctx context.Context, h Handler, batch int32) bool {
	t.Helper()
	out, err := e.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: &e.QueueURL, MaxNumberOfMessages: batch, WaitTimeSeconds: 0,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
	})
	if err != nil {
		t.Fatalf("ESM receive: %v", err)
	}
	if len(out.Messages) == 0 {
		return false
	}
	ev := events.SQSEvent{}
	for _, m := range out.Messages {
		ev.Records = append(ev.Records, events.SQSMessage{
			MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
			Body: aws.ToString(m.Body), Attributes: m.Attributes, EventSource: "aws:sqs",
		})
	}
	e.Batches = append(e.Batches, ev.Records)
	resp, err := h(ctx, ev)
	failed := map[string]bool{}
	if err != nil { // a returned error fails the whole batch
		for _, r := range ev.Records {
			failed[r.MessageId] = true
		}
	}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	for _, r := range ev.Records {
		if failed[r.MessageId] {
			if _, err := e.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &e.QueueURL,
				ReceiptHandle: &r.ReceiptHandle, VisibilityTimeout: e.FailedVisibility}); err != nil {
				t.Fatalf("ESM change visibility: %v", err)
			}
			continue
		}
		if _, err := e.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &e.QueueURL, ReceiptHandle: &r.ReceiptHandle}); err != nil {
			t.Fatalf("ESM delete: %v", err)
		}
	}
	return true
}

// Receive takes every visible message off a queue (for checking what the
// router sent), deleting them.
func Receive(t testing.TB, q *sqs.Client, queueURL string) []sqstypes.Message {
	t.Helper()
	var all []sqstypes.Message
	for empty := 0; empty < 2; {
		out, err := q.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &queueURL, MaxNumberOfMessages: 10,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		for _, m := range out.Messages {
			all = append(all, m)
			q.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &queueURL, ReceiptHandle: m.ReceiptHandle})
		}
	}
	return all
}

// Keys lists every key under prefix, sorted.
func Keys(t testing.TB, c *s3.Client, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list %s: %v", prefix, err)
		}
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	sort.Strings(keys)
	return keys
}

// Put writes an object and returns its version ID and ETag.
func Put(t testing.TB, c *s3.Client, bucket, key string, body []byte) (versionID, etag string) {
	t.Helper()
	out, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader(string(body))})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return aws.ToString(out.VersionId), strings.Trim(aws.ToString(out.ETag), `"`)
}

// Get reads an object; ok is false when it does not exist.
func Get(t testing.TB, c *s3.Client, bucket, key string) (body []byte, ok bool) {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return nil, false
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b, true
}

// FnO builds a d365 client against an emulator, with short retry waits.
func FnO(t testing.TB, e *d365test.Emulator, mod ...func(*d365.Config)) *d365.Client {
	t.Helper()
	cred, err := d365.SecretCredential(e.ClientSecret())
	if err != nil {
		t.Fatal(err)
	}
	au, err := url.Parse(e.AuthorityURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg := d365.Config{
		BaseURL: e.URL(), TenantID: e.TenantID(), ClientID: e.ClientID(),
		AuthorityHost: au.Scheme + "://" + au.Host, Credential: cred, HTTPClient: e.HTTPClient(),
		Retry: d365.RetryPolicy{InitialInterval: 50 * time.Millisecond, MaxInterval: 2 * time.Second},
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := d365.New(cfg)
	if err != nil {
		t.Fatalf("d365.New: %v", err)
	}
	return c
}

// SendFile puts a file message on the FIFO import queue in group, as a
// release pass does.
func SendFile(t testing.TB, q *sqs.Client, queueURL, group string, m importmsg.File) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &queueURL, MessageBody: aws.String(string(b)),
		MessageGroupId: &group, MessageDeduplicationId: aws.String(importmsg.DedupID(m))}); err != nil {
		t.Fatalf("send %s: %v", m.Key, err)
	}
}
