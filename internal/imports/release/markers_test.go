package release_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/release"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/local/s3fake"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

// markerS3 is the in-memory S3 whose released-marker writes can be held at a
// barrier (released once barrier of them are in flight together) or made
// to fail for one key.
type markerS3 struct {
	*s3fake.S3
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
		return m.S3.PutObject(ctx, in, o...)
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
	return m.S3.PutObject(ctx, in, o...)
}

// memSender is a FIFO queue that takes every message, except the entries
// whose body names a key in fail (reported in Failed, as SQS does).
type memSender struct {
	mu      sync.Mutex
	fail    map[string]bool
	entries []sqstypes.SendMessageBatchRequestEntry
}

func (m *memSender) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		var fm importmsg.File
		json.Unmarshal([]byte(aws.ToString(e.MessageBody)), &fm)
		if m.fail[fm.Key] {
			out.Failed = append(out.Failed, sqstypes.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), Message: aws.String("injected")})
			continue
		}
		m.entries = append(m.entries, e)
		out.Successful = append(out.Successful, sqstypes.SendMessageBatchResultEntry{Id: e.Id, MessageId: aws.String("m")})
	}
	return out, nil
}

const oneRoute = `[{"route":"customers","activityId":"5d3c1e0a-7b64-4e7a-9b2f-8f6b3a521c0d","entity":"Customer groups","company":"USMF","settle":"0s"}]`

// memReleaser is a Releaser over the in-memory S3, its clock a minute
// ahead so every file has settled.
func memReleaser(t *testing.T, s3c release.S3, q release.Sender, log *slog.Logger) *release.Releaser {
	t.Helper()
	rt, err := routes.Parse(oneRoute)
	if err != nil {
		t.Fatal(err)
	}
	r, err := release.New(release.Config{Config: routes.Config{Bucket: "b", Routes: rt, Layout: layout.Default()}, QueueURL: "https://sqs/q.fifo"}, s3c, q, log)
	if err != nil {
		t.Fatal(err)
	}
	return r.WithClock(func() time.Time { return time.Now().Add(time.Minute) }, func(context.Context, time.Duration) error {
		panic("the pass waited")
	})
}

// putFiles stores n files f00, f01, ... with version v<i> and ETag e<i>.
func putFiles(mem *s3fake.S3, n int) {
	for i := range n {
		mem.Put("b", fileKey(i), []byte("row"), fmt.Sprintf("e%d", i), fmt.Sprintf("v%d", i))
	}
}

func fileKey(i int) string { return fmt.Sprintf("inbound/customers/f%02d.csv", i) }

// markerKeyOf is the released marker of putFiles' i-th file.
func markerKeyOf(i int) string {
	return layout.Default().ReleasedKey("customers", importmsg.Identity("b", fileKey(i), fmt.Sprintf("v%d", i), fmt.Sprintf("e%d", i)))
}

func memPass(t *testing.T, ctx context.Context, r *release.Releaser) (release.Result, error) {
	t.Helper()
	return r.Pass(ctx, importmsg.Release{Route: "customers", RequestedAt: time.Now().Add(-time.Hour)})
}

// TestReleasedMarkersAreWrittenTogether: the released markers of a round
// of ten sends are written concurrently. The fake S3 holds every marker write until
// ten are in flight at once, which never happens when they are written one
// after another; the timeout is only there so that such a run ends.
func TestReleasedMarkersAreWrittenTogether(t *testing.T) {
	mem := s3fake.New()
	s3c := &markerS3{S3: mem, prefix: layout.Default().ReleasedRoot(), barrier: 10, release: make(chan struct{})}
	putFiles(mem, 10)
	q := &memSender{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := memPass(t, ctx, memReleaser(t, s3c, q, slog.New(slog.DiscardHandler)))
	if err != nil || res.Released != 10 {
		t.Fatalf("pass = %+v, %v", res, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the ten marker writes were never in flight together (peak %d): written one after another", s3c.peak)
	}
	if len(q.entries) != 10 {
		t.Fatalf("%d messages sent, want 10", len(q.entries))
	}
	for i := range 10 {
		key := fileKey(i)
		got, ok := mem.Get("b", markerKeyOf(i))
		if !ok {
			t.Fatalf("no released marker for %s", key)
		}
		var doc release.Released
		if err := json.Unmarshal(got.Body, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Key != key || doc.DedupID != aws.ToString(q.entries[i].MessageDeduplicationId) || doc.ReleasedAt.IsZero() {
			t.Fatalf("marker of %s = %+v", key, doc)
		}
	}
}

// TestReleasedMarkerFailureIsOnlyLogged: a marker that cannot be written is
// a warning only (the file went out; a later pass at worst sends it again,
// which the deduplication ID or the enqueue marker absorbs). A send that
// fails stops the pass there, so nothing behind that file overtakes it; the
// next pass sends it and the rest, in order.
func TestReleasedMarkerFailureIsOnlyLogged(t *testing.T) {
	mem := s3fake.New()
	key := fileKey
	putFiles(mem, 12)
	s3c := &markerS3{S3: mem, prefix: layout.Default().ReleasedRoot(), failKey: markerKeyOf(5)}
	q := &memSender{fail: map[string]bool{key(11): true}}
	var logs pipelinetest.SyncBuffer
	r := memReleaser(t, s3c, q, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	res, err := memPass(t, context.Background(), r)
	if err == nil || !strings.Contains(err.Error(), key(11)) || res.Released != 11 {
		t.Fatalf("pass = %+v, %v; want 11 released, then the failed send of %s", res, err, key(11))
	}
	if len(q.entries) != 11 {
		t.Fatalf("%d messages sent, want 11", len(q.entries))
	}
	for i := range 12 {
		_, ok := mem.Get("b", markerKeyOf(i))
		if want := i < 11 && i != 5; ok != want {
			t.Errorf("%s: marker written %v, want %v", key(i), ok, want)
		}
	}
	count := map[string][]string{}
	for _, l := range logs.Lines() {
		msg, _ := l["msg"].(string)
		k, _ := l["key"].(string)
		count[msg] = append(count[msg], k)
		if msg == "release: released marker not written" && (l["level"] != "WARN" || !strings.Contains(fmt.Sprint(l["error"]), "injected")) {
			t.Errorf("marker failure logged as %v", l)
		}
	}
	if got := fmt.Sprint(count["release: released marker not written"]); got != "["+key(5)+"]" {
		t.Errorf("marker failures logged for %s, want %s", got, key(5))
	}
	if n := len(count["release: sent to the import queue"]); n != 11 {
		t.Errorf("%d files logged as sent, want 11", n)
	}
	// The next pass sends what is left (and f05 again: its marker is
	// missing; the queue's deduplication drops that one).
	q.fail = nil
	if res, err := memPass(t, context.Background(), r); err != nil || res.Released != 2 {
		t.Fatalf("next pass = %+v, %v; want f05 and f11", res, err)
	}
	var last []string
	for _, e := range q.entries[11:] {
		var fm importmsg.File
		json.Unmarshal([]byte(aws.ToString(e.MessageBody)), &fm)
		last = append(last, fm.Key)
	}
	if fmt.Sprint(last) != "["+key(5)+" "+key(11)+"]" {
		t.Fatalf("next pass sent %v", last)
	}
}

// TestRefusedFileIsNotOvertaken: SQS may refuse one entry of a batch and
// take the next. A pass whose send of f03 is refused sends nothing behind
// it; the next pass sends f03 and then the rest, so the queue holds every
// file in drop order.
func TestRefusedFileIsNotOvertaken(t *testing.T) {
	mem := s3fake.New()
	putFiles(mem, 12)
	q := &memSender{fail: map[string]bool{fileKey(3): true}}
	r := memReleaser(t, mem, q, slog.New(slog.DiscardHandler))
	res, err := memPass(t, context.Background(), r)
	if err == nil || !strings.Contains(err.Error(), fileKey(3)) || res.Released != 3 {
		t.Fatalf("pass = %+v, %v; want f00-f02 released, then the refused send of %s", res, err, fileKey(3))
	}
	q.fail = nil
	if res, err := memPass(t, context.Background(), r); err != nil || res.Released != 9 {
		t.Fatalf("next pass = %+v, %v; want the other 9", res, err)
	}
	var got, want []string
	for i, e := range q.entries {
		var fm importmsg.File
		json.Unmarshal([]byte(aws.ToString(e.MessageBody)), &fm)
		got = append(got, fm.Key)
		want = append(want, fileKey(i))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != 12 {
		t.Fatalf("queue order %v, want %v", got, want)
	}
}

// TestPassHandsOverWhenTimeRunsShort: files are sent one request each, so
// a long backlog can outlast the invocation. With a minute left a pass
// sends all 25 files; with less than the reserve left, it sends one file
// (a pass always makes progress) and hands the rest to a follow-up
// request; the next pass sends them, after the first.
func TestPassHandsOverWhenTimeRunsShort(t *testing.T) {
	ample := s3fake.New()
	putFiles(ample, 25)
	aq := &memSender{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if res, err := memPass(t, ctx, memReleaser(t, ample, aq, slog.New(slog.DiscardHandler))); err != nil || res.Released != 25 || len(aq.entries) != 25 {
		t.Fatalf("pass with a minute left = %+v, %v, %d messages; want all 25 sent and no follow-up", res, err, len(aq.entries))
	}

	mem := s3fake.New()
	putFiles(mem, 25)
	q := &memSender{}
	r := memReleaser(t, mem, q, slog.New(slog.DiscardHandler))
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if res, err := memPass(t, ctx, r); err != nil || res.Released != 1 || res.Waiting != 24 {
		t.Fatalf("pass = %+v, %v; want 1 released and 24 waiting, then a hand-over", res, err)
	}
	var files []string
	var followUps int
	decode := func() {
		files, followUps = nil, 0
		for _, e := range q.entries {
			msg, err := importmsg.Decode([]byte(aws.ToString(e.MessageBody)))
			switch {
			case err != nil:
				t.Fatalf("message %s: %v", aws.ToString(e.MessageBody), err)
			case msg.Release != nil && msg.Release.FollowUp:
				followUps++
			case msg.File != nil:
				files = append(files, msg.File.Key)
			}
		}
	}
	decode()
	if len(files) != 1 || followUps != 1 {
		t.Fatalf("sent %d files and %d follow-up requests; want 1 and 1", len(files), followUps)
	}
	if res, err := memPass(t, context.Background(), r); err != nil || res.Released != 24 {
		t.Fatalf("next pass = %+v, %v; want the other 24", res, err)
	}
	decode()
	var want []string
	for i := range 25 {
		want = append(want, fileKey(i))
	}
	if fmt.Sprint(files) != fmt.Sprint(want) {
		t.Fatalf("queue order %v, want %v", files, want)
	}
}
