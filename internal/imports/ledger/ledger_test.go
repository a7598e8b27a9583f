package ledger_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

type countingS3 struct {
	ledger.S3
	lists atomic.Int32
}

func (c *countingS3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, o ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	c.lists.Add(1)
	return c.S3.ListObjectsV2(ctx, in, o...)
}

func TestDueStopsAtNow(t *testing.T) {
	cs := &countingS3{S3: mototest.S3(t)}
	st := &ledger.Store{S3: cs, Bucket: mototest.NewBucket(t), Layout: layout.Default(), PageSize: 2}
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	var want []string
	for i := range 9 {
		r := ledger.Record{Identity: fmt.Sprintf("id%d", i), MessageID: fmt.Sprintf("m%d", i), NextCheck: now.Add(time.Duration(i-2) * time.Minute)}
		k, err := st.Put(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if i <= 2 {
			want = append(want, k)
		}
	}
	// A stray key is skipped.
	if err := s3io.PutJSON(ctx, cs, st.Bucket, "_state/ledger/notes.json", map[string]int{}); err != nil {
		t.Fatal(err)
	}
	cs.lists.Store(0)
	var got []string
	if err := st.Due(ctx, now, func(e ledger.Entry) bool { got = append(got, e.Key); return true }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("due = %v, want %v (oldest first)", got, want)
	}
	if n := cs.lists.Load(); n != 2 {
		t.Fatalf("%d list calls for 3 due records in pages of 2, want 2 (listing must stop at now)", n)
	}
	r, found, err := st.Get(ctx, got[0])
	if err != nil || !found || r.MessageID != "m0" {
		t.Fatalf("Get = %+v %v %v", r, found, err)
	}
	r.NextCheck = now.Add(time.Hour)
	nk, err := st.Reschedule(ctx, got[0], r)
	if err != nil {
		t.Fatal(err)
	}
	if _, found, _ := st.Get(ctx, got[0]); found {
		t.Fatal("old key still there after Reschedule")
	}
	if e, ok := st.ParseKey(nk); !ok || e.Identity != "id0" || !e.NextCheck.Equal(now.Add(time.Hour)) {
		t.Fatalf("ParseKey(%q) = %+v %v", nk, e, ok)
	}
	ids, err := st.Identities(ctx)
	if err != nil || len(ids) != 9 || !ids["id0"] {
		t.Fatalf("Identities = %v %v", ids, err)
	}
}

func TestMarker(t *testing.T) {
	st := &ledger.Store{S3: mototest.S3(t), Bucket: mototest.NewBucket(t), Layout: layout.Default()}
	ctx := context.Background()
	created, _, err := st.PutMarker(ctx, ledger.Record{Identity: "abc", MessageID: "first"})
	if err != nil || !created {
		t.Fatalf("PutMarker = %v %v", created, err)
	}
	created, existing, err := st.PutMarker(ctx, ledger.Record{Identity: "abc", MessageID: "second"})
	if err != nil || created || existing == nil || existing.MessageID != "first" {
		t.Fatalf("second PutMarker = %v %+v %v", created, existing, err)
	}
	ids, err := st.Markers(ctx)
	if err != nil || !ids["abc"] || len(ids) != 1 {
		t.Fatalf("Markers = %v %v", ids, err)
	}
	if err := st.DeleteMarker(ctx, "abc"); err != nil {
		t.Fatal(err)
	}
	if _, found, err := st.GetMarker(ctx, "abc"); found || err != nil {
		t.Fatalf("marker after delete: %v %v", found, err)
	}
}

// TestKeyIsFixedWidth: a next check after 2286-11-20 is filed at the last
// 10-digit time, so it still parses back and still sorts after every nearer
// check (the listing's order is the keys' lexical order).
func TestKeyIsFixedWidth(t *testing.T) {
	t.Parallel()
	st := &ledger.Store{Bucket: "b", Layout: layout.Default()}
	near := st.Key(ledger.Record{Identity: "a", NextCheck: time.Unix(2_000_000_000, 0)})
	for _, when := range []time.Time{
		time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), time.Unix(ledger.MaxKeyUnix, 0),
	} {
		k := st.Key(ledger.Record{Identity: "x", NextCheck: when})
		e, ok := st.ParseKey(k)
		if !ok || e.Identity != "x" || !e.NextCheck.Equal(time.Unix(ledger.MaxKeyUnix, 0)) {
			t.Errorf("next check %s: filed at %q, parsed as %+v %v", when, k, e, ok)
		}
		if k <= near {
			t.Errorf("next check %s: %q sorts before %q", when, k, near)
		}
	}
	if e, ok := st.ParseKey("_state/ledger/1800000000/.json"); ok {
		t.Errorf("empty identity accepted: %+v", e)
	}
}
