package router_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/router"
)

func TestDecodeNotificationKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, raw, want string
	}{
		{"plus is a space", "inbound/customers/red+flower.csv", "inbound/customers/red flower.csv"},
		{"encoded plus", "inbound/customers/a%2Bb.csv", "inbound/customers/a+b.csv"},
		{"encoded slash", "inbound%2Fcustomers%2Fx.csv", "inbound/customers/x.csv"},
		{"unicode", "inbound/customers/K%C3%BCnden+%E2%82%AC.csv", "inbound/customers/Künden €.csv"},
		{"percent", "inbound/customers/100%25.csv", "inbound/customers/100%.csv"},
		{"plain", "inbound/customers/plain.csv", "inbound/customers/plain.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, err := router.DecodeNotification([]byte(eventJSON("ObjectCreated:Put", "b", tt.raw, "v1", `12`)))
			if err != nil {
				t.Fatal(err)
			}
			if len(n.Records) != 1 || n.Records[0].Key != tt.want || n.Records[0].RawKey != tt.raw {
				t.Fatalf("records = %+v, want key %q", n.Records, tt.want)
			}
			if n.Records[0].Size != 12 || n.Records[0].VersionID != "v1" || n.Records[0].EventTime.IsZero() || !n.Records[0].IsCreate() {
				t.Fatalf("record = %+v", n.Records[0])
			}
		})
	}
}

func TestDecodeNotificationShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		body      string
		malformed bool
		test      bool
		check     func(t *testing.T, n router.Notification)
	}{
		{name: "test event", body: `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00.000Z","Bucket":"b","RequestId":"x","HostId":"y"}`, test: true},
		{name: "size missing", body: eventJSON("ObjectCreated:Put", "b", "inbound/c/x", "", ""), check: func(t *testing.T, n router.Notification) {
			if n.Records[0].Size != -1 {
				t.Errorf("size = %d, want -1 (unknown)", n.Records[0].Size)
			}
		}},
		{name: "size zero", body: eventJSON("ObjectCreated:Put", "b", "inbound/c/x", "", `0`), check: func(t *testing.T, n router.Notification) {
			if n.Records[0].Size != 0 {
				t.Errorf("size = %d", n.Records[0].Size)
			}
		}},
		{name: "delete is not create", body: eventJSON("ObjectRemoved:Delete", "b", "inbound/c/x", "", ""), check: func(t *testing.T, n router.Notification) {
			if n.Records[0].IsCreate() {
				t.Error("ObjectRemoved is a create")
			}
		}},
		{name: "event time whose UTC year is 10000 reads as absent", body: strings.Replace(eventJSON("ObjectCreated:Put", "b", "inbound/c/x", "", "1"),
			"2026-03-01T10:00:00.000Z", "9999-12-31T23:59:59-23:00", 1), check: func(t *testing.T, n router.Notification) {
			if !n.Records[0].EventTime.IsZero() {
				t.Errorf("event time = %v, want zero (the router uses the time of routing)", n.Records[0].EventTime)
			}
		}},
		{name: "event time without a time zone (as moto writes it) is UTC", body: strings.Replace(eventJSON("ObjectCreated:Put", "b", "inbound/c/x", "", "1"),
			"2026-03-01T10:00:00.000Z", "2026-03-01T10:00:00.123456", 1), check: func(t *testing.T, n router.Notification) {
			if want := time.Date(2026, 3, 1, 10, 0, 0, 123456000, time.UTC); !n.Records[0].EventTime.Equal(want) {
				t.Errorf("event time = %v, want %v", n.Records[0].EventTime, want)
			}
		}},
		{name: "not JSON", body: `hello`, malformed: true},
		{name: "empty", body: ``, malformed: true},
		{name: "no records", body: `{"Records":[]}`, malformed: true},
		{name: "other JSON", body: `{"foo":1}`, malformed: true},
		{name: "no key", body: `{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{}}}]}`, malformed: true},
		{name: "no s3", body: `{"Records":[{"eventName":"ObjectCreated:Put"}]}`, malformed: true},
		{name: "bad escape", body: eventJSON("ObjectCreated:Put", "b", "inbound/c/%zz", "", "1"), malformed: true},
		{name: "negative size", body: eventJSON("ObjectCreated:Put", "b", "inbound/c/x", "", "-4"), malformed: true},
		{name: "string size", body: eventJSON("ObjectCreated:Put", "b", "inbound/c/x", "", `"4"`), malformed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, err := router.DecodeNotification([]byte(tt.body))
			if tt.malformed {
				if !errors.Is(err, router.ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.TestEvent != tt.test {
				t.Fatalf("TestEvent = %v", n.TestEvent)
			}
			if tt.check != nil {
				tt.check(t, n)
			}
		})
	}
}

func FuzzDecodeNotification(f *testing.F) {
	f.Add([]byte(eventJSON("ObjectCreated:Put", "b", "inbound/c/red+flower%2B%C3%BC.csv", "v", "3")))
	f.Add([]byte(`{"Event":"s3:TestEvent"}`))
	f.Add([]byte(`{"Records":[{"s3":{"bucket":{"name":"b"},"object":{"key":"%"}}}]}`))
	f.Add([]byte(`{"Records":null}`))
	f.Add([]byte(`[]`))
	for _, s := range []string{
		eventJSON("ObjectCreated:Put", "b", "inbound/c/a+b%2Bc%2Fd%20e.csv", "", "1"),
		eventJSON("ObjectCreated:Put", "b", "inbound/c/%zz%", "", "1"),
		eventJSON("ObjectCreated:Put", "b", "inbound/c/%00%0A%E2%82", "", "1"),
		eventJSON("ObjectCreated:Put", "b", "inbound/c/x", "", "9223372036854775808"),
		eventJSON("ObjectCreated:Put", "b", "inbound/c/x", "", "-0"),
		eventJSON("ObjectCreated:Put", "b", "inbound/c/x", "", "null"),
		eventJSON("ObjectCreated:Put", "b", "inbound/c/x", "", "[]"),
		eventJSON("ObjectCreated:Put", "", "inbound/c/x", "", "1"),
		eventJSON("ObjectCreated:Put", "b", "", "", "1"),
		strings.Replace(eventJSON("ObjectCreated:Put", "b", "inbound/c/x", "", "1"), "2026-03-01T10:00:00.000Z", "9999-12-31T23:59:59-23:00", 1),
		strings.Replace(eventJSON("ObjectCreated:Put", "b", "inbound/c/x", "", "1"), "2026-03-01T10:00:00.000Z", "0000-01-01T00:00:00+01:00", 1),
		`{"Records":[{"s3":{"bucket":{"name":"b"},"object":{"key":"a","key":"b"}}}]}`,
		`{"Records":[{"s3":{"bucket":{"name":"b"},"object":{"key":null}}}]}`,
		`{"Event":"s3:TestEvent","Records":[{}]}`, `{"Records":[]} {"Records":[]}`,
		strings.Repeat(`{"Records":`, 5000) + strings.Repeat(`}`, 5000),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := router.DecodeNotification(body)
		if err != nil {
			if !errors.Is(err, router.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if n.TestEvent {
			return
		}
		if len(n.Records) == 0 {
			t.Fatal("no records and no error")
		}
		for _, r := range n.Records {
			if r.Bucket == "" || r.Key == "" || r.Size < -1 {
				t.Fatalf("bad record accepted: %+v", r)
			}
			// The raw key is kept; the key is exactly its decoding.
			if k, err := url.QueryUnescape(r.RawKey); err != nil || k != r.Key {
				t.Fatalf("Key %q is not the decoding of RawKey %q", r.Key, r.RawKey)
			}
			// The event time can be written back as JSON (FIFO message,
			// reason document).
			if _, err := json.Marshal(r.EventTime); err != nil || r.EventTime.Location() != time.UTC {
				t.Fatalf("event time %v: %v", r.EventTime, err)
			}
			// S3's encoding of the decoded key decodes to the same key.
			if back, err := url.QueryUnescape(url.QueryEscape(r.Key)); err != nil || back != r.Key {
				t.Fatalf("key %q does not survive re-encoding", r.Key)
			}
		}
	})
}

// eventJSON is an S3 notification body as S3 (and moto) writes it; raw is
// the already-encoded key, size the JSON for the size field ("" omits it).
func eventJSON(name, bucket, raw, version, size string) string {
	obj := `"key":` + quote(raw)
	if size != "" {
		obj += `,"size":` + size
	}
	if version != "" {
		obj += `,"versionId":` + quote(version)
	}
	obj += `,"eTag":"0123456789abcdef0123456789abcdef","sequencer":"0062E99A88DC407460"`
	return `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-03-01T10:00:00.000Z",` +
		`"eventName":` + quote(name) + `,"s3":{"s3SchemaVersion":"1.0","configurationId":"c","bucket":{"name":` + quote(bucket) +
		`,"arn":"arn:aws:s3:::` + bucket + `"},"object":{` + obj + `}}}]}`
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}
