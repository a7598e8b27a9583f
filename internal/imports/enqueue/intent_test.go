package enqueue_test

import (
	"bytes"
	"context"
	"errors"
	"io"
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
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// faultyS3 fails the calls fail picks (before they reach S3).
type faultyS3 struct {
	*s3.Client
	mu   sync.Mutex
	fail func(op, key string, conditional bool) bool
	n    int // calls failed
}

func (f *faultyS3) failed(op, key string, conditional bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail(op, key, conditional) {
		f.n++
		return true
	}
	return false
}

func (f *faultyS3) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if f.failed("GetObject", *in.Key, false) {
		return nil, errors.New("injected: S3 unavailable")
	}
	return f.Client.GetObject(ctx, in, opts...)
}

func (f *faultyS3) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if f.failed("PutObject", *in.Key, in.IfNoneMatch != nil || in.IfMatch != nil) {
		return nil, errors.New("injected: S3 unavailable")
	}
	return f.Client.PutObject(ctx, in, opts...)
}

func (f *faultyS3) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	if f.failed("DeleteObject", *in.Key, false) {
		return nil, errors.New("injected: S3 unavailable")
	}
	return f.Client.DeleteObject(ctx, in, opts...)
}

func isMarker(key string) bool { return strings.HasPrefix(key, "_state/markers/") }

// The intent marker goes out together with the file's GET. When the
// delivery then sends nothing (the file is gone, empty, or its GET
// failed), it withdraws its intent: no marker is left to make a later
// delivery file the file as "outcome unknown".
func TestIntentIsWithdrawnWhenNothingIsSent(t *testing.T) {
	t.Run("gone", func(t *testing.T) {
		f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
		m := f.drop(t, "inbound/customers/gone.csv", []byte("data"))
		if _, err := f.s3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &m.Bucket, Key: &m.Key, VersionId: &m.VersionID}); err != nil {
			t.Fatal(err)
		}
		if resp, err := f.h.Handle(context.Background(), event(m)); err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("%v %v", failures(resp), err)
		}
		f.noMarkersNothingSent(t)
	})
	t.Run("empty", func(t *testing.T) {
		f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
		m := f.drop(t, "inbound/customers/empty.csv", nil)
		if resp, err := f.h.Handle(context.Background(), event(m)); err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("%v %v", failures(resp), err)
		}
		f.noMarkersNothingSent(t)
		f.rejectedAs(t, "empty-file")
	})
	t.Run("GET failed, then the redelivery sends it", func(t *testing.T) {
		f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
		m := f.drop(t, "inbound/customers/flaky.csv", []byte("data"))
		s3c := &faultyS3{Client: f.s3, fail: func(op, key string, _ bool) bool { return op == "GetObject" && key == m.Key }}
		h, err := enqueue.New(f.cfg, s3c, f.hook, f.sqs, pipelinetest.Quiet())
		if err != nil {
			t.Fatal(err)
		}
		if resp, _ := h.Handle(context.Background(), event(m)); len(resp.BatchItemFailures) != 1 || s3c.n != 1 {
			t.Fatalf("failures %v after %d injected GET faults: want the message back for a retry", failures(resp), s3c.n)
		}
		f.noMarkersNothingSent(t)
		if resp, err := f.h.Handle(context.Background(), event(m)); err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("%v %v", failures(resp), err)
		}
		if msgs := f.emu.Messages(); len(msgs) != 1 || msgs[0].ExternalID != enqueue.ExternalID(m.Key) {
			t.Fatalf("F&O holds %+v: want the file, once", msgs)
		}
		if keys := pipelinetest.Keys(t, f.s3, f.bucket, "failed/"); len(keys) != 0 {
			t.Fatalf("filed %v: the failed GET left its intent behind", keys)
		}
	})
}

// An empty file is never sent, whatever marker it has: one left by a
// withdrawal that failed makes it no "outcome unknown".
func TestEmptyFileWithALeftoverIntentIsRejected(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
	m := f.drop(t, "inbound/customers/empty.csv", nil)
	st := &ledger.Store{S3: f.s3, Bucket: f.bucket, Layout: f.cfg.Layout}
	id := importmsg.Identity(m.Bucket, m.Key, m.VersionID, m.ETag)
	if _, _, err := st.PutMarker(context.Background(), ledger.Record{Identity: id, Bucket: m.Bucket, Key: m.Key, VersionID: m.VersionID,
		Route: "customers", ExternalID: m.Key, EnqueuedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if resp, err := f.h.Handle(context.Background(), event(m)); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("%v %v", failures(resp), err)
	}
	f.noMarkersNothingSent(t)
	f.rejectedAs(t, "empty-file")
	if keys := pipelinetest.Keys(t, f.s3, f.bucket, "failed/"); len(keys) != 0 {
		t.Fatalf("filed %v as outcome unknown", keys)
	}
}

// After F&O's answer the marker is updated before the ledger record is
// written. If the marker cannot be updated, no ledger record is written:
// the redelivery files the file as "outcome unknown" (it does not send it
// again), and the poller does not follow it as well.
func TestMarkerUpdateFailureWritesNoLedgerRecord(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
	m := f.drop(t, "inbound/customers/unmarked.csv", []byte("data"))
	s3c := &faultyS3{Client: f.s3, fail: func(op, key string, conditional bool) bool {
		return op == "PutObject" && isMarker(key) && !conditional // the update, not the intent
	}}
	h, err := enqueue.New(f.cfg, s3c, f.hook, f.sqs, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := h.Handle(context.Background(), event(m)); len(resp.BatchItemFailures) != 1 || s3c.n == 0 {
		t.Fatalf("failures %v after %d injected marker faults: want the message back", failures(resp), s3c.n)
	}
	if keys := pipelinetest.Keys(t, f.s3, f.bucket, "_state/ledger/"); len(keys) != 0 {
		t.Fatalf("ledger records %v left for the poller beside an intent marker", keys)
	}
	if resp, err := f.h.Handle(context.Background(), event(m)); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("redelivery: %v %v", failures(resp), err)
	}
	if n := f.emu.Requests("enqueue"); n != 1 {
		t.Fatalf("%d enqueue requests: the file was sent again", n)
	}
	dst := "failed/customers/" + time.Now().UTC().Format("2006/01/02") + "/unmarked.csv"
	raw, ok := pipelinetest.Get(t, f.s3, f.bucket, dst+layout.ResultSuffix)
	if !ok || !strings.Contains(string(raw), enqueue.OutcomeUnknown) {
		t.Fatalf("result %s; bucket %v", raw, pipelinetest.Keys(t, f.s3, f.bucket, ""))
	}
}

func (f *fixture) noMarkersNothingSent(t *testing.T) {
	t.Helper()
	if keys := pipelinetest.Keys(t, f.s3, f.bucket, "_state/markers/"); len(keys) != 0 {
		t.Fatalf("markers left behind: %v", keys)
	}
	if n := f.emu.Requests("enqueue"); n != 0 {
		t.Fatalf("%d enqueue requests", n)
	}
}

func (f *fixture) rejectedAs(t *testing.T, code string) {
	t.Helper()
	for _, k := range pipelinetest.Keys(t, f.s3, f.bucket, "rejected/") {
		if strings.HasSuffix(k, layout.ReasonSuffix) {
			raw, _ := pipelinetest.Get(t, f.s3, f.bucket, k)
			if strings.Contains(string(raw), `"`+code+`"`) {
				return
			}
		}
	}
	t.Fatalf("not rejected as %s: %v", code, pipelinetest.Keys(t, f.s3, f.bucket, ""))
}

// pairedS3 holds each call of a pair until the other call of its pair has
// started too. With the calls made one after the other, the first waits
// in vain; the guard then lets it go and counts a miss. It also notes a
// ledger record written before the marker held F&O's message ID.
type pairedS3 struct {
	*s3.Client
	file    string
	mu      sync.Mutex
	started map[string]chan struct{}
	missed  []string
	updated bool // the marker update has answered
	early   bool // a ledger record went out before it
}

func (p *pairedS3) role(name string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started[name] == nil {
		p.started[name] = make(chan struct{})
	}
	return p.started[name]
}

func (p *pairedS3) meet(role, partner string) {
	close(p.role(role))
	select {
	case <-p.role(partner):
	case <-time.After(30 * time.Second): // a guard against a hang, not a measure of speed
		p.mu.Lock()
		p.missed = append(p.missed, role+" ran without "+partner)
		p.mu.Unlock()
	}
}

func (p *pairedS3) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if *in.Key == p.file {
		p.meet("get", "intent")
	}
	return p.Client.GetObject(ctx, in, opts...)
}

func (p *pairedS3) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	switch {
	case isMarker(*in.Key) && in.IfNoneMatch != nil:
		p.meet("intent", "get")
	case isMarker(*in.Key):
		out, err := p.Client.PutObject(ctx, in, opts...)
		p.mu.Lock()
		p.updated = err == nil
		p.mu.Unlock()
		return out, err
	case strings.HasPrefix(*in.Key, "_state/ledger/"):
		p.mu.Lock()
		p.early = p.early || !p.updated
		p.mu.Unlock()
	}
	return p.Client.PutObject(ctx, in, opts...)
}

// A file costs one S3 round trip fewer than its requests: the intent
// marker's write is in flight with the file's GET. The ledger record is
// written only after the marker update has answered: the poller never
// follows a file whose marker is still an intent.
func TestIntentOverlapsTheReadAndTheRecordFollowsTheMarker(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
	m := f.drop(t, "inbound/customers/paired.csv", []byte("data"))
	s3c := &pairedS3{Client: f.s3, file: m.Key, started: map[string]chan struct{}{}}
	h, err := enqueue.New(f.cfg, s3c, f.hook, f.sqs, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := h.Handle(context.Background(), event(m)); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("%v %v", failures(resp), err)
	}
	if len(s3c.missed) != 0 {
		t.Fatalf("not in flight together: %v", s3c.missed)
	}
	if len(s3c.started) != 2 || len(f.emu.Messages()) != 1 {
		t.Fatalf("calls seen %d of 2, %d F&O messages", len(s3c.started), len(f.emu.Messages()))
	}
	if s3c.early || !s3c.updated {
		t.Fatal("the ledger record went out before the marker held F&O's message ID")
	}
	if keys := pipelinetest.Keys(t, f.s3, f.bucket, "_state/ledger/"); len(keys) != 1 {
		t.Fatalf("ledger records %v, want one", keys)
	}
}

// lostAnswerS3 loses the answer to the first intent write: the write lands,
// and the SDK's retry of it finds the marker there (412), as S3 answers.
type lostAnswerS3 struct {
	*s3.Client
	once sync.Once
}

func (l *lostAnswerS3) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	lost := false
	if isMarker(*in.Key) && in.IfNoneMatch != nil {
		l.once.Do(func() { lost = true })
	}
	if !lost {
		return l.Client.PutObject(ctx, in, opts...)
	}
	body, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	first := *in
	first.Body = bytes.NewReader(body)
	if _, err := l.Client.PutObject(ctx, &first, opts...); err != nil {
		return nil, err
	}
	again := *in
	again.Body = bytes.NewReader(body)
	return l.Client.PutObject(ctx, &again, opts...)
}

// An intent write whose answer was lost, retried, finds its own marker:
// the delivery knows it by its attempt token and sends the file, instead
// of taking it for an earlier attempt's and filing it as outcome unknown.
func TestIntentWhoseAnswerWasLostIsKnownAsOwn(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
	m := f.drop(t, "inbound/customers/lost-answer.csv", []byte("data"))
	h, err := enqueue.New(f.cfg, &lostAnswerS3{Client: f.s3}, f.hook, f.sqs, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := h.Handle(context.Background(), event(m)); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("%v %v", failures(resp), err)
	}
	if n := f.emu.Requests("enqueue"); n != 1 {
		t.Fatalf("%d enqueue requests, want the file sent once", n)
	}
	if keys := pipelinetest.Keys(t, f.s3, f.bucket, "failed/"); len(keys) != 0 {
		t.Fatalf("filed as outcome unknown: %v", keys)
	}
	if keys := pipelinetest.Keys(t, f.s3, f.bucket, "_state/ledger/"); len(keys) != 1 {
		t.Fatalf("ledger records %v, want the one the poller follows", keys)
	}
}
