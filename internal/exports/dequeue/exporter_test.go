package dequeue_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

const (
	actA = "11111111-2222-4333-8444-555555555555"
	actB = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
)

func TestLandsAndAcks(t *testing.T) {
	t.Parallel()
	v := newEnv(t, d365test.Options{})
	bodies := map[string]string{}
	for _, b := range []string{"GROUP,NAME\n10,Retail\n", "GROUP,NAME\n20,Wholesale\n", "PK\x03\x04 not really a zip"} {
		bodies[v.e.QueueExport(actA, d365test.Export{Body: []byte(b), FileName: "x.csv"})] = b
	}
	h := v.handler(nil)

	sum := v.run(h, input("customer-groups", actA, ""))
	if sum.Landed != 3 || sum.Acked != 3 || sum.Failed != 0 || !sum.QueueEmpty || sum.MoreMayRemain || len(sum.Errors) != 0 {
		t.Fatalf("summary: %+v", sum)
	}
	if sum.Bytes == 0 {
		t.Errorf("summary bytes = 0")
	}
	if got := len(v.e.Acked(actA)); got != 3 {
		t.Errorf("F&O saw %d acks, want 3", got)
	}
	keys := v.keys("outbound/customer-groups/")
	if len(keys) != 3 {
		t.Fatalf("keys: %v", keys)
	}
	day := time.Now().UTC().Format("2006/01/02/")
	for _, f := range sum.Files {
		want := bodies[f.CorrelationID]
		// Named as F&O named the download.
		if f.Key != "outbound/customer-groups/"+day+f.CorrelationID+"-x.csv" {
			// The day may have turned during the test; only the shape matters then.
			if !strings.HasSuffix(f.Key, "/"+f.CorrelationID+"-x.csv") {
				t.Errorf("key %q", f.Key)
			}
		}
		got, meta := v.get(f.Key)
		if string(got) != want {
			t.Errorf("%s holds %q, want %q", f.Key, got, want)
		}
		if meta["correlation-id"] != f.CorrelationID || meta["activity-id"] != actA || meta["job"] != "customer-groups" {
			t.Errorf("%s metadata %v", f.Key, meta)
		}
		if !v.exists("_state/exports/customer-groups/" + f.CorrelationID + ".json") {
			t.Errorf("no marker for %s", f.CorrelationID)
		}
	}

	again := v.run(h, input("customer-groups", actA, ""))
	if again.Dequeued != 0 || !again.QueueEmpty || again.Landed != 0 {
		t.Errorf("second run: %+v", again)
	}
	if n := len(v.keys("outbound/")); n != 3 {
		t.Errorf("after the second run %d objects, want 3", n)
	}
}

func TestTwoJobsTwoPrefixes(t *testing.T) {
	t.Parallel()
	v := newEnv(t, d365test.Options{})
	v.e.QueueExport(actA, d365test.Export{Body: []byte("a")})
	v.e.QueueExport(actB, d365test.Export{Body: []byte("b1")})
	v.e.QueueExport(actB, d365test.Export{Body: []byte("b2")})
	h := v.handler(nil)

	a := v.run(h, input("groups", actA, ""))
	b := v.run(h, input("vendors", actB, `"prefix":"outbound/vendor-exports"`))
	if a.Landed != 1 || b.Landed != 2 || a.Acked != 1 || b.Acked != 2 {
		t.Fatalf("summaries: %+v / %+v", a, b)
	}
	if got := v.keys("outbound/groups/"); len(got) != 1 {
		t.Errorf("outbound/groups/: %v", got)
	}
	if got := v.keys("outbound/vendor-exports/"); len(got) != 2 {
		t.Errorf("outbound/vendor-exports/: %v", got)
	}
	if got := v.keys("outbound/vendors/"); len(got) != 0 {
		t.Errorf("job vendors leaked into the default prefix: %v", got)
	}
}

func TestLostAckIsRecognised(t *testing.T) {
	t.Parallel()
	v := newEnv(t, d365test.Options{})
	corr := v.e.QueueExport(actA, d365test.Export{Body: []byte("only once")})
	v.e.Inject(d365test.Fault{Endpoint: "ack", Count: 1, DropAck: true})
	var later atomic.Int64 // the handler's clock runs this far ahead
	h := v.handler(func(c *dequeue.Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(later.Load())) }
	})

	first := v.run(h, input("cg", actA, ""))
	if first.Landed != 1 {
		t.Fatalf("first run: %+v", first)
	}
	if got := v.e.Acked(actA); len(got) != 0 {
		t.Fatalf("the ack was supposed to be lost, F&O recorded %v", got)
	}

	// The re-delivery comes on another day: the key must not move.
	v.e.Advance(31 * time.Minute)
	later.Store(int64(26 * time.Hour))
	second := v.run(h, input("cg", actA, ""))
	if second.Dequeued != 1 || second.AlreadyLanded != 1 || second.Landed != 0 || second.Acked != 1 {
		t.Fatalf("second run: %+v", second)
	}
	if !second.Files[0].Redelivered || second.Files[0].Key != first.Files[0].Key {
		t.Errorf("re-delivery: %+v, first key %s", second.Files[0], first.Files[0].Key)
	}
	if got := v.e.Acked(actA); len(got) != 1 || got[0] != corr {
		t.Errorf("acked %v, want [%s]", got, corr)
	}
	if keys := v.keys("outbound/cg/"); len(keys) != 1 {
		t.Errorf("objects: %v", keys)
	}
	if n := v.versions("outbound/cg/"); n != 1 {
		t.Errorf("%d object versions, want 1: the export was written twice", n)
	}
	if n := v.e.Requests("download"); n != 1 {
		t.Errorf("%d downloads, want 1: a landed export was fetched again", n)
	}
}

func TestDownloadFailsMidStream(t *testing.T) {
	t.Parallel()
	v := newEnv(t, d365test.Options{})
	const size = 12 << 20
	corr := v.e.QueueExport(actA, d365test.Export{Size: size, Generate: pattern(size, 1)})
	// Cut after the first 5 MiB part has gone up: a multipart upload is open.
	v.e.Inject(d365test.Fault{Endpoint: "download", Count: 1, ResetAfterBytes: 7 << 20})
	h := v.handler(nil)

	sum := v.run(h, input("big", actA, ""))
	if sum.Failed != 1 || sum.Landed != 0 || sum.Acked != 0 || len(sum.Errors) == 0 {
		t.Fatalf("summary: %+v", sum)
	}
	f := sum.Files[0]
	if f.Stage != "land" || f.Key == "" {
		t.Errorf("file result: %+v", f)
	}
	if v.exists(f.Key) {
		t.Errorf("a partial object is visible at %s", f.Key)
	}
	if keys := v.keys("outbound/big/"); len(keys) != 0 {
		t.Errorf("objects under the prefix: %v", keys)
	}
	if n := v.multipartUploads(); n != 0 {
		t.Errorf("%d multipart uploads left open", n)
	}
	if got := v.e.Acked(actA); len(got) != 0 {
		t.Errorf("acked %v after a failed download", got)
	}

	// F&O hands it out again; it lands, at the key reserved the first time.
	v.e.Advance(31 * time.Minute)
	again := v.run(h, input("big", actA, ""))
	if again.Landed != 1 || again.Acked != 1 || again.Files[0].Key != f.Key {
		t.Fatalf("retry: %+v (first key %s)", again, f.Key)
	}
	if sum, n := v.objectSum(f.Key); n != size || sum != patternSum(size, 1) {
		t.Errorf("landed %d bytes, content matches: %v", n, sum == patternSum(size, 1))
	}
	if got := v.e.Acked(actA); len(got) != 1 || got[0] != corr {
		t.Errorf("acked %v", got)
	}
}

func TestStopsBeforeDeadline(t *testing.T) {
	t.Parallel()
	v := newEnv(t, d365test.Options{})
	for i := 0; i < 3; i++ {
		v.e.QueueExport(actA, d365test.Export{Body: []byte{byte('a' + i)}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	deadline, _ := ctx.Deadline()
	h := v.handler(func(c *dequeue.Config) {
		c.DeadlineMargin = 30 * time.Second
		// The clock jumps to 10s before the deadline once the first file is
		// acknowledged: less than the margin remains.
		c.Now = func() time.Time {
			if len(v.e.Acked(actA)) > 0 {
				return deadline.Add(-10 * time.Second)
			}
			return time.Now()
		}
	})
	sum, err := h.Handle(ctx, json.RawMessage(input("cg", actA, "")))
	if err != nil {
		t.Fatalf("stopping for the deadline is not an error: %v", err)
	}
	if sum.Landed != 1 || sum.Acked != 1 || !sum.StoppedForDeadline || !sum.MoreMayRemain || sum.QueueEmpty {
		t.Fatalf("summary: %+v", sum)
	}
	if n := v.e.Pending(actA); n != 2 {
		t.Errorf("pending %d, want 2", n)
	}
	if n := v.e.Requests("dequeue"); n != 1 {
		t.Errorf("%d dequeues: a file was dequeued after the deadline check and left hidden", n)
	}
}

func TestForeignDownloadHostRefused(t *testing.T) {
	t.Parallel()
	v := newEnv(t, d365test.Options{})
	v.e.QueueExport(actA, d365test.Export{Body: []byte("secret data")})
	v.e.Inject(d365test.Fault{Endpoint: "dequeue", Count: 1, ForeignDownloadHost: true})
	h := v.handler(nil)

	sum := v.run(h, input("cg", actA, ""))
	if sum.Failed != 1 || sum.Acked != 0 || len(sum.Errors) == 0 {
		t.Fatalf("summary: %+v", sum)
	}
	if f := sum.Files[0]; f.Stage != "download" || !strings.Contains(f.Error, "refused") {
		t.Errorf("file result: %+v", f)
	}
	if v.e.ForeignHostSawToken() {
		t.Error("the bearer token was sent to the foreign host")
	}
	if n := v.e.Requests("foreign-download"); n != 0 {
		t.Errorf("%d requests reached the foreign host", n)
	}
	if got := v.e.Acked(actA); len(got) != 0 {
		t.Errorf("acked %v", got)
	}
	if keys := v.keys(""); !slices.Equal(keys, []string{"_state/status/jobs/cg/last-run.json"}) {
		t.Errorf("objects written: %v, want only the run's record", keys)
	}
}

func TestMissingFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault d365test.Fault
		ack   bool
	}{
		{"file does not exist, left", d365test.Fault{FileMissing: true}, false},
		{"file does not exist, acked", d365test.Fault{FileMissing: true}, true},
		{"null location, left", d365test.Fault{NullDownloadLocation: true}, false},
		{"null location, acked", d365test.Fault{NullDownloadLocation: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newEnv(t, d365test.Options{})
			corr := v.e.QueueExport(actA, d365test.Export{Body: []byte("x")})
			f := tc.fault
			f.Endpoint, f.Count = "dequeue", 1
			v.e.Inject(f)
			h := v.handler(nil)

			extra := ""
			if tc.ack {
				extra = `"ackMissingFile":true`
			}
			sum := v.run(h, input("cg", actA, extra))
			if sum.MissingFiles != 1 || sum.Landed != 0 || sum.Failed != 0 {
				t.Fatalf("summary: %+v", sum)
			}
			acked := len(v.e.Acked(actA)) == 1
			if acked != tc.ack || (sum.Acked == 1) != tc.ack || (sum.Skipped == 1) == tc.ack {
				t.Errorf("acked in F&O %v, summary %+v; want acked %v", acked, sum, tc.ack)
			}
			rec, _ := v.get("_state/exports/cg/" + corr + ".missing.json")
			var m dequeue.MissingFile
			if err := json.Unmarshal(rec, &m); err != nil {
				t.Fatalf("record: %v: %s", err, rec)
			}
			if m.CorrelationID != corr || m.Acked != tc.ack || m.Reason == "" {
				t.Errorf("record: %s", rec)
			}
			if tc.fault.FileMissing && (m.FileDownloadErrorMessage == nil || !strings.Contains(*m.FileDownloadErrorMessage, "does not exist")) {
				t.Errorf("F&O's message is not recorded: %s", rec)
			}
			if keys := v.keys("outbound/"); len(keys) != 0 {
				t.Errorf("objects landed: %v", keys)
			}
		})
	}
}

func TestHandleRejectsBadInput(t *testing.T) {
	t.Parallel()
	// No AWS or F&O needed: the input is refused before either is used.
	h, err := dequeue.New(dequeue.Config{Bucket: "b"}, nopFnO{}, nopS3{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Handle(context.Background(), json.RawMessage(`{"job":"cg"}`))
	if err == nil || !strings.Contains(err.Error(), "activityId") {
		t.Errorf("err = %v, want one naming activityId", err)
	}
	_, err = h.Handle(context.Background(), json.RawMessage(`{"job":"cg","activityId":"`+actA+`","prefix":"_state/x/"}`))
	if err == nil || !strings.Contains(err.Error(), "prefix") {
		t.Errorf("err = %v, want one naming prefix", err)
	}
}

// nopFnO and nopS3 satisfy the interfaces and panic if used.
type nopFnO struct{ dequeue.FnO }
type nopS3 struct{ dequeue.S3 }

func TestAckFailureLeavesItLandedForTheRedelivery(t *testing.T) {
	t.Parallel()
	v := newEnv(t, d365test.Options{})
	corr := v.e.QueueExport(actA, d365test.Export{Body: []byte("x")})
	v.e.Inject(d365test.Fault{Endpoint: "ack", Status: 500}) // every ack, until cleared
	h := v.handler(nil)

	sum := v.run(h, input("cg", actA, ""))
	if sum.Landed != 1 || sum.Acked != 0 || len(sum.Errors) == 0 || sum.Files[0].Stage != "ack" {
		t.Fatalf("summary: %+v", sum)
	}
	v.e.ClearFaults()
	v.e.Advance(31 * time.Minute)
	again := v.run(h, input("cg", actA, ""))
	if again.AlreadyLanded != 1 || again.Acked != 1 {
		t.Fatalf("re-delivery: %+v", again)
	}
	if got := v.e.Acked(actA); len(got) != 1 || got[0] != corr {
		t.Errorf("acked %v", got)
	}
	if n := v.versions("outbound/cg/"); n != 1 {
		t.Errorf("%d versions", n)
	}
}

func TestStopsAfterConsecutiveFailures(t *testing.T) {
	t.Parallel()
	v := newEnv(t, d365test.Options{})
	for i := 0; i < 5; i++ {
		v.e.QueueExport(actA, d365test.Export{Body: []byte("x")})
	}
	v.e.Inject(d365test.Fault{Endpoint: "download", Status: 404}) // not retried
	h := v.handler(func(c *dequeue.Config) { c.MaxConsecutiveFailures = 2 })

	sum := v.run(h, input("cg", actA, ""))
	if sum.Dequeued != 2 || sum.Failed != 2 || !sum.MoreMayRemain || sum.QueueEmpty {
		t.Fatalf("summary: %+v", sum)
	}
	if n := v.e.Pending(actA); n != 5 {
		t.Errorf("pending %d", n)
	}
}

// TestSignInPageInPlaceOfTheExportIsNotLanded: a download answered with
// status 200 by a sign-in page lands nothing and is not acknowledged (that
// would give the export up for a page); the redelivery lands the export.
func TestSignInPageInPlaceOfTheExportIsNotLanded(t *testing.T) {
	t.Parallel()
	v := newEnv(t, d365test.Options{})
	corr := v.e.QueueExport(actA, d365test.Export{Body: []byte("ID,NAME\n1,one\n")})
	v.e.Inject(d365test.Fault{Endpoint: "download", Count: 1, Status: http.StatusOK, EnqueueAnswer: d365test.AnswerHTML})
	h := v.handler(nil)
	sum := v.run(h, input("cg", actA, ""))
	if sum.Failed != 1 || sum.Landed != 0 || sum.Acked != 0 || len(sum.Files) != 1 || sum.Files[0].Stage != "download" {
		t.Fatalf("summary: %+v", sum)
	}
	if n := v.versions("outbound/cg/"); n != 0 || len(v.e.Acked(actA)) != 0 {
		t.Fatalf("%d object versions landed, acked %v; want none", n, v.e.Acked(actA))
	}
	v.e.Advance(31 * time.Minute)
	sum = v.run(h, input("cg", actA, ""))
	if sum.Landed != 1 || sum.Acked != 1 {
		t.Fatalf("redelivery: %+v", sum)
	}
	if got := v.e.Acked(actA); len(got) != 1 || got[0] != corr {
		t.Errorf("acked %v", got)
	}
}

func TestHTTPDownloadLocationQuirk(t *testing.T) {
	t.Parallel()
	// F&O sometimes hands out http://host:80/...; the file still lands.
	v := newEnv(t, d365test.Options{HTTPDownloadLocation: true})
	v.e.QueueExport(actA, d365test.Export{Body: []byte("x")})
	sum := v.run(v.handler(nil), input("cg", actA, ""))
	if sum.Landed != 1 || sum.Acked != 1 {
		t.Fatalf("summary: %+v", sum)
	}
}
