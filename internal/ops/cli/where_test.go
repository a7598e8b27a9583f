package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/ops/cli"
	"github.com/fno-bridge/s3-fno/internal/ops/where"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// whereOne runs s3fno where q and returns its one version's stage.
func whereOne(t *testing.T, r *rig, q string) where.Entry {
	t.Helper()
	var rep where.Report
	if code := r.runJSON(&rep, "where", q); code != cli.ExitOK || len(rep.Found) != 1 {
		t.Fatalf("where %s: exit %d, found %+v", q, code, rep.Found)
	}
	return rep.Found[0]
}

// TestWhereFollowsAFile: from its bare name, its key or route/name, where
// tells the stage of a file at every step the real functions take it
// through: inbound, released, enqueued (with F&O's message ID and the
// ledger's next check), processed (with its result document); a file F&O
// fails is failed with its first error rows, an empty one rejected with its
// reason, an interrupted send "sending". Not found is exit 1.
func TestWhereFollowsAFile(t *testing.T) {
	r := newRig(t, pipelinetest.Routes, pipelinetest.FIFO{}, nil)
	const key = "inbound/customers/follow me.csv"
	v, etag := pipelinetest.Put(t, r.w.S3, r.w.Bucket, key, []byte("a;b\n"))
	id := importmsg.Identity(r.w.Bucket, key, v, etag)
	e := whereOne(t, r, "follow me.csv")
	if e.Stage != where.Inbound || e.Key != key || e.Identity != id || e.VersionID != v || e.Route != "customers" {
		t.Errorf("dropped: %+v", e)
	}
	r.notify(key, v, etag, 4)
	r.release()
	if e = whereOne(t, r, key); e.Stage != where.Released {
		t.Errorf("released: %+v", e)
	}
	r.enqueueAll()
	e = whereOne(t, r, "customers/follow me.csv")
	msgs := r.emu.Messages()
	if e.Stage != where.Enqueued || e.Record == nil || len(msgs) != 1 || e.Record.MessageID != msgs[0].ID || e.Record.NextCheck.IsZero() {
		t.Fatalf("enqueued: %+v (F&O has %+v)", e, msgs)
	}
	r.finish()
	e = whereOne(t, r, "follow me.csv")
	day := time.Now().UTC().Format("2006/01/02")
	placed := "processed/customers/" + day + "/follow me.csv"
	if e.Stage != where.Processed || e.Key != placed || e.Filed == nil || e.Filed.Document != placed+layout.ResultSuffix ||
		e.Filed.Status != "Processed" || e.Identity != id || e.SourceKey != key {
		t.Errorf("processed: %+v %+v", e, e.Filed)
	}
	if e2 := whereOne(t, r, placed+layout.ResultSuffix); e2.Key != placed || e2.Stage != where.Processed {
		t.Errorf("by its result's key: %+v", e2)
	}
	code, out, _ := r.run("where", "follow me.csv")
	t.Logf("s3fno where:\n%s", out)
	if code != cli.ExitOK || !strings.Contains(out, "PROCESSED") || !strings.Contains(out, placed+layout.ResultSuffix) {
		t.Errorf("table (exit %d):\n%s", code, out)
	}

	r.emu.Script(d365test.Rule{ExternalIDContains: "bad-rows", Outcome: d365test.Outcome{Status: "ProcessedWithErrors",
		Errors: []d365test.ExecutionError{{RecordId: "7", Field: "CustGroup", ErrorMessage: "does not exist"}}}})
	r.drop("inbound/customers/bad-rows.csv", "x\n")
	r.drop("inbound/customers/empty.csv", "")
	r.release()
	r.enqueueAll()
	r.finish()
	if e = whereOne(t, r, "bad-rows.csv"); e.Stage != where.Failed || e.Filed.Status != "ProcessedWithErrors" || len(e.Filed.Errors) != 1 ||
		e.Filed.Errors[0].ErrorMessage != "does not exist" {
		t.Errorf("failed: %+v %+v", e, e.Filed)
	}
	if e = whereOne(t, r, "empty.csv"); e.Stage != where.Rejected || e.Filed.Status != "empty-file" || !strings.HasPrefix(e.Key, "rejected/customers/") {
		t.Errorf("rejected: %+v %+v", e, e.Filed)
	}

	// An attempt that died while sending leaves its intent marker.
	const cut = "inbound/vendors/cut.csv"
	cv, cetag := pipelinetest.Put(t, r.w.S3, r.w.Bucket, cut, []byte("c\n"))
	store := &ledger.Store{S3: r.w.S3, Bucket: r.w.Bucket, Layout: layout.Default()}
	if _, _, err := store.PutMarker(context.Background(), ledger.Record{Identity: importmsg.Identity(r.w.Bucket, cut, cv, cetag),
		Bucket: r.w.Bucket, Key: cut, VersionID: cv, Route: "vendors", EnqueuedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if e = whereOne(t, r, cut); e.Stage != where.Sending {
		t.Errorf("sending: %+v", e)
	}

	var rep where.Report
	if code := r.runJSON(&rep, "where", "never-dropped.csv"); code != cli.ExitProblems || rep.Query != "never-dropped.csv" || len(rep.Found) != 0 {
		t.Errorf("not found: exit %d, %+v", code, rep)
	}
	if code, _, errOut := r.run("where", "_state/markers/x.json"); code != cli.ExitUsage || !strings.Contains(errOut, "state document") {
		t.Errorf("a state key: exit %d, %s", code, errOut)
	}
}
