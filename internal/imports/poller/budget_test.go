package poller

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// fakeClock is simulated time for a Budget: sleeping moves it.
type fakeClock struct {
	t      time.Time
	sleeps int
}

func (c *fakeClock) now() time.Time { return c.t }
func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.sleeps++
	c.t = c.t.Add(d)
	return ctx.Err()
}

// deadlineCtx has a deadline in simulated time that never fires by itself.
type deadlineCtx struct {
	context.Context
	dl time.Time
}

func (c deadlineCtx) Deadline() (time.Time, bool) { return c.dl, true }

var epoch = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func fakeBudget(perMinute int, c *fakeClock) *Budget {
	b := NewBudget(perMinute)
	b.now, b.sleep = c.now, c.sleep
	return b
}

// mostIn is the most times in any closed window of length w (both ends
// counted, the strictest reading); ts is ascending.
func mostIn(ts []time.Time, w time.Duration) int {
	best, lo := 0, 0
	for hi := range ts {
		for ts[hi].Sub(ts[lo]) > w {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// use makes requests as fast as b lets them through until the simulated
// clock reaches until (or ctx's deadline stops it), idling idle between
// requests; it returns when each went out.
func use(t *testing.T, b *Budget, c *fakeClock, ctx context.Context, until time.Time, idle func() time.Duration) []time.Time {
	t.Helper()
	var at []time.Time
	for c.t.Before(until) {
		if err := b.Wait(ctx); err != nil {
			if !errors.Is(err, ErrBudget) {
				t.Fatalf("Wait: %v, want ErrBudget", err)
			}
			break
		}
		at = append(at, c.t)
		if idle != nil {
			c.t = c.t.Add(idle())
		}
	}
	return at
}

// TestBudgetCap: whatever the pattern of requests (flat out, in runs with
// idle gaps between them, at random, in a fresh execution environment
// every run), no 60 seconds hold more than the budget. It also checks the
// cap is not met by starving: flat out, a Budget lets through all its rate
// allows.
func TestBudgetCap(t *testing.T) {
	for _, perMinute := range []int{1, 2, 3, 6, 7, 60, 999, 1000, 6000} {
		limit, burst := BudgetRate(perMinute)
		if burst < 1 || limit <= 0 {
			t.Fatalf("BudgetRate(%d) = %v, %d: no request could ever go out", perMinute, limit, burst)
		}
		check := func(name string, at []time.Time) {
			t.Helper()
			if n := mostIn(at, time.Minute); n > perMinute {
				t.Errorf("budget %d, %s: %d requests within 60 s", perMinute, name, n)
			}
		}
		// Flat out for 10 minutes: the burst, then the rate.
		c := &fakeClock{t: epoch}
		b := fakeBudget(perMinute, c)
		at := use(t, b, c, context.Background(), epoch.Add(10*time.Minute), nil)
		check("flat out", at)
		if want := float64(burst) + float64(limit)*600 - 1; float64(len(at)) < want {
			t.Errorf("budget %d: %d requests in 10 minutes flat out, want at least %.0f", perMinute, len(at), want)
		}
		if b.Calls() != int64(len(at)) {
			t.Errorf("Calls() = %d, %d let through", b.Calls(), len(at))
		}
		// One warm environment, runs of 110 s every 2 minutes, each run's
		// requests at random moments or flat out: the idle 10 s between
		// runs must not buy a burst.
		rng := rand.New(rand.NewPCG(uint64(perMinute), 7))
		c = &fakeClock{t: epoch}
		b = fakeBudget(perMinute, c)
		at = nil
		for run := range 10 {
			start := epoch.Add(time.Duration(run) * 2 * time.Minute)
			c.t = start
			ctx := deadlineCtx{context.Background(), start.Add(110 * time.Second)}
			var idle func() time.Duration
			if run%2 == 1 {
				idle = func() time.Duration {
					return time.Duration(rng.Int64N(int64(3 * time.Second / time.Duration(perMinute))))
				}
			}
			at = append(at, use(t, b, c, ctx, start.Add(2*time.Minute), idle)...)
		}
		check("warm runs", at)
		// Every run a cold start: a fresh Budget each time.
		at = nil
		for run := range 10 {
			start := epoch.Add(time.Duration(run) * 2 * time.Minute)
			c = &fakeClock{t: start}
			ctx := deadlineCtx{context.Background(), start.Add(110 * time.Second)}
			at = append(at, use(t, fakeBudget(perMinute, c), c, ctx, start.Add(2*time.Minute), nil)...)
		}
		check("cold runs", at)
		if perMinute == 1000 {
			// The default against the OData limit: 6,000 in 5 minutes.
			if n := mostIn(at, 5*time.Minute); n > 6000 {
				t.Errorf("cold runs every 2 minutes: %d requests within 5 minutes", n)
			}
		}
	}
}

// TestBudgetDeadline: a request whose wait would pass the deadline fails
// at once with ErrBudget, without sleeping, and does not use up the
// budget; a cancelled wait gives its place back too.
func TestBudgetDeadline(t *testing.T) {
	c := &fakeClock{t: epoch}
	b := fakeBudget(61, c) // one request a second after the first
	ctx := deadlineCtx{context.Background(), epoch.Add(500 * time.Millisecond)}
	if err := b.Wait(ctx); err != nil {
		t.Fatalf("first request: %v", err)
	}
	for range 3 {
		if err := b.Wait(ctx); !errors.Is(err, ErrBudget) {
			t.Fatalf("a request 1 s away with 0.5 s left: %v, want ErrBudget", err)
		}
	}
	if c.sleeps != 0 || b.Calls() != 1 {
		t.Fatalf("slept %d times, %d calls", c.sleeps, b.Calls())
	}
	// The refused requests left no debt: the next one waits 1 s, not 4.
	if err := b.Wait(context.Background()); err != nil || !c.t.Equal(epoch.Add(time.Second)) {
		t.Fatalf("next request at %s (%v), want 1 s after the first", c.t.Sub(epoch), err)
	}
	// A wait cut short (the invocation ends) gives its place back.
	b.sleep = func(context.Context, time.Duration) error { return context.Canceled }
	if err := b.Wait(context.Background()); !errors.Is(err, ErrBudget) {
		t.Fatalf("cancelled wait: %v, want ErrBudget", err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Wait(cancelled); !errors.Is(err, ErrBudget) {
		t.Fatalf("wait on a cancelled context: %v, want ErrBudget", err)
	}
	b.sleep = c.sleep
	if err := b.Wait(context.Background()); err != nil || !c.t.Equal(epoch.Add(2*time.Second)) || b.Calls() != 3 {
		t.Fatalf("after the cancelled wait: request at %s, %d calls (%v), want 2 s and 3", c.t.Sub(epoch), b.Calls(), err)
	}
}

// TestRunQuota: a run takes on what the limiter lets through in its time,
// and no budget or duration overflows the quota.
func TestRunQuota(t *testing.T) {
	for _, tc := range []struct {
		perMinute int
		left      time.Duration
		want      int
	}{
		{1000, 110 * time.Second, 1832}, // the template: 120 s timeout, 10 s margin
		{1000, time.Minute, 1000},
		{1000, 0, 1},
		{1000, -time.Hour, 1},
		{2, 30 * time.Second, 1},
		{1, time.Hour, 31},
		{math.MaxInt, time.Minute, 1 << 30},
		{math.MaxInt, math.MaxInt64, 1 << 30},
		{1000, math.MaxInt64, 1 << 30},
	} {
		if got := RunQuota(tc.perMinute, tc.left); got != tc.want {
			t.Errorf("RunQuota(%d, %s) = %d, want %d", tc.perMinute, tc.left, got, tc.want)
		}
	}
	p := &Poller{cfg: Config{BudgetPerMinute: math.MaxInt}.withDefaults()}
	if n := p.perRun(context.Background()); n < 1 {
		t.Fatalf("perRun with budget MaxInt = %d", n)
	}
}

// TestNextDelay: the back-off steps, and multiples of a huge unit saturate
// instead of wrapping round to a negative delay.
func TestNextDelay(t *testing.T) {
	m := time.Minute
	for _, tc := range []struct {
		age   time.Duration
		stuck bool
		unit  time.Duration
		want  time.Duration
	}{
		{0, false, m, m}, {10 * m, false, m, 2 * m}, {60 * m, false, m, 10 * m}, {360 * m, false, m, 30 * m},
		{time.Hour, true, m, time.Hour}, {0, false, 0, m},
		{0, true, math.MaxInt64 / 59, math.MaxInt64},
		{math.MaxInt64, false, math.MaxInt64 / 20, math.MaxInt64},
		{math.MaxInt64 / 2, false, math.MaxInt64 / 100, math.MaxInt64 / 100 * 2},
		{math.MaxInt64 / 10 * 7, false, math.MaxInt64 / 100, math.MaxInt64 / 100 * 10},
		{math.MaxInt64 / 10 * 7, true, math.MaxInt64 / 100, math.MaxInt64 / 100 * 60},
		{0, false, math.MaxInt64, math.MaxInt64},
	} {
		if got := NextDelay(tc.age, tc.stuck, tc.unit); got != tc.want {
			t.Errorf("NextDelay(%s, %v, %s) = %s, want %s", tc.age, tc.stuck, tc.unit, got, tc.want)
		}
	}
}
