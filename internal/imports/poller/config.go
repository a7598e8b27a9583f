package poller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/fno-bridge/s3-fno/internal/imports/deadletter"
	"github.com/fno-bridge/s3-fno/internal/imports/release"
)

// Config is the poller's configuration.
type Config struct {
	// The routes, the bucket, the FIFO import queue the sweep asks for
	// release passes on, and the Observers that hear of files filed and
	// reported stuck.
	release.Config
	// BudgetPerMinute is POLL_BUDGET_PER_MINUTE (default 1000): the most
	// F&O requests the poller makes in any 60 seconds in one execution
	// environment, retries included (see BudgetRate). The poller lease
	// keeps two runs from overlapping, so that is the poller's rate, not
	// one of several. OData allows 6,000 per 5 minutes per user, shared
	// with the other functions.
	BudgetPerMinute int
	// SweepAfter is SWEEP_AFTER (default 15m): an inbound file this old
	// that was never routed is routed by the sweep.
	SweepAfter time.Duration
	// StuckAfter is STUCK_AFTER (default 24h): a message not finished this
	// long after enqueue is reported stuck (once) and then checked hourly.
	StuckAfter time.Duration
	// Interval is POLL_INTERVAL (default 1m), the unit of the per-record
	// back-off (see NextDelay); the local demo shortens it.
	Interval time.Duration
	// SweepEvery is how often the sweep runs at most (default SweepAfter/3,
	// between 1 and 10 minutes); negative: every invocation.
	SweepEvery time.Duration
	// MaxPerRun caps the due records one run takes on (default: RunQuota
	// for the time left; one minute's worth without a deadline).
	MaxPerRun int
	// Concurrency bounds the records checked at once (default 4).
	Concurrency int
	// Margin is kept free before the invocation's deadline (default 10s).
	Margin time.Duration
	// TargetKeysPolls and TargetKeysWait bound the wait for F&O's target
	// error keys file (default 5 polls, 1s apart); if it is not ready the
	// result says so and the file is finalized anyway.
	TargetKeysPolls int
	TargetKeysWait  time.Duration
	// PackageUnknownGrace is how long the lock of a package import whose
	// ImportFromPackage answer was lost is kept while F&O shows no
	// execution of its ID (default 1h): then the import never started, and
	// the scope's next package may go.
	PackageUnknownGrace time.Duration
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// DLQURL is the import dead-letter queue (IMPORT_DLQ_URL, optional):
	// each run tells of the messages that reached it, once each.
	DLQURL string
	DLQ    deadletter.Queue
}

// ConfigFromEnv reads BUCKET, ROUTES, the prefixes, IMPORT_QUEUE_URL,
// POLL_BUDGET_PER_MINUTE, SWEEP_AFTER and STUCK_AFTER.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	rc, err := release.ConfigFromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	c := Config{Config: rc, DLQURL: strings.TrimSpace(getenv("IMPORT_DLQ_URL"))}
	if v := strings.TrimSpace(getenv("POLL_BUDGET_PER_MINUTE")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return Config{}, fmt.Errorf("config: POLL_BUDGET_PER_MINUTE %q must be a whole number of requests per minute, at least 1", v)
		}
		c.BudgetPerMinute = n
	}
	for _, d := range []struct {
		name string
		p    *time.Duration
	}{{"SWEEP_AFTER", &c.SweepAfter}, {"STUCK_AFTER", &c.StuckAfter}, {"POLL_INTERVAL", &c.Interval}} {
		v := strings.TrimSpace(getenv(d.name))
		if v == "" {
			continue
		}
		x, err := time.ParseDuration(v)
		if err != nil || x <= 0 {
			return Config{}, fmt.Errorf("config: %s %q must be a positive duration such as 15m or 24h", d.name, v)
		}
		*d.p = x
	}
	return c.withDefaults(), nil
}

func (c Config) withDefaults() Config {
	if c.BudgetPerMinute <= 0 {
		c.BudgetPerMinute = 1000
	}
	if c.SweepAfter <= 0 {
		c.SweepAfter = 15 * time.Minute
	}
	if c.StuckAfter <= 0 {
		c.StuckAfter = 24 * time.Hour
	}
	if c.Interval <= 0 {
		c.Interval = time.Minute
	}
	if c.SweepEvery == 0 {
		c.SweepEvery = min(max(c.SweepAfter/3, time.Minute), 10*time.Minute)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.Margin <= 0 {
		c.Margin = 10 * time.Second
	}
	if c.TargetKeysPolls <= 0 {
		c.TargetKeysPolls = 5
	}
	if c.TargetKeysWait <= 0 {
		c.TargetKeysWait = time.Second
	}
	if c.PackageUnknownGrace <= 0 {
		c.PackageUnknownGrace = time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// ErrBudget: the request budget (or the time left) allows no more F&O calls
// in this invocation.
var ErrBudget = errors.New("poll budget exhausted for this invocation")

// Budget is the rate limiter the F&O client waits on before every request,
// retries included; it also counts them. Build one per execution
// environment and pass it both to the client (fnoenv.Options.Limiter) and
// to New. Its parameters (BudgetRate) make BudgetPerMinute a cap on every
// 60-second window, not an average, warm or cold.
type Budget struct {
	lim   *rate.Limiter
	calls atomic.Int64
	// now and sleep are the clock; tests replace them to drive the
	// limiter in simulated time.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// budgetBurst is the requests a Budget lets through without pacing.
//
// Why 1: a token bucket allows at most burst + rate × 60 s requests in any
// 60 seconds, so with rate = (budget − burst)/60 s every window is capped
// at the budget whatever the burst; a smaller burst then gives a run the
// most requests (burst + rate × its length, with the rate highest at burst
// 1), and a run in a fresh execution environment starts with no more than
// a warm one has left, so cold starts cannot add up to more than the rate
// (3 + 280 s × rate in 5 minutes at rate(2 minutes): 4,665 at the default
// 1,000, under the OData limit of 6,000). The concurrent workers need no
// burst: they queue on the limiter either way.
const budgetBurst = 1

// BudgetRate is the limiter behind NewBudget(perMinute): burst 1 and
// (perMinute − 1) requests a minute, so no 60-second window (closed, both
// ends counted) holds more than perMinute requests. A budget of 1 would
// leave no rate: it gets one request every 2 minutes, still within the
// cap. Exported so that the schedule simulation in bench/ runs the very
// same limiter.
func BudgetRate(perMinute int) (limit rate.Limit, burst int) {
	perMinute = max(perMinute, 1)
	// float64 first: perMinute may be near MaxInt64.
	perWindow := max(float64(perMinute)-budgetBurst, 0.5)
	return rate.Limit(perWindow / 60), budgetBurst
}

// NewBudget is a Budget of at most perMinute requests in any 60 seconds.
func NewBudget(perMinute int) *Budget {
	return &Budget{lim: rate.NewLimiter(BudgetRate(perMinute)), now: time.Now, sleep: sleepCtx}
}

// RunQuota is the most records a run with left time to its deadline takes
// on: the requests a fresh Budget of perMinute lets through in that time
// (every record costs at least one), at least 1. It is computed in
// float64 and clamped, so no budget or duration overflows it.
func RunQuota(perMinute int, left time.Duration) int {
	limit, burst := BudgetRate(perMinute)
	// The nudge keeps float rounding from losing a whole request
	// (1 + 999/60 × 60 is 999.9999…).
	n := float64(burst) + float64(limit)*max(left, 0).Seconds() + 1e-6
	const most = 1 << 30 // far more records than one run could list
	if n >= most {
		return most
	}
	return max(1, int(n))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wait blocks until a request may go out. It fails at once, with ErrBudget,
// when the wait would pass ctx's deadline, and gives the request's place
// back when it fails.
func (b *Budget) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrBudget, err)
	}
	now := b.now()
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return fmt.Errorf("%w: the limiter refused the request", ErrBudget)
	}
	d := r.DelayFrom(now)
	if dl, ok := ctx.Deadline(); ok && now.Add(d).After(dl) {
		r.CancelAt(now)
		return fmt.Errorf("%w: the next request would wait %s, past the deadline", ErrBudget, d)
	}
	if d > 0 {
		if err := b.sleep(ctx, d); err != nil {
			r.CancelAt(b.now())
			return fmt.Errorf("%w: %v", ErrBudget, err)
		}
	}
	b.calls.Add(1)
	return nil
}

// Calls is the number of requests let through so far.
func (b *Budget) Calls() int64 { return b.calls.Load() }
