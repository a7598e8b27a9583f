package router_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/release"
	"github.com/fno-bridge/s3-fno/internal/imports/router"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

// routesJSON is the router's own table: vendors' entity is already a valid
// MessageGroupId, which TestBatchOfTenIsOneSend checks verbatim.
const routesJSON = `[{"route":"customers","activityId":"5d3c1e0a-7b64-4e7a-9b2f-8f6b3a521c0d","entity":"Customer groups","company":"USMF"},
{"route":"vendors","activityId":"6d3c1e0a-7b64-4e7a-9b2f-8f6b3a521c0d","entity":"VendVendorGroupEntity"}]`

type fixture struct {
	s3     *s3.Client
	sqs    *sqs.Client
	bucket string
	queue  string
	r      *router.Router
	sender *countingSender
}

type countingSender struct {
	release.Sender
	calls atomic.Int32
	// fail, if set, picks the entries that fail.
	fail func(sqstypes.SendMessageBatchRequestEntry) bool
}

func (c *countingSender) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, o ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	c.calls.Add(1)
	return sendFailing(ctx, c.Sender, in, func(_ int, e sqstypes.SendMessageBatchRequestEntry) bool { return c.fail != nil && c.fail(e) }, o...)
}

// sendFailing sends in through next, except the entries fail picks: those
// come back in Failed (InternalError), as SQS reports a partial failure.
func sendFailing(ctx context.Context, next release.Sender, in *sqs.SendMessageBatchInput,
	fail func(i int, e sqstypes.SendMessageBatchRequestEntry) bool, o ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	keep := *in
	keep.Entries = nil
	var failed []sqstypes.BatchResultErrorEntry
	for i, e := range in.Entries {
		if fail(i, e) {
			failed = append(failed, sqstypes.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), Message: aws.String("injected")})
			continue
		}
		keep.Entries = append(keep.Entries, e)
	}
	out, err := next.SendMessageBatch(ctx, &keep, o...)
	if err != nil {
		return nil, err
	}
	out.Failed = append(out.Failed, failed...)
	return out, nil
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	w := pipelinetest.NewImports(t, pipelinetest.FIFO{})
	f := &fixture{s3: w.S3, sqs: w.SQS, bucket: w.Bucket, queue: w.Queue}
	env := w.Env(routesJSON)
	cfg, err := router.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	f.sender = &countingSender{Sender: f.sqs}
	f.r, err = router.New(cfg, f.s3, f.sender, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) handle(t *testing.T, bodies ...string) events.SQSEventResponse {
	t.Helper()
	var ev events.SQSEvent
	for i, b := range bodies {
		ev.Records = append(ev.Records, pipelinetest.Message(fmt.Sprintf("msg-%d", i), b))
	}
	resp, err := f.r.Handle(context.Background(), ev)
	if err != nil {
		t.Fatalf("Handle returned an error (fails the whole batch): %v", err)
	}
	return resp
}

// requests decodes the release requests the router sent.
func requests(t *testing.T, msgs []sqstypes.Message) []importmsg.Release {
	t.Helper()
	var out []importmsg.Release
	for _, m := range msgs {
		msg, err := importmsg.Decode([]byte(aws.ToString(m.Body)))
		if err != nil || msg.Release == nil {
			t.Fatalf("FIFO body %q is not a release request: %v", aws.ToString(m.Body), err)
		}
		out = append(out, *msg.Release)
	}
	return out
}

// TestNotificationRequestsARelease: a notification of a routed file sends
// one release request for its route, in the route's group; the file itself
// is left where it is for the pass to send, whatever its key looks like.
func TestNotificationRequestsARelease(t *testing.T) {
	f := newFixture(t)
	for _, key := range []string{
		"inbound/customers/red flower.csv",
		"inbound/customers/a+b.csv",
		"inbound/customers/sub/dir/x.csv",
		"inbound/customers/Kündengruppen €.csv",
		"inbound/customers/100%.csv",
	} {
		t.Run(key, func(t *testing.T) {
			v, etag := pipelinetest.Put(t, f.s3, f.bucket, key, []byte("id;name\n1;x\n"))
			resp := f.handle(t, pipelinetest.S3Event(f.bucket, key, v, etag, 12))
			if len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures: %+v", resp.BatchItemFailures)
			}
			msgs := pipelinetest.Receive(t, f.sqs, f.queue)
			if len(msgs) != 1 {
				t.Fatalf("%d FIFO messages, want 1", len(msgs))
			}
			req := requests(t, msgs)[0]
			if req.Route != "customers" || req.FollowUp || time.Since(req.RequestedAt) > time.Minute {
				t.Fatalf("request = %+v", req)
			}
			if g := msgs[0].Attributes["MessageGroupId"]; g != routes.SanitizeGroupID("Customer groups") || strings.Contains(g, " ") {
				t.Fatalf("group = %q, want the sanitized entity", g)
			}
			if d := msgs[0].Attributes["MessageDeduplicationId"]; d != req.DedupID() {
				t.Fatalf("dedup ID = %q, want %q", d, req.DedupID())
			}
			if _, ok := pipelinetest.Get(t, f.s3, f.bucket, key); !ok {
				t.Fatal("the file left inbound/")
			}
		})
	}
}

func TestSkips(t *testing.T) {
	f := newFixture(t)
	v, etag := pipelinetest.Put(t, f.s3, f.bucket, "inbound/customers/x.csv", []byte("data"))
	tests := []struct{ name, body string }{
		{"test event", `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00.000Z","Bucket":"` + f.bucket + `"}`},
		{"delete event", strings.Replace(pipelinetest.S3Event(f.bucket, "inbound/customers/x.csv", v, etag, 4), "ObjectCreated:Put", "ObjectRemoved:Delete", 1)},
		{"outside inbound", pipelinetest.S3Event(f.bucket, "processed/customers/2026/01/01/x.csv", "", etag, 4)},
		{"other bucket", pipelinetest.S3Event("someone-else", "inbound/customers/x.csv", "", etag, 4)},
		{"folder placeholder", pipelinetest.S3Event(f.bucket, "inbound/customers/", "", etag, 0)},
		{"stuck report", pipelinetest.S3Event(f.bucket, "inbound/customers/x.csv"+layout.StuckSuffix, "", etag, 40)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.handle(t, tt.body)
			if len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures: %+v", resp.BatchItemFailures)
			}
			if n := pipelinetest.Depth(t, f.sqs, f.queue); n != 0 {
				t.Fatalf("%d FIFO messages, want 0", n)
			}
			if keys := pipelinetest.Keys(t, f.s3, f.bucket, "rejected/"); len(keys) != 0 {
				t.Fatalf("rejected: %v", keys)
			}
		})
	}
	if _, ok := pipelinetest.Get(t, f.s3, f.bucket, "inbound/customers/x.csv"); !ok {
		t.Fatal("a skipped file was touched")
	}
}

func TestRejects(t *testing.T) {
	f := newFixture(t)
	day := time.Now().UTC().Format("2006/01/02") // S3Event stamps the current time
	tests := []struct {
		name, key    string
		body         []byte
		size         int64 // in the event; -2: leave the size out
		wantRejected string
		wantReason   string
	}{
		{"no route", "inbound/unknown/a b.csv", []byte("x"), 1, "rejected/_unrouted/" + day + "/unknown/a b.csv", "no-route"},
		{"no folder", "inbound/loose.csv", []byte("x"), 1, "rejected/_unrouted/" + day + "/loose.csv", "no-route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, etag := pipelinetest.Put(t, f.s3, f.bucket, tt.key, tt.body)
			body := pipelinetest.S3Event(f.bucket, tt.key, v, etag, max(tt.size, 0))
			if tt.size == -2 {
				body = strings.Replace(body, `"size":0,`, ``, 1)
				if strings.Contains(body, `"size"`) {
					t.Fatal("size still in the event")
				}
			}
			for range 2 { // a redelivery of the same event changes nothing
				if resp := f.handle(t, body); len(resp.BatchItemFailures) != 0 {
					t.Fatalf("failures: %+v", resp.BatchItemFailures)
				}
			}
			if _, ok := pipelinetest.Get(t, f.s3, f.bucket, tt.key); ok {
				t.Fatal("the file is still in inbound/")
			}
			got, ok := pipelinetest.Get(t, f.s3, f.bucket, tt.wantRejected)
			if !ok || string(got) != string(tt.body) {
				t.Fatalf("%s: %q %v; rejected/ holds %v", tt.wantRejected, got, ok, pipelinetest.Keys(t, f.s3, f.bucket, "rejected/"))
			}
			raw, ok := pipelinetest.Get(t, f.s3, f.bucket, tt.wantRejected+layout.ReasonSuffix)
			if !ok {
				t.Fatal("no reason document")
			}
			var doc filing.Reason
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Reason != tt.wantReason || doc.OriginalKey != tt.key || doc.Detail == "" || doc.RejectedAt.IsZero() || doc.VersionID != v {
				t.Fatalf("reason = %+v", doc)
			}
			if n := pipelinetest.Depth(t, f.sqs, f.queue); n != 0 {
				t.Fatalf("%d FIFO messages for a rejected file", n)
			}
		})
	}
}

func TestMalformedIsKeptNotLooped(t *testing.T) {
	f := newFixture(t)
	resp := f.handle(t, `this is not JSON`, `{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%zz"}}}]}`)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %+v (a malformed body must not loop)", resp.BatchItemFailures)
	}
	keys := pipelinetest.Keys(t, f.s3, f.bucket, "rejected/_malformed/")
	if len(keys) != 4 {
		t.Fatalf("kept: %v, want two bodies with reasons", keys)
	}
	if body, _ := pipelinetest.Get(t, f.s3, f.bucket, keys[0]); string(body) != "this is not JSON" {
		t.Fatalf("%s = %q", keys[0], body)
	}
}

// TestBatchIsOneRequestPerRoute: a batch of notifications for two routes
// sends one request per route, each in its route's group.
func TestBatchIsOneRequestPerRoute(t *testing.T) {
	f := newFixture(t)
	var bodies []string
	for i := range 10 {
		route := "vendors"
		if i%3 == 0 {
			route = "customers"
		}
		key := fmt.Sprintf("inbound/%s/f%02d.csv", route, i)
		v, etag := pipelinetest.Put(t, f.s3, f.bucket, key, []byte("row"))
		bodies = append(bodies, pipelinetest.S3Event(f.bucket, key, v, etag, 3))
	}
	if resp := f.handle(t, bodies...); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %+v", resp.BatchItemFailures)
	}
	if n := f.sender.calls.Load(); n != 2 {
		t.Fatalf("%d SendMessageBatch calls, want 2", n)
	}
	msgs := pipelinetest.Receive(t, f.sqs, f.queue)
	groups := map[string]string{}
	for i, req := range requests(t, msgs) {
		groups[req.Route] = msgs[i].Attributes["MessageGroupId"]
	}
	if len(msgs) != 2 || groups["vendors"] != "VendVendorGroupEntity" || groups["customers"] != routes.SanitizeGroupID("Customer groups") {
		t.Fatalf("%d requests in groups %v", len(msgs), groups)
	}
	if keys := pipelinetest.Keys(t, f.s3, f.bucket, "_state/"); len(keys) != 0 {
		t.Fatalf("the router wrote state: %v", keys)
	}
}

// TestDuplicateEventIsOneRequest: the same notification twice in a batch,
// and again within the same second, is one request.
func TestDuplicateEventIsOneRequest(t *testing.T) {
	f := newFixture(t)
	v, etag := pipelinetest.Put(t, f.s3, f.bucket, "inbound/customers/dup.csv", []byte("row"))
	body := pipelinetest.S3Event(f.bucket, "inbound/customers/dup.csv", v, etag, 3)
	for time.Now().Nanosecond() > 500e6 { // both handles within one second
		time.Sleep(10 * time.Millisecond)
	}
	f.handle(t, body, body)
	f.handle(t, body)
	if n := pipelinetest.Depth(t, f.sqs, f.queue); n != 1 {
		t.Fatalf("ApproximateNumberOfMessages = %d, want 1", n)
	}
}

// TestFailedRequestIsRetried: when the request of one route cannot be sent,
// only that route's notifications are batch item failures; redelivered,
// they send it.
func TestFailedRequestIsRetried(t *testing.T) {
	f := newFixture(t)
	f.sender.fail = func(e sqstypes.SendMessageBatchRequestEntry) bool {
		return strings.Contains(aws.ToString(e.MessageBody), `"customers"`)
	}
	var bodies []string
	for i, route := range []string{"customers", "vendors", "customers"} {
		key := fmt.Sprintf("inbound/%s/p%d.csv", route, i)
		v, etag := pipelinetest.Put(t, f.s3, f.bucket, key, []byte("row"))
		bodies = append(bodies, pipelinetest.S3Event(f.bucket, key, v, etag, 3))
	}
	resp := f.handle(t, bodies...)
	if fmt.Sprint(resp.BatchItemFailures) != "[{msg-0} {msg-2}]" {
		t.Fatalf("failures = %+v, want msg-0 and msg-2 (customers)", resp.BatchItemFailures)
	}
	if reqs := requests(t, pipelinetest.Receive(t, f.sqs, f.queue)); len(reqs) != 1 || reqs[0].Route != "vendors" {
		t.Fatalf("requests %+v, want vendors only", reqs)
	}
	f.sender.fail = nil
	if resp := f.handle(t, bodies[0], bodies[2]); len(resp.BatchItemFailures) != 0 {
		t.Fatal(resp.BatchItemFailures)
	}
	if reqs := requests(t, pipelinetest.Receive(t, f.sqs, f.queue)); len(reqs) != 1 || reqs[0].Route != "customers" {
		t.Fatalf("requests after redelivery %+v, want customers", reqs)
	}
}

func TestConfigFromEnv(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no queue", map[string]string{"BUCKET": "b", "ROUTES": routesJSON}, "IMPORT_QUEUE_URL"},
		{"not fifo", map[string]string{"BUCKET": "b", "ROUTES": routesJSON, "IMPORT_QUEUE_URL": "http://x/q"}, "IMPORT_QUEUE_URL"},
		{"bad route", map[string]string{"BUCKET": "b", "ROUTES": `[{"route":"a"}]`, "IMPORT_QUEUE_URL": "http://x/q.fifo"}, `ROUTES[0] ("a")`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := router.ConfigFromEnv(func(k string) string { return tt.env[k] })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
}
