package filing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// Reason is the document written beside a rejected file, and beside a
// message kept under rejected/_malformed/.
type Reason struct {
	Reason      string          `json:"reason"` // a short code: no-route, empty-file, fno-rejected, ...
	Detail      string          `json:"detail"` // for people
	Bucket      string          `json:"bucket"`
	OriginalKey string          `json:"originalKey"`
	VersionID   string          `json:"versionId,omitempty"`
	Route       string          `json:"route,omitempty"`
	EventTime   time.Time       `json:"eventTime,omitzero"`
	RejectedAt  time.Time       `json:"rejectedAt"`
	RejectedKey string          `json:"rejectedKey"`
	Answer      json.RawMessage `json:"fnoAnswer,omitempty"` // F&O's answer, for fno-rejected
	// MessageID is the SQS message ID of a kept malformed message, as sent
	// (Go-quoted when it is not valid UTF-8, which JSON cannot carry).
	MessageID string `json:"sqsMessageId,omitempty"`
	// ReplayOf names the filed file this one was replayed from, when it
	// was (see Result.ReplayOf).
	ReplayOf *importmsg.Replay `json:"replayOf,omitempty"`
}

// Rejection is a file that can never be imported, and why.
type Rejection struct {
	Src       s3io.Ref  // the exact version to reject
	EventTime time.Time // dates the rejected/ folder; zero means now
	Route     string    // "" for rejected/_unrouted/
	File      string    // the path under the route folder
	Code      string    // short reason code: no-route, empty-file, fno-rejected, ...
	Detail    string    // for people
	Answer    json.RawMessage
	ReplayOf  *importmsg.Replay // the filed file it was replayed from, if it was
}

// Reject moves a file version to rejected/<route>/<yyyy>/<mm>/<dd>/<file>
// (route "" means _unrouted), dated by its event time, with
// <file>.reason.json beside it. The router rejects what it cannot route,
// the enqueue function what F&O refuses. It is safe to repeat: a version
// already moved is not an error.
func Reject(ctx context.Context, c S3, l layout.Layout, now func() time.Time, log *slog.Logger, obs Observers, j Rejection) error {
	src := j.Src
	when := j.EventTime
	if when.IsZero() {
		when = now()
	}
	id := importmsg.Identity(src.Bucket, src.Key, src.VersionID, src.ETag)
	dst, err := File(ctx, c, Move{Src: src, Candidates: s3io.Candidates(l.RejectedKey(j.Route, when, j.File), id), Token: id,
		Suffix: layout.ReasonSuffix}, func(dst string, _ bool) (any, error) {
		return Reason{Reason: j.Code, Detail: j.Detail, Bucket: src.Bucket, OriginalKey: src.Key, VersionID: src.VersionID,
			Route: j.Route, EventTime: j.EventTime, RejectedAt: now().UTC(), RejectedKey: dst, Answer: j.Answer, ReplayOf: j.ReplayOf}, nil
	})
	if errors.Is(err, s3io.ErrSourceGone) {
		log.InfoContext(ctx, "the file to reject is gone already", "key", src.Key, "versionId", src.VersionID, "reason", j.Code)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reject %s: %w", src.Key, err)
	}
	log.WarnContext(ctx, "rejected", "key", src.Key, "versionId", src.VersionID, "identity", id, "route", j.Route, "reason", j.Code,
		"detail", j.Detail, "rejectedKey", dst)
	obs.rejected(ctx, j, dst)
	return nil
}
