package dequeue_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

const otherCorr = "99999999-8888-4777-8666-555555555555"

// put writes body at key, as a person or a broken tool would.
func (v *env) put(key string, body []byte) {
	v.t.Helper()
	if _, err := v.s3.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: &v.bucket, Key: &key, Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
	}); err != nil {
		v.t.Fatalf("put %s: %v", key, err)
	}
}

// checkMarker fails unless the marker at key is one the handler accepts
// and names want.
func (v *env) checkMarker(h *dequeue.Handler, key, want string) {
	v.t.Helper()
	b, _ := v.get(key)
	m, err := h.DecodeMarker(bytes.NewReader(b), key)
	if err != nil {
		v.t.Fatalf("marker %s after the run: %v\n%s", key, err, b)
	}
	if m.Key != want || m.State != dequeue.StateLanded {
		v.t.Errorf("marker %s: key %q state %q, want %q landed", key, m.Key, m.State, want)
	}
}

// wantAcked fails unless F&O saw exactly corr acknowledged on actA.
func (v *env) wantAcked(corr string) {
	v.t.Helper()
	if got := v.e.Acked(actA); len(got) != 1 || got[0] != corr {
		v.t.Errorf("acked %v, want [%s]", got, corr)
	}
}

// editMarker is good with fields changed.
func editMarker(t *testing.T, good []byte, set map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(good, &m); err != nil {
		t.Fatal(err)
	}
	for k, x := range set {
		m[k] = x
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An export that landed, whose ack was lost and whose marker was then
// damaged, is recognised days later (under the date it landed, not
// today's), acknowledged, and its marker moved to quarantine and replaced;
// nothing lands a second time. Without the quarantine every delivery fails
// at stage "state" and is never acknowledged.
func TestDamagedMarkerOfALandedExport(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, good []byte, corr string) []byte
		later  time.Duration // the handler's clock at the re-delivery
	}{
		{"not JSON", func(*testing.T, []byte, string) []byte { return []byte(`{"job":"cg","key":`) }, 3 * 24 * time.Hour},
		{"empty", func(*testing.T, []byte, string) []byte { return nil }, 3 * 24 * time.Hour},
		{"trailing data", func(_ *testing.T, good []byte, _ string) []byte { return append(good, " {}"...) }, 3 * 24 * time.Hour},
		{"unknown state", func(t *testing.T, good []byte, _ string) []byte {
			return editMarker(t, good, map[string]any{"state": "LANDED"})
		}, 3 * 24 * time.Hour},
		{"key elsewhere", func(t *testing.T, good []byte, _ string) []byte {
			return editMarker(t, good, map[string]any{"key": "inbound/customers/x.csv"})
		}, 3 * 24 * time.Hour},
		{"another job's", func(t *testing.T, good []byte, _ string) []byte {
			return editMarker(t, good, map[string]any{"job": "other"})
		}, 3 * 24 * time.Hour},
		{"another correlation ID's", func(_ *testing.T, good []byte, corr string) []byte {
			return bytes.ReplaceAll(good, []byte(corr), []byte(otherCorr))
		}, 3 * 24 * time.Hour},
		// Beyond the days searched: the date the damaged marker still
		// gives is looked at too.
		{"trailing data, 20 days later", func(_ *testing.T, good []byte, _ string) []byte { return append(good, "\x00"...) }, 20 * 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newEnv(t, d365test.Options{VisibilityTimeout: time.Minute})
			corr := v.e.QueueExport(actA, d365test.Export{Body: []byte("GROUP\n10\n"), FileName: "groups.csv"})
			v.e.Inject(d365test.Fault{Endpoint: "ack", Count: 1, DropAck: true})
			var later atomic.Int64
			h := v.handler(func(c *dequeue.Config) {
				c.Now = func() time.Time { return time.Now().Add(time.Duration(later.Load())) }
			})
			first := v.run(h, input("cg", actA, ""))
			if first.Landed != 1 || len(v.e.Acked(actA)) != 0 {
				t.Fatalf("first run: %+v", first)
			}
			landed := first.Files[0].Key
			markerKey := "_state/exports/cg/" + corr + ".json"
			good, _ := v.get(markerKey)
			bad := tc.damage(t, good, corr)
			v.put(markerKey, bad)

			v.e.Advance(2 * time.Minute)
			later.Store(int64(tc.later))
			second := v.run(h, input("cg", actA, ""))
			if second.Dequeued != 1 || second.AlreadyLanded != 1 || second.Landed != 0 || second.Acked != 1 ||
				second.Quarantined != 1 || len(second.Errors) != 0 {
				t.Fatalf("second run: %+v", second)
			}
			if got := second.Files[0].Key; got != landed {
				t.Errorf("recognised at %s, landed at %s", got, landed)
			}
			qKey := "_state/quarantine/exports/cg/" + corr + ".json"
			if second.Files[0].Quarantined != qKey {
				t.Errorf("quarantined to %q, want %q", second.Files[0].Quarantined, qKey)
			}
			if got, _ := v.get(qKey); !bytes.Equal(got, bad) {
				t.Errorf("quarantine holds %q, want %q", got, bad)
			}
			v.checkMarker(h, markerKey, landed)
			v.wantAcked(corr)

			v.e.Advance(2 * time.Minute)
			third := v.run(h, input("cg", actA, ""))
			if third.Dequeued != 0 || !third.QueueEmpty {
				t.Errorf("third run: %+v", third)
			}
			if keys := v.keys("outbound/"); len(keys) != 1 || v.versions("outbound/") != 1 {
				t.Errorf("objects: %v (%d versions), want only %s", keys, v.versions("outbound/"), landed)
			}
			if keys := v.keys("_state/quarantine/"); len(keys) != 1 {
				t.Errorf("quarantine: %v", keys)
			}
		})
	}
}

// A damaged marker of an export that never landed: the export lands once
// (today), is acknowledged, and the damaged document is kept in
// quarantine. When that ack is lost too, the re-delivery finds the new
// marker and quarantines nothing more.
func TestDamagedMarkerBeforeLanding(t *testing.T) {
	t.Parallel()
	v := newEnv(t, d365test.Options{VisibilityTimeout: time.Minute})
	corr := v.e.QueueExport(actA, d365test.Export{Body: []byte("GROUP\n10\n")})
	markerKey := "_state/exports/cg/" + corr + ".json"
	bad := []byte("reserved?")
	v.put(markerKey, bad)
	v.e.Inject(d365test.Fault{Endpoint: "ack", Count: 1, DropAck: true})
	h := v.handler(nil)

	first := v.run(h, input("cg", actA, ""))
	if first.Landed != 1 || first.Quarantined != 1 || len(v.e.Acked(actA)) != 0 {
		t.Fatalf("first run: %+v", first)
	}
	landed := first.Files[0].Key
	if !strings.HasPrefix(landed, "outbound/cg/") || !strings.HasSuffix(landed, "/"+corr+"-cg.dat") {
		t.Errorf("landed at %s", landed)
	}
	if got, _ := v.get("_state/quarantine/exports/cg/" + corr + ".json"); !bytes.Equal(got, bad) {
		t.Errorf("quarantine holds %q", got)
	}
	v.checkMarker(h, markerKey, landed)

	v.e.Advance(2 * time.Minute)
	second := v.run(h, input("cg", actA, ""))
	if second.AlreadyLanded != 1 || second.Acked != 1 || second.Quarantined != 0 || len(second.Errors) != 0 {
		t.Fatalf("second run: %+v", second)
	}
	v.wantAcked(corr)
	if keys := v.keys("outbound/"); len(keys) != 1 || v.versions("outbound/") != 1 {
		t.Errorf("objects: %v", keys)
	}
	if keys := v.keys("_state/quarantine/"); len(keys) != 1 {
		t.Errorf("quarantine: %v", keys)
	}
}

// Damaged markers do not hold back the job's queue: with as many of them
// as MaxConsecutiveFailures at its head, a run used to stop before the
// healthy export behind them, at every run once they were visible again.
func TestDamagedMarkersDoNotHoldBackTheQueue(t *testing.T) {
	t.Parallel()
	v := newEnv(t, d365test.Options{VisibilityTimeout: time.Minute})
	for i := 0; i < 3; i++ {
		corr := v.e.QueueExport(actA, d365test.Export{Body: []byte{'a' + byte(i)}})
		v.put("_state/exports/cg/"+corr+".json", []byte("{}"))
	}
	healthy := v.e.QueueExport(actA, d365test.Export{Body: []byte("fine")})
	h := v.handler(nil)
	sum := v.run(h, input("cg", actA, ""))
	if sum.Landed != 4 || sum.Acked != 4 || sum.Quarantined != 3 || !sum.QueueEmpty || len(sum.Errors) != 0 {
		t.Fatalf("summary: %+v", sum)
	}
	if got := v.e.Acked(actA); len(got) != 4 || got[3] != healthy {
		t.Errorf("acked %v", got)
	}
}
