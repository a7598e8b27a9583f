package faultmatrix_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// standardLoad drops the files every matrix case runs: good files in two
// entities, one F&O fails with row errors (so the error-file actions and
// blob downloads run), an empty and an unrouted one; and two exports.
func (p *pipeline) standardLoad() {
	p.put("inbound/r00/1-first.csv", []byte("a;b\n1;2\n"))
	p.put("inbound/r00/2-bad-rows.csv", []byte("a;b\n3;4\n"))
	p.put("inbound/r00/3-third.csv", []byte("a;b\n5;6\n"))
	p.put("inbound/r01/4-other entity.csv", []byte("c\n7\n"))
	p.put("inbound/r01/5-empty.csv", nil)
	p.put("inbound/unrouted/6.csv", []byte("x"))
	p.queueExport(p.jobs[0], []byte("GROUP,NAME\n10,Retail\n"))
	p.queueExport(p.jobs[0], []byte("GROUP,NAME\n20,Wholesale\n"))
}

func TestBaseline(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, setup{})
	p.standardLoad()
	passes := p.settle(20, nil)
	b := p.account()
	t.Logf("settled in %d passes: %v %v", passes, b.count, b.statuses)
}

// The calls the pipeline makes to F&O, and how a 5xx shows when the
// client's own retries do not get it through: the enqueue function returns
// the record to the FIFO queue (an enqueue is never re-sent by the client
// once its body went out), the poller reschedules the record, the export
// function leaves the export unacknowledged (or, for dequeue, fails the
// run) for a later run.
var calls = []struct {
	endpoint string
	side     string // enqueue, poller or export
}{
	{"enqueue", "enqueue"},
	{"GetMessageStatus", "poller"},
	{"GetExecutionIdByMessageId", "poller"},
	{"GetExecutionSummaryStatus", "poller"},
	{"GetExecutionErrors", "poller"},
	{"GetImportStagingErrorFileUrl", "poller"},
	{"GenerateImportTargetErrorKeysFile", "poller"},
	{"GetImportTargetErrorKeysFileUrl", "poller"},
	{"blob-get", "poller"}, // the error files themselves
	{"dequeue", "export"},
	{"download", "export"},
	{"ack", "export"},
}

// clientAttempts is d365.RetryPolicy's default MaxAttempts: a fault this
// many times in a row outlasts the client's retries of a safe call.
const clientAttempts = 6

// TestEveryCallFails: F&O answers 500 and 502, or 429 with Retry-After,
// on each call the pipeline makes.
//
// 5xx: 500s then 502s, enough in a row that the client's retries give up
// (for enqueue, which the client never re-sends once the body went out:
// one of each), so the pipeline's own retry (a redelivery, a rescheduled
// record, a later export run) is what gets the work done. 429: once; the
// client waits Retry-After out and the same invocation goes on. Either way
// every file ends in exactly one place, F&O gets each file once, and each
// export lands once and is acknowledged.
func TestEveryCallFails(t *testing.T) {
	t.Parallel()
	var cases []subtest
	for _, c := range calls {
		for _, kind := range []string{"5xx", "429"} {
			cases = append(cases, subtest{c.endpoint + " " + kind, func(t *testing.T) {
				// One record checked at a time: the client's retries of one
				// call meet all the faults in a row.
				p := newPipeline(t, setup{PollerConcurrency: 1})
				count := 1
				switch {
				case kind == "429":
					p.emu.Inject(d365test.Fault{Endpoint: c.endpoint, Count: 1, Status: 429, RetryAfter: 1})
				case c.endpoint == "enqueue":
					p.emu.Inject(d365test.Fault{Endpoint: c.endpoint, Count: 1, Status: 500})
					p.emu.Inject(d365test.Fault{Endpoint: c.endpoint, Count: 1, Status: 502})
					count = 2 // two redeliveries; MaxReceiveCount is 5
				default:
					p.emu.Inject(d365test.Fault{Endpoint: c.endpoint, Count: clientAttempts / 2, Status: 500})
					p.emu.Inject(d365test.Fault{Endpoint: c.endpoint, Count: clientAttempts - clientAttempts/2, Status: 502})
					count = clientAttempts
				}
				p.standardLoad()
				p.settle(30, nil)
				p.account()
				if got := p.emu.Faulted(c.endpoint); got != count {
					t.Fatalf("%s was answered with a fault %d times, want %d: the pipeline did not make the call as expected", c.endpoint, got, count)
				}
				const routable = 4 // files the router forwards (not the empty or unrouted one)
				pollErrors, exportFailures := 0, 0
				for _, s := range p.pollRuns {
					pollErrors += s.Errors
				}
				for _, s := range p.exportRuns {
					for _, f := range s.Files {
						if f.Error != "" {
							exportFailures++
						}
					}
				}
				_, exportErrors, _, _ := p.exportFn.stats()
				if kind == "429" {
					// Waited out within the call: no redelivery, no error
					// for a later run to repair, nothing sent twice.
					if p.delivered != routable || pollErrors != 0 || exportFailures != 0 || exportErrors != 0 {
						t.Errorf("429 was not waited out: %d deliveries (want %d), %d poll errors, %d export failures, %d export function errors",
							p.delivered, routable, pollErrors, exportFailures, exportErrors)
					}
					return
				}
				switch {
				case c.side == "enqueue" && p.delivered < routable+count:
					t.Errorf("%d deliveries to the enqueue function; want at least %d (each 5xx a redelivery)", p.delivered, routable+count)
				case c.side == "poller" && pollErrors == 0:
					t.Errorf("no poller run saw the 5xx: the client's retries were not outlasted")
				case c.endpoint == "dequeue" && exportErrors == 0:
					t.Errorf("no export run failed on the dequeue 5xx")
				case c.side == "export" && c.endpoint != "dequeue" && exportFailures == 0:
					t.Errorf("no export file failed on the %s 5xx", c.endpoint)
				}
			}})
		}
	}
	runAll(t, cases)
}

// TestConnectionReset: the connection drops in the middle of a body.
func TestConnectionReset(t *testing.T) {
	t.Parallel()
	var cases []subtest
	cases = append(cases, subtest{"enqueue body", func(t *testing.T) {
		// The body went out in part: F&O may or may not have the file
		// (here it has nothing), and it is never sent again. The file goes
		// to failed/ with a result saying what to check.
		p := newPipeline(t, setup{})
		p.emu.SetFaultFunc(aimed("enqueue", "3-third", 1, d365test.Fault{ResetAfterBytes: 3}))
		p.standardLoad()
		p.settle(20, nil)
		b := p.account()
		f := b.fates["inbound/r00/3-third.csv"]
		if f.where != "failed" || f.status != enqueue.OutcomeUnknown || !strings.Contains(strings.Join(f.result.Notes, " "), "inbound/r00/3-third.csv") {
			t.Fatalf("3-third.csv: %s/%s, notes %q; want failed/ %s naming the external ID to look for", f.where, f.status, f.result.Notes, enqueue.OutcomeUnknown)
		}
		if n := b.messages["inbound/r00/3-third.csv"]; n != 0 || p.emu.Requests("enqueue") != 4 {
			t.Fatalf("F&O has %d messages for it after %d enqueue requests; want 0 after 4 (each file once, this one never again)", n, p.emu.Requests("enqueue"))
		}
	}})
	cases = append(cases, subtest{"download body", func(t *testing.T) {
		// The export is not acknowledged; F&O hands it out again after its
		// visibility timeout and it lands once, whole.
		p := newPipeline(t, setup{})
		p.emu.Inject(d365test.Fault{Endpoint: "download", Count: 1, ResetAfterBytes: 5})
		p.standardLoad()
		p.settle(20, nil)
		p.account()
		failed := 0
		for _, s := range p.exportRuns {
			for _, f := range s.Files {
				if f.Error != "" && !f.Acked {
					failed++
				}
			}
		}
		if failed != 1 || p.emu.Requests("download") != 3 {
			t.Fatalf("%d exports failed unacknowledged, %d downloads; want 1 and 3 (one cut, then each whole)", failed, p.emu.Requests("download"))
		}
	}})
	runAll(t, cases)
}

// TestSlowerThanTheDeadline: F&O holds its answer past the function's
// deadline. The function must stop cleanly before Lambda stops it.
func TestSlowerThanTheDeadline(t *testing.T) {
	t.Parallel()
	var cases []subtest
	slow := d365test.Fault{Delay: time.Minute} // until the client gives up
	cases = append(cases, subtest{"enqueue", func(t *testing.T) {
		// F&O stored the file and the answer never came: the outcome is
		// unknown, so the file goes to failed/ with a result telling what
		// to check, and F&O has it once.
		// Sends end a quarter of the time left before the deadline (at most
		// 15 s): 4 s here to file the outcome.
		p := newPipeline(t, setup{EnqueueTimeout: 16 * time.Second, EnqueueMargin: 4 * time.Second})
		p.emu.SetFaultFunc(aimed("enqueue", "1-first", 1, slow))
		p.standardLoad()
		p.settle(20, nil)
		b := p.account()
		f := b.fates["inbound/r00/1-first.csv"]
		if f.where != "failed" || f.status != enqueue.OutcomeUnknown || len(f.result.Notes) == 0 {
			t.Fatalf("1-first.csv: %s/%s %q; want failed/ %s with notes", f.where, f.status, f.result.Notes, enqueue.OutcomeUnknown)
		}
		if n := b.messages["inbound/r00/1-first.csv"]; n != 1 {
			t.Fatalf("F&O has %d messages for 1-first.csv, want 1 (stored, answer lost, never sent again)", n)
		}
		if _, _, _, timeouts := p.enqFn.stats(); timeouts != 0 {
			t.Fatalf("the enqueue function timed out %d times: it did not stop before its deadline", timeouts)
		}
	}})
	for _, endpoint := range []string{"dequeue", "download"} {
		cases = append(cases, subtest{endpoint, func(t *testing.T) {
			// Nothing lands, nothing is acknowledged, the run ends before
			// the deadline; F&O hands the export out again later. (After
			// the cut the run still records its summary in moto, which a
			// busy machine slows: hence a margin of seconds.)
			p := newPipeline(t, setup{ExportTimeout: 8 * time.Second, ExportMargin: 4 * time.Second})
			p.emu.Inject(d365test.Fault{Endpoint: endpoint, Count: 1, Delay: time.Minute})
			p.standardLoad()
			p.settle(20, nil)
			p.account()
			if _, errs, _, timeouts := p.exportFn.stats(); timeouts != 0 || errs != 0 {
				t.Fatalf("the dequeue function timed out %d times, failed %d times: it did not stop cleanly before its deadline", timeouts, errs)
			}
			if len(p.exportRuns) == 0 || !p.exportRuns[0].MoreMayRemain || p.exportRuns[0].Acked != 0 {
				t.Fatalf("first export run = %+v; want it stopped with nothing acknowledged", p.exportRuns[0])
			}
		}})
	}
	runAll(t, cases)
}

// TestS3GetObjectFails: reading the file from S3 fails; SQS redelivers the
// record, nothing is lost.
func TestS3GetObjectFails(t *testing.T) {
	t.Parallel()
	var cases []subtest
	cases = append(cases, subtest{"twice", func(t *testing.T) {
		p := newPipeline(t, setup{})
		p.src.fail = func(key string, n int) bool { return strings.Contains(key, "1-first") && n < 2 }
		p.standardLoad()
		p.settle(20, nil)
		b := p.account()
		if f := b.fates["inbound/r00/1-first.csv"]; f.where != "processed" || b.messages["inbound/r00/1-first.csv"] != 1 {
			t.Fatalf("1-first.csv: %s, %d F&O messages; want processed, 1", f.where, b.messages["inbound/r00/1-first.csv"])
		}
		if p.src.failures() != 2 || p.delivered != 4+2 {
			t.Fatalf("%d GetObject failures, %d deliveries; want 2 and 6 (two redeliveries)", p.src.failures(), p.delivered)
		}
	}})
	cases = append(cases, subtest{"stream cut mid-body", func(t *testing.T) {
		// S3's stream breaks halfway through the send: F&O cannot have
		// taken half a body, so the client sends it again from a fresh
		// read in the same delivery (not "outcome unknown").
		p := newPipeline(t, setup{})
		p.src.cut = func(key string, n int) bool { return strings.Contains(key, "1-first") && n == 0 }
		p.standardLoad()
		p.settle(20, nil)
		b := p.account()
		if f := b.fates["inbound/r00/1-first.csv"]; f.where != "processed" || b.messages["inbound/r00/1-first.csv"] != 1 {
			t.Fatalf("1-first.csv: %s, %d F&O messages; want processed, 1", f.where, b.messages["inbound/r00/1-first.csv"])
		}
		if p.src.cuts != 1 || p.delivered != 4 {
			t.Fatalf("%d cut reads, %d deliveries; want 1 and 4 (no redelivery)", p.src.cuts, p.delivered)
		}
	}})
	cases = append(cases, subtest{"every time", func(t *testing.T) {
		// After MaxReceiveCount deliveries the message is dead-lettered and
		// the file stays in inbound/; the entity's later files go on.
		p := newPipeline(t, setup{MaxReceiveCount: 3})
		p.src.fail = func(key string, _ int) bool { return strings.Contains(key, "1-first") }
		p.standardLoad()
		p.settle(30, nil)
		b := p.account()
		if fmt.Sprint(b.dlq) != "[inbound/r00/1-first.csv]" || b.messages["inbound/r00/1-first.csv"] != 0 {
			t.Fatalf("dead-lettered %v, F&O messages for 1-first.csv %d; want it alone, never sent", b.dlq, b.messages["inbound/r00/1-first.csv"])
		}
		if b.fates["inbound/r00/3-third.csv"].where != "processed" {
			t.Fatalf("the files behind it: %+v", b.fates)
		}
	}})
	runAll(t, cases)
}

// TestDuplicateDelivery: the same S3 event three times, and the same FIFO
// message delivered again after its function finished it: one F&O message
// each.
func TestDuplicateDelivery(t *testing.T) {
	t.Parallel()
	var cases []subtest
	cases = append(cases, subtest{"S3 event three times", func(t *testing.T) {
		p := newPipeline(t, setup{})
		p.standardLoad()
		for _, d := range p.drops {
			p.notifyAgain(d) // at once
		}
		p.settle(20, nil)
		for _, d := range p.drops {
			p.notifyAgain(d) // and once more after the files were finalized
		}
		p.settle(20, nil)
		b := p.account()
		for _, d := range p.drops {
			if n := b.messages[d.key]; n > 1 {
				t.Errorf("%s: %d F&O messages", d.key, n)
			}
		}
		// The notifications came three times; each file was released once.
		if p.fifo.sends != 4 || p.fifo.requests < 2 {
			t.Fatalf("%d files released, %d release requests; want 4 files once each, and the repeated notifications' requests", p.fifo.sends, p.fifo.requests)
		}
	}})
	cases = append(cases, subtest{"FIFO message again", func(t *testing.T) {
		p := newPipeline(t, setup{})
		lost := false
		p.lossy.lose = func(body string) bool {
			if !lost && strings.Contains(body, "2-bad-rows") {
				lost = true
				return true
			}
			return false
		}
		p.standardLoad()
		p.settle(20, nil)
		b := p.account()
		if p.lossy.lostDeletes() != 1 || p.delivered != 4+1 || b.messages["inbound/r00/2-bad-rows.csv"] != 1 {
			t.Fatalf("%d deletes lost, %d deliveries, %d F&O messages for 2-bad-rows.csv; want 1, 5, 1",
				p.lossy.lostDeletes(), p.delivered, b.messages["inbound/r00/2-bad-rows.csv"])
		}
	}})
	runAll(t, cases)
}

// TestEnqueueKilledAfterAccept: the enqueue function is killed after F&O
// accepted a file and before F&O's message ID is recorded in the
// idempotency marker. The brief of this matrix expected the old duplicate
// window here (the redelivery finds no marker and sends the file again);
// since db4def1 an intent marker is written before the send, so the
// redelivery finds it without a message ID and files the file under
// failed/ as EnqueueOutcomeUnknown instead: F&O holds it once, and a
// person is told to look for it. That is what this test holds the
// pipeline to.
//
// The window that is left (README, "At most once"): F&O stores the file
// and the answer that comes back is a 5xx (a gateway failing after the
// fact). A 5xx says "not taken", so the file is retried and F&O holds it
// twice. The second case holds the pipeline to exactly that: two messages
// for that file, one for every other.
func TestEnqueueKilledAfterAccept(t *testing.T) {
	t.Parallel()
	var cases []subtest
	for _, c := range []struct {
		name     string
		what     afterAccept
		messages int    // F&O messages for the file
		where    string // where the file ends
		status   string
	}{
		{"the process dies", die, 1, "failed", enqueue.OutcomeUnknown},
		{"F&O stored it and answered 502", answer502, 2, "processed", d365test.StatusProcessed},
	} {
		cases = append(cases, subtest{c.name, func(t *testing.T) {
			p := newPipeline(t, setup{})
			p.enq.then = func(id string, n int) afterAccept {
				if strings.Contains(id, "3-third") && n == 0 {
					return c.what
				}
				return goOn
			}
			p.standardLoad()
			p.settle(20, nil)
			b := p.account()
			for _, d := range p.drops {
				want := 1
				switch {
				case strings.Contains(d.key, "3-third"):
					want = c.messages
				case b.fates[d.key].where == "rejected":
					want = 0
				}
				if b.messages[d.key] != want {
					t.Errorf("%s: %d F&O messages, want %d", d.key, b.messages[d.key], want)
				}
			}
			if f := b.fates["inbound/r00/3-third.csv"]; f.where != c.where || f.status != c.status {
				t.Errorf("3-third.csv ended in %s/ %s, want %s/ %s", f.where, f.status, c.where, c.status)
			}
		}})
	}
	runAll(t, cases)
}

// TestPollerKilledBetweenMoveAndRetire: the poller dies at each step of
// finalizing a file (after the copy, the result, the source delete, the
// routed marker, the idempotency marker, before the ledger record goes).
// The next run finishes the job: the file is in processed/ once, with its
// result, and nothing is left behind. (internal/poller's
// TestKilledBetweenMoveAndRetire replays two of these states by hand;
// here a real run dies at the real step.)
func TestPollerKilledBetweenMoveAndRetire(t *testing.T) {
	t.Parallel()
	var cases []subtest
	steps := []struct {
		name string
		kill func(r *http.Request) bool
	}{
		{"after the copy", func(r *http.Request) bool {
			return r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "" && strings.Contains(r.URL.Path, "/processed/")
		}},
		{"after the result", func(r *http.Request) bool {
			return r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, layout.ResultSuffix)
		}},
		{"after the source delete", func(r *http.Request) bool {
			return r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/inbound/")
		}},
		{"after the released marker", func(r *http.Request) bool {
			return r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/_state/released/")
		}},
		{"after the idempotency marker", func(r *http.Request) bool {
			return r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/_state/markers/")
		}},
	}
	for _, s := range steps {
		cases = append(cases, subtest{s.name, func(t *testing.T) {
			p := newPipeline(t, setup{PollerKill: s.kill})
			p.standardLoad()
			p.settle(20, nil)
			b := p.account()
			at, _ := p.kill.at.Load().(string)
			if _, _, crashes, _ := p.pollFn.stats(); crashes != 1 || at == "" {
				t.Fatalf("the poller was killed %d times (at %q), want once", crashes, at)
			}
			if b.count["processed"] != 3 || b.count["failed"] != 1 {
				t.Fatalf("outcomes %v", b.count)
			}
			t.Logf("killed after %s", at)
		}})
	}
	runAll(t, cases)
}

// TestExportAckLost: F&O answers the ack but does not record it. The
// export is handed out again after the visibility timeout, recognised as
// landed, not landed twice, and acknowledged.
func TestExportAckLost(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, setup{})
	p.emu.Inject(d365test.Fault{Endpoint: "ack", Count: 1, DropAck: true})
	p.standardLoad()
	p.settle(20, nil)
	p.account()
	again := 0
	for _, s := range p.exportRuns {
		again += s.AlreadyLanded
	}
	if again != 1 || p.emu.Requests("ack") != 3 {
		t.Fatalf("%d exports recognised as already landed, %d acks; want 1 and 3", again, p.emu.Requests("ack"))
	}
}

// TestBatchesUnderFaults: batches of ten mixing three entities, with about
// one enqueue in four failing (F&O 503 or an S3 read). From the first failure
// on, that record and the rest of the batch go back to the queue, so each
// entity's files still reach F&O in FIFO order, once each.
func TestBatchesUnderFaults(t *testing.T) {
	t.Parallel()
	d := &dice{seed: defaultSeed, streams: map[string]*rand.Rand{}}
	p := newPipeline(t, setup{Entities: 3, BatchSize: 10, MaxReceiveCount: 20})
	p.emu.SetFaultFunc(func(endpoint string, _ *http.Request) *d365test.Fault {
		if endpoint == "enqueue" && d.roll("enqueue", 0.15) {
			return &d365test.Fault{Status: 503}
		}
		return nil
	})
	p.src.fail = func(string, int) bool { return d.roll("s3", 0.15) }
	for i := range 24 {
		p.put(fmt.Sprintf("inbound/r%02d/%02d.csv", i%3, i), []byte(fmt.Sprintf("row %d\n", i)))
	}
	p.settle(60, nil)
	b := p.account()
	if b.count["processed"] != 24 || b.ordered != 24 {
		t.Fatalf("outcomes %v, %d messages in order; want 24 processed, 24 in order", b.count, b.ordered)
	}
	failed := p.emu.Faulted("enqueue") + p.src.failures()
	batches, _, _, _ := p.enqFn.stats()
	if failed == 0 || p.delivered <= 24 {
		t.Fatalf("%d faults, %d records delivered in %d batches: the faults did not bite", failed, p.delivered, batches)
	}
	t.Logf("%d faults; %d records delivered in %d batches", failed, p.delivered, batches)
}
