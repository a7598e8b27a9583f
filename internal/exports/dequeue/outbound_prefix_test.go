package dequeue_test

// Export prefixes must lie under OUTBOUND_PREFIX (issue 14): a job whose
// prefix is inbound/<route>/ would land F&O's export where the import
// pipeline picks it up and sends it straight back to F&O. The job is refused
// with an InputError naming the field, before F&O or S3 is touched. IAM
// refuses it too: the dequeue function may write only under outbound/ and
// its own _state/ documents (template.yaml; checked by
// internal/local/samtemplate's policy test).

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/internal/local/s3fake"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

const outsideActivity = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"

// outsidePrefixes are prefixes that are not under "outbound/".
var outsidePrefixes = []string{
	"inbound/customers/",      // the loop the issue found
	"inbound/",                // the whole import folder
	"processed/customers/",    // another pipeline folder
	"failed/x/",               //
	"rejected/_unrouted/",     //
	"_state/exports/",         // the function's own state
	"exports/cg/",             // anywhere else in the bucket
	"outbound",                // becomes "outbound/": fine, see the OK cases
	"Outbound/cg/",            // S3 keys are case-sensitive
	"outbound-other/cg/",      // a sibling that merely starts alike
	"outboundx/",              //
	"x/outbound/cg/",          // outbound/ further down is not under it
	"cg/",                     //
	" inbound/customers/ ",    // trimmed, still outside
	"inbound/customers",       // without the trailing "/"
	"outbound.d/outbound/cg/", //
}

func TestDecodeInputRefusesPrefixesOutsideOutbound(t *testing.T) {
	t.Parallel()
	for _, p := range outsidePrefixes {
		if p == "outbound" {
			continue // normalised to outbound/ itself: accepted below
		}
		raw := `{"job":"cg","activityId":"` + outsideActivity + `","prefix":` + quote(p) + `}`
		_, err := dequeue.DecodeInput([]byte(raw), "outbound/")
		var ie *dequeue.InputError
		if !errors.As(err, &ie) {
			t.Errorf("prefix %q: err = %v, want an *InputError", p, err)
			continue
		}
		if ie.Field != "prefix" {
			t.Errorf("prefix %q: Field = %q, want prefix", p, ie.Field)
		}
		for _, want := range []string{"prefix", "not under OUTBOUND_PREFIX", `"outbound/"`, "outbound/cg/"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("prefix %q: error %q does not say %q", p, err, want)
			}
		}
	}
}

func TestDecodeInputAcceptsPrefixesUnderOutbound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ outbound, prefix, want string }{
		{"outbound/", "", "outbound/cg/"},
		{"outbound/", "outbound/customer-groups/", "outbound/customer-groups/"},
		{"outbound/", "outbound/customer-groups", "outbound/customer-groups/"},
		{"outbound/", "outbound/a/b/c/", "outbound/a/b/c/"},
		{"outbound/", "outbound/", "outbound/"},
		{"outbound/", "outbound", "outbound/"},
		{"", "outbound/cg/", "outbound/cg/"}, // blank OUTBOUND_PREFIX: the default
		{"", "", "outbound/cg/"},
		{"exports/out", "exports/out/cg/", "exports/out/cg/"}, // OUTBOUND_PREFIX without its "/"
		{"exports/out/", "", "exports/out/cg/"},
	} {
		raw := `{"job":"cg","activityId":"` + outsideActivity + `"`
		if tc.prefix != "" {
			raw += `,"prefix":` + quote(tc.prefix)
		}
		raw += "}"
		in, err := dequeue.DecodeInput([]byte(raw), tc.outbound)
		if err != nil {
			t.Errorf("OUTBOUND_PREFIX %q, prefix %q: %v", tc.outbound, tc.prefix, err)
			continue
		}
		if in.Prefix != tc.want {
			t.Errorf("OUTBOUND_PREFIX %q, prefix %q: got %q, want %q", tc.outbound, tc.prefix, in.Prefix, tc.want)
		}
	}
	// With another OUTBOUND_PREFIX, "outbound/" is outside like any other.
	raw := `{"job":"cg","activityId":"` + outsideActivity + `","prefix":"outbound/cg/"}`
	if _, err := dequeue.DecodeInput([]byte(raw), "exports/out/"); err == nil || !strings.Contains(err.Error(), `"exports/out/"`) {
		t.Errorf("OUTBOUND_PREFIX exports/out/, prefix outbound/cg/: err = %v, want a refusal naming exports/out/", err)
	}
}

// recordingFnO fails the test on any F&O call: a refused job must not even
// dequeue (a dequeued export would be handed out again only after 30 minutes).
type recordingFnO struct {
	t     *testing.T
	calls atomic.Int32
}

func (f *recordingFnO) Dequeue(context.Context, string) (*d365.DequeuedFile, error) {
	f.calls.Add(1)
	f.t.Error("F&O Dequeue called for a refused job")
	return nil, errors.New("refused job")
}

func (f *recordingFnO) Download(context.Context, string) (*d365.Download, error) {
	f.calls.Add(1)
	f.t.Error("F&O Download called for a refused job")
	return nil, errors.New("refused job")
}

func (f *recordingFnO) Ack(context.Context, string, *d365.DequeuedFile) error {
	f.calls.Add(1)
	f.t.Error("F&O Ack called for a refused job")
	return errors.New("refused job")
}

// TestHandlerRefusesPrefixOutsideOutbound: the run fails, F&O is never
// called and nothing is written, whether the job comes as the schedule's
// JSON (Handle) or as an Input built in code (Run).
func TestHandlerRefusesPrefixOutsideOutbound(t *testing.T) {
	t.Parallel()
	mem := s3fake.New()
	fno := &recordingFnO{t: t}
	h, err := dequeue.New(dequeue.Config{Bucket: "b"}, fno, mem)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range outsidePrefixes {
		if p == "outbound" {
			continue
		}
		raw := `{"job":"cg","activityId":"` + outsideActivity + `","prefix":` + quote(p) + `}`
		sum, err := h.Handle(context.Background(), json.RawMessage(raw))
		var ie *dequeue.InputError
		if !errors.As(err, &ie) || ie.Field != "prefix" {
			t.Errorf("Handle, prefix %q: err = %v, want an InputError on prefix", p, err)
		}
		if sum.Landed != 0 || sum.Dequeued != 0 || len(sum.Files) != 0 {
			t.Errorf("Handle, prefix %q: summary %+v", p, sum)
		}
		_, err = h.Run(context.Background(), dequeue.Input{Job: "cg", ActivityID: outsideActivity, Prefix: p})
		if !errors.As(err, &ie) || ie.Field != "prefix" {
			t.Errorf("Run, prefix %q: err = %v, want an InputError on prefix", p, err)
		}
	}
	if keys := mem.Keys(); len(keys) != 0 {
		t.Errorf("a refused job wrote %v", keys)
	}
	if n := fno.calls.Load(); n != 0 {
		t.Errorf("%d F&O calls for refused jobs", n)
	}
}

// TestRefusedPrefixOnMoto: the same over the AWS wire, with F&O holding an
// export for the job: it stays queued in F&O and the bucket stays empty.
func TestRefusedPrefixOnMoto(t *testing.T) {
	t.Parallel()
	v := newEnv(t, d365test.Options{})
	v.e.QueueExport(outsideActivity, d365test.Export{Body: []byte("id,name\n1,a\n"), FileName: "groups.csv"})
	h := v.handler(nil)
	for _, p := range []string{"inbound/customers/", "processed/customers/", "exports/cg/"} {
		_, err := h.Handle(context.Background(), json.RawMessage(input("cg", outsideActivity, `"prefix":`+quote(p))))
		var ie *dequeue.InputError
		if !errors.As(err, &ie) || ie.Field != "prefix" || !strings.Contains(err.Error(), "OUTBOUND_PREFIX") {
			t.Errorf("prefix %q: err = %v, want an InputError on prefix naming OUTBOUND_PREFIX", p, err)
		}
	}
	if keys := v.keys(""); len(keys) != 0 {
		t.Errorf("refused jobs wrote %v", keys)
	}
	if n := v.e.TotalRequests(); n != 0 {
		t.Errorf("%d requests to F&O (%d dequeues) for refused jobs, want none", n, v.e.Requests("dequeue"))
	}
	if n := v.e.Pending(outsideActivity); n != 1 {
		t.Errorf("%d exports pending in F&O, want the 1 queued", n)
	}
	if acked := v.e.Acked(outsideActivity); len(acked) != 0 {
		t.Errorf("acknowledged %v", acked)
	}

	// The same job under outbound/ lands.
	sum := v.run(h, input("cg", outsideActivity, `"prefix":"outbound/cg/"`))
	if sum.Landed != 1 {
		t.Fatalf("under outbound/: %+v", sum)
	}
	for _, k := range v.keys("") {
		if !strings.HasPrefix(k, "outbound/cg/") && !strings.HasPrefix(k, "_state/exports/cg/") && !strings.HasPrefix(k, "_state/status/jobs/cg/") {
			t.Errorf("landed outside outbound/cg/ and its state: %s", k)
		}
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
