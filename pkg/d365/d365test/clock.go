package d365test

import (
	"sync"
	"time"
)

// clock is the fake time behind dequeue visibility, LastDequeueDateTime,
// SAS expiry and token expiry. Tests move it with Advance instead of
// sleeping through F&O's 30-minute and 7-day windows.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(start time.Time) *clock {
	if start.IsZero() {
		start = time.Now().UTC().Truncate(time.Second)
	}
	return &clock{now: start.UTC()}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Now is the emulator's fake time.
func (e *Emulator) Now() time.Time { return e.clock.Now() }

// Advance moves the fake clock forward by d. It drives dequeue re-delivery
// (VisibilityTimeout), LastDequeueDateTime, SAS expiry (SASLifetime) and
// token expiry (TokenLifetime).
func (e *Emulator) Advance(d time.Duration) { e.clock.Advance(d) }

// dotnetTime formats t the way F&O's JSON shows DateTime values, as in
// jobstatus answers: "2016-08-27T20:58:15", UTC, without a zone.
func dotnetTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05") }
