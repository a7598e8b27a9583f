// Package outcome reads what the pipeline says of a file it filed: the
// result document beside a processed or failed file, the reason document
// beside a rejected one, in brief, for the operator's tool.
package outcome

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// Gist is what a result or reason document says, in brief.
type Gist struct {
	Outcome         string    `json:"outcome"` // processed, failed or rejected
	Key             string    `json:"key"`     // the filed file
	Document        string    `json:"document"`
	Route           string    `json:"route,omitempty"`
	SourceKey       string    `json:"sourceKey,omitempty"`
	SourceVersionID string    `json:"sourceVersionId,omitempty"`
	Identity        string    `json:"identity,omitempty"`
	At              time.Time `json:"at"`     // when it was filed
	Status          string    `json:"status"` // F&O's final status, or the reason code
	ExecutionStatus string    `json:"executionStatus,omitempty"`
	MessageID       string    `json:"messageId,omitempty"`
	ExecutionID     string    `json:"executionId,omitempty"`
	// Detail is the reason's text, or the result's notes.
	Detail string `json:"detail,omitempty"`
	// Errors are F&O's first error rows (at most MaxRows); ErrorCount is
	// how many the document holds.
	Errors              []d365.ExecutionError `json:"errors,omitempty"`
	ErrorCount          int                   `json:"errorCount,omitempty"`
	StagingErrorFile    string                `json:"stagingErrorFile,omitempty"`
	TargetErrorKeysFile string                `json:"targetErrorKeysFile,omitempty"`
	ReplayOf            *importmsg.Replay     `json:"replayOf,omitempty"`
}

// MaxRows is how many of F&O's error rows a gist keeps.
const MaxRows = 5

// Document is the key of the document beside a filed file: its reason
// under rejected/, its result elsewhere.
func Document(l layout.Layout, key string) string {
	if strings.HasPrefix(key, l.Rejected) {
		return key + layout.ReasonSuffix
	}
	return key + layout.ResultSuffix
}

// FileOf is the filed file a document (or the file itself) names.
func FileOf(key string) string {
	key = strings.TrimSuffix(key, layout.ResultSuffix)
	return strings.TrimSuffix(key, layout.ReasonSuffix)
}

// Read reads the document beside the filed file key; found is false when
// there is none.
func Read(ctx context.Context, c s3io.Getter, l layout.Layout, bucket, key string) (Gist, bool, error) {
	doc := Document(l, key)
	if strings.HasSuffix(doc, layout.ReasonSuffix) {
		var r filing.Reason
		found, err := s3io.GetJSON(ctx, c, bucket, doc, &r)
		if err != nil || !found {
			return Gist{}, found, err
		}
		return FromReason(r, key, doc), true, nil
	}
	var r filing.Result
	found, err := s3io.GetJSON(ctx, c, bucket, doc, &r)
	if err != nil || !found {
		return Gist{}, found, err
	}
	if r.Outcome == "" {
		return Gist{}, true, fmt.Errorf("s3://%s/%s is not a result document (no outcome)", bucket, doc)
	}
	return FromResult(r, key, doc), true, nil
}

// FromResult is a result document's gist.
func FromResult(r filing.Result, key, doc string) Gist {
	g := Gist{Outcome: r.Outcome, Key: key, Document: doc, Route: r.Route, SourceKey: r.SourceKey, SourceVersionID: r.SourceVersionID,
		Identity: r.Identity, At: r.FinishedAt, Status: r.Status, ExecutionStatus: r.ExecutionStatus, MessageID: r.MessageID,
		ExecutionID: r.ExecutionID, Detail: strings.Join(r.Notes, " "), ErrorCount: len(r.Errors),
		StagingErrorFile: r.StagingErrorFile, TargetErrorKeysFile: r.TargetErrorKeysFile, ReplayOf: r.ReplayOf}
	g.Errors = r.Errors[:min(len(r.Errors), MaxRows)]
	if r.ErrorsLenient && len(r.Errors) == 0 && r.ErrorsRaw != "" {
		g.Detail = strings.TrimSpace(g.Detail + " F&O's error text was not valid JSON; it is in errorsRaw.")
	}
	return g
}

// FromReason is a reason document's gist.
func FromReason(r filing.Reason, key, doc string) Gist {
	g := Gist{Outcome: filing.OutcomeRejected, Key: key, Document: doc, Route: r.Route, SourceKey: r.OriginalKey,
		SourceVersionID: r.VersionID, At: r.RejectedAt, Status: r.Reason, Detail: r.Detail, ReplayOf: r.ReplayOf}
	if r.OriginalKey != "" {
		g.Identity = importmsg.Identity(r.Bucket, r.OriginalKey, r.VersionID, "")
	}
	return g
}

// Line is a gist in one line for people: the status, the execution's,
// the error rows' count and the detail.
func (g Gist) Line() string {
	parts := []string{g.Status}
	if g.ExecutionStatus != "" {
		parts = append(parts, "execution "+g.ExecutionStatus)
	}
	if g.ErrorCount > 0 {
		parts = append(parts, fmt.Sprintf("%d error row%s", g.ErrorCount, map[bool]string{true: "", false: "s"}[g.ErrorCount == 1]))
	}
	s := strings.Join(parts, ", ")
	if g.Detail != "" {
		s += ": " + g.Detail
	}
	return s
}

// Rows are the error rows for people, one line each.
func (g Gist) Rows() []string {
	var out []string
	for _, e := range g.Errors {
		out = append(out, fmt.Sprintf("record %s, field %s: %s", e.RecordID, e.Field, e.ErrorMessage))
	}
	if n := g.ErrorCount - len(g.Errors); n > 0 {
		out = append(out, fmt.Sprintf("… and %d more in %s", n, g.Document))
	}
	return out
}
