package config_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/config"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/notify"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

// countingS3 counts the requests the store makes.
type countingS3 struct {
	*s3.Client
	gets, lists atomic.Int32
	breakBody   atomic.Bool // the next GetObject's body breaks off after a few bytes
}

func (c *countingS3) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	c.gets.Add(1)
	out, err := c.Client.GetObject(ctx, in, o...)
	if err == nil && c.breakBody.CompareAndSwap(true, false) {
		out.Body = brokenBody{io.LimitReader(out.Body, 5), out.Body}
	}
	return out, err
}

// brokenBody is a download that breaks off: a connection reset mid-body.
type brokenBody struct {
	r io.Reader
	io.Closer
}

func (b brokenBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		err = errors.New("connection reset by peer")
	}
	return n, err
}

func (c *countingS3) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, o ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	c.lists.Add(1)
	return c.Client.ListObjectVersions(ctx, in, o...)
}

type rig struct {
	t      *testing.T
	s3     *countingS3
	bucket string
	topic  string
	inbox  string
	sqs    *sqs.Client
	emf    *bytes.Buffer
	rec    *metrics.Recorder
}

func newRig(t *testing.T) *rig {
	ctx := context.Background()
	r := &rig{t: t, s3: &countingS3{Client: mototest.S3(t)}, bucket: mototest.NewBucket(t), sqs: mototest.SQS(t), emf: &bytes.Buffer{}}
	snsc := sns.NewFromConfig(mototest.Config(t))
	topic, err := snsc.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(mototest.Name("cfg"))})
	if err != nil {
		t.Fatal(err)
	}
	r.topic = aws.ToString(topic.TopicArn)
	var arn string
	r.inbox, arn = pipelinetest.NewStandard(t, r.sqs, 30)
	if _, err := snsc.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: &arn}); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) store() *config.Store {
	rec := metrics.New("prod", r.emf)
	r.rec = rec
	return &config.Store{S3: r.s3, Bucket: r.bucket, Key: config.DefaultKey, Log: pipelinetest.Quiet(), Metrics: rec,
		Notify: &notify.Notifier{Topic: r.topic, Stack: "prod", SNS: sns.NewFromConfig(mototest.Config(r.t)), S3: r.s3.Client,
			Bucket: r.bucket, Layout: layout.Default(), Log: pipelinetest.Quiet(), Metrics: rec}}
}

func (r *rig) put(doc string) {
	r.t.Helper()
	pipelinetest.Put(r.t, r.s3.Client, r.bucket, config.DefaultKey, []byte(doc))
}

func (r *rig) subjects() []string {
	var out []string
	for _, m := range pipelinetest.Receive(r.t, r.sqs, r.inbox) {
		var env struct{ Subject string }
		json.Unmarshal([]byte(aws.ToString(m.Body)), &env)
		out = append(out, env.Subject)
	}
	return out
}

func routesDoc(names ...string) string {
	var rs []string
	for _, n := range names {
		rs = append(rs, `{"route":"`+n+`","activityId":"`+act+`","entity":"E `+n+`"}`)
	}
	return `{"routes":[` + strings.Join(rs, ",") + `],"jobs":[]}`
}

// TestStoreKeepsTheLastGoodDocument: a change is seen on the next load; an
// unchanged document costs one conditional GET; a document that does not
// validate, or is deleted, leaves the functions on the last good one and
// is told once, however often it is loaded.
func TestStoreKeepsTheLastGoodDocument(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	s := r.store()
	if _, err := s.Load(ctx); !errors.Is(err, config.ErrNoDocument) {
		t.Fatalf("no document: %v, want ErrNoDocument", err)
	}
	r.put(routesDoc("customers"))
	d, err := s.Load(ctx)
	if err != nil || d.Routes.Len() != 1 {
		t.Fatalf("load: %v", err)
	}
	before := r.s3.gets.Load()
	for range 3 {
		if again, err := s.Load(ctx); err != nil || again != d {
			t.Fatalf("unchanged: %v, same document %v", err, again == d)
		}
	}
	if got := r.s3.gets.Load() - before; got != 3 {
		t.Errorf("%d GETs for three loads of an unchanged document, want 3", got)
	}

	r.put(routesDoc("customers", "vendors"))
	if d, _ = s.Load(ctx); d.Routes.Len() != 2 {
		t.Fatalf("the change is not seen: %v", d.Routes.Names())
	}
	r.put(`{"routes":[{"route":"broken"}]}`)
	for range 3 {
		got, err := s.Load(ctx)
		if err != nil || got != d {
			t.Fatalf("a bad document: %v; the last good one kept: %v", err, got == d)
		}
	}
	r.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &r.bucket, Key: aws.String(config.DefaultKey)})
	if got, err := s.Load(ctx); err != nil || got != d {
		t.Fatalf("a deleted document: %v; the last good one kept: %v", err, got == d)
	}
	subjects := r.subjects()
	if len(subjects) != 2 || !strings.HasPrefix(subjects[0], "[prod] config: _config/config.json cannot be used") {
		t.Errorf("notifications %q, want one for the bad version and one for the deletion", subjects)
	}
	r.rec.Flush()
	if !strings.Contains(r.emf.String(), `"ConfigRejected"`) {
		t.Errorf("ConfigRejected not counted: %s", r.emf.String())
	}
}

// TestColdStartGoesBackToAGoodVersion: a function starting while the
// current document is bad uses the newest version that validates; with
// none it has no routes and says so.
func TestColdStartGoesBackToAGoodVersion(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	r.put(routesDoc("customers"))
	r.put(routesDoc("customers", "vendors"))
	r.put(`{"routes":"all of them"}`)
	d, err := r.store().Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Routes.Names(); len(got) != 2 {
		t.Errorf("routes %v, want the newest good version's two", got)
	}

	other := newRig(t)
	other.put(`{"routes":"all of them"}`)
	other.put(`not json`)
	if _, err := other.store().Load(ctx); !errors.Is(err, config.ErrNoDocument) {
		t.Errorf("no good version: %v, want ErrNoDocument", err)
	}
}

// TestLiveRoutesFollowTheDocument: the table the functions use sees a
// change once its interval has passed, and keeps its routes when the
// document goes bad.
func TestLiveRoutesFollowTheDocument(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	clock := pipelinetest.NewClock(time.Now())
	tbl := r.store().Routes(config.RefreshEvery, clock.Now)
	if err := tbl.Refresh(ctx); err == nil || tbl.Loaded() {
		t.Fatalf("before any document: %v, loaded %v", err, tbl.Loaded())
	}
	r.put(routesDoc("customers"))
	if err := tbl.Refresh(ctx); err != nil || !tbl.Loaded() || tbl.Len() != 1 {
		t.Fatalf("first document: %v", err)
	}
	r.put(routesDoc("customers", "vendors"))
	tbl.Refresh(ctx)
	if tbl.Len() != 1 {
		t.Errorf("reloaded before the interval")
	}
	clock.Set(clock.Now().Add(config.RefreshEvery))
	tbl.Refresh(ctx)
	if _, ok := tbl.Lookup("vendors"); !ok {
		t.Errorf("the new route is not seen after the interval")
	}
	r.put(`{}{}`)
	clock.Set(clock.Now().Add(config.RefreshEvery))
	if err := tbl.Refresh(ctx); err != nil || tbl.Len() != 2 {
		t.Errorf("a bad document: %v, %d routes", err, tbl.Len())
	}
}

// TestMissLooksAgain: a route added a moment ago is found by the first file
// that asks for it, before the table's interval has passed; a burst of
// misses for a folder that is not configured costs one GET, not one each.
func TestMissLooksAgain(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	clock := pipelinetest.NewClock(time.Now())
	tbl := r.store().Routes(config.RefreshEvery, clock.Now)
	r.put(routesDoc("customers"))
	if err := tbl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	r.put(routesDoc("customers", "vendors"))
	clock.Set(clock.Now().Add(time.Second))
	if _, ok := tbl.Lookup("vendors"); ok {
		t.Fatal("the plain lookup saw the new route before the interval; the test proves nothing")
	}
	if _, ok := tbl.LookupFresh(ctx, "vendors"); !ok {
		t.Fatal("a route added a moment ago was not found on a miss")
	}
	before := r.s3.gets.Load()
	for range 20 {
		if _, ok := tbl.LookupFresh(ctx, "nowhere"); ok {
			t.Fatal("found a route that is not configured")
		}
	}
	if n := r.s3.gets.Load() - before; n > 1 {
		t.Errorf("20 misses at one moment cost %d GETs; want at most 1", n)
	}
	clock.Set(clock.Now().Add(time.Second))
	tbl.LookupFresh(ctx, "nowhere")
	if n := r.s3.gets.Load() - before; n != 1 {
		t.Errorf("a miss after the recheck window: %d GETs in all, want 1", n)
	}
}

// TestBrokenDownloadIsNotABadDocument: a document whose download breaks off
// is not judged: the last good one is kept without a notification or a
// ConfigRejected, and the next load reads it whole and applies it.
func TestBrokenDownloadIsNotABadDocument(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	s := r.store()
	r.put(routesDoc("customers"))
	d, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.put(routesDoc("customers", "vendors"))
	r.s3.breakBody.Store(true)
	if got, err := s.Load(ctx); err != nil || got != d {
		t.Fatalf("a broken download: %v; the last good one kept: %v", err, got == d)
	}
	if got, err := s.Load(ctx); err != nil || got.Routes.Len() != 2 {
		t.Fatalf("the next load: %v; want the new document applied", err)
	}
	if subjects := r.subjects(); len(subjects) != 0 {
		t.Errorf("notifications %q for a download that broke off", subjects)
	}
	r.rec.Flush()
	if strings.Contains(r.emf.String(), `"ConfigRejected"`) {
		t.Errorf("ConfigRejected counted for a download that broke off: %s", r.emf.String())
	}
}
