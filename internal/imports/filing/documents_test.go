package filing_test

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// TestDocumentsJSON: the result and reason documents are read by people and
// named in the docs, so their JSON is fixed. The files in testdata/ were
// written by these types before they moved here (as poller.Result and
// router.Reason); a renamed field or a lost omitempty fails this test.
func TestDocumentsJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		golden string
		doc    any
	}{
		{"result-full", filing.Result{
			Outcome: filing.OutcomeFailed, Status: "ProcessedWithErrors", MessageID: "m-1", ExecutionID: "e-1", ExecutionStatus: "PartiallySucceeded",
			Route: "customers", Entity: "Customer groups", Company: "USMF", ActivityID: "5d3c1e0a-7b64-4e7a-9b2f-8f6b3a521c0d", ExternalID: "inbound/customers/a.csv",
			SourceKey: "inbound/customers/a.csv", SourceVersionID: "v1", Size: 42, File: "failed/customers/2026/03/01/a.csv",
			EventTime: at, EnqueuedAt: at.Add(time.Minute), FinishedAt: at.Add(time.Hour), ProcessingSeconds: 3540, Checks: 7,
			Errors:    []d365.ExecutionError{{RecordID: "1", Field: "F", ErrorMessage: "bad"}},
			ErrorsRaw: "[{", ErrorsLenient: true,
			StagingErrorFile: "failed/customers/2026/03/01/a.csv.staging-errors.csv", TargetErrorKeysFile: "failed/customers/2026/03/01/a.csv.target-error-keys.csv",
			Notes:    []string{"a note"},
			Answer:   json.RawMessage(`{"status":200}`),
			ReplayOf: &importmsg.Replay{Key: "failed/customers/2026/02/28/a.csv", Identity: "0123"},
		}},
		{"result-zero", filing.Result{}},
		{"reason-full", filing.Reason{Reason: "fno-rejected", Detail: "F&O refused the file", Bucket: "b", OriginalKey: "inbound/customers/a.csv", VersionID: "v1",
			Route: "customers", EventTime: at, RejectedAt: at.Add(time.Minute), RejectedKey: "rejected/customers/2026/03/01/a.csv",
			Answer: json.RawMessage(`{"status":400}`), MessageID: "sqs-1",
			ReplayOf: &importmsg.Replay{Key: "rejected/customers/2026/02/28/a.csv", Identity: "0123"}}},
		{"reason-zero", filing.Reason{}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			t.Parallel()
			want, err := os.ReadFile("testdata/" + tt.golden + ".json")
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(tt.doc, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if string(got)+"\n" != string(want) {
				t.Errorf("%T encodes as\n%s\nwant (testdata/%s.json)\n%s", tt.doc, got, tt.golden, want)
			}
		})
	}
}
