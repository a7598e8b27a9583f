package router_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/filing/filingtest"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/router"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// memSender is a FIFO queue that takes every message.
type memSender struct {
	mu      sync.Mutex
	entries []sqstypes.SendMessageBatchRequestEntry
}

func (m *memSender) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		m.entries = append(m.entries, e)
		out.Successful = append(out.Successful, sqstypes.SendMessageBatchResultEntry{Id: e.Id, MessageId: aws.String("m")})
	}
	return out, nil
}

// FuzzRouterHandle: any body on the arrivals queue, with the objects it
// names present in the bucket. The router never asks for a redelivery when
// S3 and SQS work (no crash loop); what it cannot use is kept verbatim under
// rejected/_malformed/ with a reason; every rejected file has a reason
// document beside it; no file is lost (each named inbound object is still
// there, or moved to rejected/ carrying its identity); it writes nowhere but
// rejected/; every FIFO message is a release request for a configured route
// that a named file is in, in that route's group.
func FuzzRouterHandle(f *testing.F) {
	for _, s := range []string{
		eventJSON("ObjectCreated:Put", "b", "inbound/customers/red+flower%2B%C3%BC.csv", "v1", "3"),
		eventJSON("ObjectCreated:Put", "b", "inbound/customers/a%2Fb%2F..%2F..%2F_state%2Fx.csv", "", "3"),
		eventJSON("ObjectCreated:Put", "b", "inbound/nowhere/x.csv", "", "5"),
		eventJSON("ObjectCreated:Put", "b", "inbound/x.csv", "", "5"),
		eventJSON("ObjectCreated:Put", "b", "inbound/customers/empty.csv", "", "0"),
		eventJSON("ObjectCreated:Put", "b", "inbound/customers/nosize.csv", "", ""),
		eventJSON("ObjectCreated:Put", "b", "inbound/customers/neg.csv", "", "-1"),
		eventJSON("ObjectCreated:Put", "b", "inbound/customers/huge.csv", "", "99999999999999999999"),
		eventJSON("ObjectCreated:Put", "b", "inbound/customers/float.csv", "", "1e3"),
		eventJSON("ObjectCreated:Put", "b", "inbound/customers/bad%zz.csv", "", "3"),
		eventJSON("ObjectCreated:Put", "b", "inbound/customers/nul%00.csv", "", "3"),
		eventJSON("ObjectCreated:Put", "b", "inbound/customers/", "", "0"),
		eventJSON("ObjectCreated:Put", "b", "inbound/customers/x.csv.stuck.json", "", "3"),
		eventJSON("ObjectCreated:Put", "other", "inbound/customers/x.csv", "", "3"),
		eventJSON("ObjectCreated:Put", "b", "processed/customers/x.csv", "", "3"),
		eventJSON("ObjectRemoved:Delete", "b", "inbound/customers/x.csv", "", ""),
		eventJSON("ObjectCreated:Put", "b", "inbound/_unrouted/x.csv", "", "3"),
		eventJSON("ObjectCreated:Put", "b", "inbound/..%2F..%2Fx.csv", "", "3"),
		strings.Replace(eventJSON("ObjectCreated:Put", "b", "inbound/customers/t.csv", "", "3"), "2026-03-01T10:00:00.000Z", "9999-12-31T23:59:59-23:00", 1),
		strings.Replace(eventJSON("ObjectCreated:Put", "b", "inbound/nowhere/t.csv", "", "3"), "2026-03-01T10:00:00.000Z", "0000-01-01T00:00:00+01:00", 1),
		strings.Replace(eventJSON("ObjectCreated:Put", "b", "inbound/customers/t.csv", "", "3"), `"2026-03-01T10:00:00.000Z"`, `12`, 1),
		`{"Records":[` + strings.TrimSuffix(strings.TrimPrefix(eventJSON("ObjectCreated:Put", "b", "inbound/customers/a.csv", "", "3"), `{"Records":[`), `]}`) + `,` +
			strings.TrimSuffix(strings.TrimPrefix(eventJSON("ObjectCreated:Put", "b", "inbound/nowhere/b.csv", "", "4"), `{"Records":[`), `]}`) + `]}`,
		`{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00.000Z","Bucket":"b","RequestId":"x","HostId":"y"}`,
		`{"Type":"Notification","MessageId":"x","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":"{\"Records\":[]}"}`,
		`{"version":"0","detail-type":"Object Created","source":"aws.s3","detail":{"bucket":{"name":"b"},"object":{"key":"inbound/customers/x.csv","size":3}}}`,
		`{"Records":[{"s3":null}]}`, `{"Records":{}}`, `{"Records":[null]}`, `null`, ``, `[]`, `"x"`, "\x00\xff",
		`{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"inbound/customers/dup.csv","key":"inbound/nowhere/dup.csv","size":3}}}]}`,
		strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001),
	} {
		f.Add([]byte(s), "msg-1")
	}
	f.Add([]byte(`not json`), "")
	f.Add([]byte(`not json`), "../../_state/markers/x")
	rc := pipelinetest.MemConfig(f)
	rt, lay := rc.Routes, rc.Layout
	quiet := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, body []byte, msgID string) {
		s3c, q := newMemS3(), &memSender{}
		r, err := router.New(router.Config{Config: rc, QueueURL: "https://sqs/q.fifo"}, s3c, q, quiet)
		if err != nil {
			t.Fatal(err)
		}
		// The objects the body names exist, as S3 would have them.
		type src struct{ key, version, etag string }
		var named []src
		n, derr := router.DecodeNotification(body)
		if derr == nil {
			for _, rec := range n.Records {
				if rec.Bucket != "b" {
					continue
				}
				size := rec.Size
				if size < 0 || size > 64 {
					size = 3
				}
				s3c.Put("b", rec.Key, []byte(strings.Repeat("x", int(size))), rec.ETag, rec.VersionID)
				named = append(named, src{rec.Key, rec.VersionID, rec.ETag})
			}
		}
		resp, err := r.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{{MessageId: msgID, Body: string(body)}}})
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("asked for a redelivery of %q (a crash loop): %v %+v", body, err, resp)
		}
		var malformed []string
		for _, k := range s3c.Keys() {
			key := strings.TrimPrefix(k, "b/")
			placed := false
			for _, s := range named {
				placed = placed || s.key == key
			}
			switch {
			case placed: // put there by the test
			case !strings.HasPrefix(k, "b/"):
				t.Fatalf("wrote to another bucket: %q", k)
			case strings.HasPrefix(key, lay.Inbound):
				// originals left in place
			case strings.HasPrefix(key, lay.Rejected):
				if strings.HasSuffix(key, layout.ReasonSuffix) {
					continue
				}
				checkReason(t, s3c, key, lay)
				if strings.HasPrefix(key, lay.Rejected+"_malformed/") {
					filingtest.CheckMalformedKey(t, key, msgID)
					malformed = append(malformed, key)
				}
			default:
				t.Fatalf("wrote %q, outside rejected/", key)
			}
		}
		if derr != nil {
			if len(malformed) != 1 {
				t.Fatalf("malformed body kept %d times", len(malformed))
			}
			if o, _ := s3c.Get("b", malformed[0]); string(o.Body) != string(body) {
				t.Fatal("malformed body not kept verbatim")
			}
		} else if len(malformed) != 0 {
			t.Fatalf("a usable body was kept as malformed: %v", malformed)
		}
		// Nothing lost.
		for _, s := range named {
			if _, ok := s3c.Get("b", s.key); ok {
				continue
			}
			id := importmsg.Identity("b", s.key, s.version, s.etag)
			found := false
			for _, k := range s3c.Keys() {
				if o, _ := s3c.Get("b", strings.TrimPrefix(k, "b/")); o != nil && strings.HasPrefix(k, "b/"+lay.Rejected) && o.Meta[s3io.MetaIdentity] == id {
					found = true
				}
			}
			if !found {
				t.Fatalf("inbound object %q vanished without a rejected copy", s.key)
			}
		}
		for _, e := range q.entries {
			msg, err := importmsg.Decode([]byte(aws.ToString(e.MessageBody)))
			if err != nil || msg.Release == nil {
				t.Fatalf("FIFO body %q is not a release request: %v", aws.ToString(e.MessageBody), err)
			}
			rr, known := rt.Lookup(msg.Release.Route)
			if !known || aws.ToString(e.MessageGroupId) != rr.GroupID() || aws.ToString(e.MessageDeduplicationId) != msg.Release.DedupID() {
				t.Fatalf("request %+v in group %q", msg.Release, aws.ToString(e.MessageGroupId))
			}
			inRoute := false
			for _, s := range named {
				route, _, ok := lay.Split(s.key)
				inRoute = inRoute || ok && route == msg.Release.Route
			}
			if !inRoute {
				t.Fatalf("a release of %q, which no named file is in", msg.Release.Route)
			}
		}
	})
}

// checkReason: a rejected object has a reason document beside it, naming it.
func checkReason(t *testing.T, s3c *memS3, key string, l layout.Layout) {
	t.Helper()
	o, ok := s3c.Get("b", key+layout.ReasonSuffix)
	if !ok {
		t.Fatalf("rejected %q has no reason document", key)
	}
	var r filing.Reason
	if err := json.Unmarshal(o.Body, &r); err != nil {
		t.Fatalf("reason of %q: %v", key, err)
	}
	switch r.Reason {
	case "no-route", "empty-file", "malformed-event":
	default:
		t.Fatalf("reason %q for %q", r.Reason, key)
	}
	if r.RejectedKey != key || r.Detail == "" {
		t.Fatalf("reason %+v for %q", r, key)
	}
	// rejected/<route>/<yyyy>/<mm>/<dd>/<file>
	parts := strings.SplitN(strings.TrimPrefix(key, l.Rejected), "/", 5)
	if len(parts) != 5 || len(parts[1]) != 4 || len(parts[2]) != 2 || len(parts[3]) != 2 || parts[4] == "" {
		t.Fatalf("rejected key %q is not rejected/<route>/<yyyy>/<mm>/<dd>/<file>", key)
	}
	if _, err := time.Parse("2006/01/02", parts[1]+"/"+parts[2]+"/"+parts[3]); err != nil {
		t.Fatalf("rejected key %q: %v", key, err)
	}
}
