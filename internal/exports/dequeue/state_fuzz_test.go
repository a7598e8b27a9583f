package dequeue_test

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
)

const fuzzCorr = "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"

func fuzzHandler(t testing.TB) *dequeue.Handler {
	h, err := dequeue.New(dequeue.Config{Bucket: "b"}, nopFnO{}, nopS3{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// FuzzDecodeMarker: an export marker read back from _state/. An accepted
// marker belongs to the key it was read from and names a key of the shape
// the dequeue function writes, under a clean prefix outside STATE_PREFIX, so a
// damaged or foreign marker can never send an export somewhere else (an
// import folder, the state prefix, another job).
func FuzzDecodeMarker(f *testing.F) {
	good := `{"job":"cg","activityId":"` + testActivity + `","correlationId":"` + fuzzCorr + `","key":"outbound/cg/2026/03/01/` + fuzzCorr +
		`-cg.zip","state":"landed","firstSeen":"2026-03-01T10:00:00Z","landedAt":"2026-03-01T10:00:05Z","size":12,"unpacked":["outbound/cg/2026/03/01/x/a.csv"]}`
	for _, s := range []string{
		good,
		strings.Replace(good, `"landed"`, `"reserved"`, 1),
		strings.Replace(good, `-cg.zip`, `-cg.dat`, 1),
		strings.Replace(good, `outbound/cg/2026/03/01/`+fuzzCorr+`-cg.zip`, `inbound/customers/x.csv`, 1),
		strings.Replace(good, `outbound/cg/`, `_state/`, 1),
		strings.Replace(good, `outbound/cg/`, `../../`, 1),
		strings.Replace(good, `outbound/cg/`, `/abs/`, 1),
		strings.Replace(good, `outbound/cg/`, ``, 1),
		strings.Replace(good, `2026/03/01`, `2026/03/02`, 1),
		strings.Replace(good, `"job":"cg"`, `"job":"other"`, 1),
		strings.Replace(good, `"state":"landed"`, `"state":"LANDED"`, 1),
		strings.Replace(good, `"firstSeen":"2026-03-01T10:00:00Z"`, `"firstSeen":"2026-03-01T23:30:00-01:00"`, 1),
		good + ` {}`, `{"key":"a","key":"b"}`, `{}`, `null`, `[]`, ``, `{"job":1}`, `{"firstSeen":"9999-99-99"}`,
	} {
		f.Add([]byte(s))
	}
	h := fuzzHandler(f)
	markerKey := h.MarkerKey("cg", fuzzCorr)
	f.Fuzz(func(t *testing.T, doc []byte) {
		m, err := h.DecodeMarker(bytes.NewReader(doc), markerKey)
		if err != nil {
			if m != nil {
				t.Fatal("a marker and an error")
			}
			return
		}
		if m.Job != "cg" || m.CorrelationID != fuzzCorr {
			t.Fatalf("accepted the marker of %q/%q at %s", m.Job, m.CorrelationID, markerKey)
		}
		if strings.HasPrefix(m.Key, "_state/") || strings.HasPrefix(m.Key, "/") || strings.IndexFunc(m.Key, unicode.IsControl) >= 0 {
			t.Fatalf("accepted key %q", m.Key)
		}
		for _, seg := range strings.Split(m.Key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted key %q with a %q segment", m.Key, seg)
			}
		}
		want := m.FirstSeen.UTC().Format("2006/01/02/") + dequeue.KeyID(fuzzCorr) + "-"
		if i := strings.LastIndex(m.Key, "/"); !strings.Contains(m.Key, want) || len(m.Key) <= i+1+len(dequeue.KeyID(fuzzCorr))+1 {
			t.Fatalf("accepted key %q, not dated by firstSeen %s", m.Key, m.FirstSeen)
		}
		// What the dequeue function writes back reads back the same.
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		back, err := h.DecodeMarker(bytes.NewReader(b), markerKey)
		if err != nil || back.Key != m.Key || !back.FirstSeen.Equal(m.FirstSeen) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzKeyID: any correlation ID F&O hands out becomes one safe key segment,
// and two different IDs never share one.
func FuzzKeyID(f *testing.F) {
	for _, s := range []string{fuzzCorr, "{" + fuzzCorr + "}", "", ".", "..", "a/b", "../../x", "\x00", "ü", strings.Repeat("a", 200), "-", "x.json"} {
		f.Add(s, s+"x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ka, kb := dequeue.KeyID(a), dequeue.KeyID(b)
		for _, k := range []string{ka, kb} {
			if k == "" || k == "." || k == ".." || len(k) > 140 || strings.ContainsAny(k, "/\\") || strings.IndexFunc(k, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
				t.Fatalf("KeyID gave %q", k)
			}
		}
		if a != b && ka == kb {
			t.Fatalf("%q and %q share key ID %q", a, b, ka)
		}
		when := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		if k := dequeue.ObjectKey("outbound/cg/", when, a, "cg.zip"); !strings.HasPrefix(k, "outbound/cg/2026/03/01/") || strings.Count(k, "/") != 5 {
			t.Fatalf("ObjectKey = %q", k)
		}
	})
}

// FuzzConfigFromEnv: the dequeue function's variables. Accepted values are
// what they say: DEADLINE_MARGIN in whole seconds is that many seconds,
// part size and concurrency are in range, the prefixes are usable and apart.
func FuzzConfigFromEnv(f *testing.F) {
	for _, s := range [][6]string{
		{"", "", "", "", "", ""}, {"45s", "8", "2", "outbound/", "_state/", "failed/"}, {"30", "5", "16", "out", "st", "f"},
		{"9999999999", "", "", "", "", ""}, {"18446744074", "", "", "", "", ""}, {"-5s", "", "", "", "", ""}, {"0", "", "", "", "", ""},
		{"1h", "4", "0", "", "", ""}, {"", "513", "17", "", "", ""}, {"", "", "", "a/", "a/b/", ""}, {"", "", "", "../x", "/s", ""},
		{"2562047h", "", "", "", "", ""}, {"+30", " 8 ", "2", "", "", ""}, {"", "", "", "", "", "outbound/x"}, {"", "", "", "", "", "_"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5])
	}
	f.Fuzz(func(t *testing.T, margin, part, conc, outbound, state, failed string) {
		env := map[string]string{"BUCKET": "b", "DEADLINE_MARGIN": margin, "UPLOAD_PART_MIB": part, "UPLOAD_CONCURRENCY": conc,
			"OUTBOUND_PREFIX": outbound, "STATE_PREFIX": state, "FAILED_PREFIX": failed}
		c, err := dequeue.ConfigFromEnv(func(k string) string { return env[k] })
		if err != nil {
			return
		}
		if c.DeadlineMargin <= 0 || c.PartSize < dequeue.MinPartSize || c.PartSize > 512<<20 || c.Concurrency < 1 || c.Concurrency > 16 {
			t.Fatalf("accepted %+v", c)
		}
		if v := strings.TrimSpace(margin); v != "" {
			if _, derr := time.ParseDuration(v); derr != nil {
				n, perr := strconv.ParseInt(v, 10, 64)
				if perr != nil || n > int64(time.Duration(1<<63-1)/time.Second) {
					// time.Duration(n)*time.Second would overflow:
					// 18446744074 wrapped round to a 290ms margin (seed
					// deadline-margin-overflow).
					t.Fatalf("accepted DEADLINE_MARGIN %q as %s", v, c.DeadlineMargin)
				}
				if c.DeadlineMargin != time.Duration(n)*time.Second {
					t.Fatalf("DEADLINE_MARGIN %q read as %s", v, c.DeadlineMargin)
				}
			}
		}
		prefixes := []string{c.OutboundPrefix, c.StatePrefix, c.FailedPrefix}
		for i, p := range prefixes {
			if q, err := dequeue.CheckPrefix(p); err != nil || q != p {
				t.Fatalf("prefix %q does not pass its own check: %v", p, err)
			}
			for _, o := range prefixes[i+1:] {
				if strings.HasPrefix(p, o) || strings.HasPrefix(o, p) {
					t.Fatalf("prefixes %q and %q overlap", p, o)
				}
			}
		}
	})
}

func TestDecodeMarker(t *testing.T) {
	t.Parallel()
	h := fuzzHandler(t)
	markerKey := h.MarkerKey("cg", fuzzCorr)
	good := `{"job":"cg","correlationId":"` + fuzzCorr + `","key":"outbound/cg/2026/03/01/` + fuzzCorr + `-cg.zip","state":"reserved","firstSeen":"2026-03-01T10:00:00Z"}`
	if m, err := h.DecodeMarker(strings.NewReader(good), markerKey); err != nil || m.State != dequeue.StateReserved {
		t.Fatalf("good marker: %+v %v", m, err)
	}
	for name, doc := range map[string]string{
		"not JSON":            `{"job":`,
		"no key":              `{"job":"cg","correlationId":"` + fuzzCorr + `","state":"landed"}`,
		"another job's":       strings.Replace(good, `"job":"cg"`, `"job":"vendors"`, 1),
		"points into inbound": strings.Replace(good, `outbound/cg/2026/03/01/`+fuzzCorr+`-cg.zip`, `inbound/customers/x.csv`, 1),
		"points into _state":  strings.Replace(good, `outbound/cg/`, `_state/`, 1),
		"climbs with ..":      strings.Replace(good, `outbound/cg/`, `outbound/../`, 1),
		"dated otherwise":     strings.Replace(good, `2026-03-01T10`, `2026-03-02T10`, 1),
		"unknown state":       strings.Replace(good, `reserved`, `done`, 1),
		"trailing data":       good + `{}`,
	} {
		if m, err := h.DecodeMarker(strings.NewReader(doc), markerKey); err == nil {
			t.Errorf("%s: accepted %+v", name, m)
		}
	}
}
