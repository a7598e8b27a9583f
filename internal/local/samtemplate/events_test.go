package samtemplate_test

// Every file in events/ must decode into the aws-lambda-go type (or the
// input shape) its function takes, and say what its name promises.

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/internal/local/samtemplate"
	"github.com/fno-bridge/s3-fno/internal/shared/config"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

const eventsDir = "../../../events"

// strict decodes data into v, refusing unknown fields and trailing data.
func strict(t *testing.T, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode into %T: %v", v, err)
	}
	if dec.More() {
		t.Fatalf("trailing data after %T", v)
	}
}

// localRoutes is the ROUTES of events/env.local.json, which the events use.
func localRoutes(t *testing.T) *routes.Table {
	t.Helper()
	env := readEnvFile(t)
	tbl, err := routes.Parse(env["Parameters"]["ROUTES"])
	if err != nil {
		t.Fatalf("env.local.json ROUTES: %v", err)
	}
	return tbl
}

func readEnvFile(t *testing.T) map[string]map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(eventsDir, "env.local.json"))
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]map[string]string
	strict(t, data, &env)
	return env
}

// sqsBatch checks the SQS envelope and returns the records.
func sqsBatch(t *testing.T, data []byte, fifo bool) []events.SQSMessage {
	t.Helper()
	var ev events.SQSEvent
	strict(t, data, &ev)
	if len(ev.Records) == 0 || len(ev.Records) > 10 {
		t.Fatalf("%d records; an SQS batch has 1-10", len(ev.Records))
	}
	seen := map[string]bool{}
	for i, m := range ev.Records {
		sum := md5.Sum([]byte(m.Body))
		if m.Md5OfBody != hex.EncodeToString(sum[:]) {
			t.Errorf("record %d: md5OfBody %s is not the MD5 of the body", i, m.Md5OfBody)
		}
		if m.EventSource != "aws:sqs" || m.MessageId == "" || m.ReceiptHandle == "" || m.AWSRegion == "" {
			t.Errorf("record %d: envelope %+v", i, m)
		}
		if seen[m.MessageId] {
			t.Errorf("record %d: messageId %s repeated", i, m.MessageId)
		}
		seen[m.MessageId] = true
		if strings.HasSuffix(m.EventSourceARN, ".fifo") != fifo {
			t.Errorf("record %d: eventSourceARN %s (FIFO expected: %v)", i, m.EventSourceARN, fifo)
		}
		for _, a := range []string{"ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} {
			if m.Attributes[a] == "" {
				t.Errorf("record %d: attribute %s missing", i, a)
			}
		}
	}
	return ev.Records
}

// s3Records decodes the S3 notifications in a router batch.
func s3Records(t *testing.T, batch []events.SQSMessage) []events.S3EventRecord {
	t.Helper()
	var out []events.S3EventRecord
	for _, m := range batch {
		var ev events.S3Event
		strict(t, []byte(m.Body), &ev)
		if len(ev.Records) != 1 {
			t.Fatalf("an S3 notification carries one record; got %d", len(ev.Records))
		}
		r := ev.Records[0]
		if r.EventSource != "aws:s3" || !strings.HasPrefix(r.EventName, "ObjectCreated:") || r.EventTime.IsZero() ||
			r.S3.Bucket.Name == "" || r.S3.Bucket.Arn != "arn:aws:s3:::"+r.S3.Bucket.Name || r.S3.Object.Sequencer == "" {
			t.Errorf("S3 record %+v", r)
		}
		out = append(out, r)
	}
	return out
}

func routeOf(tbl *routes.Table, key string) (routes.Route, bool) {
	route, _, ok := layout.Default().Split(key)
	if !ok || route == "" {
		return routes.Route{}, false
	}
	return tbl.Lookup(route)
}

func TestEvents(t *testing.T) {
	tpl := loadTemplate(t)
	tbl := localRoutes(t)
	files, err := filepath.Glob(filepath.Join(eventsDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no events: %v", err)
	}
	checks := map[string]func(t *testing.T, data []byte){
		"router-s3-put.json": func(t *testing.T, data []byte) {
			recs := s3Records(t, sqsBatch(t, data, false))
			if len(recs) != 1 || recs[0].EventName != "ObjectCreated:Put" || recs[0].S3.Object.URLDecodedKey != "inbound/customers/customers-001.csv" {
				t.Errorf("records %+v", recs)
			}
			if _, ok := routeOf(tbl, recs[0].S3.Object.URLDecodedKey); !ok {
				t.Error("the key has no route in env.local.json")
			}
		},
		"router-urlencoded-keys.json": func(t *testing.T, data []byte) {
			recs := s3Records(t, sqsBatch(t, data, false))
			var plus, slash, unicode, literalPlus bool
			for _, r := range recs {
				raw, dec := r.S3.Object.Key, r.S3.Object.URLDecodedKey
				plus = plus || strings.Contains(raw, "+")
				slash = slash || strings.Contains(raw, "%2F")
				unicode = unicode || (utf8.ValidString(dec) && len(dec) != len([]rune(dec)))
				literalPlus = literalPlus || strings.Contains(dec, "+")
				if !strings.Contains(dec, "/") || dec == raw {
					t.Errorf("key %q decodes to %q", raw, dec)
				}
				if _, ok := routeOf(tbl, dec); !ok {
					t.Errorf("decoded key %q has no route", dec)
				}
			}
			if !plus || !slash || !unicode || !literalPlus {
				t.Errorf("want keys with '+' for space (%v), %%2F (%v), unicode (%v) and a literal '+' (%v)", plus, slash, unicode, literalPlus)
			}
			want := "inbound/vendors/für lieferanten.csv"
			found := false
			for _, r := range recs {
				found = found || r.S3.Object.URLDecodedKey == want
			}
			if !found {
				t.Errorf("no record decodes to %q", want)
			}
		},
		"router-test-event.json": func(t *testing.T, data []byte) {
			batch := sqsBatch(t, data, false)
			var te events.S3TestEvent
			strict(t, []byte(batch[0].Body), &te)
			if te.Event != "s3:TestEvent" || te.Service != "Amazon S3" || te.Bucket == "" {
				t.Errorf("test event %+v", te)
			}
			var ev events.S3Event // what a handler decoding every body as S3Event sees
			if err := json.Unmarshal([]byte(batch[0].Body), &ev); err != nil || len(ev.Records) != 0 {
				t.Errorf("as an S3Event: %d records, %v", len(ev.Records), err)
			}
		},
		"router-no-route.json": func(t *testing.T, data []byte) {
			for _, r := range s3Records(t, sqsBatch(t, data, false)) {
				if !strings.HasPrefix(r.S3.Object.URLDecodedKey, "inbound/") {
					t.Errorf("key %q is not under inbound/", r.S3.Object.URLDecodedKey)
				}
				if rt, ok := routeOf(tbl, r.S3.Object.URLDecodedKey); ok {
					t.Errorf("key %q has route %q", r.S3.Object.URLDecodedKey, rt.Name)
				}
			}
		},
		"router-zero-byte.json": func(t *testing.T, data []byte) {
			recs := s3Records(t, sqsBatch(t, data, false))
			if len(recs) != 1 || recs[0].S3.Object.Size != 0 || !bytes.Contains(data, []byte(`\"size\":0`)) {
				t.Errorf("want one zero-byte object with an explicit size 0: %+v", recs)
			}
			if _, ok := routeOf(tbl, recs[0].S3.Object.URLDecodedKey); !ok {
				t.Error("the zero-byte key should have a route, so emptiness is the reason it is rejected")
			}
		},
		"enqueue-fifo-batch.json": func(t *testing.T, data []byte) {
			batch := sqsBatch(t, data, true)
			groups := map[string]int{}
			lastSeq := map[string]*big.Int{}
			for i, m := range batch {
				var body struct {
					Bucket    string    `json:"bucket"`
					Key       string    `json:"key"`
					VersionID string    `json:"versionId"`
					ETag      string    `json:"etag"`
					Size      int64     `json:"size"`
					Route     string    `json:"route"`
					EventTime time.Time `json:"eventTime"`
				}
				strict(t, []byte(m.Body), &body)
				rt, ok := tbl.Lookup(body.Route)
				if !ok {
					t.Errorf("record %d: route %q not configured", i, body.Route)
					continue
				}
				if r, _ := routeOf(tbl, body.Key); r.Name != body.Route || strings.Contains(body.Key, "%") {
					t.Errorf("record %d: key %q (URL-decoded, under inbound/%s/)", i, body.Key, body.Route)
				}
				if body.Bucket == "" || body.VersionID == "" || body.ETag == "" || body.Size <= 0 || body.EventTime.IsZero() {
					t.Errorf("record %d: body %+v", i, body)
				}
				g := m.Attributes["MessageGroupId"]
				if g != rt.GroupID() {
					t.Errorf("record %d: MessageGroupId %q, want the route's %q", i, g, rt.GroupID())
				}
				if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(m.Attributes["MessageDeduplicationId"]) {
					t.Errorf("record %d: MessageDeduplicationId %q", i, m.Attributes["MessageDeduplicationId"])
				}
				// SQS sequence numbers are large (20+ digits) and only increase
				// within a message group.
				seq, ok := new(big.Int).SetString(m.Attributes["SequenceNumber"], 10)
				if !ok || (lastSeq[g] != nil && seq.Cmp(lastSeq[g]) <= 0) {
					t.Errorf("record %d: SequenceNumber %q not increasing within group %s", i, m.Attributes["SequenceNumber"], g)
				}
				lastSeq[g] = seq
				groups[g]++
			}
			if len(batch) != 3 || len(groups) != 2 {
				t.Errorf("%d records in %d groups; want 3 records of 2 entities", len(batch), len(groups))
			}
		},
		"poller-schedule.json": func(t *testing.T, data []byte) {
			var in struct {
				Task string `json:"task"`
			}
			strict(t, data, &in)
			f := mustFunction(t, tpl, "PollerFunction", fnoValues)
			want := mustEvalString(t, tpl, f.EventsOfType("ScheduleV2")[0].Properties["Input"], fnoValues)
			if in.Task != "poll" || strings.TrimSpace(string(data)) != want {
				t.Errorf("%s is not the poller schedule's input %s", data, want)
			}
		},
		"dequeue-export-job1.json": func(t *testing.T, data []byte) { checkExportJob(t, tpl, data, false) },
		"dequeue-export-job2.json": func(t *testing.T, data []byte) { checkExportJob(t, tpl, data, true) },
		"env.local.json": func(t *testing.T, data []byte) {
			env := readEnvFile(t)
			for section := range env {
				if section == "Parameters" {
					continue
				}
				if r, ok := tpl.Resources[section]; !ok || r.Type != samtemplate.TypeFunction {
					t.Errorf("section %q is neither Parameters nor a function", section)
				}
			}
			f := mustFunction(t, tpl, "RouterFunction", fnoValues)
			for name := range f.Unresolved {
				if _, ok := env["Parameters"][name]; !ok {
					t.Errorf("env.local.json does not give %s, which the template cannot resolve locally", name)
				}
			}
			if env["Parameters"]["FNO_CLIENT_SECRET"] == "" || env["Parameters"]["AWS_ENDPOINT_URL"] == "" {
				t.Error("env.local.json is for the local stand-ins: FNO_CLIENT_SECRET and AWS_ENDPOINT_URL expected")
			}
		},
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			check, ok := checks[name]
			if !ok {
				t.Fatalf("events/%s is checked by no test: add it to TestEvents", name)
			}
			data, err := os.ReadFile(filepath.Join(eventsDir, name))
			if err != nil {
				t.Fatal(err)
			}
			check(t, data)
		})
	}
	for name := range checks {
		if _, err := os.Stat(filepath.Join(eventsDir, name)); err != nil {
			t.Errorf("events/%s is missing", name)
		}
	}
}

func checkExportJob(t *testing.T, tpl *samtemplate.Template, data []byte, unpack bool) {
	t.Helper()
	in, err := dequeue.DecodeInput(data, "outbound/")
	if err != nil {
		t.Fatalf("dequeue.DecodeInput: %v", err)
	}
	if in.Unpack != unpack || !strings.HasPrefix(in.Prefix, "outbound/") {
		t.Errorf("input %+v; want unpack %v under outbound/", in, unpack)
	}
	// It is a job of the configuration document: with a schedule added,
	// the document takes it, and its schedule's input is the event again.
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	fields["schedule"] = "rate(1 hour)"
	job, _ := json.Marshal(fields)
	doc, err := config.Parse([]byte(`{"routes":[],"jobs":[`+string(job)+`]}`), func(in json.RawMessage) error {
		_, err := dequeue.DecodeInput(in, "outbound/")
		return err
	})
	if err != nil {
		t.Fatalf("as a job of the configuration document: %v", err)
	}
	var back, want map[string]any
	json.Unmarshal(doc.Jobs[0].Input, &back)
	json.Unmarshal(data, &want)
	if !reflect.DeepEqual(back, want) {
		t.Errorf("the schedule's input %s, want the event %s", doc.Jobs[0].Input, data)
	}
}
