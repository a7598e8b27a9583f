package dequeue

import (
	"time"

	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// ExportResult is the document a package export that F&O ended Failed,
// Canceled or PartiallySucceeded leaves under
// failed/_exports/<job>/<yyyy>/<mm>/<dd>/ (the day it started): F&O's
// status and every error row, kept after the job's run record has been
// replaced by the next run's. Its field names are those of an import's
// result document, so the operator's tool lists both alike.
type ExportResult struct {
	Outcome           string                `json:"outcome"` // always "failed"
	Status            string                `json:"status"`  // GetExecutionSummaryStatus's final value
	Job               string                `json:"job"`
	DefinitionGroupID string                `json:"definitionGroupId"`
	LegalEntityID     string                `json:"legalEntityId"`
	PackageName       string                `json:"packageName"`
	ExecutionID       string                `json:"executionId"`
	StartedAt         time.Time             `json:"startedAt"`
	FinishedAt        time.Time             `json:"finishedAt"` // when a run saw it end
	Errors            []d365.ExecutionError `json:"errors"`
	ErrorsRaw         string                `json:"errorsRaw,omitempty"`
	ErrorsLenient     bool                  `json:"errorsLenient,omitempty"`
	Notes             []string              `json:"notes,omitempty"`
}

// ResultKey is where the result document of a job's execution goes, under
// the failed prefix.
func ResultKey(failedPrefix, job string, started time.Time, executionID, packageName string) string {
	return layout.Layout{Failed: failedPrefix}.FailedExportKey(job, started, KeyID(executionID)+"-"+packageName+layout.ResultSuffix)
}
