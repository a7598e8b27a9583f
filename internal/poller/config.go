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

	"github.com/fno-bridge/s3-fno/internal/routes"
)

// Config is the poller's configuration.
type Config struct {
	routes.Config
	// QueueURL is the FIFO import queue the sweep routes lost files to
	// (IMPORT_QUEUE_URL).
	QueueURL string
	// BudgetPerMinute is POLL_BUDGET_PER_MINUTE (default 1000): the F&O
	// requests per minute the poller may make, retries included. OData
	// allows 6,000 per 5 minutes per user, shared with the other functions.
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
	// MaxPerRun caps the due records one run takes on (default: the budget
	// for the time left, at least one minute's worth).
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
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
}

// ConfigFromEnv reads BUCKET, ROUTES, the prefixes, IMPORT_QUEUE_URL,
// POLL_BUDGET_PER_MINUTE, SWEEP_AFTER and STUCK_AFTER.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	rc, err := routes.FromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	c := Config{Config: rc, QueueURL: strings.TrimSpace(getenv("IMPORT_QUEUE_URL"))}
	if c.QueueURL == "" {
		return Config{}, fmt.Errorf("config: IMPORT_QUEUE_URL is required (the sweep routes lost files to it)")
	}
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
// to New. It allows BudgetPerMinute requests per minute with a burst of one
// minute's budget.
type Budget struct {
	lim   *rate.Limiter
	calls atomic.Int64
}

// NewBudget is a Budget of perMinute requests per minute.
func NewBudget(perMinute int) *Budget {
	if perMinute < 1 {
		perMinute = 1
	}
	return &Budget{lim: rate.NewLimiter(rate.Limit(float64(perMinute)/60), perMinute)}
}

// Wait blocks until a request may go out. It fails at once, with ErrBudget,
// when the wait would pass ctx's deadline.
func (b *Budget) Wait(ctx context.Context) error {
	if err := b.lim.Wait(ctx); err != nil {
		return fmt.Errorf("%w: %v", ErrBudget, err)
	}
	b.calls.Add(1)
	return nil
}

// Calls is the number of requests let through so far.
func (b *Budget) Calls() int64 { return b.calls.Load() }
