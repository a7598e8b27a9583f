package filing_test

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/dmfpackage"
	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// TestPackageResultJSON: the result document of a package import (route
// kind dataProject) is fixed like the others: its data project, entities
// and per-entity error files, how a plain file was wrapped, and no
// message ID.
func TestPackageResultJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	file := "failed/opening/2026/03/01/2026-01.zip"
	doc := filing.Result{
		Outcome: filing.OutcomeFailed, Status: "PartiallySucceeded", ExecutionID: "Opening balances-2026-03-01_10-00-00-X",
		ExecutionStatus: "PartiallySucceeded", Route: "opening", Company: "USMF", SourceKey: "inbound/opening/2026-01.zip", SourceVersionID: "v1",
		Size: 4096, File: file, Identity: "0123", EventTime: at, EnqueuedAt: at.Add(time.Minute), FinishedAt: at.Add(time.Hour),
		ProcessingSeconds: 3540, Checks: 4, Errors: []d365.ExecutionError{{RecordID: "7", Field: "CustGroup", ErrorMessage: "bad"}},
		DefinitionGroupID: "Opening balances", Entities: []string{"Customer groups", "Vendor groups"},
		EntityErrorFiles: []filing.EntityErrorFiles{{Entity: "Customer groups", StagingErrorFile: file + ".Customer groups.staging-errors.csv"},
			{Entity: "Vendor groups", TargetErrorKeysFile: file + ".Vendor groups.target-error-keys.csv"}},
		Wrapped: &dmfpackage.Wrapping{Template: "_config/templates/opening/", ManifestVersion: "m1", HeaderVersion: "h1", DataFile: "Customer groups.csv"},
	}
	want, err := os.ReadFile("testdata/result-package.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if string(got)+"\n" != string(want) {
		t.Errorf("encodes as\n%s\nwant (testdata/result-package.json)\n%s", got, want)
	}
}
