package where

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Table writes the report for people: one block per version, oldest
// first.
func (r Report) Table(w io.Writer) error {
	if len(r.Found) == 0 {
		_, err := fmt.Fprintf(w, "%s: not found in inbound/ nor in the where-index\n", r.Query)
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s: %d version%s\n", r.Query, len(r.Found), map[bool]string{true: "", false: "s"}[len(r.Found) == 1])
	for _, e := range r.Found {
		fmt.Fprintf(tw, "\n%s  %s\n", strings.ToUpper(e.Stage), e.Key)
		for _, l := range e.lines() {
			fmt.Fprintf(tw, "  %s\t%s\n", l[0], l[1])
		}
	}
	return tw.Flush()
}

// lines are an entry's details as label, value pairs.
func (e Entry) lines() [][2]string {
	out := [][2]string{{"route", e.Route}, {"dropped as", e.SourceKey + version(e.VersionID)}, {"identity", e.Identity},
		{stageTime(e.Stage), stamp(e.At)}}
	if r := e.Record; r != nil {
		out = append(out, [][2]string{{"message ID", r.MessageID}, {"execution ID", r.ExecutionID}, {"last status", r.LastStatus},
			{"last checked", stamp(r.LastCheckAt)}, {"checks", fmt.Sprint(r.Checks)}, {"next check", stamp(r.NextCheck)},
			{"last error", r.LastError}}...)
		if r.ReplayOf != nil {
			out = append(out, [2]string{"replay of", r.ReplayOf.Key})
		}
	}
	if g := e.Filed; g != nil {
		out = append(out, [][2]string{{"document", g.Document}, {"outcome", g.Line()}, {"message ID", g.MessageID},
			{"execution ID", g.ExecutionID}, {"staging errors", g.StagingErrorFile}, {"target error keys", g.TargetErrorKeysFile}}...)
		for _, row := range g.Rows() {
			out = append(out, [2]string{"error", row})
		}
		if g.ReplayOf != nil {
			out = append(out, [2]string{"replay of", g.ReplayOf.Key})
		}
	}
	out = append(out, [2]string{"next", e.Note})
	kept := out[:0]
	for _, l := range out {
		if l[1] != "" && l[1] != "0" {
			kept = append(kept, l)
		}
	}
	return kept
}

func stageTime(stage string) string {
	switch stage {
	case Inbound:
		return "dropped at"
	case Released:
		return "released at"
	case Sending, Enqueued:
		return "enqueued at"
	}
	return "filed at"
}

func version(v string) string {
	if v == "" {
		return ""
	}
	return " (version " + v + ")"
}

// stamp is a time for people, "" when unknown.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
