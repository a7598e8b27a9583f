package enqueue_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

// hookEnqueuer calls before ahead of every enqueue (to inject a fault for
// that very request).
type hookEnqueuer struct {
	inner  enqueue.Enqueuer
	mu     sync.Mutex
	n      int
	before func(n int, req d365.EnqueueRequest)
}

func (h *hookEnqueuer) Enqueue(ctx context.Context, req d365.EnqueueRequest) (string, error) {
	h.mu.Lock()
	h.n++
	n := h.n
	h.mu.Unlock()
	if h.before != nil {
		h.before(n, req)
	}
	return h.inner.Enqueue(ctx, req)
}

type fixture struct {
	s3     *s3.Client
	sqs    *sqs.Client
	bucket string
	queue  string
	dlq    string
	emu    *d365test.Emulator
	hook   *hookEnqueuer
	h      *enqueue.Handler
	cfg    enqueue.Config
}

func newFixture(t *testing.T, fifo pipelinetest.FIFO, opts d365test.Options) *fixture {
	t.Helper()
	w := pipelinetest.NewImports(t, fifo)
	f := &fixture{s3: w.S3, sqs: w.SQS, bucket: w.Bucket, queue: w.Queue, dlq: w.DLQ, emu: pipelinetest.Emulator(t, opts, true)}
	env := w.Env(pipelinetest.Routes)
	cfg, err := enqueue.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = cfg
	f.hook = &hookEnqueuer{inner: pipelinetest.FnO(t, f.emu)}
	f.h, err = enqueue.New(cfg, f.s3, f.hook, f.sqs, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// drop puts a file in inbound/ and returns the FIFO message the router
// would send for it.
func (f *fixture) drop(t *testing.T, key string, body []byte) importmsg.File {
	t.Helper()
	v, etag := pipelinetest.Put(t, f.s3, f.bucket, key, body)
	route, _, _ := f.cfg.Layout.Split(key)
	return importmsg.File{Bucket: f.bucket, Key: key, VersionID: v, ETag: etag, Size: int64(len(body)), Route: route, EventTime: time.Now().UTC()}
}

// routeToQueue drops files and sends their file messages to the FIFO
// queue, in the order given, as a release pass does.
func (f *fixture) routeToQueue(t *testing.T, keys ...string) {
	t.Helper()
	for _, k := range keys {
		fm := f.drop(t, k, []byte("contents of "+k))
		rt, _ := f.cfg.Routes.Lookup(fm.Route)
		pipelinetest.SendFile(t, f.sqs, f.queue, rt.GroupID(), fm)
	}
}

func event(msgs ...importmsg.File) events.SQSEvent {
	var ev events.SQSEvent
	for i, m := range msgs {
		b, _ := json.Marshal(m)
		ev.Records = append(ev.Records, pipelinetest.Message(fmt.Sprintf("sqs-%d", i), string(b)))
	}
	return ev
}

func failures(resp events.SQSEventResponse) []string {
	var ids []string
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

// externalIDsByEntity is the emulator's enqueue order, per entity.
func externalIDsByEntity(e *d365test.Emulator) map[string][]string {
	out := map[string][]string{}
	for _, m := range e.Messages() {
		out[m.Entity] = append(out[m.Entity], m.ExternalID)
	}
	return out
}

func TestPerEntityOrderThroughFIFO(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{VisibilityTimeout: 30}, d365test.Options{})
	// Transient 502s on the 3rd and 8th enqueue, in the middle of batches:
	// the records behind them must not overtake them.
	f.hook.before = func(n int, _ d365.EnqueueRequest) {
		if n == 3 || n == 8 {
			f.emu.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, Status: 502})
		}
	}
	var keys []string
	want := map[string][]string{}
	for i := 1; i <= 5; i++ { // interleaved arrivals
		for _, r := range []struct{ route, entity string }{{"customers", "Customer groups"}, {"vendors", "Vendor groups"}, {"currencies", "Currencies"}} {
			k := fmt.Sprintf("inbound/%s/%d.csv", r.route, i)
			keys = append(keys, k)
			want[r.entity] = append(want[r.entity], k)
		}
	}
	f.routeToQueue(t, keys...)
	esm := &pipelinetest.ESM{SQS: f.sqs, QueueURL: f.queue}
	esm.Drain(t, context.Background(), f.h.Handle)

	got := externalIDsByEntity(f.emu)
	for entity, w := range want {
		if fmt.Sprint(got[entity]) != fmt.Sprint(w) {
			t.Errorf("%s reached F&O as %v, want %v", entity, got[entity], w)
		}
	}
	if n := len(f.emu.Messages()); n != 15 {
		t.Errorf("%d F&O messages, want 15 (each file once)", n)
	}
	if f.emu.Faulted("enqueue") != 2 {
		t.Errorf("faults used: %d, want 2", f.emu.Faulted("enqueue"))
	}
}

func TestSecondOfFourFails(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
	var msgs []importmsg.File
	for i := 1; i <= 4; i++ {
		msgs = append(msgs, f.drop(t, fmt.Sprintf("inbound/customers/%d.csv", i), []byte(fmt.Sprintf("row %d", i))))
	}
	f.hook.before = func(n int, _ d365.EnqueueRequest) {
		if n == 2 {
			f.emu.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, Status: 502})
		}
	}
	ev := event(msgs...)
	resp, err := f.h.Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if got := failures(resp); fmt.Sprint(got) != "[sqs-1 sqs-2 sqs-3]" {
		t.Fatalf("batch item failures = %v, want records 2-4", got)
	}
	if n := len(f.emu.Messages()); n != 1 {
		t.Fatalf("%d F&O messages after the first pass, want 1", n)
	}
	if f.hook.n != 2 {
		t.Fatalf("%d enqueue calls, want 2 (nothing after the failure)", f.hook.n)
	}
	// Redelivery of the whole batch: record 1 has a marker and is skipped.
	resp, err = f.h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("redelivery: %v %v", failures(resp), err)
	}
	got := externalIDsByEntity(f.emu)["Customer groups"]
	if fmt.Sprint(got) != "[inbound/customers/1.csv inbound/customers/2.csv inbound/customers/3.csv inbound/customers/4.csv]" {
		t.Fatalf("F&O got %v", got)
	}
}

func TestDuplicateDeliveryIsOneMessage(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
	m := f.drop(t, "inbound/vendors/dup.csv", []byte("a;b\n"))
	for range 3 {
		resp, err := f.h.Handle(context.Background(), event(m))
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("%v %v", failures(resp), err)
		}
	}
	if n := len(f.emu.Messages()); n != 1 {
		t.Fatalf("%d F&O messages, want 1", n)
	}
	st := &ledger.Store{S3: f.s3, Bucket: f.bucket, Layout: f.cfg.Layout}
	id := importmsg.Identity(m.Bucket, m.Key, m.VersionID, m.ETag)
	mk, found, err := st.GetMarker(context.Background(), id)
	if err != nil || !found || mk.MessageID != f.emu.Messages()[0].ID {
		t.Fatalf("marker = %+v %v %v", mk, found, err)
	}
	ids, _ := st.Identities(context.Background())
	if !ids[id] || len(ids) != 1 {
		t.Fatalf("ledger identities = %v", ids)
	}
	var rec ledger.Record
	st.Due(context.Background(), time.Now().Add(time.Hour), func(e ledger.Entry) bool {
		rec, _, _ = st.Get(context.Background(), e.Key)
		return false
	})
	if rec.MessageID != mk.MessageID || rec.Route != "vendors" || rec.Entity != "Vendor groups" || rec.ActivityID != pipelinetest.ActVendors ||
		rec.VersionID != m.VersionID || rec.EnqueuedAt.IsZero() || !rec.NextCheck.After(rec.EnqueuedAt) {
		t.Fatalf("ledger record = %+v", rec)
	}
}

func TestPoisonFileGoesToDLQThenGroupMovesOn(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{MaxReceiveCount: 2, VisibilityTimeout: 30}, d365test.Options{})
	// F&O answers 503 to every attempt at the poison file.
	f.hook.before = func(_ int, req d365.EnqueueRequest) {
		if strings.Contains(req.ExternalID, "poison") {
			f.emu.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, Status: 503})
		}
	}
	f.routeToQueue(t, "inbound/customers/1-good.csv", "inbound/customers/2-poison.csv", "inbound/customers/3-after.csv",
		"inbound/customers/4-after.csv", "inbound/vendors/other-entity.csv")
	// One message per batch: with larger batches the files behind the
	// poison one in the same batch are received (and counted) with it, and
	// follow it into the DLQ (see the package documentation).
	esm := &pipelinetest.ESM{SQS: f.sqs, QueueURL: f.queue, BatchSize: 1}
	esm.Drain(t, context.Background(), f.h.Handle)

	got := externalIDsByEntity(f.emu)
	if fmt.Sprint(got["Customer groups"]) != "[inbound/customers/1-good.csv inbound/customers/3-after.csv inbound/customers/4-after.csv]" {
		t.Fatalf("customers reached F&O as %v", got["Customer groups"])
	}
	if len(got["Vendor groups"]) != 1 {
		t.Fatalf("vendors: %v", got["Vendor groups"])
	}
	// The later files were held back until the poison one left the queue.
	lastPoison, firstAfter := -1, -1
	for i, b := range esm.Batches {
		for _, m := range b {
			if strings.Contains(m.Body, "2-poison") {
				lastPoison = i
			}
			if strings.Contains(m.Body, "3-after") && firstAfter < 0 {
				firstAfter = i
			}
		}
	}
	if lastPoison < 0 || firstAfter <= lastPoison {
		t.Fatalf("3-after was delivered in batch %d, the poison file last in batch %d", firstAfter, lastPoison)
	}
	dead := pipelinetest.Receive(t, f.sqs, f.dlq)
	if len(dead) != 1 || !strings.Contains(*dead[0].Body, "2-poison") {
		t.Fatalf("DLQ holds %d messages, want the poison file", len(dead))
	}
	if _, ok := pipelinetest.Get(t, f.s3, f.bucket, "inbound/customers/2-poison.csv"); !ok {
		t.Fatal("the poison file was removed from inbound/")
	}
	if f.emu.Faulted("enqueue") != 2 {
		t.Fatalf("poison attempts: %d, want maxReceiveCount (2)", f.emu.Faulted("enqueue"))
	}
}

func TestThrottledEnqueueIsWaitedOut(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
	f.emu.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, Status: 429, RetryAfter: 1})
	m := f.drop(t, "inbound/customers/busy.csv", []byte("x;y\n1;2\n"))
	resp, err := f.h.Handle(context.Background(), event(m))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("%v %v", failures(resp), err)
	}
	if n := len(f.emu.Messages()); n != 1 {
		t.Fatalf("%d F&O messages, want 1", n)
	}
	if f.emu.Requests("enqueue") != 2 || f.emu.Faulted("enqueue") != 1 {
		t.Fatalf("enqueue requests %d (faulted %d), want 2 (1)", f.emu.Requests("enqueue"), f.emu.Faulted("enqueue"))
	}
	if got := f.emu.Messages()[0]; got.Size != int64(len("x;y\n1;2\n")) || string(got.Body) != "x;y\n1;2\n" {
		t.Fatalf("resent body: %q (%d bytes)", got.Body, got.Size)
	}
}

func TestRefusedFiles(t *testing.T) {
	tests := []struct {
		name       string
		key        string
		fault      *d365test.Fault
		wantReject bool
		wantStatus int
	}{
		{name: "400 rejected", key: "inbound/customers/bad.csv", fault: &d365test.Fault{Endpoint: "enqueue", Count: 1, Status: 400}, wantReject: true, wantStatus: 400},
		{name: "unknown activity 404 rejected", key: "inbound/nowhere/x.csv", wantReject: true, wantStatus: 404},
		{name: "401 is configuration, not the file", key: "inbound/customers/auth.csv", fault: &d365test.Fault{Endpoint: "enqueue", Count: 1, Status: 401}},
		{name: "500 retried", key: "inbound/customers/flaky.csv", fault: &d365test.Fault{Endpoint: "enqueue", Count: 1, Status: 500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
			if tt.fault != nil {
				f.emu.Inject(*tt.fault)
			}
			m := f.drop(t, tt.key, []byte("data"))
			resp, err := f.h.Handle(context.Background(), event(m))
			if err != nil {
				t.Fatal(err)
			}
			_, inInbound := pipelinetest.Get(t, f.s3, f.bucket, tt.key)
			rejected := pipelinetest.Keys(t, f.s3, f.bucket, "rejected/")
			if !tt.wantReject {
				if len(resp.BatchItemFailures) != 1 || !inInbound || len(rejected) != 0 {
					t.Fatalf("failures %v, in inbound %v, rejected %v: want a retry, file untouched", failures(resp), inInbound, rejected)
				}
				return
			}
			if len(resp.BatchItemFailures) != 0 || inInbound || len(rejected) != 2 {
				t.Fatalf("failures %v, in inbound %v, rejected %v: want done, file in rejected/ with a reason", failures(resp), inInbound, rejected)
			}
			reason, _ := pipelinetest.Get(t, f.s3, f.bucket, rejected[1])
			var doc filing.Reason
			if err := json.Unmarshal(reason, &doc); err != nil {
				t.Fatal(err)
			}
			var answer struct{ Status int }
			json.Unmarshal(doc.Answer, &answer)
			if !strings.HasSuffix(rejected[1], layout.ReasonSuffix) || doc.Reason != "fno-rejected" || answer.Status != tt.wantStatus {
				t.Fatalf("%s = %s", rejected[1], reason)
			}
			// A redelivery changes nothing and sends nothing.
			before := f.emu.Requests("enqueue")
			if resp, _ := f.h.Handle(context.Background(), event(m)); len(resp.BatchItemFailures) != 0 || f.emu.Requests("enqueue") != before {
				t.Fatalf("redelivery: %v, %d requests", failures(resp), f.emu.Requests("enqueue")-before)
			}
		})
	}
}

func TestStreamsExactBytes(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{KeepEnqueuedBodyBytes: -1})
	body := make([]byte, 9<<20+123)
	rand.Read(body)
	sum := sha256.Sum256(body)
	pkg := make([]byte, 70000)
	rand.Read(pkg)
	m1 := f.drop(t, "inbound/currencies/big ünïcode+plus.csv", body)
	m2 := f.drop(t, "inbound/packages/pkg.zip", pkg)
	resp, err := f.h.Handle(context.Background(), event(m1, m2))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("%v %v", failures(resp), err)
	}
	msgs := f.emu.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages", len(msgs))
	}
	if msgs[0].Size != int64(len(body)) || msgs[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("F&O got %d bytes, sha %s; want %d, %x", msgs[0].Size, msgs[0].SHA256, len(body), sum)
	}
	if msgs[0].Entity != "Currencies" || msgs[0].ActivityID == "" || msgs[0].ExternalID != enqueue.ExternalID(m1.Key) {
		t.Fatalf("message = %+v", msgs[0])
	}
	if msgs[1].Entity != "" || msgs[1].Size != int64(len(pkg)) {
		t.Fatalf("package message = entity %q, %d bytes: a package job gets no entity", msgs[1].Entity, msgs[1].Size)
	}
}

func TestNothingToImport(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
	gone := f.drop(t, "inbound/customers/gone.csv", []byte("data"))
	if _, err := f.s3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &gone.Bucket, Key: &gone.Key, VersionId: &gone.VersionID}); err != nil {
		t.Fatal(err)
	}
	removedRoute := f.drop(t, "inbound/retired/x.csv", []byte("data"))
	removedRoute.Route = "retired"
	malformed := events.SQSMessage{MessageId: "bad", Body: "{not json"}
	ev := event(gone, removedRoute)
	ev.Records = append(ev.Records, malformed)
	resp, err := f.h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("%v %v", failures(resp), err)
	}
	if f.emu.Requests("enqueue") != 0 {
		t.Fatal("something was sent to F&O")
	}
	rej := pipelinetest.Keys(t, f.s3, f.bucket, "rejected/")
	if len(rej) != 4 || !strings.Contains(strings.Join(rej, " "), "rejected/_unrouted/") || !strings.Contains(strings.Join(rej, " "), "_malformed") {
		t.Fatalf("rejected = %v", rej)
	}
}

func TestDeadlineMarginReturnsEverything(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
	m := f.drop(t, "inbound/customers/late.csv", []byte("data"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // under the 20s margin
	defer cancel()
	resp, err := f.h.Handle(ctx, event(m, m))
	if err != nil || fmt.Sprint(failures(resp)) != "[sqs-0 sqs-1]" {
		t.Fatalf("%v %v", failures(resp), err)
	}
	if f.emu.Requests("enqueue") != 0 {
		t.Fatal("a record was started too close to the deadline")
	}
}

func TestExternalID(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"inbound/c/a b.csv", "inbound/c/a b.csv"},
		{"inbound/c/ü\n%.csv", "inbound/c/%C3%BC%0A%25.csv"},
		{strings.Repeat("d/", 200) + "file.csv", "..." + strings.Repeat("d/", 200)[400-(250-3-len("file.csv")):] + "file.csv"},
	} {
		if got := enqueue.ExternalID(tt.in); got != tt.want || len(got) > 250 {
			t.Errorf("ExternalID(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// Compile-time check that the test reads bodies as streams.
var _ io.Reader = bytes.NewReader(nil)

// TestMemoryDoesNotGrowWithFileSize: the file goes from S3 to
// F&O as a stream. Allocation while sending 64 MiB stays far below 64 MiB
// (the emulator, in this process too, only hashes what it reads).
func TestMemoryDoesNotGrowWithFileSize(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{KeepEnqueuedBodyBytes: -1})
	const size = 64 << 20
	if err := s3io.Upload(context.Background(), f.s3, f.bucket, "inbound/currencies/huge.csv", io.LimitReader(zeroReader{}, size), size, "", nil); err != nil {
		t.Fatal(err)
	}
	head, err := f.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &f.bucket, Key: aws.String("inbound/currencies/huge.csv")})
	if err != nil {
		t.Fatal(err)
	}
	m := importmsg.File{Bucket: f.bucket, Key: "inbound/currencies/huge.csv", VersionID: aws.ToString(head.VersionId),
		ETag: aws.ToString(head.ETag), Size: size, Route: "currencies", EventTime: time.Now()}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	resp, err := f.h.Handle(context.Background(), event(m))
	runtime.ReadMemStats(&after)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("%v %v", failures(resp), err)
	}
	if got := f.emu.Messages(); len(got) != 1 || got[0].Size != size {
		t.Fatalf("F&O got %+v", got)
	}
	t.Logf("alloc %d KiB", (after.TotalAlloc-before.TotalAlloc)>>10)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/4 {
		t.Fatalf("sending %d MiB allocated %d MiB: the file is being buffered", size>>20, alloc>>20)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestOutcomeUnknownIsNotResent: at most once into F&O. A file whose enqueue went
// out without an answer may be in F&O already, so it is never sent again;
// it goes to failed/ with a result saying what to check.
func TestOutcomeUnknownIsNotResent(t *testing.T) {
	tests := []struct {
		name         string
		fault        d365test.Fault
		wantMessages int // what F&O holds afterwards
	}{
		{"connection cut while sending", d365test.Fault{Endpoint: "enqueue", Count: 1, ResetAfterBytes: 3}, 0},
		{"stored, answer lost at the deadline", d365test.Fault{Endpoint: "enqueue", Count: 1, Delay: time.Minute}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
			cfg := f.cfg
			cfg.Margin = 100 * time.Millisecond
			h, err := enqueue.New(cfg, f.s3, pipelinetest.FnO(t, f.emu), f.sqs, pipelinetest.Quiet())
			if err != nil {
				t.Fatal(err)
			}
			f.emu.Inject(tt.fault)
			m := f.drop(t, "inbound/customers/unsure.csv", []byte("0123456789"))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			resp, err := h.Handle(ctx, event(m))
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("%v %v: want done, not retried", failures(resp), err)
			}
			dst := "failed/customers/" + time.Now().UTC().Format("2006/01/02") + "/unsure.csv"
			raw, ok := pipelinetest.Get(t, f.s3, f.bucket, dst+layout.ResultSuffix)
			if !ok || !strings.Contains(string(raw), enqueue.OutcomeUnknown) || !strings.Contains(string(raw), "inbound/customers/unsure.csv") {
				t.Fatalf("result: %s (bucket: %v)", raw, pipelinetest.Keys(t, f.s3, f.bucket, ""))
			}
			if body, ok := pipelinetest.Get(t, f.s3, f.bucket, dst); !ok || string(body) != "0123456789" {
				t.Fatalf("failed copy = %q %v", body, ok)
			}
			// A redelivery sends nothing.
			if resp, _ := h.Handle(context.Background(), event(m)); len(resp.BatchItemFailures) != 0 {
				t.Fatal(failures(resp))
			}
			if n := f.emu.Requests("enqueue"); n != 1 || len(f.emu.Messages()) != tt.wantMessages {
				t.Fatalf("%d enqueue requests, %d messages: the file was sent again", n, len(f.emu.Messages()))
			}
		})
	}
}
