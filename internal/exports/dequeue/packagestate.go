package dequeue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Phases of a dataProject job's execution.
const (
	// PhaseStarting: the execution ID is chosen and recorded, and
	// ExportToPackage was (or is about to be) called with it; no answer
	// was seen. The next run follows the ID all the same.
	PhaseStarting = "starting"
	// PhaseRunning: F&O answered ExportToPackage with the execution ID.
	PhaseRunning = "running"
	// PhaseDone: nothing more to do for it: its package landed, or its
	// failure was reported, or it was given up.
	PhaseDone = "done"
)

// Outcomes of an execution that is done (Execution.Outcome,
// ExecutionResult.Outcome).
const (
	// ExecLanded: Succeeded or PartiallySucceeded, and its package is in
	// outbound/ (a PartiallySucceeded one was also reported).
	ExecLanded = "landed"
	// ExecFailed: Failed or Canceled, reported with its execution errors.
	ExecFailed = "failed"
	// ExecLost: F&O said for ExecutionLostAfter that it knows no such
	// execution (its ExportToPackage never reached it); given up.
	ExecLost = "lost"
	// ExecRefused: ExportToPackage was refused (or answered the empty
	// execution ID): nothing started.
	ExecRefused = "refused"
	// ExecGone: its package was no longer in F&O's blob storage (deleted
	// after 7 days).
	ExecGone = "gone"
	// execInFlight is the outcome of an execution not done yet.
	execInFlight = "in-flight"
)

// Execution is a dataProject job's current execution, at
// <STATE_PREFIX>exports/<job>/package/execution.json (ExecutionKey). It is
// what keeps the job to one execution at a time: a run starts one only
// when this one is done, and writes it (with the new ID) before it calls
// ExportToPackage, under the condition that it is still the document it
// read, so two runs never both start one, and a run that dies after the
// call is followed by the next. Each execution's landing has its own
// marker, as a dequeued file's has (MarkerKey of the execution ID).
type Execution struct {
	Job               string    `json:"job"`
	DefinitionGroupID string    `json:"definitionGroupId"`
	LegalEntityID     string    `json:"legalEntityId"`
	PackageName       string    `json:"packageName"`
	ExecutionID       string    `json:"executionId"`
	Phase             string    `json:"phase"`
	StartedAt         time.Time `json:"startedAt"`
	// Status is F&O's last GetExecutionSummaryStatus, CheckedAt when.
	Status    string    `json:"status,omitempty"`
	CheckedAt time.Time `json:"checkedAt,omitzero"`
	// UnknownSince is when F&O first said, in a row, that it knows no
	// such execution.
	UnknownSince time.Time `json:"unknownSince,omitzero"`
	// Reported: its failure (Failed, Canceled, PartiallySucceeded, gone)
	// was logged, counted and notified, with ErrorRows execution errors.
	Reported bool `json:"reported,omitempty"`
	// StuckReported: it was told once that it had run for longer than
	// ExecutionStuckAfter.
	StuckReported bool `json:"stuckReported,omitempty"`
	ErrorRows     int  `json:"errorRows,omitempty"`
	// Key is where its package landed; ResultKey is its result document.
	Key        string    `json:"key,omitempty"`
	ResultKey  string    `json:"resultKey,omitempty"`
	Outcome    string    `json:"outcome,omitempty"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// result is the execution as a run's summary shows it.
func (x *Execution) result() ExecutionResult {
	out := ExecutionResult{ExecutionID: x.ExecutionID, StartedAt: x.StartedAt, Status: x.Status,
		Outcome: x.Outcome, Key: x.Key, ErrorRows: x.ErrorRows, ResultKey: x.ResultKey}
	if x.Phase != PhaseDone {
		out.Outcome = execInFlight
	}
	return out
}

// ExecutionKey is where a dataProject job's current execution is kept.
// Markers are named after one ID segment, so no marker is ever here.
func (h *Handler) ExecutionKey(job string) string {
	return h.cfg.StatePrefix + "exports/" + job + "/package/execution.json"
}

// readExecution returns the job's execution document and its ETag, or nil
// and "" when there is none. A document that cannot be used is moved to
// quarantine and read as none, with its ETag, so the next write replaces
// only it: at worst a second export of the data project starts.
func (h *Handler) readExecution(ctx context.Context, log *slog.Logger, in Input) (*Execution, string, error) {
	key := h.ExecutionKey(in.Job)
	out, err := h.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &h.cfg.Bucket, Key: &key})
	if isNotFound(err) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", key, err)
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(out.Body, maxMarker+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", key, err)
	}
	etag := aws.ToString(out.ETag)
	x, err := decodeExecution(raw, in)
	if err == nil {
		return x, etag, nil
	}
	q, qerr := h.quarantine(ctx, &DamagedMarkerError{Key: key, ETag: etag, Raw: raw, Err: err})
	if qerr != nil {
		return nil, "", fmt.Errorf("%s cannot be used (%v) nor moved to quarantine: %w", key, err, qerr)
	}
	log.ErrorContext(ctx, "dequeue: the job's execution document cannot be used; moved to quarantine, starting afresh",
		"document", key, "quarantined", q, "reason", err.Error())
	return nil, etag, nil
}

// decodeExecution reads an execution document and checks it is this job's
// and in a known phase.
func decodeExecution(raw []byte, in Input) (*Execution, error) {
	if len(raw) > maxMarker {
		return nil, fmt.Errorf("larger than %d bytes", maxMarker)
	}
	var x Execution
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("not an execution document: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not an execution document: unexpected data after the JSON object")
	}
	switch {
	case x.Job != in.Job:
		return nil, fmt.Errorf("it is job %q's, not this job's", clip(x.Job))
	case x.ExecutionID == "":
		return nil, errors.New("it names no execution ID")
	case x.Phase != PhaseStarting && x.Phase != PhaseRunning && x.Phase != PhaseDone:
		return nil, fmt.Errorf("unknown phase %q", clip(x.Phase))
	}
	return &x, nil
}

// writeExecution writes the execution document under cond ("*": only where
// there is none; else only over the document of that ETag) and returns the
// new ETag. A failed condition is an error isPreconditionFailed recognises.
func (h *Handler) writeExecution(ctx context.Context, job string, x *Execution, cond string) (string, error) {
	key := h.ExecutionKey(job)
	b, err := json.MarshalIndent(x, "", "  ")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", key, err)
	}
	put := &s3.PutObjectInput{Bucket: &h.cfg.Bucket, Key: &key, Body: bytes.NewReader(b),
		ContentLength: aws.Int64(int64(len(b))), ContentType: aws.String("application/json")}
	if cond == "*" {
		put.IfNoneMatch = aws.String("*")
	} else {
		put.IfMatch = aws.String(cond)
	}
	out, err := h.s3.PutObject(ctx, put)
	if isPreconditionFailed(err) {
		// The SDK retries a write whose answer was lost, and the retry
		// meets the first attempt's object: the same bytes are this
		// write's own (they hold this run's execution ID and times).
		if etag, same := h.holds(ctx, key, b); same {
			return etag, nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("write %s: %w", key, err)
	}
	return aws.ToString(out.ETag), nil
}

// holds reports whether key holds exactly want, and its ETag.
func (h *Handler) holds(ctx context.Context, key string, want []byte) (string, bool) {
	out, err := h.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &h.cfg.Bucket, Key: &key})
	if err != nil {
		return "", false
	}
	defer out.Body.Close()
	got, err := io.ReadAll(io.LimitReader(out.Body, int64(len(want))+1))
	return aws.ToString(out.ETag), err == nil && bytes.Equal(got, want)
}
