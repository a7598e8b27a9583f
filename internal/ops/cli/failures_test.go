package cli_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/ops/cli"
	"github.com/fno-bridge/s3-fno/internal/ops/failures"
	"github.com/fno-bridge/s3-fno/internal/ops/outcome"
	"github.com/fno-bridge/s3-fno/internal/ops/replay"
	"github.com/fno-bridge/s3-fno/internal/ops/where"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// TestFailuresThenReplay: failures lists the failed and rejected files
// newest first with their reasons and first error rows, filtered by route
// and window; replaying the failed one makes a new version with a new
// identity that goes through the real functions, and its result says it
// replays the old file; where then shows both attempts.
func TestFailuresThenReplay(t *testing.T) {
	r := newRig(t, pipelinetest.Routes, pipelinetest.FIFO{}, nil)
	r.drop("inbound/vendors/fine.csv", "v\n")
	r.drop("inbound/unrouted/x.csv", "x\n") // no route: rejected by the router
	r.drop("inbound/customers/bad-rows.csv", "b\n")
	r.release()
	r.enqueueAll()
	bad := r.emu.Messages()
	for _, m := range bad {
		if strings.Contains(m.ExternalID, "bad-rows") { // this message fails; a replay of it will not
			rows := make([]d365test.ExecutionError, 7)
			for i := range rows {
				rows[i] = d365test.ExecutionError{RecordId: string(rune('1' + i)), Field: "CustGroup", ErrorMessage: "does not exist"}
			}
			r.emu.Script(d365test.Rule{MessageID: m.ID, Outcome: d365test.Outcome{Status: "ProcessedWithErrors", Errors: rows}})
		}
	}
	r.finish()
	r.drop("inbound/customers/empty.csv", "")
	r.release()

	var rep failures.Report
	if code := r.runJSON(&rep, "failures"); code != cli.ExitProblems || len(rep.Failures) != 3 {
		t.Fatalf("failures: exit %d, %+v", code, rep)
	}
	got := []string{}
	for _, g := range rep.Failures {
		got = append(got, g.Outcome+" "+layout.Base(g.Key)+" "+g.Status)
	}
	all := strings.Join(got, ",")
	if !strings.Contains(all, "rejected empty.csv empty-file") || !strings.Contains(all, "failed bad-rows.csv ProcessedWithErrors") ||
		!strings.Contains(all, "rejected x.csv no-route") {
		t.Errorf("failures, newest first: %v", got)
	}
	for i := 1; i < len(rep.Failures); i++ {
		if rep.Failures[i].At.After(rep.Failures[i-1].At) {
			t.Errorf("not newest first: %v", got)
		}
	}
	var failed outcome.Gist
	for _, g := range rep.Failures {
		if g.Outcome == filing.OutcomeFailed {
			failed = g
		}
	}
	if failed.ErrorCount != 7 || len(failed.Errors) != 5 || failed.Errors[0].ErrorMessage != "does not exist" {
		t.Errorf("the failed file's rows: %d, first %+v", failed.ErrorCount, failed.Errors)
	}
	code, out, _ := r.run("failures", "--route", "customers", "--since", "1h")
	t.Logf("s3fno failures --route customers:\n%s", out)
	if code != cli.ExitProblems || !strings.Contains(out, "bad-rows.csv") || strings.Contains(out, "x.csv") ||
		!strings.Contains(out, "record 1, field CustGroup: does not exist") || !strings.Contains(out, "… and 2 more") {
		t.Errorf("--route customers: exit %d\n%s", code, out)
	}
	if code := r.runJSON(&rep, "failures", "--route", "vendors", "--since", "7d"); code != cli.ExitOK || len(rep.Failures) != 0 {
		t.Errorf("--route vendors: exit %d, %+v", code, rep.Failures)
	}
	if code, _, errOut := r.run("failures", "--route", "custmers"); code != cli.ExitUsage || !strings.Contains(errOut, `--route "custmers" is not a configured route`) {
		t.Errorf("--route with a misspelt route: exit %d, %s", code, errOut)
	}
	if code, _, errOut := r.run("failures", "--since", "soon"); code != cli.ExitUsage || !strings.Contains(errOut, "--since") {
		t.Errorf("--since soon: exit %d, %s", code, errOut)
	}
	// A file larger than one CopyObject takes (5 GiB; a limit of a byte
	// stands in for it) is replayed part by part.
	oldMax := s3io.MaxSingleCopy
	s3io.MaxSingleCopy = 1
	t.Cleanup(func() { s3io.MaxSingleCopy = oldMax })
	replayFailed(t, r, failed.Key, failed.Identity)
}

// replayFailed replays the failed file and follows the replay through.
func replayFailed(t *testing.T, r *rig, key, oldID string) {
	var res replay.Result
	if code := r.runJSON(&res, "replay", key); code != cli.ExitOK {
		t.Fatalf("replay %s: exit %d", key, code)
	}
	if res.Key != "inbound/customers/bad-rows.csv" || res.Identity == oldID || res.Identity == "" || res.VersionID == "" ||
		res.ReplayOf.Key != key || res.ReplayOf.Identity != oldID {
		t.Fatalf("replay: %+v (old identity %s)", res, oldID)
	}
	r.notify(res.Key, res.VersionID, "", 2)
	r.release()
	r.enqueueAll()
	r.finish()
	var rep where.Report
	if code := r.runJSON(&rep, "where", "bad-rows.csv"); code != cli.ExitOK || len(rep.Found) != 2 {
		t.Fatalf("where after the replay: exit %d, %+v", code, rep.Found)
	}
	first, again := rep.Found[0], rep.Found[1]
	if first.Stage != where.Failed || first.Identity != oldID || again.Stage != where.Processed || again.Identity != res.Identity {
		t.Errorf("attempts: %+v then %+v", first, again)
	}
	body, ok := pipelinetest.Get(t, r.w.S3, r.w.Bucket, again.Key+layout.ResultSuffix)
	var doc filing.Result
	if !ok || json.Unmarshal(body, &doc) != nil || doc.ReplayOf == nil || doc.ReplayOf.Key != key || doc.ReplayOf.Identity != oldID {
		t.Errorf("the replay's result document: %s", body)
	}
	if code, _, errOut := r.run("replay", "processed/customers/2020/01/01/nothing.csv"); code != cli.ExitProblems || !strings.Contains(errOut, "not found") {
		t.Errorf("replay of nothing: exit %d, %s", code, errOut)
	}
	if code, _, errOut := r.run("replay", "inbound/customers/bad-rows.csv"); code != cli.ExitUsage || !strings.Contains(errOut, "not a filed file") {
		t.Errorf("replay of an inbound key: exit %d, %s", code, errOut)
	}
}

// TestFailuresListsAnUnreadableDocument: a result document nobody can
// read does not stop the listing; it is listed as what it is.
func TestFailuresListsAnUnreadableDocument(t *testing.T) {
	r := newRig(t, pipelinetest.Routes, pipelinetest.FIFO{}, nil)
	key := "failed/customers/" + time.Now().UTC().Format("2006/01/02") + "/junk.csv"
	pipelinetest.Put(t, r.w.S3, r.w.Bucket, key+layout.ResultSuffix, []byte("{not json"))
	var rep failures.Report
	if code := r.runJSON(&rep, "failures"); code != cli.ExitProblems || len(rep.Failures) != 1 ||
		rep.Failures[0].Key != key || rep.Failures[0].Status != "unreadable document" || rep.Failures[0].Outcome != filing.OutcomeFailed {
		t.Errorf("exit %d, %+v", code, rep.Failures)
	}
}

// TestFailuresListsExportResults: the result document a package export F&O
// ended with errors leaves under failed/_exports/<job>/ is listed beside
// the files, as its job's, with F&O's status and first rows; a route's
// listing leaves it out.
func TestFailuresListsExportResults(t *testing.T) {
	r := newRig(t, pipelinetest.Routes, pipelinetest.FIFO{}, nil)
	now := time.Now().UTC()
	doc := dequeue.ExportResult{Outcome: filing.OutcomeFailed, Status: "Failed", Job: "vendors", DefinitionGroupID: "Vendors export",
		LegalEntityID: "USMF", PackageName: "vendors", ExecutionID: "vendors-x1", StartedAt: now.Add(-time.Hour), FinishedAt: now,
		Errors: []d365.ExecutionError{{RecordID: "7", Field: "VENDORACCOUNT", ErrorMessage: "duplicate"}}}
	key := dequeue.ResultKey(layout.Default().Failed, doc.Job, doc.StartedAt, doc.ExecutionID, doc.PackageName)
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	pipelinetest.Put(t, r.w.S3, r.w.Bucket, key, raw)

	code, out, _ := r.run("failures", "--since", "1h")
	t.Logf("s3fno failures:\n%s", out)
	if code != cli.ExitProblems || !strings.Contains(out, "export job vendors") || !strings.Contains(out, "Failed, 1 error row") ||
		!strings.Contains(out, "record 7, field VENDORACCOUNT: duplicate") {
		t.Errorf("failures: exit %d\n%s", code, out)
	}
	var rep failures.Report
	if code := r.runJSON(&rep, "failures", "--route", "customers", "--since", "1h"); code != cli.ExitOK || len(rep.Failures) != 0 {
		t.Errorf("--route customers: exit %d, %+v", code, rep)
	}
	if code, out, errOut := r.run("replay", key); code == cli.ExitOK || !strings.Contains(out+errOut, "the result of a package export") {
		t.Errorf("replay of an export's result: exit %d\n%s%s", code, out, errOut)
	}
}

// TestReplayOfAnOutcomeUnknownFileWantsForce: a file filed because its
// send's answer was lost may be in F&O already; replay refuses it (exit 1,
// saying why and what to do) until --force says F&O was checked.
func TestReplayOfAnOutcomeUnknownFileWantsForce(t *testing.T) {
	r := newRig(t, pipelinetest.Routes, pipelinetest.FIFO{}, nil)
	r.emu.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, Status: http.StatusOK, EnqueueAnswer: d365test.AnswerHTML})
	r.drop("inbound/customers/lost.csv", "l\n")
	r.release()
	r.enqueueAll()
	var rep failures.Report
	if code := r.runJSON(&rep, "failures"); code != cli.ExitProblems || len(rep.Failures) != 1 || rep.Failures[0].Status != "EnqueueOutcomeUnknown" {
		t.Fatalf("failures: exit %d, %+v", code, rep)
	}
	key := rep.Failures[0].Key
	if code, _, errOut := r.run("replay", key); code != cli.ExitProblems || !strings.Contains(errOut, "F&O may hold it already") ||
		!strings.Contains(errOut, "--force") {
		t.Fatalf("replay without --force: exit %d, %s", code, errOut)
	}
	if keys := pipelinetest.Keys(t, r.w.S3, r.w.Bucket, "inbound/"); len(keys) != 0 {
		t.Fatalf("a refused replay wrote %v", keys)
	}
	var res replay.Result
	if code := r.runJSON(&res, "replay", "--force", key); code != cli.ExitOK || res.Key != "inbound/customers/lost.csv" {
		t.Fatalf("replay --force: exit %d, %+v", code, res)
	}
}
