package enqueue_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// crashAfter sends the file for real, then ends the handler's goroutine
// the way a killed process would: nothing after the send runs.
type crashAfter struct{ inner enqueue.Enqueuer }

func (c crashAfter) Enqueue(ctx context.Context, req d365.EnqueueRequest) (string, error) {
	c.inner.Enqueue(ctx, req)
	runtime.Goexit()
	return "", nil
}

// A crash between F&O's answer and the marker update leaves the intent
// marker; the redelivery files the file as "outcome unknown" and does not
// send it again (at most once into F&O).
func TestCrashAfterSendIsNotResent(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
	crashing, err := enqueue.New(f.cfg, f.s3, crashAfter{pipelinetest.FnO(t, f.emu)}, f.sqs, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	m := f.drop(t, "inbound/customers/crash.csv", []byte("CUSTGROUP\r\n10\r\n"))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		crashing.Handle(context.Background(), event(m))
	}()
	wg.Wait()
	if n := len(f.emu.Messages()); n != 1 {
		t.Fatalf("F&O holds %d messages before the redelivery, want 1", n)
	}

	// SQS redelivers to a healthy instance.
	resp, err := f.h.Handle(context.Background(), event(m))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("%v %v", failures(resp), err)
	}
	if n := f.emu.Requests("enqueue"); n != 1 {
		t.Fatalf("%d enqueue requests: the file was sent again", n)
	}
	dst := "failed/customers/" + time.Now().UTC().Format("2006/01/02") + "/crash.csv"
	raw, ok := pipelinetest.Get(t, f.s3, f.bucket, dst+layout.ResultSuffix)
	if !ok || !strings.Contains(string(raw), enqueue.OutcomeUnknown) {
		t.Fatalf("result %s; bucket %v", raw, pipelinetest.Keys(t, f.s3, f.bucket, ""))
	}
	if keys := pipelinetest.Keys(t, f.s3, f.bucket, "_state/markers/"); len(keys) != 0 {
		t.Fatalf("markers left behind: %v", keys)
	}
}

// failingResultPut fails the first PUT of a result document.
type failingResultPut struct {
	*s3.Client
	mu     sync.Mutex
	failed bool
}

func (f *failingResultPut) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	f.mu.Lock()
	fail := !f.failed && strings.HasSuffix(*in.Key, layout.ResultSuffix)
	f.failed = f.failed || fail
	f.mu.Unlock()
	if fail {
		return nil, errors.New("injected: S3 unavailable")
	}
	return f.Client.PutObject(ctx, in, opts...)
}

// Filing an "outcome unknown" that fails half-way is finished by the
// redelivery, which still does not send the file again.
func TestOutcomeUnknownFilingFailureIsFinishedNotResent(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
	h, err := enqueue.New(f.cfg, &failingResultPut{Client: f.s3}, pipelinetest.FnO(t, f.emu), f.sqs, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	f.emu.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, ResetAfterBytes: 3})
	m := f.drop(t, "inbound/customers/half.csv", []byte("0123456789"))
	if resp, _ := h.Handle(context.Background(), event(m)); len(resp.BatchItemFailures) != 1 {
		t.Fatalf("the failed filing must be retried: %v", failures(resp))
	}
	if resp, err := h.Handle(context.Background(), event(m)); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("%v %v", failures(resp), err)
	}
	if n := f.emu.Requests("enqueue"); n != 1 {
		t.Fatalf("%d enqueue requests: the file was sent again", n)
	}
	dst := "failed/customers/" + time.Now().UTC().Format("2006/01/02") + "/half.csv"
	if _, ok := pipelinetest.Get(t, f.s3, f.bucket, dst+layout.ResultSuffix); !ok {
		t.Fatalf("no result; bucket %v", pipelinetest.Keys(t, f.s3, f.bucket, ""))
	}
	if _, ok := pipelinetest.Get(t, f.s3, f.bucket, "inbound/customers/half.csv"); ok {
		t.Fatal("the file is still in inbound/")
	}
}

// A redelivery of a file whose version is gone reads the file's marker (a
// first delivery reads none: the intent marker's conditional write is its
// look): an earlier attempt's intent is cleared, since there is nothing
// left to file, and a sent file's marker is kept for the poller; nothing
// is sent either way.
func TestRedeliveryOfAGoneFile(t *testing.T) {
	for _, tt := range []struct {
		name       string
		messageID  string
		markerKept bool
	}{
		{"intent marker", "", false},
		{"sent", "msg-earlier", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
			m := f.drop(t, "inbound/customers/gone.csv", []byte("data"))
			st := &ledger.Store{S3: f.s3, Bucket: f.bucket, Layout: f.cfg.Layout}
			id := importmsg.Identity(m.Bucket, m.Key, m.VersionID, m.ETag)
			if _, _, err := st.PutMarker(context.Background(), ledger.Record{Identity: id, MessageID: tt.messageID, Bucket: m.Bucket,
				Key: m.Key, VersionID: m.VersionID, Route: "customers", ExternalID: m.Key, EnqueuedAt: time.Now().UTC()}); err != nil {
				t.Fatal(err)
			}
			if _, err := f.s3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &m.Bucket, Key: &m.Key, VersionId: &m.VersionID}); err != nil {
				t.Fatal(err)
			}
			if resp, err := f.h.Handle(context.Background(), event(m)); err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("%v %v", failures(resp), err)
			}
			if n := f.emu.Requests("enqueue"); n != 0 {
				t.Fatalf("%d enqueue requests for a gone file", n)
			}
			if _, found, err := st.GetMarker(context.Background(), id); err != nil || found != tt.markerKept {
				t.Fatalf("marker found = %v (%v), want %v", found, err, tt.markerKept)
			}
			if keys := pipelinetest.Keys(t, f.s3, f.bucket, "failed/"); len(keys) != 0 {
				t.Fatalf("filed %v for a file that is gone", keys)
			}
		})
	}
}
