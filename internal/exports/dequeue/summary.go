package dequeue

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

// FileResult is what happened to one dequeued file.
type FileResult struct {
	CorrelationID string `json:"correlationId"`
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

// Summary is the handler's output for one invocation, also logged.
type Summary struct {
	Job        string `json:"job"`
	ActivityID string `json:"activityId"`
	Prefix     string `json:"prefix"`

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

	Errors []string     `json:"errors,omitempty"`
	Files  []FileResult `json:"files"`
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
		s.addError(r.CorrelationID + ": " + r.Error)
	}
	if r.UnpackError != "" {
		s.addError(r.CorrelationID + ": " + r.UnpackError)
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
