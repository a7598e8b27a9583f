package enqueue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// TestMessageNotNamingAnInboundFileIsKept: a FIFO import message is only
// ever written by the router, for a file under inbound/<route>/ of the
// configured bucket. A hand-made or edited one that names anything else
// is never sent to F&O, and the object it names is neither moved, rejected
// nor filed, and no other bucket is written to: the message is kept at
// rejected/_malformed/<date>/<sqs id>.event with a reason, and the record
// is done (no redelivery loop).
func TestMessageNotNamingAnInboundFileIsKept(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
	other := mototest.NewBucket(t)
	tests := []struct {
		name, bucket, key, route string
		put                      bool // the object exists (else only the message names it)
		want                     string
	}{
		{"processed file", f.bucket, "processed/customers/2026/03/01/a.csv", "customers", true, "not under inbound/customers/"},
		{"idempotency marker", f.bucket, "_state/markers/0123.json", "customers", true, "not under inbound/customers/"},
		{"rejected file", f.bucket, "rejected/customers/2026/03/01/a.csv", "customers", true, "not under inbound/customers/"},
		{"another bucket", other, "inbound/customers/a.csv", "customers", true, "not the configured bucket"},
		{"folder", f.bucket, "inbound/customers/", "customers", true, "folder"},
		{"sub-folder", f.bucket, "inbound/customers/sub/", "customers", true, "folder"},
		{"empty route", f.bucket, "inbound/customers/b.csv", "", true, "route is empty"},
		{"empty route, file directly in inbound/", f.bucket, "inbound/c.csv", "", true, "route is empty"},
		{"another route's folder", f.bucket, "inbound/vendors/d.csv", "customers", true, "not under inbound/customers/"},
		{"stuck report", f.bucket, "inbound/customers/e.csv" + layout.StuckSuffix, "customers", true, "stuck report"},
	}
	day := time.Now().UTC().Format("2006/01/02")
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v, etag string
			if tt.put {
				v, etag = pipelinetest.Put(t, f.s3, tt.bucket, tt.key, []byte("id;name\n1;x\n"))
			}
			before := pipelinetest.Keys(t, f.s3, f.bucket, "")
			otherBefore := pipelinetest.Keys(t, f.s3, other, "")
			requests := f.emu.Requests("enqueue")
			body, _ := json.Marshal(importmsg.File{Bucket: tt.bucket, Key: tt.key, VersionID: v, ETag: etag, Size: 12,
				Route: tt.route, EventTime: time.Now().UTC()})
			id := fmt.Sprintf("hand-made-%d", i)
			for range 2 { // a redelivery is handled the same way
				resp, err := f.h.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{pipelinetest.Message(id, string(body))}})
				if err != nil || len(resp.BatchItemFailures) != 0 {
					t.Fatalf("%v %v: want done, not redelivered", failures(resp), err)
				}
			}
			if n := f.emu.Requests("enqueue") - requests; n != 0 {
				t.Fatalf("%d enqueue requests: sent to F&O", n)
			}
			if got := pipelinetest.Keys(t, f.s3, other, ""); !slices.Equal(got, otherBefore) {
				t.Fatalf("bucket %s changed: %v, was %v", other, got, otherBefore)
			}
			if tt.put {
				if got, ok := pipelinetest.Get(t, f.s3, tt.bucket, tt.key); !ok || string(got) != "id;name\n1;x\n" {
					t.Fatalf("%s/%s = %q, %v: touched", tt.bucket, tt.key, got, ok)
				}
			}
			kept := "rejected/_malformed/" + day + "/" + id + ".event"
			var added []string
			for _, k := range pipelinetest.Keys(t, f.s3, f.bucket, "") {
				if !slices.Contains(before, k) {
					added = append(added, k)
				}
			}
			if !slices.Equal(added, []string{kept, kept + layout.ReasonSuffix}) {
				t.Fatalf("written: %v, want only %s and its reason", added, kept)
			}
			if got, _ := pipelinetest.Get(t, f.s3, f.bucket, kept); string(got) != string(body) {
				t.Fatalf("%s = %q, want the message verbatim", kept, got)
			}
			raw, _ := pipelinetest.Get(t, f.s3, f.bucket, kept+layout.ReasonSuffix)
			var doc filing.Reason
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Reason != "malformed-event" || doc.RejectedKey != kept || doc.MessageID != id || doc.Bucket != f.bucket ||
				!strings.Contains(doc.Detail, tt.want) || !strings.Contains(doc.Detail, tt.key) {
				t.Fatalf("reason = %+v, want one saying %q", doc, tt.want)
			}
		})
	}
	// The checks above compare listings: make sure they see the objects.
	if keys := pipelinetest.Keys(t, f.s3, other, ""); len(keys) != 1 {
		t.Fatalf("other bucket holds %v", keys)
	}
}
