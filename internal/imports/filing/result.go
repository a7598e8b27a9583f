package filing

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/dmfpackage"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// Outcomes of a finished import: the folder its file is filed under.
const (
	OutcomeProcessed = "processed"
	OutcomeFailed    = "failed"
)

// Result is the document written beside a processed or failed file. The
// poller writes it when F&O finishes an import; the enqueue function writes
// one when a send went out unanswered, so a person reads the same document
// whatever ended the import.
type Result struct {
	Outcome         string `json:"outcome"` // processed | failed
	Status          string `json:"status"`  // GetMessageStatus's final value
	MessageID       string `json:"messageId"`
	ExecutionID     string `json:"executionId,omitempty"`
	ExecutionStatus string `json:"executionStatus,omitempty"` // GetExecutionSummaryStatus

	Route      string `json:"route"`
	Entity     string `json:"entity,omitempty"`
	Company    string `json:"company,omitempty"`
	ActivityID string `json:"activityId"`
	ExternalID string `json:"externalId"`

	// SourceKey and SourceVersionID say where the file came from; File is
	// where it is now.
	SourceKey       string `json:"sourceKey"`
	SourceVersionID string `json:"sourceVersionId,omitempty"`
	Size            int64  `json:"size"`
	File            string `json:"file"`
	// Identity names this version of the file in every log line about it.
	Identity string `json:"identity,omitempty"`

	EventTime         time.Time `json:"eventTime,omitzero"`
	EnqueuedAt        time.Time `json:"enqueuedAt"`
	FinishedAt        time.Time `json:"finishedAt"` // when the poller saw the final status
	ProcessingSeconds float64   `json:"processingSeconds"`
	Checks            int       `json:"checks"`

	// Errors are GetExecutionErrors' rows. ErrorsRaw is F&O's text as sent,
	// kept when it was not valid JSON (ErrorsLenient) so nothing is lost.
	Errors        []d365.ExecutionError `json:"errors"`
	ErrorsRaw     string                `json:"errorsRaw,omitempty"`
	ErrorsLenient bool                  `json:"errorsLenient,omitempty"`
	// Keys of the error files copied beside the file.
	StagingErrorFile    string   `json:"stagingErrorFile,omitempty"`
	TargetErrorKeysFile string   `json:"targetErrorKeysFile,omitempty"`
	Notes               []string `json:"notes,omitempty"`
	// Answer is what came back instead of an enqueue answer (status,
	// Content-Type, the first bytes, redacted), for EnqueueOutcomeUnknown.
	Answer json.RawMessage `json:"fnoAnswer,omitempty"`
	// ReplayOf names the filed file this one was replayed from (s3fno
	// replay), when it was.
	ReplayOf *importmsg.Replay `json:"replayOf,omitempty"`

	// A package import (route kind dataProject) has no message ID: its
	// Status and ExecutionStatus are GetExecutionSummaryStatus's value.
	// DefinitionGroupID is its data project, Entities what its manifest
	// names, and EntityErrorFiles the error files of each entity.
	DefinitionGroupID string             `json:"definitionGroupId,omitempty"`
	Entities          []string           `json:"entities,omitempty"`
	EntityErrorFiles  []EntityErrorFiles `json:"entityErrorFiles,omitempty"`
	// Wrapped: the file was a plain data file, imported wrapped in its
	// route's package template, and how.
	Wrapped *dmfpackage.Wrapping `json:"wrapped,omitempty"`
}

// EntityErrorFiles are the keys of one entity's error files, copied beside
// a package that failed.
type EntityErrorFiles struct {
	Entity              string `json:"entity"`
	StagingErrorFile    string `json:"stagingErrorFile,omitempty"`
	TargetErrorKeysFile string `json:"targetErrorKeysFile,omitempty"`
}

// entityFilesText lists a package's per-entity error files, one a line,
// for a notification.
func (r Result) entityFilesText() string {
	var lines []string
	for _, f := range r.EntityErrorFiles {
		for _, k := range []string{f.StagingErrorFile, f.TargetErrorKeysFile} {
			if k != "" {
				lines = append(lines, f.Entity+": "+k)
			}
		}
	}
	return strings.Join(lines, "\n  ")
}
