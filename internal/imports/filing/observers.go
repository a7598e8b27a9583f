package filing

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/notify"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// Observers hear of every file filed: people, when it needs one (a
// notification), and the metrics. The zero value hears nothing.
type Observers struct {
	Notify  *notify.Notifier
	Metrics *metrics.Recorder
	// Index records where each file went, for the operator's tool.
	Index *Index
	// Pause, when set, is asked to pause a route one of whose files failed;
	// it reports whether the route is paused now (it asked for that).
	Pause func(ctx context.Context, route, file, reason string) bool
}

// rejected tells of a file filed under rejected/ at placed.
func (o Observers) rejected(ctx context.Context, j Rejection, placed string) {
	route := j.Route
	if route == "" {
		route = layout.Unrouted
	}
	o.Metrics.Add("FilesRejected", 1, metrics.Route, route)
	id := importmsg.Identity(j.Src.Bucket, j.Src.Key, j.Src.VersionID, j.Src.ETag)
	name := j.File
	if j.Route != "" {
		name = j.Route + "/" + j.File
	}
	o.Index.put(ctx, Pointer{Name: layout.Base(j.Src.Key), Route: j.Route, SourceKey: j.Src.Key, SourceVersionID: j.Src.VersionID,
		Identity: id, Outcome: OutcomeRejected, Key: placed, Document: placed + layout.ReasonSuffix, Status: j.Code, FiledAt: time.Now().UTC(),
		ReplayOf: j.ReplayOf})
	o.Notify.Send(ctx, notify.Event{
		Kind: notify.Rejected, ID: id,
		What: name + ": " + j.Code,
		Body: "A file was not sent to F&O and will not be: " + j.Detail,
		Fields: [][2]string{{"Route", j.Route}, {"Dropped as", j.Src.Key}, {"Version", j.Src.VersionID}, {"Identity", id}, {"Reason", j.Code},
			{"Filed at", placed}, {"Reason document", placed + layout.ReasonSuffix}},
	})
}

// Filed tells of a finished import filed at placed (processed/ or failed/):
// a failed one is a notification with F&O's verdict and its first error
// rows. Called again for the same filing (an attempt that stopped before
// its clean-up), it neither tells, counts nor pauses again: a route resumed
// meanwhile stays resumed.
func (o Observers) Filed(ctx context.Context, r Result, placed string) {
	o.Index.put(ctx, Pointer{Name: layout.Base(r.SourceKey), Route: r.Route, SourceKey: r.SourceKey, SourceVersionID: r.SourceVersionID,
		Identity: r.Identity, Outcome: r.Outcome, Key: placed, Document: placed + layout.ResultSuffix, Status: r.Status,
		FiledAt: r.FinishedAt, ReplayOf: r.ReplayOf})
	if r.Outcome == OutcomeProcessed {
		o.Metrics.Add("FilesProcessed", 1, metrics.Route, r.Route)
		return
	}
	status := r.Status
	if r.Status == string(d365.StatusProcessed) && r.ExecutionStatus != "" {
		status += ", execution " + r.ExecutionStatus // failed all the same: the execution says so
	}
	what := r.Route + "/" + layout.Base(r.SourceKey) + ": " + status
	if n := len(r.Errors); n > 0 {
		what += fmt.Sprintf(", %d row%s", n, map[bool]string{true: "", false: "s"}[n == 1])
	}
	ev := notify.Event{Kind: notify.Failed, ID: r.SourceKey + "\x00" + r.SourceVersionID + "\x00" + r.MessageID, What: what}
	first, settled := o.Notify.Claim(ctx, ev)
	if !first && settled {
		return // told before
	}
	o.Metrics.Add("FilesFailed", 1, metrics.Route, r.Route)
	ev.Body = "An import did not succeed in F&O. " + strings.Join(r.Notes, " ")
	paused := "no"
	if o.Pause != nil && o.Pause(ctx, r.Route, r.SourceKey, status) {
		paused = "yes"
		ev.Body = "An import did not succeed in F&O, and its route is now paused: the route's later files wait in inbound/, in order, " +
			"until it is resumed (s3fno resume " + r.Route + "). " + strings.Join(r.Notes, " ")
	}
	if !first {
		return // the once-only marker could not be written: a miss, logged and counted
	}
	var rows []string
	for i, e := range r.Errors {
		if i == maxRows {
			rows = append(rows, fmt.Sprintf("… and %d more in the result document", len(r.Errors)-maxRows))
			break
		}
		rows = append(rows, fmt.Sprintf("record %s, field %s: %s", e.RecordID, e.Field, e.ErrorMessage))
	}
	ev.Fields = [][2]string{{"Route", r.Route}, {"Route paused", paused}, {"Entity", r.Entity}, {"Data project", r.DefinitionGroupID}, {"Dropped as", r.SourceKey}, {"Identity", r.Identity}, {"F&O status", r.Status},
		{"Execution status", r.ExecutionStatus}, {"Message ID", r.MessageID}, {"Execution ID", r.ExecutionID},
		{"External identifier", r.ExternalID}, {"Filed at", placed}, {"Result document", placed + layout.ResultSuffix},
		{"Staging error file", r.StagingErrorFile}, {"Target error keys file", r.TargetErrorKeysFile}, {"Entity error files", r.entityFilesText()},
		{"First error rows", strings.Join(rows, "\n  ")}}
	o.Notify.Publish(ctx, ev)
}

// maxRows is how many of F&O's error rows a notification shows.
const maxRows = 5
