package dequeue

import (
	"time"

	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// Outcomes of one dequeued file.
const (
	// OutcomeLanded: a new object was written.
	OutcomeLanded = "landed"
	// OutcomeAlreadyLanded: a re-delivery of an export that had landed
	// before (its ack was lost); nothing new was written.
	OutcomeAlreadyLanded = "already-landed"
	// OutcomeMissingFile: F&O's answer had no file (IsDownLoadFileExist
	// false or a null DownloadLocation); recorded.
	OutcomeMissingFile = "missing-file"
	// OutcomeFailed: nothing was acknowledged; F&O hands it out again.
	OutcomeFailed = "failed"
)

// FileResult is what happened to one dequeued file, or to the package of
// one execution of a dataProject job.
type FileResult struct {
	CorrelationID string `json:"correlationId,omitempty"`
	ExecutionID   string `json:"executionId,omitempty"`
	Outcome       string `json:"outcome"`
	Key           string `json:"key,omitempty"`
	Bytes         int64  `json:"bytes,omitempty"`
	Redelivered   bool   `json:"redelivered,omitempty"`
	Acked         bool   `json:"acked"`
	// Unpacked are the keys of entity files written beside a package.
	Unpacked []string `json:"unpacked,omitempty"`
	// Stage is where it failed: download, land, state, unpack or ack.
	Stage string `json:"stage,omitempty"`
	Error string `json:"error,omitempty"`
	// Quarantined is where this export's unusable marker was moved.
	Quarantined string `json:"quarantined,omitempty"`
	// UnpackError is a package that landed but could not be unpacked
	// (not a zip, no manifest...). The export is still acknowledged.
	UnpackError string `json:"unpackError,omitempty"`
}

// id is the export's ID: its correlation ID or its execution ID.
func (r FileResult) id() string {
	if r.ExecutionID != "" {
		return r.ExecutionID
	}
	return r.CorrelationID
}

// Summary is the handler's output for one invocation, also logged.
type Summary struct {
	Job               string `json:"job"`
	Kind              string `json:"kind,omitempty"`
	ActivityID        string `json:"activityId,omitempty"`
	DefinitionGroupID string `json:"definitionGroupId,omitempty"`
	Prefix            string `json:"prefix"`

	Dequeued      int   `json:"dequeued"`
	Landed        int   `json:"landed"`
	AlreadyLanded int   `json:"alreadyLanded"`
	Bytes         int64 `json:"bytes"`
	Acked         int   `json:"acked"`
	MissingFiles  int   `json:"missingFiles"`
	// Skipped are files left unacknowledged on purpose: missing files
	// without ackMissingFile.
	Skipped int `json:"skipped"`
	Failed  int `json:"failed"`
	// EntityFiles counts entity files written by unpacking.
	EntityFiles int `json:"entityFiles"`
	// Quarantined counts unusable export markers moved to
	// <STATE_PREFIX>quarantine/.
	Quarantined int `json:"quarantined"`

	// QueueEmpty: F&O answered 204.
	QueueEmpty bool `json:"queueEmpty"`
	// StoppedForDeadline: the invocation stopped between files because
	// less than DEADLINE_MARGIN remained.
	StoppedForDeadline bool `json:"stoppedForDeadline"`
	// MoreMayRemain: the queue was not seen empty.
	MoreMayRemain bool `json:"moreMayRemain"`

	// Executions are, for a dataProject job, the executions the run
	// followed or started, in order; the last one's outcome is "in-flight"
	// when it was still running in F&O as the run ended (the next run
	// follows it and starts none).
	Executions []ExecutionResult `json:"executions,omitempty"`

	Errors []string     `json:"errors,omitempty"`
	Files  []FileResult `json:"files"`
}

// ExecutionResult is where one execution of a dataProject job stands.
type ExecutionResult struct {
	ExecutionID string    `json:"executionId"`
	StartedAt   time.Time `json:"startedAt"`
	// Started: this run started it.
	Started bool `json:"started,omitempty"`
	// Status is F&O's last GetExecutionSummaryStatus of it.
	Status string `json:"status,omitempty"`
	// Outcome is one of the Exec* outcomes, or "in-flight".
	Outcome string `json:"outcome"`
	// Key is where its package landed.
	Key string `json:"key,omitempty"`
	// ErrorRows counts GetExecutionErrors' rows; Errors are the first
	// maxReportedRows of them.
	ErrorRows int                   `json:"errorRows,omitempty"`
	Errors    []d365.ExecutionError `json:"errors,omitempty"`
	// ResultKey is its result document (every error row), when F&O ended
	// it with errors.
	ResultKey string `json:"resultKey,omitempty"`
}

func (s *Summary) add(r FileResult) {
	s.Files = append(s.Files, r)
	switch r.Outcome {
	case OutcomeLanded:
		s.Landed++
		s.Bytes += r.Bytes
	case OutcomeAlreadyLanded:
		s.AlreadyLanded++
	case OutcomeMissingFile:
		s.MissingFiles++
		if !r.Acked {
			s.Skipped++
		}
	case OutcomeFailed:
		s.Failed++
	}
	if r.Acked {
		s.Acked++
	}
	s.EntityFiles += len(r.Unpacked)
	if r.Quarantined != "" {
		s.Quarantined++
	}
	if r.Error != "" {
		s.addError(r.id() + ": " + r.Error)
	}
	if r.UnpackError != "" {
		s.addError(r.id() + ": " + r.UnpackError)
	}
}

// maxErrors bounds Summary.Errors; every error is also logged on its own.
const maxErrors = 50

func (s *Summary) addError(msg string) {
	switch {
	case len(s.Errors) < maxErrors:
		s.Errors = append(s.Errors, msg)
	case len(s.Errors) == maxErrors:
		s.Errors = append(s.Errors, "more errors: see the log")
	}
}
