package enqueue_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/release"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// memEnqueuer is F&O accepting every file.
type memEnqueuer struct {
	mu   sync.Mutex
	sent []d365.EnqueueRequest
}

func (m *memEnqueuer) Enqueue(_ context.Context, in d365.EnqueueRequest) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, in)
	return "6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b", nil
}

// FuzzImportMessage: any body on the FIFO import queue (the router writes
// it; a redrive or a hand-sent message may not), with the object it names
// present. The enqueue function never asks for a redelivery when S3 and F&O
// work (no crash loop); a body it cannot use, or one that does not name a
// file under inbound/<route>/ of the configured bucket with that route
// (another bucket, processed/, _state/, a folder, an empty route), is kept
// verbatim under rejected/_malformed/ with a reason, and then the object it
// names is neither sent nor touched; nothing is lost; it writes only in the
// configured bucket, under rejected/, failed/ and _state/; so only an
// inbound file of the route the message names is ever sent to F&O.
func FuzzImportMessage(f *testing.F) {
	msg := func(fm importmsg.File) []byte { b, _ := json.Marshal(fm); return b }
	for _, b := range [][]byte{
		msg(importmsg.File{Bucket: "b", Key: "inbound/customers/a.csv", Size: 3, Route: "customers"}),
		msg(importmsg.File{Bucket: "b", Key: "inbound/customers/red flower+ü.csv", VersionID: "v1", ETag: "abc", Size: 3, Route: "customers"}),
		msg(importmsg.File{Bucket: "b", Key: "inbound/pkg/p.zip", Size: 3, Route: "pkg"}),
		msg(importmsg.File{Bucket: "b", Key: "inbound/customers/a.csv", Size: 3, Route: "gone-route"}),
		msg(importmsg.File{Bucket: "b", Key: "inbound/customers/a.csv", Size: 3, Route: ""}),
		msg(importmsg.File{Bucket: "b", Key: "inbound/a.csv", Size: 3, Route: "customers"}),
		msg(importmsg.File{Bucket: "b", Key: "processed/customers/2026/03/01/a.csv", Size: 3, Route: "customers"}),
		msg(importmsg.File{Bucket: "b", Key: "_state/markers/x.json", Size: 3, Route: "customers"}),
		msg(importmsg.File{Bucket: "other", Key: "inbound/customers/a.csv", Size: 3, Route: "customers"}),
		msg(importmsg.File{Bucket: "b", Key: "inbound/customers/../../_state/x", Size: 3, Route: "customers"}),
		msg(importmsg.File{Bucket: "b", Key: "inbound/customers/", Size: 0, Route: "customers"}),
		msg(importmsg.File{Bucket: "b", Key: "inbound/customers/sub/", Size: 0, Route: "customers"}),
		msg(importmsg.File{Bucket: "b", Key: "inbound/pkg/p.zip", Size: 3, Route: "customers"}),
		msg(importmsg.File{Bucket: "b", Key: "inbound/customers/a.csv" + layout.StuckSuffix, Size: 3, Route: "customers"}),
		msg(importmsg.File{Bucket: "b", Key: "inbound/a.csv", Size: 3, Route: ""}),
		msg(importmsg.File{Bucket: "b", Key: "rejected/customers/2026/03/01/a.csv", Size: 3, Route: "customers"}),
		[]byte(`{"bucket":"b","key":"inbound/customers/a.csv","route":"customers","size":-1,"eventTime":"2026-03-01T10:00:00Z"}`),
		[]byte(`{"bucket":"b","key":"inbound/customers/a.csv","route":"customers","eventTime":"not a time"}`),
		[]byte(`{"bucket":"b","key":"inbound/customers/a.csv","route":"customers","size":"3"}`),
		[]byte(`{"bucket":"b","key":"inbound/customers/a.csv","key":"inbound/customers/b.csv","route":"customers"}`),
		[]byte(`{"Bucket":"b","KEY":"inbound/customers/a.csv","route":"customers"}`),
		[]byte(`{"bucket":"b","route":"customers"}`), []byte(`{"key":"inbound/customers/a.csv"}`),
		[]byte(`{}`), []byte(`null`), []byte(`[]`), []byte(``), []byte("\x00\xff"), []byte(`{"Records":[]}`),
	} {
		f.Add(b, "m-1")
	}
	f.Add([]byte(`not json`), "../../x")
	f.Add([]byte(`{"release":"customers","requestedAt":"2026-03-01T10:00:00Z"}`), "m-2")
	f.Add([]byte(`{"release":"customers","requestedAt":"9999-12-31T23:59:59Z","bucket":"b","key":"inbound/customers/a.csv"}`), "m-3")
	f.Add([]byte(`{"release":""}`), "m-4")
	rc := pipelinetest.MemConfig(f)
	rt, lay := rc.Routes, rc.Layout
	quiet := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, body []byte, msgID string) {
		s3c, fno, q := newMemS3(), &memEnqueuer{}, &memQueue{}
		h, err := enqueue.New(enqueue.Config{Config: release.Config{Config: rc, QueueURL: "https://sqs/q.fifo"}}, s3c, fno, q, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if m, err := importmsg.Decode(body); err == nil && m.Release != nil {
			// A release request of an empty bucket: a pass that finds
			// nothing, sends nothing and writes nothing.
			resp, err := h.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{{MessageId: msgID, Body: string(body)}}})
			if err != nil || len(resp.BatchItemFailures) != 0 || len(s3c.Keys()) != 0 || len(fno.sent) != 0 || q.n != 0 {
				t.Fatalf("release request %q: %v %+v, wrote %v, sent %d to F&O and %d to the queue", body, err, resp, s3c.Keys(), len(fno.sent), q.n)
			}
			return
		}
		var fm importmsg.File
		usable := json.Unmarshal(body, &fm) == nil && fm.Bucket != "" && fm.Key != ""
		var orig []byte
		if usable {
			orig = []byte("a,b")
			s3c.Put(fm.Bucket, fm.Key, orig, fm.ETag, fm.VersionID)
		}
		// What the router would forward: a file under inbound/<route>/ of
		// the configured bucket, with that route.
		route, file, inbound := lay.Split(fm.Key)
		inboundFile := usable && fm.Bucket == "b" && fm.Route != "" && inbound && route == fm.Route && file != "" &&
			!strings.HasSuffix(file, "/") && !strings.HasSuffix(file, layout.StuckSuffix)
		resp, err := h.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{{MessageId: msgID, Body: string(body)}}})
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("asked for a redelivery of %q (a crash loop): %v %+v", body, err, resp)
		}
		var malformed []string
		for _, k := range s3c.Keys() {
			bucket, key, _ := strings.Cut(k, "/")
			switch {
			case usable && bucket == fm.Bucket && key == fm.Key: // the test's own object
			case bucket != "b":
				t.Fatalf("wrote to bucket %q: %q", bucket, key)
			case strings.HasPrefix(key, lay.State):
				if !inboundFile {
					t.Fatalf("wrote %q for a message that names no inbound file", key)
				}
			case strings.HasPrefix(key, lay.Failed):
				if !inboundFile {
					t.Fatalf("filed %q for a message that names no inbound file", key)
				}
			case strings.HasPrefix(key, lay.Rejected):
				if strings.HasPrefix(key, lay.Rejected+"_malformed/") && !strings.HasSuffix(key, layout.ReasonSuffix) {
					malformed = append(malformed, key)
				} else if !inboundFile && !strings.HasPrefix(key, lay.Rejected+"_malformed/") {
					t.Fatalf("rejected %q for a message that names no inbound file", key)
				}
				if strings.HasSuffix(key, "/") || strings.Contains(key, "//") {
					t.Fatalf("rejected at %q, a folder-like key", key)
				}
			default:
				t.Fatalf("wrote %q", key)
			}
		}
		if !inboundFile {
			if len(malformed) != 1 {
				t.Fatalf("message %q kept %d times, want once under rejected/_malformed/", body, len(malformed))
			}
			if o, _ := s3c.Get("b", malformed[0]); string(o.Body) != string(body) {
				t.Fatal("message not kept verbatim")
			}
			r, ok := s3c.Get("b", malformed[0]+layout.ReasonSuffix)
			var doc filing.Reason
			if !ok || json.Unmarshal(r.Body, &doc) != nil || doc.RejectedKey != malformed[0] || doc.Reason != "malformed-event" || doc.Detail == "" {
				t.Fatalf("reason of %s: %v %s", malformed[0], ok, r.Body)
			}
			if len(fno.sent) != 0 {
				t.Fatalf("sent %s/%s under route %q to F&O", fm.Bucket, fm.Key, fm.Route)
			}
			if usable {
				if o, ok := s3c.Get(fm.Bucket, fm.Key); !ok || string(o.Body) != string(orig) || len(o.Meta) != 0 {
					t.Fatalf("%s/%s was touched", fm.Bucket, fm.Key)
				}
			}
			return
		}
		if len(malformed) != 0 {
			t.Fatalf("a message naming an inbound file was kept as malformed: %v", malformed)
		}
		for _, req := range fno.sent {
			rr, _ := rt.Lookup(fm.Route)
			if len(fno.sent) != 1 || req.ExternalID != enqueue.ExternalID(fm.Key) || req.ActivityID != rr.ActivityID {
				t.Fatalf("sent %+v for %s under route %q", fno.sent, fm.Key, fm.Route)
			}
		}
		if _, still := s3c.Get(fm.Bucket, fm.Key); !still && len(fno.sent) == 0 {
			id := importmsg.Identity(fm.Bucket, fm.Key, fm.VersionID, fm.ETag)
			moved := false
			for _, k := range s3c.Keys() {
				if o, _ := s3c.Get("b", strings.TrimPrefix(k, "b/")); o != nil && o.Meta[s3io.MetaIdentity] == id {
					moved = true
				}
			}
			if !moved {
				t.Fatalf("%q vanished", fm.Key)
			}
		}
	})
}

// memQueue takes every message a release pass sends.
type memQueue struct{ n int }

func (q *memQueue) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		q.n++
		out.Successful = append(out.Successful, sqstypes.SendMessageBatchResultEntry{Id: e.Id, MessageId: aws.String("m")})
	}
	return out, nil
}
