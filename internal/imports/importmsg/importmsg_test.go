package importmsg_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
)

// TestDedupIDNamesTheMarker: the FIFO deduplication ID of a file and the
// name of its idempotency marker and ledger record are one identity, so a
// repeat that SQS lets through (after its window) is still recognised by
// the marker.
func TestDedupIDNamesTheMarker(t *testing.T) {
	t.Parallel()
	store := &ledger.Store{Layout: layout.Default()}
	for _, m := range []importmsg.File{
		{Bucket: "b", Key: "inbound/customers/a b.csv", VersionID: "3HL4kqtJlcpXroDTDmJ", ETag: "abc", Size: 3, Route: "customers"},
		{Bucket: "b", Key: "inbound/customers/a.csv", ETag: `"abc"`, Size: 3, Route: "customers"},
		{Bucket: "b", Key: "inbound/customers/a.csv", VersionID: "null", ETag: "abc", Size: 3, Route: "customers"},
	} {
		id := importmsg.DedupID(m)
		if len(id) != 64 {
			t.Fatalf("dedup ID %q: want 64 hex digits (SQS takes at most 128 characters)", id)
		}
		rec := ledger.Record{Identity: m.Identity(), NextCheck: time.Unix(1700000000, 0)}
		if want := store.MarkerKey(rec.Identity); want != layout.Default().MarkerKey(id) {
			t.Errorf("%+v: marker %s, dedup ID %s", m, want, id)
		}
		if e, ok := store.ParseKey(store.Key(rec)); !ok || e.Identity != id {
			t.Errorf("%+v: ledger key %s names %q, dedup ID %s", m, store.Key(rec), e.Identity, id)
		}
	}
	// "null" (S3's version of an object written while versioning was off)
	// and quoted ETags name the same file as their plain forms.
	a := importmsg.Identity("b", "k", "null", `"e"`)
	if b := importmsg.Identity("b", "k", "", "e"); a != b {
		t.Errorf("Identity(null, quoted ETag) = %s, Identity(\"\", e) = %s", a, b)
	}
	if importmsg.Identity("b", "k", "v1", "e") == importmsg.Identity("b", "k", "v2", "e") {
		t.Error("two versions share an identity")
	}
}

// TestFileJSON: the message's field names are what queued messages already
// hold; a renamed field would strand them.
func TestFileJSON(t *testing.T) {
	t.Parallel()
	m := importmsg.File{Bucket: "b", Key: "inbound/c/x.csv", VersionID: "v", ETag: "e", Size: 7, Route: "c",
		EventTime: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"bucket":"b","key":"inbound/c/x.csv","versionId":"v","etag":"e","size":7,"route":"c","eventTime":"2026-03-01T10:00:00Z"}`
	if string(b) != want {
		t.Fatalf("%s\nwant %s", b, want)
	}
	var back importmsg.File
	if err := json.Unmarshal(b, &back); err != nil || back != m {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	if !strings.HasSuffix(m.Ref().String(), "?versionId=v") {
		t.Errorf("Ref %s", m.Ref())
	}
}

// TestReplayMetadata: what the replay tool sets on a copy comes back from
// the object's metadata as S3 returns it (keys in any case), whatever
// characters the key holds; an object without it is no replay.
func TestReplayMetadata(t *testing.T) {
	for _, key := range []string{"failed/customers/2026/03/01/a.csv", "processed/r/2026/03/01/ü x+%2F\n.csv"} {
		r := importmsg.Replay{Key: key, Identity: "abc"}
		md := map[string]string{}
		for k, v := range r.Metadata() {
			md[strings.ToUpper(k[:1])+k[1:]] = v
			if strings.ContainsFunc(v, func(c rune) bool { return c < 0x20 || c > 0x7e }) {
				t.Errorf("metadata %s=%q is not printable ASCII", k, v)
			}
		}
		if got := importmsg.ReplayFromMetadata(md); got == nil || *got != r {
			t.Errorf("%q: read back %+v", key, got)
		}
	}
	if got := importmsg.ReplayFromMetadata(map[string]string{"fno-identity": "x"}); got != nil {
		t.Errorf("not a replay, read %+v", got)
	}
}
