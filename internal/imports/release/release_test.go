package release_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/pause"
	"github.com/fno-bridge/s3-fno/internal/imports/release"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

// testRoutes: "journal" orders by the time S3 stored a file, "numbered" by
// name; "slow" has a settle window no test waits out.
const testRoutes = `[
 {"route":"journal","activityId":"` + pipelinetest.ActCustomers + `","entity":"Journal","settle":"0s"},
 {"route":"numbered","activityId":"` + pipelinetest.ActVendors + `","entity":"Numbered","order":"name","settle":"0s"},
 {"route":"slow","activityId":"` + pipelinetest.ActCurrencies + `","entity":"Slow","settle":"1m"}]`

type fixture struct {
	*pipelinetest.Imports
	cfg routes.Config
	rel *release.Releaser
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	w := pipelinetest.NewImports(t, pipelinetest.FIFO{})
	env := w.Env(testRoutes)
	cfg, err := routes.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	rel, err := release.New(release.Config{Config: cfg, QueueURL: w.Queue}, w.S3, w.SQS, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{Imports: w, cfg: cfg, rel: rel}
}

// at is the releaser with its clock moved by off.
func (f *fixture) at(off time.Duration) *release.Releaser {
	return f.rel.WithClock(func() time.Time { return time.Now().Add(off) }, func(ctx context.Context, d time.Duration) error {
		panic("the pass waited")
	})
}

// pass runs a pass over route as if requested long ago.
func (f *fixture) pass(t *testing.T, r *release.Releaser, route string) release.Result {
	t.Helper()
	res, err := r.Pass(context.Background(), importmsg.Release{Route: route, RequestedAt: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatalf("pass over %s: %v", route, err)
	}
	return res
}

// queued takes every message off the queue: file keys in queue order, and
// the release requests.
func (f *fixture) queued(t *testing.T) (files []string, requests []importmsg.Release, msgs []sqstypes.Message) {
	t.Helper()
	msgs = pipelinetest.Receive(t, f.SQS, f.Queue)
	for _, m := range msgs {
		msg, err := importmsg.Decode([]byte(aws.ToString(m.Body)))
		if err != nil {
			t.Fatalf("queued %q: %v", aws.ToString(m.Body), err)
		}
		if msg.Release != nil {
			requests = append(requests, *msg.Release)
			continue
		}
		files = append(files, msg.File.Key)
	}
	return files, requests, msgs
}

// lastModified is the time S3 stored a key, as its listing says.
func (f *fixture) lastModified(t *testing.T, key string) time.Time {
	t.Helper()
	out, err := f.S3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &f.Bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToTime(out.LastModified)
}

// TestPassReleasesInTheRoutesOrder: a pass sends a route's files in the
// route's order, not in the order S3 lists them: by the second S3 stored
// them, then key ("journal"); by key ("numbered"). The order expected is
// worked out from S3's own Last-Modified of each file.
func TestPassReleasesInTheRoutesOrder(t *testing.T) {
	f := newFixture(t)
	put := func(keys ...string) {
		for _, k := range keys {
			pipelinetest.Put(t, f.S3, f.Bucket, k, []byte("row of "+k))
		}
	}
	put("inbound/journal/c.csv", "inbound/journal/a.csv", "inbound/numbered/3.csv")
	time.Sleep(1100 * time.Millisecond) // a later second
	put("inbound/journal/0.csv", "inbound/journal/b.csv", "inbound/numbered/1.csv", "inbound/numbered/2.csv")

	journal := []string{"inbound/journal/0.csv", "inbound/journal/a.csv", "inbound/journal/b.csv", "inbound/journal/c.csv"}
	slices.SortFunc(journal, func(a, b string) int {
		return f.lastModified(t, a).Truncate(time.Second).Compare(f.lastModified(t, b).Truncate(time.Second))*2 + strings.Compare(a, b)
	})
	if journal[len(journal)-1] == "inbound/journal/c.csv" {
		t.Fatalf("the files were stored within one second (%v): the test needs two", journal)
	}
	r := f.at(time.Minute)
	if res := f.pass(t, r, "journal"); res.Released != 4 || res.Waiting != 0 || res.Listed != 4 {
		t.Fatalf("journal: %+v", res)
	}
	if res := f.pass(t, r, "numbered"); res.Released != 3 {
		t.Fatalf("numbered: %+v", res)
	}
	files, requests, msgs := f.queued(t)
	if len(requests) != 0 {
		t.Fatalf("requests %+v after passes that left nothing waiting", requests)
	}
	want := append(journal, "inbound/numbered/1.csv", "inbound/numbered/2.csv", "inbound/numbered/3.csv")
	if !slices.Equal(files, want) {
		t.Fatalf("queue order %v\nwant        %v", files, want)
	}
	for _, m := range msgs {
		var fm importmsg.File
		json.Unmarshal([]byte(aws.ToString(m.Body)), &fm)
		rt, _ := f.cfg.Routes.Lookup(fm.Route)
		if m.Attributes["MessageGroupId"] != rt.GroupID() || m.Attributes["MessageDeduplicationId"] != fm.Identity() || fm.Size == 0 || fm.VersionID == "" {
			t.Fatalf("message %+v with attributes %v", fm, m.Attributes)
		}
		if _, ok := pipelinetest.Get(t, f.S3, f.Bucket, f.cfg.Layout.ReleasedKey(fm.Route, fm.Identity())); !ok {
			t.Fatalf("no released marker for %s", fm.Key)
		}
	}
	// Released files are never released again.
	if res := f.pass(t, r, "journal"); res.Released != 0 || res.Listed != 4 {
		t.Fatalf("second pass: %+v", res)
	}
	if files, _, _ := f.queued(t); len(files) != 0 {
		t.Fatalf("released again: %v", files)
	}
}

// TestPassWaitsForFilesToSettle: a file released only once its settle
// window has passed; the files behind an unsettled one wait with it; a
// pass that released some and left others hands over to a follow-up
// request, and one that cannot wait for the rest before its deadline does
// too.
func TestPassWaitsForFilesToSettle(t *testing.T) {
	f := newFixture(t)
	pipelinetest.Put(t, f.S3, f.Bucket, "inbound/slow/a.csv", []byte("a"))
	lm := f.lastModified(t, "inbound/slow/a.csv")
	settled := lm.Truncate(time.Second).Add(time.Second + time.Minute)

	// No time to wait a minute: hand over.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := f.rel.WithClock(func() time.Time { return settled.Add(-time.Second) }, func(context.Context, time.Duration) error {
		t.Fatal("waited past the deadline")
		return nil
	})
	res, err := r.Pass(ctx, importmsg.Release{Route: "slow", RequestedAt: lm.Add(-time.Hour)})
	if err != nil || res.Released != 0 || res.Waiting != 1 {
		t.Fatalf("pass = %+v, %v", res, err)
	}
	files, requests, _ := f.queued(t)
	if len(files) != 0 || len(requests) != 1 || requests[0].Route != "slow" || !requests[0].FollowUp {
		t.Fatalf("queued files %v, requests %+v; want one follow-up request", files, requests)
	}

	// Time to wait: the pass sleeps until the file settles, then sends it.
	var slept time.Duration
	now := settled.Add(-3 * time.Second)
	r = f.rel.WithClock(func() time.Time { return now }, func(_ context.Context, d time.Duration) error {
		slept += d
		now = now.Add(d)
		return nil
	})
	res, err = r.Pass(context.Background(), importmsg.Release{Route: "slow", RequestedAt: lm.Add(-time.Hour)})
	if err != nil || res.Released != 1 || slept != 3*time.Second {
		t.Fatalf("pass = %+v, %v after sleeping %s; want 3s then released", res, err, slept)
	}
	if files, _, _ := f.queued(t); !slices.Equal(files, []string{"inbound/slow/a.csv"}) {
		t.Fatalf("queued %v", files)
	}

	// One settled, one not: the settled one goes, a follow-up takes the rest.
	pipelinetest.Put(t, f.S3, f.Bucket, "inbound/slow/b.csv", []byte("b"))
	time.Sleep(1100 * time.Millisecond) // c in a later second than b
	pipelinetest.Put(t, f.S3, f.Bucket, "inbound/slow/c.csv", []byte("c"))
	bAt := f.lastModified(t, "inbound/slow/b.csv").Truncate(time.Second).Add(time.Second + time.Minute)
	r = f.rel.WithClock(func() time.Time { return bAt }, func(context.Context, time.Duration) error { return nil })
	res, err = r.Pass(context.Background(), importmsg.Release{Route: "slow", RequestedAt: lm})
	if err != nil || res.Released != 1 || res.Waiting != 1 {
		t.Fatalf("pass = %+v, %v", res, err)
	}
	files, requests, _ = f.queued(t)
	if !slices.Equal(files, []string{"inbound/slow/b.csv"}) || len(requests) != 1 || !requests[0].FollowUp {
		t.Fatalf("queued %v and %+v", files, requests)
	}
}

// TestPauseDuringTheSettleWaitHoldsTheFiles: a route paused while a pass
// waits for its files to settle gets nothing sent by that pass: the pause
// is read after the wait, not only when the pass began.
func TestPauseDuringTheSettleWaitHoldsTheFiles(t *testing.T) {
	f := newFixture(t)
	pipelinetest.Put(t, f.S3, f.Bucket, "inbound/slow/a.csv", []byte("a"))
	lm := f.lastModified(t, "inbound/slow/a.csv")
	now := lm.Truncate(time.Second).Add(time.Minute - 2*time.Second)
	r := f.rel.WithClock(func() time.Time { return now }, func(ctx context.Context, d time.Duration) error {
		if _, err := pause.Set(ctx, f.S3, f.Bucket, f.cfg.Layout, pause.Marker{Route: "slow", By: "test", Reason: "month-end close"}); err != nil {
			t.Fatal(err)
		}
		now = now.Add(d)
		return nil
	})
	res, err := r.Pass(context.Background(), importmsg.Release{Route: "slow", RequestedAt: lm.Add(-time.Hour)})
	if err != nil || !res.Paused || res.Released != 0 {
		t.Fatalf("pass = %+v, %v; want paused, nothing released", res, err)
	}
	if files, requests, _ := f.queued(t); len(files) != 0 || len(requests) != 0 {
		t.Fatalf("queued files %v, requests %+v; want none", files, requests)
	}
}

// TestPassFilesEmptyFiles: an empty file is filed under rejected/ with its
// reason; the files around it go on in order.
func TestPassFilesEmptyFiles(t *testing.T) {
	f := newFixture(t)
	pipelinetest.Put(t, f.S3, f.Bucket, "inbound/numbered/1.csv", []byte("x"))
	v, _ := pipelinetest.Put(t, f.S3, f.Bucket, "inbound/numbered/2.csv", nil)
	pipelinetest.Put(t, f.S3, f.Bucket, "inbound/numbered/3.csv", []byte("x"))
	res := f.pass(t, f.at(time.Minute), "numbered")
	if res.Released != 2 || res.Rejected != 1 {
		t.Fatalf("pass = %+v", res)
	}
	if files, _, _ := f.queued(t); !slices.Equal(files, []string{"inbound/numbered/1.csv", "inbound/numbered/3.csv"}) {
		t.Fatalf("queued %v", files)
	}
	day := f.lastModified(t, "inbound/numbered/1.csv").UTC().Format("2006/01/02")
	raw, ok := pipelinetest.Get(t, f.S3, f.Bucket, "rejected/numbered/"+day+"/2.csv"+layout.ReasonSuffix)
	if !ok || !strings.Contains(string(raw), `"empty-file"`) || !strings.Contains(string(raw), v) {
		t.Fatalf("reason document %s, %v (rejected/: %v)", raw, ok, pipelinetest.Keys(t, f.S3, f.Bucket, "rejected/"))
	}
	if _, ok := pipelinetest.Get(t, f.S3, f.Bucket, "inbound/numbered/2.csv"); ok {
		t.Fatal("the empty file is still in inbound/")
	}
}

// TestLateFileGoesAtOnce: a file that becomes visible after a younger one
// was released (its upload outlasted the settle window) is not held back
// for ever: it goes at once, and the pass counts it.
func TestLateFileGoesAtOnce(t *testing.T) {
	f := newFixture(t)
	pipelinetest.Put(t, f.S3, f.Bucket, "inbound/numbered/2.csv", []byte("x"))
	r := f.at(time.Minute)
	f.pass(t, r, "numbered")
	pipelinetest.Put(t, f.S3, f.Bucket, "inbound/numbered/1.csv", []byte("x"))
	if res := f.pass(t, r, "numbered"); res.Released != 1 || res.Late != 1 {
		t.Fatalf("pass = %+v, want 1.csv released late", res)
	}
	if files, _, _ := f.queued(t); !slices.Equal(files, []string{"inbound/numbered/2.csv", "inbound/numbered/1.csv"}) {
		t.Fatalf("queued %v", files)
	}
}

// TestNotifiedRequestsOnePassPerRoute: the objects of a batch give one
// release request per route, in the route's group; a file no route takes
// is filed under rejected/_unrouted/; what is not a file is skipped.
func TestNotifiedRequestsOnePassPerRoute(t *testing.T) {
	f := newFixture(t)
	var objs []release.Object
	for _, k := range []string{"inbound/journal/a.csv", "inbound/numbered/1.csv", "inbound/journal/b.csv", "inbound/nobody/x.csv", "inbound/journal/"} {
		v, etag := pipelinetest.Put(t, f.S3, f.Bucket, k, []byte("x"))
		objs = append(objs, release.Object{Bucket: f.Bucket, Key: k, VersionID: v, ETag: etag})
	}
	objs = append(objs, release.Object{Bucket: "another", Key: "inbound/journal/c.csv"})
	errs, outs := f.rel.Notified(context.Background(), objs)
	want := []release.Outcome{release.Requested, release.Requested, release.Requested, release.Rejected, release.Skipped, release.Skipped}
	if !slices.Equal(outs, want) || slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
		t.Fatalf("outcomes %v, errors %v; want %v", outs, errs, want)
	}
	files, requests, msgs := f.queued(t)
	if len(files) != 0 || len(requests) != 2 {
		t.Fatalf("queued files %v, requests %+v; want two requests", files, requests)
	}
	for i, m := range msgs {
		rt, _ := f.cfg.Routes.Lookup(requests[i].Route)
		if m.Attributes["MessageGroupId"] != rt.GroupID() || m.Attributes["MessageDeduplicationId"] != requests[i].DedupID() {
			t.Fatalf("request %+v with attributes %v", requests[i], m.Attributes)
		}
	}
	if keys := pipelinetest.Keys(t, f.S3, f.Bucket, "rejected/_unrouted/"); len(keys) != 2 {
		t.Fatalf("rejected: %v", keys)
	}
}

// TestRequestsOfOneSecondAreOnePass: requests for a route made within one
// second are one message (its deduplication ID); a follow-up never shares
// the ID of the request that started its pass.
func TestRequestsOfOneSecondAreOnePass(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 0, 0, 100e6, time.UTC)
	a := importmsg.Release{Route: "journal", RequestedAt: at}
	b := importmsg.Release{Route: "journal", RequestedAt: at.Add(800 * time.Millisecond)}
	c := importmsg.Release{Route: "journal", RequestedAt: at.Add(time.Second)}
	follow := importmsg.Release{Route: "journal", RequestedAt: at, FollowUp: true}
	other := importmsg.Release{Route: "numbered", RequestedAt: at}
	if a.DedupID() != b.DedupID() || a.DedupID() == c.DedupID() || a.DedupID() == follow.DedupID() || a.DedupID() == other.DedupID() {
		t.Fatalf("IDs %s %s %s %s %s", a.DedupID(), b.DedupID(), c.DedupID(), follow.DedupID(), other.DedupID())
	}
	for _, r := range []importmsg.Release{a, follow} {
		if n := len(r.DedupID()); n > 128 {
			t.Fatalf("%s: %d characters, SQS takes 128", r.DedupID(), n)
		}
	}
}
