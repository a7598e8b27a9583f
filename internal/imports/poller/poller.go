// Package poller is the scheduled function that follows every enqueued file
// to its end in F&O and brings the outcome back to S3.
//
// Each run (EventBridge Scheduler input {"task":"poll"}; {} and a scheduled
// event envelope are accepted too):
//
//  0. Lease: the run takes _state/poller-lease.json with a conditional
//     write, or, while another run holds it, does nothing and says until
//     when (see leaseDoc). So runs never overlap, and the request budget of
//     one execution environment is the poller's whole rate.
//  1. Sweep (at most every SweepEvery): lists inbound/ for files older than
//     SWEEP_AFTER that were never released (no released marker, no idempotency
//     marker) and routes them with the router's own code, so a lost S3
//     notification costs a delay, not a file; a file with an idempotency
//     marker but no ledger record (a crash between the two writes) gets its
//     ledger record back from the marker.
//  2. Poll: for the ledger records that are due, oldest first, with bounded
//     concurrency and every F&O request under the POLL_BUDGET_PER_MINUTE
//     rate limiter: GetMessageStatus; not finished → reschedule with a
//     back-off that grows with the message's age (1 min when young, 30 min
//     when old; hourly once stuck) and, past STUCK_AFTER, a one-time
//     <file>.stuck.json beside the file in inbound/; finished → execution
//     ID, summary status, execution errors and, for a failure, the staging
//     and target error files, streamed into S3 beside the result; then the
//     file moves (copy of the exact version, then delete of that version)
//     to processed/ or failed/<route>/<yyyy>/<mm>/<dd>/ with
//     <file>.result.json, and the markers and ledger record are removed.
//     A package import is followed by its execution ID instead
//     (packages.go), and frees its scope at the end.
//
// Every step is idempotent: a run killed anywhere is finished by the next
// one (the move recognises its own earlier copy; a ledger record whose
// marker is gone belongs to a file already finalized and is retired).
package poller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/imports/release"
	"github.com/fno-bridge/s3-fno/internal/shared/fnoenv"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// FnO is the part of the F&O client the poller needs.
type FnO interface {
	GetMessageStatus(ctx context.Context, messageID string) (d365.MessageStatus, error)
	GetExecutionIDByMessageID(ctx context.Context, messageID string) (string, error)
	GetExecutionSummaryStatus(ctx context.Context, executionID string) (d365.ExecutionStatus, error)
	GetExecutionErrors(ctx context.Context, executionID string) (*d365.ExecutionErrors, error)
	GetImportStagingErrorFileURL(ctx context.Context, executionID, entity string) (string, error)
	GenerateImportTargetErrorKeysFile(ctx context.Context, executionID, entity string) (bool, error)
	GetImportTargetErrorKeysFileURL(ctx context.Context, executionID, entity string) (string, error)
	FetchBlob(ctx context.Context, blobURL string) (*d365.Download, error)
}

var _ FnO = (*d365.Client)(nil)

// S3 is what the poller calls: the ledger, filing, the sweep's listing of
// inbound/ and the copies of F&O's error files.
type S3 interface {
	ledger.S3
	release.S3
	s3io.Uploader
	ListObjectVersions(context.Context, *s3.ListObjectVersionsInput, ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error)
}

// Poller is the poller function's handler.
type Poller struct {
	cfg      Config
	s3       S3
	fno      FnO
	budget   *Budget
	ledger   *ledger.Store
	releaser *release.Releaser
	log      *slog.Logger

	// told holds the dead-letter messages the last run of this execution
	// environment told of (and freed the scopes of): the next run does
	// not again, which would cost a write and a lock read per message per
	// run for as long as it waits there.
	toldMu sync.Mutex
	told   map[string]bool
}

// New builds the poller. budget must be the limiter the F&O client waits
// on (it is also how calls are counted); q sends the sweep's messages.
func New(cfg Config, s3c S3, fno FnO, budget *Budget, q release.Sender, log *slog.Logger) (*Poller, error) {
	cfg = cfg.withDefaults()
	if s3c == nil || fno == nil || budget == nil || q == nil {
		return nil, fmt.Errorf("poller: S3, F&O, budget and SQS are required")
	}
	if log == nil {
		log = slog.Default()
	}
	rel, err := release.New(cfg.Config, s3c, q, log)
	if err != nil {
		return nil, fmt.Errorf("poller: %w", err)
	}
	return &Poller{cfg: cfg, s3: s3c, fno: fno, budget: budget, releaser: rel, log: log,
		ledger: &ledger.Store{S3: s3c, Bucket: cfg.Bucket, Layout: cfg.Layout}}, nil
}

// Summary is what one run did; it is logged and returned.
type Summary struct {
	Due         int   `json:"due"`         // due records taken on by this run
	More        bool  `json:"more"`        // more were due than the run could take on
	Checked     int   `json:"checked"`     // GetMessageStatus answered
	Finalized   int   `json:"finalized"`   // moved to processed/ or failed/
	Processed   int   `json:"processed"`   // of which processed/
	Failed      int   `json:"failed"`      // of which failed/
	Rescheduled int   `json:"rescheduled"` // still running in F&O
	Stuck       int   `json:"stuck"`       // newly reported stuck
	Retired     int   `json:"retired"`     // stale or duplicate records removed
	Deferred    int   `json:"deferred"`    // due but left for the next run (budget or time)
	Errors      int   `json:"errors"`      // records that hit an error (retried later)
	Quarantined int   `json:"quarantined"` // unreadable ledger records moved to _state/quarantine/
	Swept       int   `json:"swept"`       // lost files whose route got a release request (or that were rejected) by the sweep
	Recovered   int   `json:"recovered"`   // ledger records rebuilt from markers
	Waiting     int   `json:"waiting"`     // old inbound files released but never enqueued (queue backlog or DLQ)
	Held        int   `json:"held"`        // old packages waiting in inbound/ for a package import of their scope
	Calls       int64 `json:"calls"`       // F&O requests made, retries included
	// Skipped says why the run did nothing: another run holds the poller
	// lease, or the lease could not be read or written.
	Skipped string `json:"skipped,omitempty"`
}

// Input is the scheduler's input.
type Input struct {
	Task       string `json:"task"`
	DetailType string `json:"detail-type"` // a scheduled-event envelope
}

// Handle runs one poll. It returns an error only for an unusable input;
// everything else is retried on later runs and counted in the summary.
func (p *Poller) Handle(ctx context.Context, raw json.RawMessage) (Summary, error) {
	var in Input
	if t := strings.TrimSpace(string(raw)); t != "" && t != "null" {
		if err := json.Unmarshal(raw, &in); err != nil {
			return Summary{}, fmt.Errorf("poller: input is not JSON: %w", err)
		}
	}
	if in.Task != "" && in.Task != "poll" {
		return Summary{}, fmt.Errorf("poller: unknown task %q (want \"poll\")", in.Task)
	}
	return p.Run(ctx), nil
}

// Run is one sweep and poll within ctx's deadline minus the margin, under
// the poller lease (see leaseDoc): a run that cannot take it does nothing.
func (p *Poller) Run(ctx context.Context) Summary {
	runCtx := ctx
	dl, hasDeadline := ctx.Deadline()
	if hasDeadline {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithDeadline(ctx, dl.Add(-p.cfg.Margin))
		defer cancel()
	}
	lease, busy, err := p.takeLease(runCtx, dl)
	switch {
	case err != nil:
		s := Summary{Errors: 1, Skipped: "the poller lease could not be taken: " + err.Error()}
		p.log.ErrorContext(ctx, "poller: the lease could not be taken; this run does nothing (the next one tries again)",
			"leaseKey", p.cfg.Layout.PollerLeaseKey(), "error", err.Error())
		return s
	case busy != nil:
		until := busy.Expires.UTC().Format(time.RFC3339)
		p.log.InfoContext(ctx, "poller: another run holds the lease until "+until+"; this run does nothing",
			"leaseKey", p.cfg.Layout.PollerLeaseKey(), "holder", busy.Holder, "until", until)
		return Summary{Skipped: "another run holds the lease until " + until}
	}
	defer p.releaseLease(ctx, lease)
	defer p.cfg.Observers.Metrics.Flush()
	startCalls, started := p.budget.Calls(), time.Now()
	var s Summary
	// Without a route configuration the sweep could only reject: it waits.
	ready := p.releaser.Ready(runCtx)
	if ready != nil {
		p.log.ErrorContext(ctx, "poller: no sweep this run", "error", ready.Error())
		s.Errors++
	} else {
		p.sweep(runCtx, &s)
	}
	p.poll(runCtx, &s)
	p.packageLocks(runCtx, &s)
	if ready == nil {
		p.inFlight(runCtx, p.cfg.Now())
	}
	p.deadLetters(runCtx)
	s.Calls = p.budget.Calls() - startCalls
	p.runMetrics(s, time.Since(started))
	p.log.InfoContext(ctx, "poller: run summary", "summary", s)
	return s
}

// counters guards a Summary shared by workers.
type counters struct {
	mu    sync.Mutex
	s     *Summary
	board map[string]*ledger.BoardEntry // this run's board changes; nil: off the board
}

func (c *counters) add(f func(s *Summary)) {
	c.mu.Lock()
	f(c.s)
	c.mu.Unlock()
}

func (p *Poller) poll(ctx context.Context, s *Summary) {
	order, byID, err := p.due(ctx, s)
	if err != nil {
		p.log.ErrorContext(ctx, "poller: cannot list the ledger", "error", err.Error())
		s.Errors++
		return
	}
	c := &counters{s: s}
	items := p.readRecords(ctx, order, byID, c)
	p.handleAll(ctx, groupBySource(items), c)
	p.saveBoard(ctx, c)
}

// due lists the records due now, oldest first: one identity once (extra
// entries are leftovers of an interrupted reschedule, retired with it).
// Listing stops at the first record not due yet, or once the run has more
// records than its budget could check: the rest wait for later runs.
func (p *Poller) due(ctx context.Context, s *Summary) ([]string, map[string][]ledger.Entry, error) {
	limit := p.perRun(ctx)
	var order []string
	byID := map[string][]ledger.Entry{}
	err := p.ledger.Due(ctx, p.cfg.Now(), func(e ledger.Entry) bool {
		if _, seen := byID[e.Identity]; !seen {
			if len(order) >= limit {
				s.More = true
				return false
			}
			order = append(order, e.Identity)
		}
		s.Due++
		byID[e.Identity] = append(byID[e.Identity], e)
		return true
	})
	return order, byID, err
}

// item is a due ledger record, read.
type item struct {
	rec    ledger.Record
	key    string
	extras []ledger.Entry
	ok     bool
}

// readRecords reads the due records (one GET each, concurrently). A record
// that is not JSON is quarantined.
func (p *Poller) readRecords(ctx context.Context, order []string, byID map[string][]ledger.Entry, c *counters) []item {
	items := make([]item, len(order))
	rg, rctx := errgroup.WithContext(ctx)
	rg.SetLimit(16)
	for i, id := range order {
		es := byID[id]
		rg.Go(func() error {
			if rctx.Err() != nil {
				c.add(func(s *Summary) { s.Deferred++ })
				return nil
			}
			rec, found, err := p.ledger.Get(rctx, es[0].Key)
			if errors.Is(err, s3io.ErrUndecodable) {
				p.quarantine(rctx, es[0], err, c)
				return nil
			}
			if err != nil {
				p.log.ErrorContext(ctx, "poller: cannot read a ledger record", "ledgerKey", es[0].Key, "error", err.Error())
				c.add(func(s *Summary) { s.Errors++ })
				return nil
			}
			// !found: retired meanwhile.
			items[i] = item{rec: rec, key: es[0].Key, extras: es[1:], ok: found}
			return nil
		})
	}
	_ = rg.Wait()
	return items
}

// groupBySource groups records by source key, in order: versions of one key
// are handled one after another, since their moves may pick the same
// destination name.
func groupBySource(items []item) [][]item {
	bySource := map[string]int{}
	var groups [][]item
	for _, it := range items {
		if !it.ok {
			continue
		}
		src := it.rec.Bucket + "/" + it.rec.Key
		g, ok := bySource[src]
		if !ok {
			g = len(groups)
			bySource[src] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], it)
	}
	return groups
}

// handleAll checks and finalizes the groups with bounded concurrency. The
// first record that says "stop" (budget spent, throttled, out of time) stops
// the run; what is left is deferred to the next one.
func (p *Poller) handleAll(ctx context.Context, groups [][]item, c *counters) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.cfg.Concurrency)
	var stop sync.Once
	stopCtx, stopAll := context.WithCancel(gctx)
	defer stopAll()
	for _, group := range groups {
		if stopCtx.Err() != nil {
			c.add(func(s *Summary) { s.Deferred += len(group) })
			continue
		}
		g.Go(func() error {
			for i, it := range group {
				if stopCtx.Err() != nil {
					c.add(func(s *Summary) { s.Deferred += len(group) - i })
					return nil
				}
				if err := p.handle(stopCtx, it.rec, it.key, it.extras, c); err != nil {
					stop.Do(func() {
						if !fnoenv.LogRefusal(ctx, p.log, p.cfg.Observers.Notify, err) {
							p.log.WarnContext(ctx, "poller: stopping early; the rest waits for the next run", "reason", err.Error())
						}
						stopAll()
					})
					c.add(func(s *Summary) { s.Deferred += len(group) - i })
					return nil
				}
			}
			return nil
		})
	}
	_ = g.Wait()
}

// quarantine moves a ledger record that is not a ledger record out of the
// ledger (to _state/quarantine/ledger/...), where it would otherwise fail
// every run, and rebuilds it at once from the file's marker (the identity
// is in the ledger key; the marker holds the same facts). Where that is not
// possible (the marker cannot be read, or has no message ID yet), the sweep
// rebuilds it later.
func (p *Poller) quarantine(ctx context.Context, e ledger.Entry, cause error, c *counters) {
	key := e.Key
	dst, err := s3io.Move(ctx, p.s3, s3io.Ref{Bucket: p.cfg.Bucket, Key: key},
		s3io.Candidates(p.cfg.Layout.QuarantineKey(key), "q"), key, nil)
	if err != nil {
		p.log.ErrorContext(ctx, "poller: a ledger record cannot be read and could not be quarantined", "ledgerKey", key,
			"error", cause.Error(), "moveError", err.Error())
		c.add(func(s *Summary) { s.Errors++ })
		return
	}
	c.add(func(s *Summary) { s.Quarantined++ })
	log := p.log.With("ledgerKey", key, "quarantined", dst, "error", cause.Error())
	rec, res, err := p.rebuildRecord(ctx, e.Identity, p.cfg.Now().UTC())
	switch {
	case err != nil:
		c.add(func(s *Summary) { s.Errors++ })
		log.ErrorContext(ctx, "poller: a ledger record cannot be read; moved to quarantine, not rebuilt from the file's marker (the sweep tries again)",
			"rebuildError", err.Error())
	case res == markerGone:
		log.ErrorContext(ctx, "poller: a ledger record cannot be read; moved to quarantine (its file has no marker: finalized already)")
	case res == markerSending:
		log.ErrorContext(ctx, "poller: a ledger record cannot be read; moved to quarantine (the file's marker has no message ID yet; the sweep follows it)",
			"key", rec.Key)
	default:
		c.add(func(s *Summary) { s.Recovered++ })
		log.ErrorContext(ctx, "poller: a ledger record cannot be read; moved to quarantine and rebuilt from the file's marker",
			"key", rec.Key, "messageId", rec.MessageID)
	}
}

// perRun is how many records one run takes on: what the budget allows in
// the time left (RunQuota: every record costs at least one request), or one
// minute's worth without a deadline.
func (p *Poller) perRun(ctx context.Context) int {
	if p.cfg.MaxPerRun > 0 {
		return p.cfg.MaxPerRun
	}
	left := time.Minute
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	return RunQuota(p.cfg.BudgetPerMinute, left)
}

// handle checks one record and finalizes or reschedules it. It returns an
// error only to say "stop": ErrBudget or a cancelled context.
func (p *Poller) handle(ctx context.Context, rec ledger.Record, key string, extras []ledger.Entry, c *counters) error {
	log := p.log.With("key", rec.Key, "versionId", rec.VersionID, "route", rec.Route, "identity", rec.Identity, "messageId", rec.MessageID)
	retireExtras := func() {
		for _, e := range extras {
			if err := p.ledger.Delete(ctx, e.Key); err == nil {
				c.add(func(s *Summary) { s.Retired++ })
			}
		}
	}
	now := p.cfg.Now().UTC()
	status, final, err := p.check(ctx, rec)
	if err != nil {
		if stop := p.stopIf(ctx, err); stop != nil {
			return stop
		}
		log.WarnContext(ctx, "poller: checking the import's status failed; will retry", "error", err.Error())
		c.add(func(s *Summary) { s.Errors++ })
		rec.LastError = err.Error()
		p.reschedule(ctx, rec, key, now, log, c, false)
		retireExtras()
		return nil
	}
	c.add(func(s *Summary) { s.Checked++ })
	rec.Checks++
	rec.LastStatus = status
	rec.LastCheckAt = now
	rec.LastError = ""
	if !final {
		p.reschedule(ctx, rec, key, now, log, c, true)
		retireExtras()
		return nil
	}
	// A record without a marker belongs to a file finalized already (the
	// marker goes just before the ledger record): only a final status can
	// be such a leftover's, so the marker is read only then.
	// An unreadable marker is there all the same: the file is finalized
	// from its record (which holds all it needs), and the marker goes.
	if _, found, err := p.ledger.GetMarker(ctx, rec.Identity); err != nil && !errors.Is(err, s3io.ErrUndecodable) {
		log.ErrorContext(ctx, "poller: cannot read the marker", "error", err.Error())
		c.add(func(s *Summary) { s.Errors++ })
		return p.stopIf(ctx, err) // the record stays due: the next run checks it again
	} else if !found {
		if err := p.ledger.Delete(ctx, key); err == nil {
			c.add(func(s *Summary) { s.Retired++ })
		}
		retireExtras()
		c.done(rec.Identity)
		log.InfoContext(ctx, "poller: retired a record whose file was already finalized", "ledgerKey", key)
		return nil
	}
	res, err := p.finalizeAny(ctx, rec, status, now, log)
	if err != nil {
		if stop := p.stopIf(ctx, err); stop != nil {
			return stop
		}
		log.ErrorContext(ctx, "poller: finalizing failed; will retry", "error", err.Error())
		c.add(func(s *Summary) { s.Errors++ })
		rec.LastError = "finalize: " + err.Error()
		p.reschedule(ctx, rec, key, now, log, c, false)
		retireExtras()
		return nil
	}
	if err := p.ledger.Delete(ctx, key); err != nil {
		log.WarnContext(ctx, "poller: ledger record not deleted; the next run retires it", "error", err.Error())
	}
	retireExtras()
	c.done(rec.Identity)
	c.add(func(s *Summary) {
		s.Finalized++
		if res.Outcome == filing.OutcomeProcessed {
			s.Processed++
		} else {
			s.Failed++
		}
	})
	return nil
}

// errThrottled: F&O still answered 429 after the client's retries; the run
// stops rather than spend the budget on more throttled calls.
var errThrottled = errors.New("F&O is throttling the poller")

// stopIf turns budget exhaustion, F&O throttling and an ended context into
// a stop signal.
func (p *Poller) stopIf(ctx context.Context, err error) error {
	if errors.Is(err, ErrBudget) {
		return ErrBudget
	}
	var te *d365.ThrottledError
	if errors.As(err, &te) {
		return errThrottled
	}
	var ae *d365.AuthError
	if errors.As(err, &ae) {
		return err // every later call would be refused the same way
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// reschedule writes rec at its next check time. counted says the message
// was checked (rather than retried after an error). Past STUCK_AFTER the
// file gets its stuck report, once, whichever the reason.
func (p *Poller) reschedule(ctx context.Context, rec ledger.Record, key string, now time.Time, log *slog.Logger, c *counters, counted bool) {
	age := now.Sub(rec.EnqueuedAt)
	stuck := age >= p.cfg.StuckAfter
	if stuck && rec.StuckReportedAt.IsZero() {
		if err := p.reportStuck(ctx, rec, now); err != nil {
			log.ErrorContext(ctx, "poller: stuck report not written", "error", err.Error())
		} else {
			rec.StuckReportedAt = now
			c.add(func(s *Summary) { s.Stuck++ })
			p.stuck(ctx, rec, age)
			log.WarnContext(ctx, "poller: message is stuck in F&O", "status", rec.LastStatus, "age", age.Round(time.Minute).String(),
				"checks", rec.Checks, "report", rec.Key+layout.StuckSuffix)
		}
	}
	rec.NextCheck = now.Add(NextDelay(age, stuck, p.cfg.Interval))
	if _, err := p.ledger.Reschedule(ctx, key, rec); err != nil {
		log.ErrorContext(ctx, "poller: reschedule failed; the record stays due", "error", err.Error())
		c.add(func(s *Summary) { s.Errors++ })
		return
	}
	c.note(rec)
	if counted {
		c.add(func(s *Summary) { s.Rescheduled++ })
		log.DebugContext(ctx, "poller: still running in F&O", "status", rec.LastStatus, "nextCheck", rec.NextCheck)
	}
}

// NextDelay is the back-off between checks of a message of this age, in
// steps of unit (POLL_INTERVAL, default 1m): young messages every unit,
// then 2, 10 and 30 units as they age past 10, 60 and 360 units; stuck ones
// every 60 units. Multiples of unit saturate at the longest Duration
// instead of wrapping round to a negative delay (which would make the
// record due again at once, every run).
func NextDelay(age time.Duration, stuck bool, unit time.Duration) time.Duration {
	if unit <= 0 {
		unit = time.Minute
	}
	units := func(n time.Duration) time.Duration {
		if unit > math.MaxInt64/n {
			return math.MaxInt64
		}
		return n * unit
	}
	switch {
	case stuck:
		return units(60)
	case age < units(10):
		return unit
	case age < units(60):
		return units(2)
	case age < units(360):
		return units(10)
	default:
		return units(30)
	}
}

// StuckReport is written beside a file whose message has not finished.
type StuckReport struct {
	MessageID  string    `json:"messageId"`
	Status     string    `json:"lastStatus"`
	LastError  string    `json:"lastError,omitempty"`
	EnqueuedAt time.Time `json:"enqueuedAt"`
	ReportedAt time.Time `json:"reportedAt"`
	Checks     int       `json:"checks"`
	Route      string    `json:"route"`
	Entity     string    `json:"entity,omitempty"`
	ActivityID string    `json:"activityId"`
	// ExecutionID names a package import (route kind dataProject).
	ExecutionID string `json:"executionId,omitempty"`
	Note        string `json:"note"`
}

func (p *Poller) reportStuck(ctx context.Context, rec ledger.Record, now time.Time) error {
	return s3io.PutJSON(ctx, p.s3, rec.Bucket, rec.Key+layout.StuckSuffix, StuckReport{
		MessageID: rec.MessageID, Status: rec.LastStatus, LastError: rec.LastError, EnqueuedAt: rec.EnqueuedAt, ReportedAt: now, Checks: rec.Checks,
		Route: rec.Route, Entity: rec.Entity, ActivityID: rec.ActivityID, ExecutionID: rec.ExecutionID,
		Note: stuckCause(rec) + " The poller keeps checking hourly; this report goes when the file is finalized.",
	})
}

// fileOf is the part of a source key after inbound/<route>/.
func (p *Poller) fileOf(rec ledger.Record) string {
	_, file, ok := p.cfg.Layout.Split(rec.Key)
	if !ok || file == "" {
		return path.Base(rec.Key)
	}
	return file
}
