package dequeue

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/notify"
)

// Config is the dequeue function's configuration. Bucket is required; the
// zero value of every other field takes the documented default.
type Config struct {
	// Bucket receives the exports.
	Bucket string
	// OutboundPrefix is the default parent of a job's prefix: a job without
	// "prefix" lands under OutboundPrefix + job + "/". Default "outbound/".
	OutboundPrefix string
	// StatePrefix holds idempotency markers and missing-file records, under
	// StatePrefix + "exports/<job>/". Default "_state/".
	StatePrefix string
	// FailedPrefix holds the result documents of package exports that F&O
	// ended with errors, under FailedPrefix + "_exports/<job>/". Default
	// "failed/".
	FailedPrefix string
	// DeadlineMargin: no new file is dequeued when less than this remains
	// before the invocation's deadline. Default 30s.
	DeadlineMargin time.Duration
	// PartSize is the multipart part size: default DefaultPartSize (8 MiB),
	// at least MinPartSize (5 MiB). Memory per transfer is about
	// PartSize × (Concurrency + 2); see the package documentation.
	PartSize int64
	// Concurrency is the number of parts uploaded at once. Default 2.
	Concurrency int
	// MaxConsecutiveFailures stops an invocation after this many files in a
	// row failed (S3 or F&O is probably down). Default 3.
	MaxConsecutiveFailures int
	// ExecutionPoll is the first wait between two looks at a dataProject
	// job's running execution (and at its package URL while F&O has none
	// yet); each wait doubles, up to maxExecutionPoll. Default 5s.
	ExecutionPoll time.Duration
	// ExecutionWait bounds how long one run waits for an execution to end
	// and its package to land (DeadlineMargin before the invocation's
	// deadline ends the wait sooner); the next run follows it. Default 10m.
	ExecutionWait time.Duration
	// ExecutionLostAfter: an execution F&O has said it does not know (400
	// "not found", or Unknown) for this long is given up, and the job
	// starts a new one. Default 1h.
	ExecutionLostAfter time.Duration
	// ExecutionStuckAfter: an execution F&O still runs (or has not begun,
	// NotRun) this long after it started is told to a person once, since
	// the job starts no other while it runs. Default 24h.
	ExecutionStuckAfter time.Duration
	// Now is the clock for key dates and the deadline check. Default time.Now.
	Now func() time.Time
	// Logger gets one line per file and a summary per invocation. Default
	// slog.Default().
	Logger *slog.Logger
	// Notify tells a person of an export that failed; Metrics counts
	// exports landed, bytes, failures and acknowledgements. Both optional.
	Notify  *notify.Notifier
	Metrics *metrics.Recorder
}

const (
	// DefaultPartSize is the multipart part size unless configured.
	DefaultPartSize int64 = 8 << 20
	// MinPartSize is S3's minimum part size.
	MinPartSize int64 = 5 << 20
	// DefaultConcurrency is the number of parts in flight unless configured.
	DefaultConcurrency = 2

	// maxMarginSeconds is the most whole seconds a time.Duration holds.
	maxMarginSeconds = int64(1<<63-1) / int64(time.Second)
)

// ConfigFromEnv reads BUCKET (required), OUTBOUND_PREFIX, STATE_PREFIX, FAILED_PREFIX,
// DEADLINE_MARGIN (a Go duration like "45s", or whole seconds),
// UPLOAD_PART_MIB and UPLOAD_CONCURRENCY. An error names the variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Bucket:         strings.TrimSpace(getenv("BUCKET")),
		OutboundPrefix: getenv("OUTBOUND_PREFIX"),
		StatePrefix:    getenv("STATE_PREFIX"),
		FailedPrefix:   getenv("FAILED_PREFIX"),
	}
	if c.Bucket == "" {
		return Config{}, fmt.Errorf("config: BUCKET is required")
	}
	if v := strings.TrimSpace(getenv("DEADLINE_MARGIN")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			n, nerr := strconv.ParseInt(v, 10, 64)
			if nerr != nil {
				return Config{}, fmt.Errorf("config: DEADLINE_MARGIN %q: want a duration like 30s", v)
			}
			// Refused like ParseDuration refuses "2562048h": seconds
			// past a Duration's range would wrap round.
			if n > maxMarginSeconds || n < -maxMarginSeconds {
				return Config{}, fmt.Errorf("config: DEADLINE_MARGIN %q: out of range (at most %d seconds)", v, maxMarginSeconds)
			}
			d = time.Duration(n) * time.Second
		}
		if d <= 0 {
			return Config{}, fmt.Errorf("config: DEADLINE_MARGIN %q: must be positive", v)
		}
		c.DeadlineMargin = d
	}
	if v := strings.TrimSpace(getenv("UPLOAD_PART_MIB")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 || n > 512 {
			return Config{}, fmt.Errorf("config: UPLOAD_PART_MIB %q: want a whole number from 5 to 512", v)
		}
		c.PartSize = int64(n) << 20
	}
	if v := strings.TrimSpace(getenv("UPLOAD_CONCURRENCY")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 16 {
			return Config{}, fmt.Errorf("config: UPLOAD_CONCURRENCY %q: want a whole number from 1 to 16", v)
		}
		c.Concurrency = n
	}
	return c.withDefaults()
}

// withDefaults fills defaults and checks the values.
func (c Config) withDefaults() (Config, error) {
	if strings.TrimSpace(c.Bucket) == "" {
		return Config{}, fmt.Errorf("config: BUCKET is required")
	}
	if strings.TrimSpace(c.OutboundPrefix) == "" {
		c.OutboundPrefix = "outbound/"
	}
	p, err := CheckPrefix(c.OutboundPrefix)
	if err != nil {
		return Config{}, fmt.Errorf("config: OUTBOUND_PREFIX: %w", err)
	}
	c.OutboundPrefix = p
	if strings.TrimSpace(c.StatePrefix) == "" {
		c.StatePrefix = "_state/"
	}
	if p, err = CheckPrefix(c.StatePrefix); err != nil {
		return Config{}, fmt.Errorf("config: STATE_PREFIX: %w", err)
	}
	c.StatePrefix = p
	if strings.HasPrefix(c.OutboundPrefix, c.StatePrefix) || strings.HasPrefix(c.StatePrefix, c.OutboundPrefix) {
		return Config{}, fmt.Errorf("config: OUTBOUND_PREFIX %q and STATE_PREFIX %q must not contain each other", c.OutboundPrefix, c.StatePrefix)
	}
	if strings.TrimSpace(c.FailedPrefix) == "" {
		c.FailedPrefix = "failed/"
	}
	if c.FailedPrefix, err = CheckPrefix(c.FailedPrefix); err != nil {
		return Config{}, fmt.Errorf("config: FAILED_PREFIX: %w", err)
	}
	for _, o := range []struct{ name, p string }{{"OUTBOUND_PREFIX", c.OutboundPrefix}, {"STATE_PREFIX", c.StatePrefix}} {
		if strings.HasPrefix(c.FailedPrefix, o.p) || strings.HasPrefix(o.p, c.FailedPrefix) {
			return Config{}, fmt.Errorf("config: FAILED_PREFIX %q and %s %q must not contain each other", c.FailedPrefix, o.name, o.p)
		}
	}
	if c.DeadlineMargin <= 0 {
		c.DeadlineMargin = 30 * time.Second
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	if c.PartSize < MinPartSize {
		return Config{}, fmt.Errorf("config: part size %d is below S3's minimum of 5 MiB", c.PartSize)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxConsecutiveFailures <= 0 {
		c.MaxConsecutiveFailures = 3
	}
	if c.ExecutionPoll <= 0 {
		c.ExecutionPoll = 5 * time.Second
	}
	if c.ExecutionWait <= 0 {
		c.ExecutionWait = 10 * time.Minute
	}
	if c.ExecutionLostAfter <= 0 {
		c.ExecutionLostAfter = time.Hour
	}
	if c.ExecutionStuckAfter <= 0 {
		c.ExecutionStuckAfter = 24 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
