package ledger_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
)

// FuzzParseKey: any key listed under _state/ledger/ (people and tools can
// put anything there). A key taken as a ledger entry has an identity that
// is one path segment, and a canonical key reads back as itself.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{
		"_state/ledger/1800000000/3f2a.json", "_state/ledger/0000000000/x.json", "_state/ledger/-000000001/x.json",
		"_state/ledger/+000000001/x.json", "_state/ledger/1800000000/.json", "_state/ledger/1800000000/a/b.json",
		"_state/ledger/18000000000/x.json", "_state/ledger/1800000000/x.json.tmp", "_state/ledger/notes.json",
		"_state/ledger/1800000000/x\x00.json", "_state/markers/x.json", "", "_state/ledger/",
	} {
		f.Add(s)
	}
	st := &ledger.Store{Bucket: "b", Layout: layout.Default()}
	f.Fuzz(func(t *testing.T, key string) {
		e, ok := st.ParseKey(key)
		if !ok {
			return
		}
		if e.Key != key || strings.Contains(e.Identity, "/") || !strings.HasPrefix(key, st.Layout.LedgerPrefix()) {
			t.Fatalf("ParseKey(%q) = %+v", key, e)
		}
		if e.Identity == "" {
			// "<ts>/.json" would make every such entry share one identity
			// in the poller (seed empty-identity).
			t.Fatalf("ParseKey(%q) accepted an empty identity", key)
		}
		canon := st.Key(ledger.Record{Identity: e.Identity, NextCheck: e.NextCheck})
		if e.NextCheck.Unix() >= 0 && canon != key {
			if ts := strings.SplitN(strings.TrimPrefix(key, st.Layout.LedgerPrefix()), "/", 2)[0]; ts[0] == '+' {
				return // "+000000001" is read as 1 and rewritten canonically on the next reschedule
			}
			t.Fatalf("ParseKey(%q) = %+v, which is stored at %q", key, e, canon)
		}
	})
}

// FuzzRecordDocument: any ledger record or marker document read back from
// S3 (as s3io.GetJSON decodes it). Whatever decodes can be written back and
// reads back the same, and the ledger key the poller would file it under is
// under the ledger prefix and lists back as the same identity and time.
func FuzzRecordDocument(f *testing.F) {
	good := `{"identity":"3f2a9c","messageId":"6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b","bucket":"b","key":"inbound/customers/a.csv","size":12,` +
		`"route":"customers","entity":"Customer groups","activityId":"5d3c1e0a-7b64-4e7a-9b2f-8f6b3a521c0d","kind":"file","externalId":"inbound/customers/a.csv",` +
		`"enqueuedAt":"2026-03-01T10:00:00Z","nextCheck":"2026-03-01T10:01:00Z","checks":0}`
	for _, s := range []string{
		good, `{}`, `null`, `[]`, `""`, `{"identity":"a/b","nextCheck":"2026-03-01T10:01:00Z"}`,
		`{"identity":"x","nextCheck":"9999-12-31T23:59:59Z"}`, `{"identity":"x","nextCheck":"0001-01-01T00:00:00Z"}`,
		`{"identity":"x","nextCheck":"2026-03-01T10:01:00+14:00"}`, `{"identity":"x","size":-1,"checks":-5}`,
		`{"identity":"x","size":1e30}`, `{"identity":"x","identity":"y"}`, `{"IDENTITY":"x"}`, good + `garbage`,
	} {
		f.Add([]byte(s))
	}
	st := &ledger.Store{Bucket: "b", Layout: layout.Default()}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var r ledger.Record
		if err := json.NewDecoder(bytes.NewReader(doc)).Decode(&r); err != nil {
			return
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("a record read back cannot be written again: %v", err)
		}
		var back ledger.Record
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if b2, _ := json.Marshal(back); !bytes.Equal(b, b2) {
			t.Fatalf("round trip changed the record:\n%s\n%s", b, b2)
		}
		if r.Identity == "" || strings.ContainsAny(r.Identity, "/") {
			return // such a record is retired by the poller (no marker at that identity)
		}
		k := st.Key(r)
		if !strings.HasPrefix(k, st.Layout.LedgerPrefix()) {
			t.Fatalf("ledger key %q", k)
		}
		e, ok := st.ParseKey(k)
		if !ok || e.Identity != r.Identity {
			// A NextCheck after 2286-11-20 would need 11 digits, which
			// ParseKey refuses: Key clamps it (seed next-check-11-digits).
			t.Fatalf("record filed at %q lists back as %+v, %v", k, e, ok)
		}
		want := time.Unix(min(max(r.NextCheck.Unix(), 0), ledger.MaxKeyUnix), 0).UTC()
		if !e.NextCheck.Equal(want) {
			t.Fatalf("next check %s lists back as %s", r.NextCheck, e.NextCheck)
		}
	})
}
