package router_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/fno-bridge/s3-fno/internal/imports/forward"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/router"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

// markerS3 is the in-memory S3 whose routed-marker writes can be held at a
// barrier (released once barrier of them are in flight together) or made
// to fail for one key.
type markerS3 struct {
	*memS3
	prefix  string
	barrier int    // 0: no barrier
	failKey string // this marker's write fails
	mu      sync.Mutex
	now     int // marker writes in flight
	peak    int
	release chan struct{}
}

func (m *markerS3) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	key := aws.ToString(in.Key)
	if !strings.HasPrefix(key, m.prefix) {
		return m.memS3.PutObject(ctx, in, o...)
	}
	m.mu.Lock()
	m.now++
	m.peak = max(m.peak, m.now)
	if m.barrier > 0 && m.now == m.barrier {
		close(m.release)
	}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.now--
		m.mu.Unlock()
	}()
	if m.barrier > 0 {
		select {
		case <-m.release:
		case <-ctx.Done(): // the safety net: written one at a time, the barrier is never reached
			return nil, ctx.Err()
		}
	}
	if key == m.failKey {
		return nil, &smithy.GenericAPIError{Code: "InternalError", Message: "injected"}
	}
	return m.memS3.PutObject(ctx, in, o...)
}

// failingSender takes every message but the entries whose body names a key
// in fail.
type failingSender struct {
	memSender
	fail map[string]bool
}

func (f *failingSender) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, o ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	return sendFailing(ctx, &f.memSender, in, func(_ int, e sqstypes.SendMessageBatchRequestEntry) bool {
		var fm importmsg.File
		json.Unmarshal([]byte(aws.ToString(e.MessageBody)), &fm)
		return f.fail[fm.Key]
	}, o...)
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

const customersRoute = `[{"route":"customers","activityId":"5d3c1e0a-7b64-4e7a-9b2f-8f6b3a521c0d","entity":"Customer groups","company":"USMF"}]`

func newMarkerRouter(t *testing.T, s3c *markerS3, q forward.Sender, log *slog.Logger) *router.Router {
	t.Helper()
	rt, err := routes.Parse(customersRoute)
	if err != nil {
		t.Fatal(err)
	}
	r, err := router.New(router.Config{Config: routes.Config{Bucket: "b", Routes: rt, Layout: layout.Default()}, QueueURL: "https://sqs/q.fifo"},
		s3c, q, log)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func markerKeyOf(key string) string {
	return layout.Default().RoutedKey(importmsg.Identity("b", key, "", "0123456789abcdef0123456789abcdef"))
}

// TestRoutedMarkersAreWrittenTogether: the ten routed markers of a batch
// are written concurrently. The fake S3 holds every marker write until ten
// are in flight at once, which never happens when they are written one
// after another; the timeout is only there so that such a run ends.
func TestRoutedMarkersAreWrittenTogether(t *testing.T) {
	layout := layout.Default()
	s3c := &markerS3{memS3: newMemS3(), prefix: layout.RoutedPrefix(), barrier: 10, release: make(chan struct{})}
	q := &memSender{}
	rt, err := routes.Parse(customersRoute)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := forward.New(routes.Config{Bucket: "b", Routes: rt, Layout: layout}, "https://sqs/q.fifo", s3c, q, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var objs []forward.Object
	for i := range 10 {
		objs = append(objs, forward.Object{Bucket: "b", Key: fmt.Sprintf("inbound/customers/f%02d.csv", i),
			ETag: "0123456789abcdef0123456789abcdef", Size: 3, EventTime: time.Now()})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs, outs := fw.Forward(ctx, objs)
	for i := range objs {
		if errs[i] != nil || outs[i] != forward.Forwarded {
			t.Fatalf("object %d: %v, outcome %v", i, errs[i], outs[i])
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("the ten marker writes were never in flight together (peak %d): written one after another", s3c.peak)
	}
	if len(q.entries) != 10 {
		t.Fatalf("%d messages sent, want 10", len(q.entries))
	}
	for i, o := range objs {
		got, ok := s3c.Get("b", markerKeyOf(o.Key))
		if !ok {
			t.Fatalf("no routed marker for %s", o.Key)
		}
		var doc forward.Routed
		if err := json.Unmarshal(got.Body, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Key != o.Key || doc.DedupID != aws.ToString(q.entries[i].MessageDeduplicationId) || doc.RoutedAt.IsZero() {
			t.Fatalf("marker of %s = %+v", o.Key, doc)
		}
	}
}

// TestRoutedMarkerFailureIsOnlyLogged: a file whose FIFO send fails is a
// batch item failure and gets no marker; a marker that cannot be written
// is a warning only (the file went out; a later sweep at worst sends it
// again, which the enqueue marker absorbs). Twelve files make two sends.
func TestRoutedMarkerFailureIsOnlyLogged(t *testing.T) {
	layout := layout.Default()
	key := func(i int) string { return fmt.Sprintf("inbound/customers/f%02d.csv", i) }
	s3c := &markerS3{memS3: newMemS3(), prefix: layout.RoutedPrefix(), failKey: markerKeyOf(key(5))}
	q := &failingSender{fail: map[string]bool{key(3): true, key(11): true}}
	var logs syncBuffer
	r := newMarkerRouter(t, s3c, q, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	var ev events.SQSEvent
	for i := range 12 {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprintf("msg-%d", i),
			Body: eventJSON("ObjectCreated:Put", "b", key(i), "", "3")})
	}
	resp, err := r.Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(resp.BatchItemFailures) != "[{msg-3} {msg-11}]" {
		t.Fatalf("batch item failures = %v, want msg-3 and msg-11 (the failed sends) only", resp.BatchItemFailures)
	}
	if len(q.entries) != 10 {
		t.Fatalf("%d messages sent, want 10", len(q.entries))
	}
	for i := range 12 {
		_, ok := s3c.Get("b", markerKeyOf(key(i)))
		if want := i != 3 && i != 11 && i != 5; ok != want {
			t.Errorf("%s: marker written %v, want %v", key(i), ok, want)
		}
	}
	count := map[string][]string{}
	for _, l := range logs.lines() {
		msg, _ := l["msg"].(string)
		k, _ := l["key"].(string)
		count[msg] = append(count[msg], k)
		if msg == "forward: routed marker not written" && (l["level"] != "WARN" || !strings.Contains(fmt.Sprint(l["error"]), "injected")) {
			t.Errorf("marker failure logged as %v", l)
		}
	}
	if got := fmt.Sprint(count["forward: routed marker not written"]); got != "["+key(5)+"]" {
		t.Errorf("marker failures logged for %s, want %s", got, key(5))
	}
	if got := fmt.Sprint(count["forward: could not forward"]); got != "["+key(3)+" "+key(11)+"]" {
		t.Errorf("send failures logged for %s", got)
	}
	if n := len(count["forward: forwarded to the import queue"]); n != 10 {
		t.Errorf("%d files logged as forwarded, want 10", n)
	}
}
