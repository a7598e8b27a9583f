package poller

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/deadletter"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/notify"
)

// runMetrics writes what a run did, for the dashboard and alarms.
func (p *Poller) runMetrics(s Summary, took time.Duration) {
	m := p.cfg.Observers.Metrics
	m.Add("PollerRecordsChecked", float64(s.Checked))
	m.Add("PollerFnoRequests", float64(s.Calls))
	m.Set("PollerBudgetPerMinute", float64(p.cfg.BudgetPerMinute))
	m.Add("PollerRunDuration", float64(took.Milliseconds()))
	m.Add("PollerRecordsDeferred", float64(s.Deferred))
}

// inFlight writes, per route, the imports released and not filed yet and
// the age of the oldest: one listing of the released markers (a request per
// 1,000 files in flight).
func (p *Poller) inFlight(ctx context.Context, now time.Time) {
	if p.cfg.Observers.Metrics == nil {
		return
	}
	root := p.cfg.Layout.ReleasedRoot()
	count := map[string]int{}
	oldest := map[string]time.Time{}
	pg := s3.NewListObjectsV2Paginator(p.s3, &s3.ListObjectsV2Input{Bucket: &p.cfg.Bucket, Prefix: &root})
	for pg.HasMorePages() {
		out, err := pg.NextPage(ctx)
		if err != nil {
			p.log.WarnContext(ctx, "poller: cannot count the imports in flight", "error", err.Error())
			return
		}
		for _, o := range out.Contents {
			route, _, ok := strings.Cut(strings.TrimPrefix(aws.ToString(o.Key), root), "/")
			if !ok {
				continue
			}
			count[route]++
			if lm := aws.ToTime(o.LastModified); oldest[route].IsZero() || lm.Before(oldest[route]) {
				oldest[route] = lm
			}
		}
	}
	for _, rt := range p.cfg.Routes.All() {
		age := 0.0
		if t, ok := oldest[rt.Name]; ok {
			age = max(now.Sub(t).Seconds(), 0)
		}
		p.cfg.Observers.Metrics.Set("ImportsInFlight", float64(count[rt.Name]), metrics.Route, rt.Name)
		p.cfg.Observers.Metrics.Set("OldestImportAge", age, metrics.Route, rt.Name)
	}
}

// stuck tells of an import newly reported stuck.
func (p *Poller) stuck(ctx context.Context, rec ledger.Record, age time.Duration) {
	p.cfg.Observers.Metrics.Add("FilesStuck", 1, metrics.Route, rec.Route)
	p.cfg.Observers.Notify.Send(ctx, notify.Event{Kind: notify.Stuck, ID: rec.Identity,
		What: rec.Route + "/" + p.fileOf(rec) + ": " + rec.LastStatus + " for " + age.Round(time.Hour).String(),
		Body: stuckCause(rec) + " The file stays in inbound/ with a stuck report beside it; the poller keeps checking hourly.",
		Fields: [][2]string{{"Route", rec.Route}, {"Entity", rec.Entity}, {"Dropped as", rec.Key}, {"Identity", rec.Identity}, {"Last F&O status", rec.LastStatus},
			{"Message ID", rec.MessageID}, {"Execution ID", rec.ExecutionID}, {"Enqueued at", rec.EnqueuedAt.Format(time.RFC3339)}, {"Checks", fmt.Sprint(rec.Checks)},
			{"Stuck report", rec.Key + layout.StuckSuffix}, {"Last error", rec.LastError}}})
}

// maxDeadLetters bounds the dead-letter messages one run reads.
const maxDeadLetters = 50

// deadLetters tells, once each, of the messages in the import dead-letter
// queue: a file whose message got there waits in inbound/ and its entity's
// later files have gone on without it (for a package, its scope is freed:
// freeDeadPackage). Reading leaves the messages there, visible, for a
// redrive (deadletter.Peek: the first messages of each group). What the
// last run of this execution environment settled is not done again (the
// notification's own marker keeps it once across environments).
func (p *Poller) deadLetters(ctx context.Context) {
	if p.cfg.DLQ == nil || p.cfg.DLQURL == "" {
		return
	}
	msgs, err := deadletter.Peek(ctx, p.cfg.DLQ, p.cfg.DLQURL, maxDeadLetters)
	if err != nil {
		p.log.WarnContext(ctx, "poller: the import dead-letter queue could not be read in full", "error", err.Error())
	}
	p.toldMu.Lock()
	defer p.toldMu.Unlock()
	told := map[string]bool{}
	for _, m := range msgs {
		id := aws.ToString(m.MessageId)
		if p.told[id] {
			told[id] = true
			continue
		}
		settled := p.cfg.Observers.Notify.Send(ctx, deadLetterEvent(id, aws.ToString(m.Body)))
		if msg, err := importmsg.Decode([]byte(aws.ToString(m.Body))); err == nil && msg.File != nil {
			settled = p.freeDeadPackage(ctx, msg.File) && settled
		}
		told[id] = settled
	}
	p.told = told
}

func deadLetterEvent(id, body string) notify.Event {
	ev := notify.Event{Kind: notify.DeadLetter, ID: id,
		Body: "An import message reached the dead-letter queue after failing every delivery. Its file waits in inbound/, " +
			"and its entity's later files have gone on without it. Fix the cause (the function's logs say it), then redrive the " +
			"dead-letter queue (s3fno redrive). If the file itself must change, drop the corrected one instead and leave this " +
			"message out of any redrive: a redrive would send the old version after it."}
	msg, err := importmsg.Decode([]byte(body))
	switch {
	case err != nil:
		ev.What = "a message that is not an import message"
		ev.Fields = [][2]string{{"SQS message ID", id}, {"Body", body}}
	case msg.Release != nil:
		ev.What = "a release request for route " + msg.Release.Route
		ev.Fields = [][2]string{{"SQS message ID", id}, {"Route", msg.Release.Route}}
		ev.Body = "A release request reached the dead-letter queue: the route's files wait in inbound/ until another file of the route or the poller's sweep asks again."
	default:
		ev.What = msg.File.Route + "/" + layout.Base(msg.File.Key)
		b, _ := json.Marshal(msg.File)
		ev.Fields = [][2]string{{"SQS message ID", id}, {"Route", msg.File.Route}, {"Dropped as", msg.File.Key}, {"Version", msg.File.VersionID},
			{"Identity", msg.File.Identity()}, {"Message", string(b)}}
	}
	return ev
}
